//! [`DbMonitor`]: the one funnel every event passes through.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder};

use crate::alerts::{LogNotifier, Notifier};
use crate::classify::ErrorKind;
use crate::config::MonitorConfig;
use crate::names;
use crate::pool::shared::stripe_of_thread;
use crate::pool::shared::{ConnStats, PoolShared, QueryEntry};
use crate::pool::{MakeTls, MonitoredManager, MonitoredPool, TxOutcome};
use crate::stats::{ErrorSource, RawRecent, StatementOutcome};

static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// Watches one or more PostgreSQL pools: the funnel every event passes
/// through, and the handle to everything it has recorded.
///
/// Cheap to clone (an `Arc` inside); clones share everything.
///
/// # Example
///
/// ```no_run
/// use db_monitor::{DbMonitor, MonitorConfig};
/// use db_monitor::tokio_postgres::NoTls;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = MonitorConfig::from_env()?;
/// let monitor = DbMonitor::new(config.clone());
/// let mut pg: db_monitor::tokio_postgres::Config = "host=127.0.0.1 user=app dbname=app".parse()?;
/// pg.keepalives_idle(std::time::Duration::from_secs(30))
///     .tcp_user_timeout(std::time::Duration::from_secs(10));
/// let pool = monitor.pool(monitor.manager("primary", pg, NoTls), config.pool_builder()).await?;
///
/// let conn = pool.get().await?;
/// let row = conn.query_one("SELECT count(*) FROM users WHERE active = $1", &[&true]).await?;
/// # let _: i64 = row.get(0);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DbMonitor {
    pub(crate) inner: Arc<MonitorInner>,
}

pub(crate) struct MonitorInner {
    pub(crate) config: MonitorConfig,
    recorder: Option<Arc<dyn Recorder + Send + Sync>>,
    pub(crate) notifiers: Vec<Arc<dyn Notifier>>,
    pools: Mutex<Vec<Weak<PoolShared>>>,
    tracked: papaya::HashMap<&'static str, Arc<TrackedMetrics>, foldhash::fast::RandomState>,
}

struct TrackedMetrics {
    ok: Histogram,
    failed: [OnceLock<Histogram>; ErrorKind::ALL.len()],
}

impl fmt::Debug for DbMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbMonitor")
            .field("config", &self.inner.config)
            .field("own_recorder", &self.inner.recorder.is_some())
            .field("notifiers", &self.inner.notifiers.len())
            .finish_non_exhaustive()
    }
}

/// Builds a [`DbMonitor`] with a recorder of its own or alert notifiers
/// ([`DbMonitor::builder`]).
#[must_use]
pub struct DbMonitorBuilder {
    config: MonitorConfig,
    recorder: Option<Arc<dyn Recorder + Send + Sync>>,
    notifiers: Vec<Arc<dyn Notifier>>,
    log_alerts: bool,
}

impl fmt::Debug for DbMonitorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbMonitorBuilder")
            .field("config", &self.config)
            .field("own_recorder", &self.recorder.is_some())
            .field("notifiers", &self.notifiers.len())
            .field("log_alerts", &self.log_alerts)
            .finish()
    }
}

impl DbMonitorBuilder {
    /// Emits through `recorder` instead of the globally installed one (for
    /// tests, or to keep several monitors apart). Defaults to the global
    /// recorder.
    pub fn recorder(mut self, recorder: Arc<dyn Recorder + Send + Sync>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Adds a notifier that hears every alert event (see [`crate::alerts`]).
    /// None besides the log by default.
    pub fn notifier(mut self, notifier: impl Notifier) -> Self {
        self.notifiers.push(Arc::new(notifier));
        self
    }

    /// Whether alert events are logged through `tracing` by
    /// [`LogNotifier`]. Defaults to `true`.
    pub fn log_alerts(mut self, on: bool) -> Self {
        self.log_alerts = on;
        self
    }

    /// The monitor.
    pub fn build(self) -> DbMonitor {
        let mut notifiers = self.notifiers;
        if self.log_alerts {
            notifiers.insert(0, Arc::new(LogNotifier));
        }
        let inner = MonitorInner {
            config: self.config,
            recorder: self.recorder,
            notifiers,
            pools: Mutex::new(Vec::new()),
            tracked: papaya::HashMap::builder()
                .hasher(foldhash::fast::RandomState::default())
                .build(),
        };
        inner.with_recorder(names::describe_metrics);
        DbMonitor { inner: Arc::new(inner) }
    }
}

impl DbMonitor {
    /// A monitor that emits through the globally installed `metrics`
    /// recorder.
    ///
    /// Metric handles are registered on first use and cached, so install
    /// the recorder before the first statement runs.
    ///
    /// Alerts are logged ([`LogNotifier`]); [`builder`](Self::builder)
    /// adds notifiers.
    pub fn new(config: MonitorConfig) -> Self {
        Self::builder(config).build()
    }

