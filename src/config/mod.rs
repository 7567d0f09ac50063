//! Configuration: [`MonitorConfig`], [`AlertThresholds`] and `from_env()`.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use db_monitor::MonitorConfig;
//!
//! let config = MonitorConfig::from_lookup(|name| match name {
//!     "ASYNC_DB_MAX_SIZE" => Some("8".to_owned()),
//!     "ASYNC_DB_SLOW_QUERY_THRESHOLD" => Some("500ms".to_owned()),
//!     _ => None,
//! })?;
//! // The same settings, set in code:
//! let same = MonitorConfig::default().max_size(8).slow_query_threshold(Duration::from_millis(500));
//! assert_eq!(format!("{config:?}"), format!("{same:?}"));
//!
//! let err = MonitorConfig::from_lookup(|name| (name == "ASYNC_DB_POOL_TIMEOUT").then(|| "soon".to_owned()))
//!     .unwrap_err();
//! assert_eq!(err.variable(), "ASYNC_DB_POOL_TIMEOUT");
//! # Ok::<(), db_monitor::ConfigError>(())
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use crate::alert_kind::AlertType;

mod env;
mod forecast;
mod objectives;
mod serving;
mod trace;
mod validate;

pub use env::ConfigError;
pub use forecast::{AnomalyThresholds, ForecastThresholds};
pub use objectives::Objective;
pub use serving::Readiness;
pub use trace::{TraceContext, TraceParent, TraceParentError};

/// Everything the monitor can be told. Built with [`MonitorConfig::default`]
/// and the builder methods below, or read from the environment with
/// [`MonitorConfig::from_env`]; checked once, where the monitor is built
/// ([`DbMonitor::new`](crate::DbMonitor::new) calls
/// [`validate`](Self::validate)), so a setting out of range is an error
/// that names it, never a surprise in the background task.
///
/// Each setting is set one way, by its method (whose doc ends with its
/// default and names its `ASYNC_DB_*` variable when it has one); the
/// fields are the crate's own, as bb8's `Builder` keeps them.
///
/// ```
/// use std::time::Duration;
/// use db_monitor::{AlertThresholds, MonitorConfig};
///
/// let config = MonitorConfig::default()
///     .max_size(8)
///     .slow_query_threshold(Duration::from_millis(500))
///     .alerts(AlertThresholds::default().pool_utilization(0.8));
/// config.validate()?;
/// assert!(MonitorConfig::default().max_size(0).validate().is_err());
/// # Ok::<(), db_monitor::ConfigError>(())
/// ```
///
/// ## Pool sizing
///
/// The pool is sized in bb8's and deadpool's own terms;
/// [`pool_builder`](MonitorConfig::pool_builder) (bb8) and
/// [`deadpool_builder`](crate::MonitoredManager::deadpool_builder) map the
/// settings as:
///
/// | setting | bb8 | deadpool |
/// |---|---|---|
/// | `max_size` (10, bb8's default) | `max_size` | `max_size` |
/// | `min_idle` (0) | `min_idle` (opened at start and kept open even when idle) | (none: deadpool opens connections only on demand) |
/// | `pool_timeout` (30 s) | `connection_timeout` (how long `get()` waits) | `wait` and `create` timeouts |
/// | `pool_recycle` (3600 s) | `max_lifetime` | checked when a connection is recycled |
///
/// `ASYNC_DB_POOL_SIZE` and `ASYNC_DB_MAX_OVERFLOW` (SQLAlchemy's words: so
/// many connections kept, so many more under load) are read as aliases:
/// the pool's `max_size` is their sum, as bb8 has no overflow.
///
/// The pool is lazy: it opens a connection when a checkout finds none
/// idle, never more than `max_size`, and none at start unless `min_idle`
/// asks for them. (Eager pools add up: five instances
/// each keeping 20 open fill PostgreSQL's default `max_connections` of 100
/// before any traffic.) Connections above `min_idle` are closed by bb8's
/// reaper after its `idle_timeout` (10 minutes by default), which plays the
/// part of SQLAlchemy's overflow close.
#[derive(Clone, Debug)]
#[must_use]
pub struct MonitorConfig {
    // tokio_postgres::Config's Debug redacts the password.
    pub(crate) database: Option<tokio_postgres::Config>,
    pub(crate) max_size: u32,
    /// The part of `max_size` that [`max_overflow`](Self::max_overflow)
    /// set (0 unless that alias was used).
    pub(crate) overflow: u32,
    pub(crate) min_idle: u32,
    pub(crate) pool_timeout: Duration,
    pub(crate) pool_recycle: Duration,
    pub(crate) health_check_interval: Duration,
    pub(crate) metrics_reset_interval: Duration,
    pub(crate) leak_threshold: Option<Duration>,
    pub(crate) abandoned_grace: Duration,
    pub(crate) slow_query_threshold: Duration,
    pub(crate) query_history: usize,
    pub(crate) error_history: usize,
    pub(crate) alert_history: usize,
    pub(crate) pool_trend_samples: usize,
    pub(crate) statement_cache_size: usize,
    pub(crate) prepared_cache_size: usize,
    pub(crate) max_fingerprints: usize,
    pub(crate) max_query_summaries: usize,
    pub(crate) max_status_codes: usize,
    pub(crate) degradation_factor: f64,
    pub(crate) degradation_min_samples: u64,
    pub(crate) expose_application_messages: bool,
    pub(crate) server_view: Option<ServerView>,
    pub(crate) trace_context: Option<TraceContext>,
    pub(crate) span_level: Option<tracing::Level>,
    pub(crate) returned_rows: bool,
    pub(crate) hold_times: bool,
    pub(crate) fail_fast: bool,
    pub(crate) readiness: Readiness,
    pub(crate) objectives: Vec<Objective>,
    pub(crate) slow_statements: BTreeMap<u64, Duration>,
    pub(crate) slot: Duration,
    pub(crate) alerts: AlertThresholds,
}

