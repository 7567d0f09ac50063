//! A real Alertmanager for tests: Debian's `prometheus-alertmanager`,
//! installed by `scripts/install-test-tools` when missing, started on a
//! loopback port with clustering off, and stopped (its directory removed)
//! when dropped or when the test process dies.

use super::daemon::Daemon;

const CONFIG: &str = "\
global:
  resolve_timeout: 1h
route:
  receiver: nowhere
  group_wait: 1s
receivers:
  - name: nowhere
";

pub struct TempAlertmanager(Daemon);

impl TempAlertmanager {
    /// Starts one, installing it first when missing. `None` (with a
    /// message) when it cannot be had here; under `CI` that is a failure.
    pub fn start() -> Option<TempAlertmanager> {
        let binary = super::tools::binary(&["prometheus-alertmanager", "alertmanager"])?;
        let args = |dir: &std::path::Path, port: u16| {
            vec![
                format!("--config.file={}", dir.join("alertmanager.yml").display()),
                format!("--storage.path={}", dir.join("data").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                "--cluster.listen-address=".to_owned(),
                "--log.level=warn".to_owned(),
            ]
        };
        let files = [("alertmanager.yml", CONFIG)];
        Some(TempAlertmanager(Daemon::start(
            "alertmanager",
            &binary,
            &files,
            args,
            "/-/ready",
        )))
    }

    /// Its base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        self.0.url()
    }

    /// `GET path` over HTTP/1.0: the status and the body.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        self.0.get(path)
    }

    /// The alerts Alertmanager holds now (`GET /api/v2/alerts`: active ones).
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        match self.get("/api/v2/alerts") {
            Some((200, body)) => serde_json::from_str(&body).expect("alerts JSON"),
            other => panic!("GET /api/v2/alerts: {other:?}"),
        }
    }
}
