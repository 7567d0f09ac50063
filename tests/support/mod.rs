//! Shared test support: a real PostgreSQL, a monitor with its own
//! debugging recorder, and readers for what was recorded.

#![allow(dead_code, unreachable_pub)]

pub mod alertmanager;
pub mod daemon;
pub mod http;
pub mod leaks;
pub mod pg;
pub mod sources;
pub mod spans;
pub mod tools;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use db_monitor::tokio_postgres::NoTls;
use db_monitor::{DbMonitor, MonitorConfig, MonitoredPool};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};

/// A recorder for tests that, unlike `DebuggingRecorder`, does not drain on
/// read: counters, gauges and histogram samples can be read any number of
/// times, in any order.
pub struct Recorded {
    registry: Registry<Key, AtomicStorage>,
}

struct Handle(Arc<Recorded>);

impl Recorder for Handle {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.0
            .registry
            .get_or_create_counter(key, |c| Counter::from_arc(c.clone()))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.0.registry.get_or_create_gauge(key, |g| Gauge::from_arc(g.clone()))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.0
            .registry
            .get_or_create_histogram(key, |h| Histogram::from_arc(h.clone()))
    }
}

fn matches(key: &Key, name: &str, want: &[(&str, &str)]) -> bool {
    key.name() == name
        && want
            .iter()
            .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
}

impl Recorded {
    /// Sum of the counters named `name` whose labels include `labels`.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let handles = self.registry.get_counter_handles();
        handles
            .iter()
            .filter(|(k, _)| matches(k, name, labels))
            .map(|(_, c)| c.load(Ordering::Relaxed))
            .sum()
    }

    /// All samples of the histograms named `name` whose labels include `labels`.
    pub fn samples(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        let handles = self.registry.get_histogram_handles();
        handles
            .iter()
            .filter(|(k, _)| matches(k, name, labels))
            .flat_map(|(_, h)| h.data())
            .collect()
    }

    /// Number of samples of the matching histograms.
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> usize {
        self.samples(name, labels).len()
    }

    /// The value of the one gauge matching.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let handles = self.registry.get_gauge_handles();
        let found = handles.iter().find(|(k, _)| matches(k, name, labels));
        found.map(|(_, g)| f64::from_bits(g.load(Ordering::Relaxed)))
    }

    /// Every counter series named `name` with its value, for failure messages.
    pub fn dump(&self, name: &str) -> String {
        let mut lines: Vec<String> = self
            .registry
            .get_counter_handles()
            .iter()
            .filter(|(k, _)| k.name() == name)
            .map(|(k, c)| {
                let labels: Vec<String> = k.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
                format!("{}{{{}}} {}", name, labels.join(","), c.load(Ordering::Relaxed))
            })
            .collect();
        lines.sort();
        lines.join("\n")
    }

    /// Every value of `label` among the series named `name`.
    pub fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        let mut keys: Vec<Key> = self.registry.get_counter_handles().into_keys().collect();
        keys.extend(self.registry.get_histogram_handles().into_keys());
        keys.extend(self.registry.get_gauge_handles().into_keys());
        let mut values: Vec<String> = keys
            .iter()
            .filter(|k| k.name() == name)
            .filter_map(|k| k.labels().find(|l| l.key() == label).map(|l| l.value().to_owned()))
            .collect();
        values.sort();
        values.dedup();
        values
    }
}

/// A monitor with a recorder of its own.
pub fn monitor(config: MonitorConfig) -> (DbMonitor, Arc<Recorded>) {
    monitor_with(config, |builder| builder)
}

/// A monitor with a recorder of its own, built further by `build` (for
/// notifiers).
pub fn monitor_with(
    config: MonitorConfig,
    build: impl FnOnce(db_monitor::DbMonitorBuilder) -> db_monitor::DbMonitorBuilder,
) -> (DbMonitor, Arc<Recorded>) {
    let recorded = Arc::new(Recorded {
        registry: Registry::atomic(),
    });
    let builder = DbMonitor::builder(config).recorder(Arc::new(Handle(recorded.clone())));
    (build(builder).build().expect("a valid configuration"), recorded)
}