/// The server-side view's settings ([`MonitorConfig::server_view`]).
///
/// The poller uses one connection outside the pool (it never takes a slot
/// from the application), made with the pool's own settings and role, and
/// named by `application_name`. Every query it runs is bounded by
/// `statement_timeout` and `lock_timeout`. Cycles never overlap; after a
/// failure it reconnects with a backoff (1 s, doubling to 1 min).
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct ServerView {
    pub(crate) interval: Duration,
    pub(crate) statement_timeout: Duration,
    pub(crate) lock_timeout: Duration,
    pub(crate) application_name: String,
    pub(crate) top_statements: usize,
    pub(crate) application_names: bool,
    pub(crate) load_interval: Duration,
    pub(crate) elect: bool,
    pub(crate) plans: bool,
    pub(crate) min_free_connections: u32,
}

impl Default for ServerView {
    fn default() -> Self {
        ServerView {
            interval: Duration::from_secs(15),
            statement_timeout: Duration::from_secs(2),
            lock_timeout: Duration::from_millis(100),
            application_name: "db-monitor".to_owned(),
            top_statements: 50,
            application_names: false,
            load_interval: Duration::from_secs(1),
            elect: true,
            plans: true,
            min_free_connections: 5,
        }
    }
}

impl ServerView {
    /// Whether other backends' `application_name` is shown in the activity
    /// and lock documents. Any client can set it to any 63 bytes, a value
    /// included, so when it is not, other backends are counted by state
    /// only (their name shown as `(not shown)`), a trace context as
    /// `(traceparent)`, and the lock tree names no application. Defaults
    /// to `false`.
    pub fn application_names(mut self, show: bool) -> Self {
        self.application_names = show;
        self
    }

    /// Sets the time between the starts of two cycles (at least 100 ms).
    /// Defaults to 15 s.
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d;
        self
    }

    /// Sets the `statement_timeout` and `lock_timeout` of the poller's
    /// queries. Default to 2 s and 100 ms (as pgwatch).
    pub fn timeouts(mut self, statement: Duration, lock: Duration) -> Self {
        self.statement_timeout = statement;
        self.lock_timeout = lock;
        self
    }

    /// Sets the poller's own `application_name`, so that it can be told
    /// from the application's backends. The poller adds its pool's maximum
    /// (`db-monitor [pool max 10]`, cut to PostgreSQL's 63 bytes), which
    /// the other instances' connection budget reads. Defaults to
    /// `db-monitor`.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }

    /// Sets how often the pool's own backends are sampled for the database
    /// load by route and wait event (`GET …/server/load`): one cheap query
    /// of `pg_stat_activity` filtered by the pids of the connections in
    /// use, on the poller's connection, apart from the slower server-wide
    /// cycle; none while no connection is in use. Zero turns it off.
    /// Defaults to 1 s.
    pub fn load_interval(mut self, d: Duration) -> Self {
        self.load_interval = d;
        self
    }

    /// Whether the instances of a fleet (the pools of one name on one
    /// database and role) elect one poller for the server-wide queries
    /// (`pg_stat_statements`, the lock tree, every backend, the connection
    /// budget): each poller tries a session-level `pg_try_advisory_lock`
    /// every cycle, the holder runs them, and a new holder takes over
    /// within one cycle when the old one's connection ends. The others
    /// still read their own backends (activity, load) and their slow
    /// statements' plans, but show no lock tree, statements or budget:
    /// those are in the holder's documents (`poller.leader_pid` names
    /// it). Defaults to `true`.
    pub fn elect(mut self, elect: bool) -> Self {
        self.elect = elect;
        self
    }

    /// Whether slow statements get their generic plan (`EXPLAIN
    /// (GENERIC_PLAN, FORMAT JSON)`, PostgreSQL 16 and later) on the
    /// poller's connection: placeholders only, never a value, at most one
    /// plan per statement an hour and six a minute. Defaults to `true`.
    pub fn plans(mut self, plans: bool) -> Self {
        self.plans = plans;
        self
    }

    /// Sets the free connections of the server (`max_connections` less
    /// the reserved ones and every backend) under which the connection
    /// budget alert fires. Defaults to 5.
    pub fn min_free_connections(mut self, n: u32) -> Self {
        self.min_free_connections = n;
        self
    }

    /// Sets how many statements are read from `pg_stat_statements`, by
    /// total time. Defaults to 50.
    pub fn top_statements(mut self, n: usize) -> Self {
        self.top_statements = n;
        self
    }
}

/// Alert thresholds, each also read from an environment variable by
/// [`MonitorConfig::from_env`].
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct AlertThresholds {
    pub(crate) error_rate_5min: f64,
    pub(crate) error_rate_15min: f64,
    pub(crate) error_rate_1hour: f64,
    pub(crate) pool_utilization: f64,
    pub(crate) held_idle_share: f64,
    pub(crate) consecutive_failures: u32,
    pub(crate) error_rate_min_statements: u64,
    pub(crate) error_rate_evidence: Duration,
    pub(crate) cooldown: Duration,
    pub(crate) cooldowns: BTreeMap<AlertType, Duration>,
    pub(crate) clear_after: Duration,
    pub(crate) expire_after: Duration,
    pub(crate) evaluation_interval: Duration,
    pub(crate) idle_in_transaction: Duration,
    pub(crate) transaction_age: Duration,
    pub(crate) blocked: Duration,
    pub(crate) forecast: ForecastThresholds,
    pub(crate) anomaly: AnomalyThresholds,
}

impl AlertThresholds {
    /// The cooldown of `alert_type`: its own, or the default one.
    pub(crate) fn cooldown(&self, alert_type: AlertType) -> Duration {
        self.cooldowns.get(&alert_type).copied().unwrap_or(self.cooldown)
    }