    /// A monitor that emits through `recorder` instead of the global one
    /// (for tests, or to keep several monitors apart).
    pub fn with_recorder(config: MonitorConfig, recorder: Arc<dyn Recorder + Send + Sync>) -> Self {
        Self::builder(config).recorder(recorder).build()
    }

    /// A builder, for a recorder of the monitor's own and alert notifiers.
    pub fn builder(config: MonitorConfig) -> DbMonitorBuilder {
        DbMonitorBuilder {
            config,
            recorder: None,
            notifiers: Vec::new(),
            log_alerts: true,
        }
    }

    /// Hands an alert event to every notifier, in the order they were
    /// added (the log first).
    pub(crate) fn notify(&self, event: crate::alerts::AlertEvent<'_>) {
        for notifier in &self.inner.notifiers {
            notifier.notify(event);
        }
    }

    /// The configuration this monitor was created with.
    pub fn config(&self) -> &MonitorConfig {
        &self.inner.config
    }

    /// A connection manager for a pool called `name`, opening connections
    /// with `config` and `tls` (`NoTls`, or a rustls / native-tls connector,
    /// exactly as with bb8-postgres).
    ///
    /// Set `keepalives` and `tcp_user_timeout` on `config`: without them a
    /// silently dropped network (a NAT or firewall forgetting the flow, a
    /// host gone) leaves a statement waiting forever; with
    /// `tcp_user_timeout = 2s` it becomes an error in about 2 s.
    pub fn manager<Tls: MakeTls>(&self, name: &str, config: tokio_postgres::Config, tls: Tls) -> MonitoredManager<Tls> {
        MonitoredManager::new(self.inner.clone(), name, config, tls)
    }

    /// Builds a monitored pool from `manager` and a bb8 `builder` (for
    /// example [`MonitorConfig::pool_builder`]), installing the monitor's
    /// connection customizer and error sink, and opening `min_idle`
    /// connections first as `bb8::Builder::build` does.
    ///
    /// # Errors
    ///
    /// The error of the first connection that failed to open; it is
    /// recorded as well.
    pub async fn pool<Tls: MakeTls>(
        &self,
        manager: MonitoredManager<Tls>,
        builder: bb8::Builder<MonitoredManager<Tls>>,
    ) -> Result<MonitoredPool<Tls>, tokio_postgres::Error> {
        let shared = manager.shared().clone();
        let builder = shared.attach(builder, manager.setup_statements());
        let pool = builder.build(manager).await?;
        Ok(self.register(MonitoredPool::new(pool, shared)))
    }

    /// Like [`pool`](Self::pool), but returns at once and opens connections
    /// in the background (`bb8::Builder::build_unchecked`). Connect failures
    /// are recorded as they happen.
    pub fn pool_unchecked<Tls: MakeTls>(
        &self,
        manager: MonitoredManager<Tls>,
        builder: bb8::Builder<MonitoredManager<Tls>>,
    ) -> MonitoredPool<Tls> {
        let shared = manager.shared().clone();
        let pool = shared
            .attach(builder, manager.setup_statements())
            .build_unchecked(manager);
        self.register(MonitoredPool::new(pool, shared))
    }

    fn register<Tls: MakeTls>(&self, pool: MonitoredPool<Tls>) -> MonitoredPool<Tls> {
        let mut pools = self.inner.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.retain(|p| p.strong_count() > 0);
        pools.push(Arc::downgrade(pool.shared()));
        drop(pools);
        pool.publish_state();
        pool
    }

