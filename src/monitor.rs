//! [`DbMonitor`]: the front door. It builds monitored pools, wiring each
//! one's sink to the monitor's recorder, settings and notifiers.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use metrics::Recorder;

use crate::alerts::{LogNotifier, Notifier};
use crate::classify::ErrorKind;
use crate::config::{ConfigError, MonitorConfig};
use crate::funnel::handles::Registry;
use crate::funnel::span::SpanTarget;
use crate::funnel::tracked::Tracked;
use crate::funnel::{AlertListener, Sink};
use crate::names;
use crate::pool::shared::PoolShared;
use crate::pool::{MakeTls, MonitoredManager, MonitoredPool, PoolMonitor};

/// Watches one or more PostgreSQL pools: builds them, wiring each pool's
/// events to the monitor's recorder, settings and alert notifiers.
///
/// Cheap to clone (an `Arc` inside); clones share everything.
///
/// # Example
///
/// ```no_run
/// use db_monitor::DbMonitor;
/// use db_monitor::tokio_postgres::NoTls;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let monitor = DbMonitor::from_env()?;     // DATABASE_URL, ASYNC_DB_*
/// let pool = monitor.connect(NoTls).await?; // a bb8 pool, named `primary`
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
    config: Arc<MonitorConfig>,
    registry: Registry,
    notifier_count: usize,
    /// Every notifier, behind one function, for the pools' sinks.
    listener: AlertListener,
    pools: Mutex<Vec<Weak<PoolShared>>>,
    tracked: Tracked,
}

impl fmt::Debug for DbMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbMonitor")
            .field("config", &self.inner.config)
            .field("own_recorder", &self.inner.registry.has_own_recorder())
            .field("notifiers", &self.inner.notifier_count)
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

    /// The monitor, once its configuration has passed
    /// [`MonitorConfig::validate`].
    ///
    /// # Errors
    ///
    /// The first setting out of range, named (see
    /// [`MonitorConfig::validate`]).
    pub fn build(self) -> Result<DbMonitor, ConfigError> {
        self.config.validate()?;
        let mut notifiers = self.notifiers;
        if self.log_alerts {
            notifiers.insert(0, Arc::new(LogNotifier));
        }
        let count = notifiers.len();
        let listener: AlertListener = Arc::new(move |event| {
            for notifier in &notifiers {
                notifier.notify(event);
            }
        });
        let registry = Registry::new(self.recorder);
        registry.with_recorder(names::describe_metrics);
        let inner = MonitorInner {
            config: Arc::new(self.config),
            tracked: Tracked::new(registry.clone()),
            registry,
            notifier_count: count,
            listener,
            pools: Mutex::new(Vec::new()),
        };
        Ok(DbMonitor { inner: Arc::new(inner) })
    }
}