    /// Sets the cooldown of every type without one of its own
    /// (`ASYNC_DB_ALERT_COOLDOWN`): after notifying about an alert,
    /// repeats within this time only bump its count. Defaults to 300 s.
    pub fn default_cooldown(mut self, d: Duration) -> Self {
        self.cooldown = d;
        self
    }

    /// Sets the cooldown of one type (`ASYNC_DB_ALERT_COOLDOWN_<TYPE>`,
    /// e.g. `ASYNC_DB_ALERT_COOLDOWN_SLOW_QUERY`; see
    /// [`AlertType::cooldown_variable`]). Defaults to the
    /// [`default_cooldown`](Self::default_cooldown).
    pub fn cooldown_of(mut self, alert_type: AlertType, d: Duration) -> Self {
        self.cooldowns.insert(alert_type, d);
        self
    }

    /// Sets the pool exhaustion forecast's settings. Defaults to
    /// [`ForecastThresholds::default`].
    pub fn forecast(mut self, forecast: ForecastThresholds) -> Self {
        self.forecast = forecast;
        self
    }

    /// Sets the per-statement latency and failure-rate anomalies'
    /// settings. Defaults to [`AnomalyThresholds::default`].
    pub fn anomaly(mut self, anomaly: AnomalyThresholds) -> Self {
        self.anomaly = anomaly;
        self
    }

    /// Sets how many statements a window needs before its error rate can
    /// raise an alert (`ASYNC_DB_ALERT_MIN_STATEMENTS`), so that one
    /// failure in one statement is no 100% alert. Defaults to 20.
    pub fn error_rate_min_statements(mut self, n: u64) -> Self {
        self.error_rate_min_statements = n;
        self
    }

    /// Sets how much time the 5 min window's error rate must cover before
    /// it can raise an alert (`ASYNC_DB_ALERT_ERROR_RATE_EVIDENCE`); the
    /// longer windows need as many times more as they are longer (the
    /// 15 min window three times, the hour's twelve). Defaults to 60 s:
    /// no error-rate alert in a process's first minute, and none "over
    /// the last hour" that rests on its first 20 s. `0` judges every
    /// window at once.
    pub fn error_rate_evidence(mut self, d: Duration) -> Self {
        self.error_rate_evidence = d;
        self
    }

    /// Sets how long a condition alert (error rate, utilization,
    /// degradation, connect failures) waits, its rule no longer firing,
    /// before it resolves (`ASYNC_DB_ALERT_CLEAR_AFTER`). Defaults to 300 s.
    pub fn clear_after(mut self, d: Duration) -> Self {
        self.clear_after = d;
        self
    }

    /// Sets how long after it was last seen an event alert (deadlock, slow
    /// query, timeouts) not resolved by hand resolves
    /// (`ASYNC_DB_ALERT_EXPIRE_AFTER`). Defaults to 3600 s.
    pub fn expire_after(mut self, d: Duration) -> Self {
        self.expire_after = d;
        self
    }

    /// Sets how often the background task applies the condition rules and
    /// the expiries (`ASYNC_DB_ALERT_EVALUATION_INTERVAL`). Event rules are
    /// applied as the events arrive. Defaults to 10 s.
    pub fn evaluation_interval(mut self, d: Duration) -> Self {
        self.evaluation_interval = d;
        self
    }

    /// Sets how many failed connects in a row raise an alert
    /// (`ASYNC_DB_ALERT_CONSECUTIVE_FAILURES`). Defaults to 5.
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = n;
        self
    }

    /// Sets the pool utilization that raises an alert
    /// (`ASYNC_DB_ALERT_POOL_UTILIZATION`). Defaults to 0.9.
    pub fn pool_utilization(mut self, ratio: f64) -> Self {
        self.pool_utilization = ratio;
        self
    }

    /// Sets the share of the checked-out connections that, held with no
    /// statement running while checkouts queue for one, raises the
    /// `held_idle` pool-exhaustion alert: the pool starved by its holders
    /// (handlers keeping their connection across other awaits), not by the
    /// database (`ASYNC_DB_ALERT_HELD_IDLE_SHARE`). Defaults to 0.5.
    pub fn held_idle_share(mut self, ratio: f64) -> Self {
        self.held_idle_share = ratio;
        self
    }

    /// Sets the three error-rate thresholds, over 5 min, 15 min and 1 h
    /// (`ASYNC_DB_ALERT_ERROR_RATE_5MIN`, `_15MIN`, `_1HOUR`). Defaults to
    /// 0.1, 0.05 and 0.02.
    pub fn error_rates(mut self, five_minutes: f64, fifteen_minutes: f64, one_hour: f64) -> Self {
        self.error_rate_5min = five_minutes;
        self.error_rate_15min = fifteen_minutes;
        self.error_rate_1hour = one_hour;
        self
    }

    /// Sets how long one of the pool's backends may stay idle in a
    /// transaction before an alert (`ASYNC_DB_ALERT_IDLE_IN_TRANSACTION`;
    /// server view only). Defaults to 60 s.
    pub fn idle_in_transaction(mut self, d: Duration) -> Self {
        self.idle_in_transaction = d;
        self
    }

    /// Sets how long one of the pool's backends may keep a transaction
    /// open before an alert (`ASYNC_DB_ALERT_TRANSACTION_AGE`; server view
    /// only). Defaults to 300 s.
    pub fn transaction_age(mut self, d: Duration) -> Self {
        self.transaction_age = d;
        self
    }

    /// Sets how long one of the pool's backends may wait on a lock before
    /// an alert that names its blocker (`ASYNC_DB_ALERT_BLOCKED`; server
    /// view only). Defaults to 30 s.
    pub fn blocked(mut self, d: Duration) -> Self {
        self.blocked = d;
        self
    }
}