    /// Names of the pools this monitor watches (pools that were dropped
    /// are forgotten).
    pub fn pool_names(&self) -> Vec<String> {
        let pools = self.inner.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools
            .iter()
            .filter_map(Weak::upgrade)
            .map(|p| p.name.to_string())
            .collect()
    }

    /// Times `fut` under `name`, like a decorator around a data-access
    /// function, and returns its output unchanged.
    ///
    /// The duration goes to [`names::TRACKED_DURATION`] with the label
    /// `operation = name`; on `Err` the error is classified with
    /// [`ErrorKind::of_any`]: a `tokio_postgres::Error`, a [`GetError`](crate::GetError),
    /// an `std::io::Error`, or a boxed error whose `source()` chain holds one
    /// of them. The
    /// statements run inside are recorded as usual as well. `name` should be
    /// a fixed string: it becomes a label. If `fut` is dropped before it
    /// finishes, nothing is recorded for it.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(monitor: db_monitor::DbMonitor, pool: db_monitor::MonitoredPool<db_monitor::tokio_postgres::NoTls>) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let name: String = monitor
    ///     .track("get_user_name", async {
    ///         let conn = pool.get().await?;
    ///         let row = conn.query_one("SELECT name FROM users WHERE id = $1", &[&7_i64]).await?;
    ///         Ok::<_, Box<dyn std::error::Error + Send + Sync>>(row.get(0))
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn track<F, T, E>(&self, name: &'static str, fut: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: 'static,
    {
        let start = Instant::now();
        let result = fut.await;
        let elapsed = start.elapsed();
        let handles = self.inner.tracked_metrics(name);
        match &result {
            Ok(_) => handles.ok.record(elapsed),
            Err(e) => {
                let kind = ErrorKind::of_any(e);
                handles.failed[kind.index()]
                    .get_or_init(|| {
                        self.inner.histogram(
                            names::TRACKED_DURATION,
                            vec![
                                Label::new(names::TRACKED_OPERATION, name),
                                Label::new(names::ERROR_TYPE, kind.as_str()),
                            ],
                        )
                    })
                    .record(elapsed);
            }
        }
        result
    }
}

/// What a statement came to.
pub(crate) enum Outcome<'a> {
    /// Finished; with the row count where the method knows it.
    Ok(Option<u64>),
    /// Failed with this error.
    Failed(&'a tokio_postgres::Error),
    /// The caller dropped the future before it finished.
    Cancelled,
}

/// Every event, born in exactly one source.
pub(crate) enum Event<'a> {
    /// A statement ran on a pooled connection.
    Statement {
        entry: &'a QueryEntry,
        conn: &'a ConnStats,
        /// When it ended (the statement clock).
        end: quanta::Instant,
        elapsed: Duration,
        outcome: Outcome<'a>,
    },
    /// A transaction ended.
    Transaction { outcome: TxOutcome, elapsed: Duration },
    /// `connect` finished (successfully or not).
    Connect {
        elapsed: Duration,
        error: Option<&'a tokio_postgres::Error>,
    },
    /// The pool's validity check (`test_on_check_out`) failed.
    Invalid(&'a tokio_postgres::Error),
    /// A connection's background task ended.
    ConnectionClosed {
        conn: &'a ConnStats,
        error: Option<&'a tokio_postgres::Error>,
    },
    /// `get()` finished, successfully or with a timeout of this kind.
    Checkout {
        waited: Duration,
        timeout: Option<ErrorKind>,
    },
    /// A checkout was returned after being held for `held`.
    Return {
        held: Duration,
        location: &'static std::panic::Location<'static>,
    },
}

impl MonitorInner {
    /// The funnel: records one event of `pool` into the metrics and stores.
    ///
    /// Statement events are the hot path: cached handles and atomics only,
    /// no lock, no allocation, no logging.
    pub(crate) fn record(&self, pool: &PoolShared, event: Event<'_>) {
        match event {
            Event::Statement {
                entry,
                conn,
                end,
                elapsed,
                outcome,
            } => {
                let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
                let slow = elapsed >= self.config.alerts.slow_query_threshold;
                let stripe = stripe_of_thread();
                entry.stats.record(stripe, nanos, slow, &outcome);
                conn.record(nanos, &outcome);
                let failed = match outcome {
                    Outcome::Ok(_) => {
                        entry.metrics.ok.record(elapsed);
                        None
                    }
                    Outcome::Failed(error) => {
                        let kind = ErrorKind::of(error);
                        if kind.ends_connection() {
                            // The background task may not have seen the end of
                            // the stream yet; do not hand this connection out again.
                            conn.broken.store(true, Relaxed);
                            conn.end_reported.store(true, Relaxed);
                        }
                        entry
                            .metrics
                            .failed(kind, |labels| self.histogram(names::OPERATION_DURATION, labels))
                            .record(elapsed);
                        let code = error.code().map(|c| c.code());
                        pool.error_counter(kind, code).increment(1);
                        pool.stores.errors.record(
                            SystemTime::now(),
                            kind,
                            code,
                            ErrorSource::Statement,
                            Some((entry.fingerprint, &entry.normalized)),
                            crate::pool::error_message(error),
                        );
                        if kind.ends_connection() {
                            pool.alerts.connection_failed();
                        } else {
                            pool.alerts.signal();
                        }
                        Some(kind)
                    }
                    Outcome::Cancelled => {
                        entry.metrics.cancelled.increment(1);
                        None
                    }
                };
                let outcome_code = match (&outcome, failed) {
                    (Outcome::Cancelled, _) => StatementOutcome::Cancelled,
                    (_, Some(kind)) => StatementOutcome::Failed(kind),
                    _ => StatementOutcome::Ok,
                };
                let route = crate::layer::record_statement(entry.fingerprint, nanos, failed.is_some(), slow);
                pool.stores.recent.push(stripe, || RawRecent {
                    end_ns: u64::try_from(end.saturating_duration_since(pool.clock_epoch).as_nanos())
                        .unwrap_or(u64::MAX),
                    duration_ns: nanos,
                    fingerprint: entry.fingerprint,
                    outcome: crate::stats::outcome_word(outcome_code, route),
                });
                if let Outcome::Cancelled = outcome {
                    return;
                }
                if slow {
                    entry.metrics.slow.increment(1);
                    pool.stores.slow.record(
                        SystemTime::now(),
                        entry.fingerprint,
                        &entry.normalized,
                        entry.operation,
                        entry.table.as_deref(),
                        elapsed,
                        failed,
                    );
                    pool.alerts.signal();
                }
            }
            Event::Transaction { outcome, elapsed } => pool.metrics.transaction(outcome).record(elapsed),
            Event::Connect { elapsed, error } => match error {
                None => {
                    pool.metrics.create_time.record(elapsed);
                    pool.connect_succeeded();
                    pool.alerts.connected();
                }
                Some(error) => {
                    let kind = ErrorKind::of_connect(error);
                    let code = error.code().map(|c| c.code());
                    pool.error_counter(kind, code).increment(1);
                    pool.connect_failed(error);
                    let message = crate::pool::error_chain(error);
                    pool.stores
                        .errors
                        .record(SystemTime::now(), kind, code, ErrorSource::Connect, None, message);
                    pool.alerts.connection_failed();
                }
            },
            Event::Invalid(error) => {
                let kind = ErrorKind::of_connect(error);
                let code = error.code().map(|c| c.code());
                pool.error_counter(kind, code).increment(1);
                let message = format!("validity check failed: {}", crate::pool::error_chain(error));
                pool.stores
                    .errors
                    .record(SystemTime::now(), kind, code, ErrorSource::Connection, None, message);
                pool.alerts.signal();
            }
            Event::ConnectionClosed { conn, error } => {
                // A bare end of stream follows a failure that a statement
                // already reported (or a clean close). So does any error once
                // a statement has reported the connection's end: dropping the
                // dead client can meet a reset socket. Otherwise an error with
                // something to say (a SQLSTATE, an I/O error) is a new failure.
                match error {
                    Some(error) if !error.is_closed() && !conn.end_reported.load(Relaxed) => {
                        let kind = ErrorKind::of_connect(error);
                        let code = error.code().map(|c| c.code());
                        pool.error_counter(kind, code).increment(1);
                        let message = crate::pool::error_chain(error);
                        pool.stores.errors.record(
                            SystemTime::now(),
                            kind,
                            code,
                            ErrorSource::Connection,
                            None,
                            message,
                        );
                        pool.alerts.connection_failed();
                        tracing::warn!(
                            pool = %pool.name,
                            connection = conn.id,
                            error_type = kind.as_str(),
                            sqlstate = error.code().map(|c| c.code()),
                            "database connection lost: {}",
                            crate::pool::error_chain(error)
                        );
                    }
                    _ => tracing::debug!(pool = %pool.name, connection = conn.id, "database connection closed"),
                }
            }
            Event::Checkout { waited, timeout } => {
                pool.metrics.wait_time.record(waited);
                if let Some(kind) = timeout {
                    pool.metrics.timeout(kind).increment(1);
                    pool.error_counter(kind, None).increment(1);
                    let message = format!(
                        "no connection within {:.1?} ({})",
                        waited,
                        kind.as_str().replace('_', " ")
                    );
                    pool.stores
                        .errors
                        .record(SystemTime::now(), kind, None, ErrorSource::Checkout, None, message);
                    pool.alerts.signal();
                }
            }
            Event::Return { held, location } => {
                pool.metrics.use_time.record(held);
                if self.config.leak_threshold.is_some_and(|limit| held > limit) {
                    pool.metrics.leaks.increment(1);
                    tracing::warn!(
                        pool = %pool.name,
                        held_ms = held.as_millis() as u64,
                        checked_out_at = %location,
                        "connection held longer than the leak threshold"
                    );
                }
            }
        }
    }