impl DbMonitor {
    /// A monitor configured from the process environment
    /// ([`MonitorConfig::from_env`]: `DATABASE_URL` and every `ASYNC_DB_*`
    /// variable), emitting through the global `metrics` recorder: the one
    /// call of the quick start. [`connect`](Self::connect) then opens the
    /// pool to `DATABASE_URL`.
    ///
    /// # Errors
    ///
    /// The first variable that does not parse or is out of range, named.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::new(MonitorConfig::from_env()?)
    }

    /// Opens a bb8 pool, named `primary`, to the configured database
    /// ([`MonitorConfig::database`], which [`from_env`](Self::from_env)
    /// reads from `DATABASE_URL`), sized and timed by the configuration
    /// ([`MonitorConfig::pool_builder`]). As
    /// [`pool`](Self::pool) does, it opens
    /// [`min_idle`](MonitorConfig::min_idle) connections first (none by
    /// default: the first checkout connects).
    ///
    /// Unless the address sets them, TCP keepalives start after 30 s idle
    /// and `tcp_user_timeout` is 10 s: without them a silently dropped
    /// network leaves a statement waiting for ever.
    ///
    /// For a pool of several, another name, a customizer or deadpool, use
    /// [`manager`](Self::manager) and [`pool`](Self::pool) (or
    /// [`deadpool`](Self::deadpool)).
    ///
    /// # Errors
    ///
    /// [`ConnectError::Config`] naming `DATABASE_URL` when no database is
    /// configured; [`ConnectError::Database`] when a connection of
    /// `min_idle` fails to open (recorded as well).
    pub async fn connect<Tls: MakeTls>(&self, tls: Tls) -> Result<MonitoredPool<Tls>, ConnectError> {
        let config = self.inner.config.database_config().cloned().ok_or_else(|| {
            ConnectError::Config(ConfigError::unset(
                "DATABASE_URL",
                "a PostgreSQL connection URL (or MonitorConfig::database) to connect to",
            ))
        })?;
        let manager = self.manager("primary", with_dead_peer_timeouts(config), tls);
        let builder = self.inner.config.pool_builder();
        self.pool(manager, builder).await.map_err(ConnectError::Database)
    }

    /// A monitor that emits through the globally installed `metrics`
    /// recorder.
    ///
    /// Metric handles are registered on first use and cached, so install
    /// the recorder before the first statement runs.
    ///
    /// Alerts are logged ([`LogNotifier`]); [`builder`](Self::builder)
    /// adds notifiers.
    ///
    /// # Errors
    ///
    /// A setting out of range, named (see [`MonitorConfig::validate`]).
    pub fn new(config: MonitorConfig) -> Result<Self, ConfigError> {
        Self::builder(config).build()
    }

    /// A monitor that emits through `recorder` instead of the global one
    /// (for tests, or to keep several monitors apart).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn with_recorder(
        config: MonitorConfig,
        recorder: Arc<dyn Recorder + Send + Sync>,
    ) -> Result<Self, ConfigError> {
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
        let sink = self.sink(name, SpanTarget::of(&config, self.inner.config.span_level));
        MonitoredManager::new(sink, config, tls)
    }

    /// A sink for the events of a pool called `name`, whose statements go
    /// to `target`.
    pub(crate) fn sink(&self, name: &str, target: SpanTarget) -> Sink {
        Sink::new(
            name,
            target,
            self.inner.config.clone(),
            self.inner.registry.clone(),
            self.inner.listener.clone(),
        )
    }

    /// Builds a monitored pool from `manager` and a bb8 `builder` (for
    /// example [`MonitorConfig::pool_builder`]), opening `min_idle`
    /// connections first as `bb8::Builder::build` does.
    ///
    /// Everything set on the builder is kept: a `connection_customizer` of
    /// yours runs on each new connection after the manager's
    /// [`setup`](MonitoredManager::setup) statements (its statements are
    /// recorded like any other), and an `error_sink` of yours stays in
    /// place of the monitor's [`MonitorErrorSink`](crate::MonitorErrorSink)
    /// (which only logs what is already recorded).
    ///
    /// ```no_run
    /// use db_monitor::{DbMonitor, MonitorConfig, MonitoredClient};
    /// use db_monitor::tokio_postgres::{Error, NoTls};
    /// use std::{future::Future, pin::Pin};
    ///
    /// #[derive(Debug)]
    /// struct SearchPath;
    ///
    /// impl bb8::CustomizeConnection<MonitoredClient, Error> for SearchPath {
    ///     fn on_acquire<'a>(
    ///         &'a self,
    ///         conn: &'a mut MonitoredClient,
    ///     ) -> Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>> {
    ///         Box::pin(async move { conn.batch_execute("SET search_path = app, public").await })
    ///     }
    /// }
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let monitor = DbMonitor::new(MonitorConfig::default()).expect("a valid configuration");
    /// let pg = "host=127.0.0.1 user=app dbname=app".parse()?;
    /// let builder = monitor.config().pool_builder().connection_customizer(Box::new(SearchPath));
    /// let pool = monitor.pool(monitor.manager("primary", pg, NoTls), builder).await?;
    /// # Ok(()) }
    /// ```
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
        let pool = crate::pool::attach(&shared, builder).build(manager).await?;
        let pool = MonitoredPool::new(pool, shared);
        self.register(pool.monitor());
        Ok(pool)
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
        let pool = crate::pool::attach(&shared, builder).build_unchecked(manager);
        let pool = MonitoredPool::new(pool, shared);
        self.register(pool.monitor());
        pool
    }

    /// Builds a monitored deadpool pool from `builder` (see
    /// [`MonitoredManager::deadpool_builder`]). Like deadpool's own, the
    /// pool opens connections as checkouts need them.
    ///
    /// ```no_run
    /// use db_monitor::deadpool_postgres::{ManagerConfig, RecyclingMethod};
    /// use db_monitor::tokio_postgres::NoTls;
    /// use db_monitor::{DbMonitor, MonitorConfig};
    ///
    /// # fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let monitor = DbMonitor::new(MonitorConfig::default())?;
    /// let pg = "host=127.0.0.1 user=app dbname=app".parse()?;
    /// let recycling = ManagerConfig { recycling_method: RecyclingMethod::Verified };
    /// let builder = monitor.manager("primary", pg, NoTls).deadpool_builder(recycling);
    /// let pool = monitor.deadpool(builder.max_size(16))?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// deadpool's, when its configuration is refused (no runtime for the
    /// timeouts set).
    #[cfg(feature = "deadpool")]
    pub fn deadpool<Tls: MakeTls>(
        &self,
        builder: deadpool::managed::PoolBuilder<crate::DeadpoolManager<Tls>>,
    ) -> Result<crate::MonitoredDeadpool<Tls>, deadpool::managed::BuildError> {
        let pool = crate::MonitoredDeadpool::new(builder.build()?);
        self.register(pool.monitor());
        Ok(pool)
    }

    fn register(&self, pool: &PoolMonitor) {
        let mut pools = self.inner.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.retain(|p| p.strong_count() > 0);
        pools.push(Arc::downgrade(&pool.shared));
        drop(pools);
        pool.publish_state();
    }

    /// Names of the pools this monitor watches (pools that were dropped
    /// are forgotten).
    pub fn pool_names(&self) -> Vec<String> {
        let pools = self.inner.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools
            .iter()
            .filter_map(Weak::upgrade)
            .map(|p| p.name().to_string())
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
        let failed = result.as_ref().err().map(|e| ErrorKind::of_any(e));
        self.inner.tracked.record(name, elapsed, failed);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use std::collections::HashMap;

    #[test]
    fn a_setting_out_of_range_stops_the_monitor_being_built() {
        let huge = MonitorConfig::default().slot(std::time::Duration::from_secs(u64::MAX / 4));
        let err = DbMonitor::new(huge).unwrap_err();
        assert_eq!(err.variable(), "ASYNC_DB_HISTORY_SLOT");
        let config = MonitorConfig::default().alerts(
            crate::AlertThresholds::default()
                .forecast(crate::ForecastThresholds::default().interval(std::time::Duration::ZERO)),
        );
        let err = DbMonitor::builder(config).log_alerts(false).build().unwrap_err();
        assert_eq!(err.variable(), "ASYNC_DB_ALERT_FORECAST_INTERVAL");
    }

    #[tokio::test]
    async fn track_times_successes_and_classifies_failures() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let monitor =
            DbMonitor::with_recorder(MonitorConfig::default(), Arc::new(recorder)).expect("a valid configuration");
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

    #[test]
    fn dead_peer_timeouts_are_added_unless_the_address_sets_them() {
        let bare = with_dead_peer_timeouts("host=db user=app".parse().unwrap());
        assert_eq!(bare.get_keepalives_idle(), std::time::Duration::from_secs(30));
        assert_eq!(bare.get_tcp_user_timeout(), Some(&std::time::Duration::from_secs(10)));
        let set = with_dead_peer_timeouts(
            "postgres://app@db/app?keepalives_idle=5&tcp_user_timeout=2"
                .parse()
                .unwrap(),
        );
        assert_eq!(set.get_keepalives_idle(), std::time::Duration::from_secs(5));
        assert_eq!(set.get_tcp_user_timeout(), Some(&std::time::Duration::from_secs(2)));
    }
}

/// `config` with TCP keepalives after 30 s idle and a 10 s
/// `tcp_user_timeout`, unless it sets them (tokio-postgres's defaults: 2 h,
/// and none).
fn with_dead_peer_timeouts(mut config: tokio_postgres::Config) -> tokio_postgres::Config {
    if config.get_keepalives_idle() == std::time::Duration::from_secs(2 * 60 * 60) {
        config.keepalives_idle(std::time::Duration::from_secs(30));
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(std::time::Duration::from_secs(10));
    }
    config
}

/// Why [`DbMonitor::connect`] opened no pool.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// No database to connect to (`DATABASE_URL` unset), or a setting out
    /// of range.
    Config(ConfigError),
    /// A connection failed to open.
    Database(tokio_postgres::Error),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Config(e) => e.fmt(f),
            ConnectError::Database(e) => write!(f, "could not open the pool: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::Config(e) => Some(e),
            ConnectError::Database(e) => Some(e),
        }
    }
}

impl From<ConfigError> for ConnectError {
    fn from(e: ConfigError) -> Self {
        ConnectError::Config(e)
    }
}