impl Default for AlertThresholds {
    fn default() -> Self {
        AlertThresholds {
            error_rate_5min: 0.1,
            error_rate_15min: 0.05,
            error_rate_1hour: 0.02,
            pool_utilization: 0.9,
            held_idle_share: 0.5,
            consecutive_failures: 5,
            error_rate_min_statements: 20,
            error_rate_evidence: Duration::from_secs(60),
            cooldown: Duration::from_secs(300),
            cooldowns: BTreeMap::new(),
            clear_after: Duration::from_secs(300),
            expire_after: Duration::from_secs(3600),
            evaluation_interval: Duration::from_secs(10),
            idle_in_transaction: Duration::from_secs(60),
            transaction_age: Duration::from_secs(300),
            blocked: Duration::from_secs(30),
            forecast: ForecastThresholds::default(),
            anomaly: AnomalyThresholds::default(),
        }
    }
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            database: None,
            max_size: 10,
            overflow: 0,
            min_idle: 0,
            pool_timeout: Duration::from_secs(30),
            pool_recycle: Duration::from_secs(3600),
            health_check_interval: Duration::from_secs(300),
            metrics_reset_interval: Duration::from_secs(3600),
            leak_threshold: Some(Duration::from_secs(60)),
            abandoned_grace: Duration::from_millis(100),
            slow_query_threshold: Duration::from_secs(2),
            query_history: 1000,
            error_history: 1000,
            alert_history: 500,
            pool_trend_samples: 1440,
            statement_cache_size: 10_000,
            prepared_cache_size: 256,
            max_fingerprints: 1000,
            max_query_summaries: 100,
            max_status_codes: 50,
            degradation_factor: 2.0,
            degradation_min_samples: 20,
            expose_application_messages: false,
            server_view: None,
            trace_context: None,
            span_level: Some(tracing::Level::INFO),
            returned_rows: false,
            hold_times: false,
            fail_fast: true,
            readiness: Readiness::default(),
            objectives: Vec::new(),
            slow_statements: BTreeMap::new(),
            slot: Duration::from_secs(60),
            alerts: AlertThresholds::default(),
        }
    }
}

impl MonitorConfig {
    /// A bb8 builder sized by this configuration (see the table above).
    pub fn pool_builder<M: bb8::ManageConnection>(&self) -> bb8::Builder<M> {
        bb8::Pool::builder()
            .max_size(self.max_size.max(1))
            .min_idle(Some(self.min_idle))
            .connection_timeout(self.pool_timeout)
            .max_lifetime(Some(self.pool_recycle).filter(|d| !d.is_zero()))
    }

    /// The database to connect to: the one given to
    /// [`database`](Self::database), or `DATABASE_URL` as
    /// [`from_env`](Self::from_env) read it. `None` by default.
    pub fn database_config(&self) -> Option<&tokio_postgres::Config> {
        self.database.as_ref()
    }

    /// Sets the database to connect to (`DATABASE_URL`). The monitor itself
    /// connects only through the manager it is given; this is where an
    /// application keeps the address it read with the rest. Its password
    /// is never printed. Unset by default.
    pub fn database(mut self, config: tokio_postgres::Config) -> Self {
        self.database = Some(config);
        self
    }

    /// Sets the most connections the pool opens, as checkouts need them
    /// (`ASYNC_DB_MAX_SIZE`; bb8's and deadpool's `max_size`). Defaults to
    /// 10, bb8's default.
    pub fn max_size(mut self, n: u32) -> Self {
        self.max_size = n;
        self.overflow = 0;
        self
    }

    /// SQLAlchemy's name, kept as an alias (`ASYNC_DB_POOL_SIZE`): sets
    /// [`max_size`](Self::max_size) to `n` plus what
    /// [`max_overflow`](Self::max_overflow) gave.
    #[deprecated(since = "0.1.0", note = "use `max_size`, bb8's and deadpool's own name")]
    pub fn pool_size(mut self, n: u32) -> Self {
        self.max_size = n.saturating_add(self.overflow);
        self
    }

    /// SQLAlchemy's name, kept as an alias (`ASYNC_DB_MAX_OVERFLOW`): adds
    /// `n` to [`max_size`](Self::max_size) in place of what an earlier call
    /// added (bb8 and deadpool have no overflow).
    #[deprecated(since = "0.1.0", note = "use `max_size`, bb8's and deadpool's own name")]
    pub fn max_overflow(mut self, n: u32) -> Self {
        self.max_size = self.max_size.saturating_sub(self.overflow).saturating_add(n);
        self.overflow = n;
        self
    }

    /// Sets how many connections are opened at start and kept open while
    /// idle (`ASYNC_DB_MIN_IDLE`; at most [`max_size`](Self::max_size)).
    /// Defaults to 0: the pool is lazy.
    pub fn min_idle(mut self, n: u32) -> Self {
        self.min_idle = n;
        self
    }

    /// Sets how long a checkout waits (`ASYNC_DB_POOL_TIMEOUT`). Defaults
    /// to 30 s.
    pub fn pool_timeout(mut self, d: Duration) -> Self {
        self.pool_timeout = d;
        self
    }

    /// Sets the longest life of a connection (`ASYNC_DB_POOL_RECYCLE`; `0`
    /// keeps connections for ever). Defaults to 3600 s.
    pub fn pool_recycle(mut self, d: Duration) -> Self {
        self.pool_recycle = d;
        self
    }

    /// Sets the period of the pool's trend samples and the score gauge
    /// (`ASYNC_DB_HEALTH_CHECK_INTERVAL`; from 1 s to a day), one minute at
    /// most: each sample sums the pool's own counts read every second
    /// since the one before. Defaults to 300 s (so a sample a minute).
    pub fn health_check_interval(mut self, d: Duration) -> Self {
        self.health_check_interval = d;
        self
    }