    fn with_recorder<T>(&self, f: impl FnOnce(&dyn Recorder) -> T) -> T {
        match &self.recorder {
            Some(recorder) => f(recorder.as_ref()),
            None => metrics::with_recorder(f),
        }
    }

    pub(crate) fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        let key = Key::from_parts(name, labels);
        self.with_recorder(|r| r.register_counter(&key, &METADATA))
    }

    pub(crate) fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        let key = Key::from_parts(name, labels);
        self.with_recorder(|r| r.register_gauge(&key, &METADATA))
    }

    pub(crate) fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        let key = Key::from_parts(name, labels);
        self.with_recorder(|r| r.register_histogram(&key, &METADATA))
    }

    fn tracked_metrics(&self, name: &'static str) -> Arc<TrackedMetrics> {
        let map = self.tracked.pin();
        if let Some(handles) = map.get(name) {
            return handles.clone();
        }
        map.get_or_insert_with(name, || {
            Arc::new(TrackedMetrics {
                ok: self.histogram(
                    names::TRACKED_DURATION,
                    vec![Label::new(names::TRACKED_OPERATION, name)],
                ),
                failed: Default::default(),
            })
        })
        .clone()
    }
}

/// A map from label sets to handles, built lazily and capped: past `cap`
/// distinct keys, new keys share the handle of `overflow_key`.
pub(crate) struct CappedHandles<K, H> {
    map: Mutex<HashMap<K, H>>,
    cap: usize,
}

