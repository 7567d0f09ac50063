//! A server program for tests (Alertmanager, Prometheus) on a loopback
//! port, in a directory of its own, stopped (its directory removed) when
//! dropped or when the test process dies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Runs the program and stops it when the test process's end of the pipe
/// closes, even if the test process is killed.
const SUPERVISOR: &str = r#"
set -eu
# Signals to the process group are for the test process; the supervisor
# cleans up when its pipe closes.
trap '' INT TERM HUP
dir="$1"; shift
"$@" >"$dir/daemon.log" 2>&1 &
pid=$!
echo started
read -r _ || true
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
rm -rf "$dir"
"#;

pub struct Daemon {
    name: String,
    port: u16,
    dir: PathBuf,
    stdin: Mutex<Option<ChildStdin>>,
    child: Mutex<Child>,
}

impl Daemon {
    /// Starts `binary` with the arguments `args` makes from its directory
    /// and port, after writing `files` into that directory; waits until
    /// `GET ready` answers 200 (30 s at most).
    pub fn start(
        name: &str,
        binary: &Path,
        files: &[(&str, &str)],
        args: impl FnOnce(&Path, u16) -> Vec<String>,
        ready: &str,
    ) -> Daemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free loopback port");
        let dir = std::env::temp_dir().join(format!("db-monitor-{name}-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the daemon");
        for (file, text) in files {
            std::fs::write(dir.join(file), text).expect("a daemon's file");
        }
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg(format!("db-monitor-{name}"))
            .arg(&dir)
            .arg(binary)
            .args(args(&dir, port))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("could not run sh to start {name}: {e}"));
        let stdin = child.stdin.take();
        let mut started = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut started)
            .expect("supervisor output");
        let daemon = Daemon {
            name: name.to_owned(),
            port,
            dir,
            stdin: Mutex::new(stdin),
            child: Mutex::new(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while daemon.get(ready).map(|(status, _)| status) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "{name} did not become ready; its log:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        daemon
    }

    /// Its base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What it wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// `GET path` over HTTP/1.0: the status and the body.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_owned()))
    }
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {}", self.name, self.url())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Closing the pipe makes the supervisor stop the program.
        drop(self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take());
        let _ = self.child.lock().unwrap_or_else(|e| e.into_inner()).wait();
    }
}