    /// Sets the period of the in-process store reset
    /// (`ASYNC_DB_METRICS_RESET_INTERVAL`; `0` disables it). The Prometheus
    /// counters are never reset. Defaults to 3600 s.
    pub fn metrics_reset_interval(mut self, d: Duration) -> Self {
        self.metrics_reset_interval = d;
        self
    }

    /// Sets how long a checkout may be held before it is reported as a
    /// possible leak (`ASYNC_DB_LEAK_THRESHOLD`, where `0` disables);
    /// `None` disables. Defaults to 60 s.
    pub fn leak_threshold(mut self, d: Option<Duration>) -> Self {
        self.leak_threshold = d;
        self
    }

    /// Sets how long the server may take to finish the work of an
    /// abandoned statement (a future dropped before its answer, such as a
    /// request timeout, or a row stream dropped before its end) once its
    /// checkout is returned (`ASYNC_DB_ABANDONED_GRACE`).
    ///
    /// tokio-postgres reads and drops the rest of such a statement's
    /// answer itself, so the connection stays in step. The pool holds it
    /// back and pings it: when the ping answers within this time, the
    /// server had finished and the connection goes back to the pool; when
    /// it does not, the server is still running that statement, so a cancel
    /// request is sent and the connection retired. `0` retires at once.
    /// Defaults to 100 ms.
    pub fn abandoned_grace(mut self, d: Duration) -> Self {
        self.abandoned_grace = d;
        self
    }

    /// Sets the duration from which a statement is slow: kept in the slow
    /// statements, counted in `db_monitor_slow_queries_total`, and alerted
    /// on (`ASYNC_DB_SLOW_QUERY_THRESHOLD`). Defaults to 2 s.
    pub fn slow_query_threshold(mut self, d: Duration) -> Self {
        self.slow_query_threshold = d;
        self
    }

    /// Sets how many recent statements are kept. Defaults to 1000.
    pub fn query_history(mut self, n: usize) -> Self {
        self.query_history = n;
        self
    }

    /// Sets how many error records are kept; totals and counts by type are
    /// exact whatever this holds. Defaults to 1000.
    pub fn error_history(mut self, n: usize) -> Self {
        self.error_history = n;
        self
    }

    /// Sets how many resolved alerts are kept. Defaults to 500.
    pub fn alert_history(mut self, n: usize) -> Self {
        self.alert_history = n;
        self
    }

    /// Sets how many pool trend samples are kept. Defaults to 1440 (24 h
    /// at one a minute).
    pub fn pool_trend_samples(mut self, n: usize) -> Self {
        self.pool_trend_samples = n;
        self
    }

    /// Sets how many distinct statement texts have their analysis cached
    /// per pool; texts beyond it are lexed on each run (no allocation).
    /// Defaults to 10 000.
    pub fn statement_cache_size(mut self, n: usize) -> Self {
        self.statement_cache_size = n;
        self
    }

    /// Sets how many statements each connection keeps for `prepare_cached`
    /// (`ASYNC_DB_PREPARED_CACHE_SIZE`); past it the least recently used is
    /// closed. `0` keeps none. Defaults to 256.
    pub fn prepared_cache_size(mut self, n: usize) -> Self {
        self.prepared_cache_size = n;
        self
    }

    /// Sets how many distinct fingerprints are tracked per pool; later
    /// ones are counted under one `other` entry. Defaults to 1000.
    pub fn max_fingerprints(mut self, n: usize) -> Self {
        self.max_fingerprints = n;
        self
    }

    /// Sets how many distinct `db_query_summary` label values a pool
    /// gives; later ones are labelled `other`. Defaults to 100.
    pub fn max_query_summaries(mut self, n: usize) -> Self {
        self.max_query_summaries = n;
        self
    }

    /// Sets how many distinct `db_response_status_code` label values a
    /// pool gives; later ones are labelled `other`. Defaults to 50.
    pub fn max_status_codes(mut self, n: usize) -> Self {
        self.max_status_codes = n;
        self
    }

    /// Sets when a statement is degraded: its p95 over the last 5 minutes
    /// is at least `factor` times its p95 over the hour before, with at
    /// least `min_samples` runs in each window. Defaults to 2.0 and 20.
    pub fn degradation(mut self, factor: f64, min_samples: u64) -> Self {
        self.degradation_factor = factor;
        self.degradation_min_samples = min_samples;
        self
    }

    /// Keeps the text of messages the application writes itself (PL/pgSQL's
    /// `RAISE` and `ASSERT`, SQLSTATE class P0), with their quoted runs,
    /// numbers and non-ASCII text masked, in the error store, the logs and
    /// alert summaries (`ASYNC_DB_EXPOSE_APPLICATION_MESSAGES`).
    ///
    /// Off, such a message keeps its SQLSTATE and severity and no text:
    /// `RAISE EXCEPTION 'user % over quota', email` puts the value in the
    /// text unquoted, where no mask can find it. Turn it on only when the
    /// application's messages never carry a value. Defaults to `false`.
    pub fn expose_application_messages(mut self, expose: bool) -> Self {
        self.expose_application_messages = expose;
        self
    }