impl<K: std::hash::Hash + Eq + Clone, H: Clone> CappedHandles<K, H> {
    pub(crate) fn new(cap: usize) -> Self {
        CappedHandles {
            map: Mutex::new(HashMap::new()),
            cap,
        }
    }

    pub(crate) fn get(&self, key: K, overflow_key: K, make: impl FnOnce(&K) -> H) -> H {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = map.get(&key) {
            return h.clone();
        }
        let key = if map.len() >= self.cap { overflow_key } else { key };
        map.entry(key).or_insert_with_key(make).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    #[tokio::test]
    async fn track_times_successes_and_classifies_failures() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let monitor = DbMonitor::with_recorder(MonitorConfig::default(), Arc::new(recorder));
        let ok: Result<u32, Box<dyn std::error::Error + Send + Sync>> = monitor.track("lookup", async { Ok(7) }).await;
        assert_eq!(ok.unwrap(), 7);
        let io: Result<(), Box<dyn std::error::Error + Send + Sync>> = monitor
            .track("lookup", async {
                Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset).into())
            })
            .await;
        assert!(io.is_err());
        let mut seen = HashMap::new();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            if let DebugValue::Histogram(values) = value {
                let labels: Vec<_> = key
                    .key()
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                seen.insert(labels.join(","), values.len());
            }
        }
        assert_eq!(seen.get("operation=lookup"), Some(&1));
        assert_eq!(seen.get("operation=lookup,error_type=connection_failure"), Some(&1));
    }
}
