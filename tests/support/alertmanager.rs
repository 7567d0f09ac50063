//! A real Alertmanager for tests: Debian's `prometheus-alertmanager`,
//! installed by `scripts/install-test-tools` when missing, started on a
//! loopback port with clustering off, and stopped (its directory removed)
//! when dropped or when the test process dies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Stops Alertmanager when the test process's end of the pipe closes,
/// even if the test process is killed.
const SUPERVISOR: &str = r#"
set -eu
# Signals to the process group are for the test process; the supervisor
# cleans up when its pipe closes.
trap '' INT TERM HUP
bin="$1"; dir="$2"; port="$3"
"$bin" --config.file="$dir/alertmanager.yml" --storage.path="$dir/data" \
  --web.listen-address="127.0.0.1:$port" --cluster.listen-address= \
  --log.level=warn >"$dir/alertmanager.log" 2>&1 &
pid=$!
echo started
read -r _ || true
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
rm -rf "$dir"
"#;

const CONFIG: &str = "\
global:
  resolve_timeout: 1h
route:
  receiver: nowhere
  group_wait: 1s
receivers:
  - name: nowhere
";

pub struct TempAlertmanager {
    port: u16,
    dir: PathBuf,
    stdin: Mutex<Option<ChildStdin>>,
    child: Mutex<Child>,
}

impl TempAlertmanager {
    /// Starts one, installing it first when missing. `None` (with a
    /// message) when it cannot be had here; under `CI` that is a failure.
    pub fn start() -> Option<TempAlertmanager> {
        let binary = super::tools::binary(&["prometheus-alertmanager", "alertmanager"])?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free loopback port");
        let dir = std::env::temp_dir().join(format!("db-monitor-am-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("alertmanager directory");
        std::fs::write(dir.join("alertmanager.yml"), CONFIG).expect("alertmanager config");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("db-monitor-am")
            .arg(&binary)
            .arg(&dir)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("could not run sh to start Alertmanager");
        let stdin = child.stdin.take();
        let mut started = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut started)
            .expect("supervisor output");
        let am = TempAlertmanager {
            port,
            dir,
            stdin: Mutex::new(stdin),
            child: Mutex::new(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while am.get("/-/ready").map(|(status, _)| status) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "Alertmanager did not become ready; its log:\n{}",
                std::fs::read_to_string(am.dir.join("alertmanager.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(am)
    }

    /// Its base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
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

    /// The alerts Alertmanager holds now (`GET /api/v2/alerts`: active ones).
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        match self.get("/api/v2/alerts") {
            Some((200, body)) => serde_json::from_str(&body).expect("alerts JSON"),
            other => panic!("GET /api/v2/alerts: {other:?}"),
        }
    }
}

impl Drop for TempAlertmanager {
    fn drop(&mut self) {
        // Closing the pipe makes the supervisor stop Alertmanager.
        drop(self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take());
        let _ = self.child.lock().unwrap_or_else(|e| e.into_inner()).wait();
    }
}