    /// Shows the trace context to the server: at each checkout, `current`
    /// gives the trace the checkout belongs to (or `None`), and the pool
    /// sets the connection's `application_name` to its `traceparent`
    /// (`00-<trace id>-<span id>-01`) for as long as the checkout lasts.
    /// `pg_stat_activity`, the server log (`%a` in `log_line_prefix`) and
    /// the server view's activity then name the trace of each backend's
    /// statement. A checkout outside any trace gives the connection its
    /// own `application_name` back: the one it had before its first traced
    /// checkout, whatever set it (the startup parameter, a
    /// [`setup`](crate::MonitoredManager::setup) statement, your
    /// `connection_customizer`).
    ///
    /// The name is set with `SELECT set_config('application_name',
    /// '<traceparent>', false)`, sent ahead of the checkout's first
    /// statement, in the same round trip (written to the connection before
    /// the statement; its reply is read and dropped by the driver). So it
    /// costs the server one tiny statement per traced checkout and the
    /// client no wait. It is a `SELECT`, whose constants
    /// `pg_stat_statements` keeps out of its entry, so one entry serves
    /// every trace (a `SET` with the value written in makes one entry per
    /// trace and pushes the application's statements out), and the server
    /// view leaves it out of its statements. The connection's own name is
    /// kept on the server, in the setting `db_monitor.application_name`,
    /// by one more statement in the same write when a checkout shows a
    /// trace after none. The application's statement texts and
    /// prepared statements are untouched.
    ///
    /// With `tracing-opentelemetry`, the current span's OpenTelemetry
    /// context gives it:
    ///
    /// ```
    /// use db_monitor::{MonitorConfig, TraceParent};
    /// use opentelemetry::trace::TraceContextExt;
    /// use tracing_opentelemetry::OpenTelemetrySpanExt;
    ///
    /// let config = MonitorConfig::default().trace_context(|| {
    ///     let context = tracing::Span::current().context();
    ///     let span = context.span();
    ///     let span = span.span_context();
    ///     TraceParent::new(span.trace_id().to_bytes(), span.span_id().to_bytes(), span.is_sampled())
    /// });
    /// ```
    ///
    /// Off by default.
    pub fn trace_context(mut self, current: impl Fn() -> Option<TraceParent> + Send + Sync + 'static) -> Self {
        self.trace_context = Some(TraceContext(std::sync::Arc::new(current)));
        self
    }

    /// Sets the level of the crate's spans (target `db_monitor`): one per
    /// statement, transaction and failed checkout, with OpenTelemetry's
    /// database attributes; `None` turns them off
    /// (`ASYNC_DB_SPAN_LEVEL`: `info`, `debug`, `trace` or `off`; `error`
    /// and `warn` are taken as `info`). A subscriber that takes this level
    /// for `db_monitor` gets a span per statement: through
    /// `tracing-opentelemetry` into the OpenTelemetry SDK that is about
    /// 13,000 instructions a statement (the repository's benches/README.md), against about
    /// 30 for the check when no subscriber wants them. Defaults to INFO.
    pub fn span_level(mut self, level: Option<tracing::Level>) -> Self {
        self.span_level = level;
        self
    }

    /// Whether statements that return rows record how many in
    /// `db_client_response_returned_rows`, OpenTelemetry's
    /// `db.client.response.returned_rows` (`ASYNC_DB_RETURNED_ROWS`,
    /// `true` or `false`). Off, the histogram is not registered at all and
    /// a statement saves its record: about 140 instructions a statement
    /// with the Prometheus recorder (the repository's benches/README.md),
    /// 2,800 a request of twenty statements. Defaults to `false`: it is
    /// the one per-statement record beyond the statement's duration that
    /// a service pays for on every query, and the convention marks it as
    /// in development. The span's `db.response.returned_rows` attribute
    /// and the statement reports' row counts do not depend on it.
    pub fn returned_rows(mut self, on: bool) -> Self {
        self.returned_rows = on;
        self
    }

    /// Whether each checkout's hold is split into the time its statements
    /// ran and the time the connection was held idle (the handler keeping
    /// it between statements, or across other awaits), by the route of its
    /// request and its `get()` call site: the hold report
    /// ([`PoolMonitor::hold_report`](crate::PoolMonitor::hold_report),
    /// `GET …/metrics/holders`) and
    /// `db_monitor_connection_held_idle_seconds` (`ASYNC_DB_HOLD_TIMES`,
    /// `true` or `false`). Defaults to `false`: it costs 300 to 400
    /// instructions a checkout (a lock and a map lookup, about 130, and a
    /// histogram record; benches/README.md), past what a request already
    /// costs. The
    /// `held_idle` pool-exhaustion alert, which reads the checked-out
    /// connections as it evaluates, does not depend on it.
    pub fn hold_times(mut self, on: bool) -> Self {
        self.hold_times = on;
        self
    }

    /// Whether a bb8 checkout fails at once while the database is known to
    /// be out of reach (`ASYNC_DB_FAIL_FAST`, `true` or `false`): no
    /// connection of the pool is open and connects have failed since the
    /// last success. The checkout's [`GetError`](crate::GetError) then
    /// carries the connect error's class and text, and
    /// [`failed_fast`](crate::GetError::failed_fast) is true; checkouts
    /// already waiting fail as soon as the pool is known down. Meanwhile a
    /// task probes the server (a connect every 0.5 s, backing off to 2 s),
    /// and the first that succeeds puts its connection in the pool.
    ///
    /// Off, a checkout waits bb8's `connection_timeout` (30 s by default)
    /// for connects that keep failing, which is bb8's own behaviour.
    /// deadpool-postgres fails at once by itself: a deadpool checkout
    /// connects when no connection is idle and returns that connect's
    /// error. Defaults to `true`.
    pub fn fail_fast(mut self, on: bool) -> Self {
        self.fail_fast = on;
        self
    }

    /// Sets the length of one slot of each statement's history
    /// (`ASYNC_DB_HISTORY_SLOT`; from 100 ms to an hour): the grain of the
    /// windowed reports within the last hour, and one observation of the
    /// anomaly detector. Shorter only for tests and demos. Defaults to 60 s.
    pub fn slot(mut self, d: Duration) -> Self {
        self.slot = d;
        self
    }

    /// Turns the server-side view on with `view`: a poller of
    /// `pg_stat_activity`, the lock tree and `pg_stat_statements` on a
    /// connection of its own (`ASYNC_DB_SERVER_VIEW`: its interval, or
    /// `off`). Off by default.
    pub fn server_view(mut self, view: ServerView) -> Self {
        self.server_view = Some(view);
        self
    }