/// A pool named `name` of up to `size` connections on the shared server,
/// opening them on demand, with a 5 s checkout timeout.
pub async fn pool(monitor: &DbMonitor, name: &str, size: u32) -> MonitoredPool<NoTls> {
    pool_with(monitor, name, pg::shared_config(), size, 0, Duration::from_secs(5)).await
}

/// A pool named `name` on the server at `config`: at most `max_size`
/// connections, `min_idle` kept open, checkouts waiting at most `timeout`.
pub async fn pool_with(
    monitor: &DbMonitor,
    name: &str,
    config: db_monitor::tokio_postgres::Config,
    max_size: u32,
    min_idle: u32,
    timeout: Duration,
) -> MonitoredPool<NoTls> {
    let builder = db_monitor::bb8::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(min_idle))
        .connection_timeout(timeout);
    monitor
        .pool(monitor.manager(name, config, NoTls), builder)
        .await
        .expect("pool")
}

/// A name unique within this process, for tables.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Polls `check` every 20 ms until it holds, for at most `limit`.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// Makes one real deadlock on `pool` between two transactions updating
/// the same two rows of a new table in opposite orders. Returns the
/// deadlocking statement as written, and the error of the side that
/// PostgreSQL cancelled.
pub async fn deadlock(pool: &impl sources::TestPool) -> (String, db_monitor::tokio_postgres::Error) {
    let table = unique("deadlock");
    let setup = pool.get().await.expect("checkout");
    setup
        .batch_execute(&format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, v int); INSERT INTO {table} VALUES (1, 0), (2, 0)"
        ))
        .await
        .expect("create table");
    drop(setup);
    let mut a = pool.get().await.expect("checkout");
    let mut b = pool.get().await.expect("checkout");
    for c in [&a, &b] {
        c.batch_execute("SET deadlock_timeout = '50ms'").await.expect("set");
    }
    let ta = a.transaction().await.expect("begin");
    let tb = b.transaction().await.expect("begin");
    let update = format!("UPDATE {table} SET v = v + 1 WHERE id = $1");
    ta.execute(&update, &[&1_i32]).await.expect("lock row 1");
    tb.execute(&update, &[&2_i32]).await.expect("lock row 2");
    let (ra, rb) = tokio::join!(ta.execute(&update, &[&2_i32]), tb.execute(&update, &[&1_i32]));
    let mut failures: Vec<_> = [ra, rb].into_iter().filter_map(Result::err).collect();
    assert_eq!(failures.len(), 1, "exactly one side of a deadlock fails");
    (update, failures.remove(0))
}

/// The postmaster of the server whose data directory is `data`, and its
/// children.
pub fn server_processes(data: &str) -> Vec<String> {
    let pid_file = std::fs::read_to_string(format!("{data}/postmaster.pid")).unwrap();
    let postmaster = pid_file.lines().next().unwrap().trim().to_owned();
    let mut pids = vec![postmaster.clone()];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces, so read after ')'.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        if after.split_whitespace().nth(1) == Some(postmaster.as_str()) {
            pids.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    pids
}

/// Sends `signal` to each of `pids`. A backend may exit between being
/// listed and signalled (a connection just closed): only the first, the
/// postmaster, must be reached.
fn signal(pids: &[String], signal: &str) {
    for (i, pid) in pids.iter().enumerate() {
        let status = std::process::Command::new("kill")
            .arg(signal)
            .arg(pid)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success() || i > 0, "kill {signal} {pid} (the postmaster)");
    }
}

/// Processes stopped until this is dropped (a failing test too: a stopped
/// server could never be shut down).
pub struct Frozen(Vec<String>);

impl Frozen {
    pub fn new(pids: Vec<String>) -> Self {
        // Held before signalling, so that a failure part-way still resumes
        // what was stopped.
        let frozen = Frozen(pids);
        signal(&frozen.0, "-STOP");
        frozen
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").arg("-CONT").args(&self.0).status();
    }
}