    /// Sets when the pool reports itself unready (the layer's
    /// `{prefix}/ready`). Defaults to [`Readiness::default`].
    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    /// Adds an objective for a route (`ASYNC_DB_OBJECTIVES`, as
    /// `ROUTE = 99% < 50ms, 99.9% ok`, objectives separated by `;`). A
    /// second objective for the same route replaces the first. None by
    /// default.
    pub fn objective(mut self, objective: Objective) -> Self {
        self.objectives.retain(|o| o.route != objective.route);
        self.objectives.push(objective);
        self
    }

    /// Sets the slow threshold of one statement, given by its text (any
    /// text of the same normalized form: literals and parameters do not
    /// matter), in place of [`slow_query_threshold`](Self::slow_query_threshold):
    /// a report query may take 5 s where the rest may not take 200 ms. The
    /// slow store, `db_monitor_slow_queries_total`, the slow-query alert
    /// and the score use it for that statement.
    pub fn slow_statement(self, sql: &str, threshold: Duration) -> Self {
        self.slow_fingerprint(crate::sql::fingerprint(sql), threshold)
    }

    /// As [`slow_statement`](Self::slow_statement), by the statement's
    /// fingerprint as the reports show it (`ASYNC_DB_SLOW_STATEMENTS`, as
    /// `0123456789abcdef=5s, …`). None by default.
    pub fn slow_fingerprint(mut self, fingerprint: u64, threshold: Duration) -> Self {
        self.slow_statements.insert(fingerprint, threshold);
        self
    }

    /// Sets the alert thresholds. Defaults to [`AlertThresholds::default`].
    pub fn alerts(mut self, alerts: AlertThresholds) -> Self {
        self.alerts = alerts;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&'static str, &str)]) -> Result<MonitorConfig, ConfigError> {
        let map: HashMap<&str, String> = pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        MonitorConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn empty_environment_gives_the_documented_defaults() {
        let c = from(&[]).unwrap();
        assert_eq!((c.max_size, c.min_idle), (10, 0));
        assert_eq!(c.pool_timeout, Duration::from_secs(30));
        assert_eq!(c.pool_recycle, Duration::from_secs(3600));
        assert_eq!(c.health_check_interval, Duration::from_secs(300));
        assert_eq!(c.metrics_reset_interval, Duration::from_secs(3600));
        assert_eq!(c.alerts, AlertThresholds::default());
        assert_eq!(
            (c.query_history, c.error_history, c.alert_history, c.pool_trend_samples),
            (1000, 1000, 500, 1440)
        );
    }

    #[test]
    fn every_variable_is_read() {
        let c = from(&[
            ("DATABASE_URL", "postgres://app:secret@127.0.0.1:5433/shop"),
            ("ASYNC_DB_MAX_SIZE", "5"),
            ("ASYNC_DB_MIN_IDLE", "2"),
            ("ASYNC_DB_POOL_TIMEOUT", "2.5"),
            ("ASYNC_DB_POOL_RECYCLE", "10m"),
            ("ASYNC_DB_HEALTH_CHECK_INTERVAL", "15s"),
            ("ASYNC_DB_METRICS_RESET_INTERVAL", "2h"),
            ("ASYNC_DB_LEAK_THRESHOLD", "0"),
            ("ASYNC_DB_ABANDONED_GRACE", "250ms"),
            ("ASYNC_DB_SLOW_QUERY_THRESHOLD", "250ms"),
            ("ASYNC_DB_ALERT_ERROR_RATE_5MIN", "0.2"),
            ("ASYNC_DB_ALERT_ERROR_RATE_15MIN", "0.1"),
            ("ASYNC_DB_ALERT_ERROR_RATE_1HOUR", "0.05"),
            ("ASYNC_DB_ALERT_POOL_UTILIZATION", "1"),
            ("ASYNC_DB_ALERT_CONSECUTIVE_FAILURES", "3"),
            ("ASYNC_DB_ALERT_MIN_STATEMENTS", "50"),
            ("ASYNC_DB_ALERT_COOLDOWN", "1m"),
            ("ASYNC_DB_ALERT_COOLDOWN_DEADLOCK", "10s"),
            ("ASYNC_DB_ALERT_CLEAR_AFTER", "2m"),
            ("ASYNC_DB_ALERT_EXPIRE_AFTER", "30m"),
            ("ASYNC_DB_ALERT_EVALUATION_INTERVAL", "5"),
            ("ASYNC_DB_SPAN_LEVEL", "debug"),
            ("ASYNC_DB_RETURNED_ROWS", "true"),
            ("ASYNC_DB_HOLD_TIMES", "true"),
        ])
        .unwrap();
        assert_eq!(c.span_level, Some(tracing::Level::DEBUG));
        assert!(c.returned_rows);
        assert!(c.hold_times);
        assert_eq!(from(&[("ASYNC_DB_SPAN_LEVEL", "off")]).unwrap().span_level, None);
        assert_eq!(
            from(&[("ASYNC_DB_SPAN_LEVEL", "loud")]).unwrap_err().variable(),
            "ASYNC_DB_SPAN_LEVEL"
        );
        assert_eq!(c.database.as_ref().unwrap().get_dbname(), Some("shop"));
        assert_eq!((c.max_size, c.min_idle), (5, 2));
        assert_eq!(c.pool_timeout, Duration::from_millis(2500));
        assert_eq!(c.pool_recycle, Duration::from_secs(600));
        assert_eq!(c.health_check_interval, Duration::from_secs(15));
        assert_eq!(c.metrics_reset_interval, Duration::from_secs(7200));
        assert_eq!(c.leak_threshold, None);
        assert_eq!(c.abandoned_grace, Duration::from_millis(250));
        assert_eq!(c.slow_query_threshold, Duration::from_millis(250));
        assert_eq!(c.alerts.error_rate_5min, 0.2);
        assert_eq!(c.alerts.error_rate_15min, 0.1);
        assert_eq!(c.alerts.error_rate_1hour, 0.05);
        assert_eq!(c.alerts.pool_utilization, 1.0);
        assert_eq!(c.alerts.consecutive_failures, 3);
        assert_eq!(c.alerts.error_rate_min_statements, 50);
        assert_eq!(c.alerts.cooldown(AlertType::SlowQuery), Duration::from_secs(60));
        assert_eq!(c.alerts.cooldown(AlertType::Deadlock), Duration::from_secs(10));
        assert_eq!(c.alerts.clear_after, Duration::from_secs(120));
        assert_eq!(c.alerts.expire_after, Duration::from_secs(1800));
        assert_eq!(c.alerts.evaluation_interval, Duration::from_secs(5));
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn malformed_values_name_their_variable() {
        let cases: &[(&'static str, &str)] = &[
            ("ASYNC_DB_MAX_SIZE", "twenty"),
            ("ASYNC_DB_MAX_SIZE", "0"),
            ("ASYNC_DB_POOL_SIZE", "twenty"),
            ("ASYNC_DB_POOL_SIZE", "-1"),
            ("ASYNC_DB_MAX_OVERFLOW", "1.5"),
            ("ASYNC_DB_POOL_TIMEOUT", "soon"),
            ("ASYNC_DB_POOL_TIMEOUT", "0"),
            ("ASYNC_DB_POOL_RECYCLE", "5 days"),
            ("ASYNC_DB_HEALTH_CHECK_INTERVAL", "-5"),
            ("ASYNC_DB_METRICS_RESET_INTERVAL", "1e999"),
            ("ASYNC_DB_SLOW_QUERY_THRESHOLD", "fast"),
            ("ASYNC_DB_ALERT_ERROR_RATE_5MIN", "1.5"),
            ("ASYNC_DB_ALERT_ERROR_RATE_15MIN", "NaN"),
            ("ASYNC_DB_ALERT_ERROR_RATE_1HOUR", ""),
            ("ASYNC_DB_ALERT_POOL_UTILIZATION", "90%"),
            ("ASYNC_DB_ALERT_CONSECUTIVE_FAILURES", "0"),
        ];
        for (name, value) in cases {
            let err = from(&[(name, value)]).unwrap_err();
            assert_eq!(err.variable(), *name, "{name}={value}");
            assert!(err.to_string().contains(name), "{err}");
        }
        let both_zero = from(&[("ASYNC_DB_POOL_SIZE", "0"), ("ASYNC_DB_MAX_OVERFLOW", "0")]).unwrap_err();
        assert_eq!(both_zero.variable(), "ASYNC_DB_MAX_SIZE");
        let too_many_idle = from(&[("ASYNC_DB_MAX_SIZE", "2"), ("ASYNC_DB_MIN_IDLE", "3")]).unwrap_err();
        assert_eq!(too_many_idle.variable(), "ASYNC_DB_MIN_IDLE");
    }

    #[test]
    fn the_sqlalchemy_sizes_are_aliases_of_max_size_and_never_beside_it() {
        let sum = |vars: &[(&'static str, &str)]| from(vars).map(|c| c.max_size);
        assert_eq!(
            sum(&[("ASYNC_DB_POOL_SIZE", "20"), ("ASYNC_DB_MAX_OVERFLOW", "30")]),
            Ok(50)
        );
        assert_eq!(sum(&[("ASYNC_DB_POOL_SIZE", "4")]), Ok(4));
        // The overflow alone adds to the default size.
        assert_eq!(sum(&[("ASYNC_DB_MAX_OVERFLOW", "5")]), Ok(15));
        let both = from(&[("ASYNC_DB_MAX_SIZE", "8"), ("ASYNC_DB_MAX_OVERFLOW", "2")]).unwrap_err();
        assert_eq!(both.variable(), "ASYNC_DB_MAX_OVERFLOW");
        assert!(both.to_string().contains("ASYNC_DB_MAX_SIZE"), "{both}");
        // In code, in either order; max_size replaces both.
        #[allow(deprecated)]
        {
            assert_eq!(MonitorConfig::default().pool_size(4).max_overflow(6).max_size, 10);
            assert_eq!(MonitorConfig::default().max_overflow(6).pool_size(4).max_size, 10);
            assert_eq!(
                MonitorConfig::default()
                    .max_overflow(6)
                    .max_overflow(2)
                    .pool_size(4)
                    .max_size,
                6
            );
            assert_eq!(
                MonitorConfig::default()
                    .max_overflow(6)
                    .max_size(3)
                    .pool_size(4)
                    .max_size,
                4
            );
        }
    }

    #[test]
    fn a_bad_database_url_is_named_without_its_value() {
        let err = from(&[("DATABASE_URL", "postgres://u:hunter2@host:notaport/db")]).unwrap_err();
        assert_eq!(err.variable(), "DATABASE_URL");
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn pool_builder_maps_size_timeout_and_recycle() {
        use crate::testing::Never;
        let c = MonitorConfig::default().max_size(10);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _enter = rt.enter();
        let pool = c.clone().pool_builder::<Never>().build_unchecked(Never);
        let cfg = pool.config();
        // Lazy unless asked: no connection is opened at start.
        assert_eq!((cfg.max_size, cfg.min_idle), (10, Some(0)));
        let eager = c.min_idle(3).pool_builder::<Never>().build_unchecked(Never);
        assert_eq!(eager.config().min_idle, Some(3));
        let cfg = pool.config();
        assert_eq!(cfg.connection_timeout, Duration::from_secs(30));
        assert_eq!(cfg.max_lifetime, Some(Duration::from_secs(3600)));
    }
}
