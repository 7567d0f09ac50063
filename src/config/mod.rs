//! Configuration: [`MonitorConfig`], [`AlertThresholds`] and `from_env()`.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use db_monitor::MonitorConfig;
//!
//! let config = MonitorConfig::from_lookup(|name| match name {
//!     "ASYNC_DB_POOL_SIZE" => Some("8".to_owned()),
//!     "ASYNC_DB_SLOW_QUERY_THRESHOLD" => Some("500ms".to_owned()),
//!     _ => None,
//! })?;
//! assert_eq!(config.pool_size, 8);
//! assert_eq!(config.alerts.slow_query_threshold, Duration::from_millis(500));
//!
//! let err = MonitorConfig::from_lookup(|name| (name == "ASYNC_DB_POOL_TIMEOUT").then(|| "soon".to_owned()))
//!     .unwrap_err();
//! assert_eq!(err.variable(), "ASYNC_DB_POOL_TIMEOUT");
//! # Ok::<(), db_monitor::ConfigError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::alert_kind::AlertType;

mod env;
mod forecast;
mod trace;
mod validate;

pub use env::ConfigError;
pub use forecast::{AnomalyThresholds, ForecastThresholds};
pub use trace::{TraceContext, TraceParent, TraceParentError};

/// Everything the monitor can be told. Built with [`MonitorConfig::default`]
/// and the builder methods, or read from the environment with
/// [`MonitorConfig::from_env`].
///
/// ## Pool sizing and bb8
///
/// The variables follow SQLAlchemy's pool (`pool_size` connections kept,
/// `max_overflow` more under load). bb8 has no overflow, so
/// [`pool_builder`](MonitorConfig::pool_builder) maps them as:
///
/// | setting | bb8 |
/// |---|---|
/// | `pool_size + max_overflow` | `max_size` |
/// | `min_idle` | `min_idle` (opened at start and kept open even when idle; 0 by default) |
/// | `pool_timeout` | `connection_timeout` (how long `get()` waits) |
/// | `pool_recycle` | `max_lifetime` |
///
/// The pool is lazy, as SQLAlchemy's is: it opens a connection when a
/// checkout finds none idle, never more than `max_size`, and none at start
/// unless `min_idle` asks for them. (Eager pools add up: five instances
/// each keeping 20 open fill PostgreSQL's default `max_connections` of 100
/// before any traffic.) Connections above `min_idle` are closed by bb8's
/// reaper after its `idle_timeout` (10 minutes by default), which plays the
/// part of SQLAlchemy's overflow close.
#[derive(Clone)]
#[non_exhaustive]
pub struct MonitorConfig {
    /// Parsed `DATABASE_URL`, if set. Its password is never printed.
    pub database: Option<tokio_postgres::Config>,
    /// Connections the pool may open in normal use (`ASYNC_DB_POOL_SIZE`,
    /// 20), opened as checkouts need them.
    pub pool_size: u32,
    /// Extra connections allowed under load (`ASYNC_DB_MAX_OVERFLOW`, 30).
    pub max_overflow: u32,
    /// Connections opened at start and kept open while idle
    /// (`ASYNC_DB_MIN_IDLE`, 0: the pool is lazy).
    pub min_idle: u32,
    /// How long a checkout waits (`ASYNC_DB_POOL_TIMEOUT`, 30 s).
    pub pool_timeout: Duration,
    /// Maximum lifetime of a connection (`ASYNC_DB_POOL_RECYCLE`, 3600 s).
    pub pool_recycle: Duration,
    /// Pool sampling period (`ASYNC_DB_HEALTH_CHECK_INTERVAL`, 300 s; the
    /// background task samples at most every second and at least once a
    /// year, whatever this holds).
    pub health_check_interval: Duration,
    /// Period of the in-process store reset (`ASYNC_DB_METRICS_RESET_INTERVAL`,
    /// 3600 s; `0` disables it).
    pub metrics_reset_interval: Duration,
    /// A checkout held longer than this is reported as a possible leak
    /// (`ASYNC_DB_LEAK_THRESHOLD`, 60 s; `0` disables).
    pub leak_threshold: Option<Duration>,
    /// How long the server may take to finish the work of an abandoned
    /// statement (a future dropped before its answer, such as a request
    /// timeout, or a row stream dropped before its end) once its checkout
    /// is returned (`ASYNC_DB_ABANDONED_GRACE`, 100 ms).
    ///
    /// tokio-postgres reads and drops the rest of such a statement's
    /// answer itself, so the connection stays in step. The pool holds it
    /// back and pings it: when the ping answers within this time, the
    /// server had finished and the connection goes back to the pool; when
    /// it does not, the server is still running that statement, so a cancel
    /// request is sent and the connection retired. `0` retires at once.
    pub abandoned_grace: Duration,
    /// Recent statements kept (1000).
    pub query_history: usize,
    /// Errors kept (1000).
    pub error_history: usize,
    /// Resolved alerts kept (500).
    pub alert_history: usize,
    /// Pool trend samples kept (288: 24 h at 5 min).
    pub pool_trend_samples: usize,
    /// Distinct statement texts whose analysis is cached per pool (10 000).
    /// Texts beyond it are lexed on each run (no allocation).
    pub statement_cache_size: usize,
    /// Statements each connection keeps for `prepare_cached`
    /// (`ASYNC_DB_PREPARED_CACHE_SIZE`, 256); past it the least recently
    /// used is closed. `0` keeps none.
    pub prepared_cache_size: usize,
    /// Distinct fingerprints tracked per pool (1000); later ones are counted
    /// under one `other` entry.
    pub max_fingerprints: usize,
    /// Distinct `db_query_summary` label values per pool (100); later ones
    /// are labelled `other`.
    pub max_query_summaries: usize,
    /// Distinct `db_response_status_code` label values per pool (50); later
    /// ones are labelled `other`.
    pub max_status_codes: usize,
    /// A statement is degraded when its p95 over the last 5 minutes is at
    /// least this many times its p95 over the hour before (2.0).
    pub degradation_factor: f64,
    /// Runs needed in each of those two windows before a statement can be
    /// called degraded (20).
    pub degradation_min_samples: u64,
    /// Keep the text of messages the application writes itself (PL/pgSQL's
    /// `RAISE` and `ASSERT`, SQLSTATE class P0), with their quoted runs,
    /// numbers and non-ASCII text masked, in the error store, the logs and
    /// alert summaries (`ASYNC_DB_EXPOSE_APPLICATION_MESSAGES`, `false`).
    ///
    /// Off, such a message keeps its SQLSTATE and severity and no text:
    /// `RAISE EXCEPTION 'user % over quota', email` puts the value in the
    /// text unquoted, where no mask can find it. Turn it on only when the
    /// application's messages never carry a value.
    pub expose_application_messages: bool,
    /// The server-side view: a poller of `pg_stat_activity`, the lock tree
    /// and `pg_stat_statements` on a connection of its own
    /// (`ASYNC_DB_SERVER_VIEW`: its interval, or `off`; off by default).
    pub server_view: Option<ServerView>,
    /// Where each checkout finds the current trace context, to show it to
    /// the server (off by default; set with
    /// [`trace_context`](Self::trace_context)).
    pub trace_context: Option<TraceContext>,
    /// The length of one slot of each statement's history
    /// (`ASYNC_DB_HISTORY_SLOT`, 60 s; at least 100 ms): the grain of the
    /// windowed reports within the last hour, and one observation of the
    /// anomaly detector. Shorter only for tests and demos.
    pub slot: Duration,
    /// Alert thresholds.
    pub alerts: AlertThresholds,
}

/// The server-side view's settings ([`MonitorConfig::server_view`]).
///
/// The poller uses one connection outside the pool (it never takes a slot
/// from the application), made with the pool's own settings and role, and
/// named by `application_name`. Every query it runs is bounded by
/// `statement_timeout` and `lock_timeout`. Cycles never overlap; after a
/// failure it reconnects with a backoff (1 s, doubling to 1 min).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ServerView {
    /// Time between the starts of two cycles (15 s; at least 100 ms).
    pub interval: Duration,
    /// `statement_timeout` of the poller's queries (2 s).
    pub statement_timeout: Duration,
    /// `lock_timeout` of the poller's queries (100 ms, as pgwatch).
    pub lock_timeout: Duration,
    /// The poller's `application_name` (`db-monitor`), so that it can be
    /// told from the application's backends.
    pub application_name: String,
    /// Statements read from `pg_stat_statements`, by total time (50).
    pub top_statements: usize,
    /// Show other backends' `application_name` in the activity and lock
    /// documents (`false`). Any client can set it to any 63 bytes, a value
    /// included, so by default other backends are counted by state only
    /// (their name shown as `(not shown)`), a trace context as
    /// `(traceparent)`, and the lock tree names no application.
    pub application_names: bool,
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
        }
    }
}

impl ServerView {
    /// Sets [`application_names`](Self::application_names): whether other
    /// backends' `application_name` is shown.
    #[must_use]
    pub fn application_names(mut self, show: bool) -> Self {
        self.application_names = show;
        self
    }

    /// Sets [`interval`](Self::interval).
    #[must_use]
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d;
        self
    }

    /// Sets [`statement_timeout`](Self::statement_timeout) and
    /// [`lock_timeout`](Self::lock_timeout).
    #[must_use]
    pub fn timeouts(mut self, statement: Duration, lock: Duration) -> Self {
        self.statement_timeout = statement;
        self.lock_timeout = lock;
        self
    }
}

/// Alert thresholds, each overridable by an environment variable.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct AlertThresholds {
    /// Error rate over 5 minutes (`ASYNC_DB_ALERT_ERROR_RATE_5MIN`, 0.1).
    pub error_rate_5min: f64,
    /// Error rate over 15 minutes (`ASYNC_DB_ALERT_ERROR_RATE_15MIN`, 0.05).
    pub error_rate_15min: f64,
    /// Error rate over 1 hour (`ASYNC_DB_ALERT_ERROR_RATE_1HOUR`, 0.02).
    pub error_rate_1hour: f64,
    /// A statement at or over this is slow (`ASYNC_DB_SLOW_QUERY_THRESHOLD`, 2 s).
    pub slow_query_threshold: Duration,
    /// Pool utilization that raises an alert (`ASYNC_DB_ALERT_POOL_UTILIZATION`, 0.9).
    pub pool_utilization: f64,
    /// Failed connects in a row that raise an alert
    /// (`ASYNC_DB_ALERT_CONSECUTIVE_FAILURES`, 5).
    pub consecutive_failures: u32,
    /// Statements a window needs before its error rate can raise an alert
    /// (`ASYNC_DB_ALERT_MIN_STATEMENTS`, 20), so that one failure in one
    /// statement is no 100% alert.
    pub error_rate_min_statements: u64,
    /// Cooldown of every alert type without one of its own
    /// (`ASYNC_DB_ALERT_COOLDOWN`, 300 s): after notifying about an alert,
    /// repeats within this time only bump its count.
    pub cooldown: Duration,
    /// Cooldowns of single types (`ASYNC_DB_ALERT_COOLDOWN_<TYPE>`, e.g.
    /// `ASYNC_DB_ALERT_COOLDOWN_SLOW_QUERY`; see
    /// [`AlertType::cooldown_variable`]). Empty by default.
    pub cooldowns: BTreeMap<AlertType, Duration>,
    /// A condition alert (error rate, utilization, degradation, connect
    /// failures) resolves once its rule has not fired for this long
    /// (`ASYNC_DB_ALERT_CLEAR_AFTER`, 300 s).
    pub clear_after: Duration,
    /// An event alert (deadlock, slow query, timeouts) not resolved by hand
    /// resolves this long after it was last seen
    /// (`ASYNC_DB_ALERT_EXPIRE_AFTER`, 3600 s).
    pub expire_after: Duration,
    /// How often the background task applies the condition rules and the
    /// expiries (`ASYNC_DB_ALERT_EVALUATION_INTERVAL`, 10 s). Event rules
    /// are applied as the events arrive.
    pub evaluation_interval: Duration,
    /// One of the pool's backends idle in a transaction this long raises an
    /// alert (`ASYNC_DB_ALERT_IDLE_IN_TRANSACTION`, 60 s; server view only).
    pub idle_in_transaction: Duration,
    /// One of the pool's backends with a transaction open this long raises
    /// an alert (`ASYNC_DB_ALERT_TRANSACTION_AGE`, 300 s; server view only).
    pub transaction_age: Duration,
    /// One of the pool's backends waiting on a lock this long raises an
    /// alert naming its blocker (`ASYNC_DB_ALERT_BLOCKED`, 30 s; server view
    /// only).
    pub blocked: Duration,
    /// The pool exhaustion forecast.
    pub forecast: ForecastThresholds,
    /// The per-statement latency and failure-rate anomalies.
    pub anomaly: AnomalyThresholds,
}

impl AlertThresholds {
    /// The cooldown of `alert_type`: its own, or [`cooldown`](Self::cooldown).
    pub fn cooldown(&self, alert_type: AlertType) -> Duration {
        self.cooldowns.get(&alert_type).copied().unwrap_or(self.cooldown)
    }

    /// Sets the cooldown of every type without one of its own. Defaults to 300 s.
    #[must_use]
    pub fn default_cooldown(mut self, d: Duration) -> Self {
        self.cooldown = d;
        self
    }

    /// Sets the cooldown of one type. Defaults to [`cooldown`](Self::cooldown).
    #[must_use]
    pub fn cooldown_of(mut self, alert_type: AlertType, d: Duration) -> Self {
        self.cooldowns.insert(alert_type, d);
        self
    }

    /// Sets the [`forecast`](Self::forecast) settings.
    #[must_use]
    pub fn forecast(mut self, forecast: ForecastThresholds) -> Self {
        self.forecast = forecast;
        self
    }

    /// Sets the [`anomaly`](Self::anomaly) settings.
    #[must_use]
    pub fn anomaly(mut self, anomaly: AnomalyThresholds) -> Self {
        self.anomaly = anomaly;
        self
    }

    /// Sets [`error_rate_min_statements`](Self::error_rate_min_statements). Defaults to 20.
    #[must_use]
    pub fn error_rate_min_statements(mut self, n: u64) -> Self {
        self.error_rate_min_statements = n;
        self
    }

    /// Sets [`clear_after`](Self::clear_after). Defaults to 300 s.
    #[must_use]
    pub fn clear_after(mut self, d: Duration) -> Self {
        self.clear_after = d;
        self
    }

    /// Sets [`expire_after`](Self::expire_after). Defaults to 3600 s.
    #[must_use]
    pub fn expire_after(mut self, d: Duration) -> Self {
        self.expire_after = d;
        self
    }

    /// Sets [`evaluation_interval`](Self::evaluation_interval). Defaults to 10 s.
    #[must_use]
    pub fn evaluation_interval(mut self, d: Duration) -> Self {
        self.evaluation_interval = d;
        self
    }

    /// Sets [`consecutive_failures`](Self::consecutive_failures). Defaults to 5.
    #[must_use]
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = n;
        self
    }

    /// Sets [`pool_utilization`](Self::pool_utilization). Defaults to 0.9.
    #[must_use]
    pub fn pool_utilization(mut self, ratio: f64) -> Self {
        self.pool_utilization = ratio;
        self
    }

    /// Sets the three error-rate thresholds (5 min, 15 min, 1 h).
    /// Defaults to 0.1, 0.05 and 0.02.
    #[must_use]
    pub fn error_rates(mut self, five_minutes: f64, fifteen_minutes: f64, one_hour: f64) -> Self {
        self.error_rate_5min = five_minutes;
        self.error_rate_15min = fifteen_minutes;
        self.error_rate_1hour = one_hour;
        self
    }
}

impl Default for AlertThresholds {
    fn default() -> Self {
        AlertThresholds {
            error_rate_5min: 0.1,
            error_rate_15min: 0.05,
            error_rate_1hour: 0.02,
            slow_query_threshold: Duration::from_secs(2),
            pool_utilization: 0.9,
            consecutive_failures: 5,
            error_rate_min_statements: 20,
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
            pool_size: 20,
            max_overflow: 30,
            min_idle: 0,
            pool_timeout: Duration::from_secs(30),
            pool_recycle: Duration::from_secs(3600),
            health_check_interval: Duration::from_secs(300),
            metrics_reset_interval: Duration::from_secs(3600),
            leak_threshold: Some(Duration::from_secs(60)),
            abandoned_grace: Duration::from_millis(100),
            query_history: 1000,
            error_history: 1000,
            alert_history: 500,
            pool_trend_samples: 288,
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
            slot: Duration::from_secs(60),
            alerts: AlertThresholds::default(),
        }
    }
}

impl fmt::Debug for MonitorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // tokio_postgres::Config's Debug already redacts the password.
        f.debug_struct("MonitorConfig")
            .field("database", &self.database)
            .field("pool_size", &self.pool_size)
            .field("max_overflow", &self.max_overflow)
            .field("min_idle", &self.min_idle)
            .field("pool_timeout", &self.pool_timeout)
            .field("pool_recycle", &self.pool_recycle)
            .field("health_check_interval", &self.health_check_interval)
            .field("metrics_reset_interval", &self.metrics_reset_interval)
            .field("leak_threshold", &self.leak_threshold)
            .field("abandoned_grace", &self.abandoned_grace)
            .field("query_history", &self.query_history)
            .field("error_history", &self.error_history)
            .field("alert_history", &self.alert_history)
            .field("pool_trend_samples", &self.pool_trend_samples)
            .field("statement_cache_size", &self.statement_cache_size)
            .field("prepared_cache_size", &self.prepared_cache_size)
            .field("max_fingerprints", &self.max_fingerprints)
            .field("max_query_summaries", &self.max_query_summaries)
            .field("max_status_codes", &self.max_status_codes)
            .field("degradation_factor", &self.degradation_factor)
            .field("degradation_min_samples", &self.degradation_min_samples)
            .field("expose_application_messages", &self.expose_application_messages)
            .field("server_view", &self.server_view)
            .field("trace_context", &self.trace_context)
            .field("slot", &self.slot)
            .field("alerts", &self.alerts)
            .finish()
    }
}

impl MonitorConfig {
    /// A bb8 builder sized by this configuration (see the table above).
    pub fn pool_builder<M: bb8::ManageConnection>(&self) -> bb8::Builder<M> {
        bb8::Pool::builder()
            .max_size(self.pool_size.saturating_add(self.max_overflow).max(1))
            .min_idle(Some(self.min_idle))
            .connection_timeout(self.pool_timeout)
            .max_lifetime(Some(self.pool_recycle).filter(|d| !d.is_zero()))
    }

    /// Sets [`pool_size`](Self::pool_size). Defaults to 20.
    #[must_use]
    pub fn pool_size(mut self, n: u32) -> Self {
        self.pool_size = n;
        self
    }

    /// Sets [`max_overflow`](Self::max_overflow). Defaults to 30.
    #[must_use]
    pub fn max_overflow(mut self, n: u32) -> Self {
        self.max_overflow = n;
        self
    }

    /// Sets [`min_idle`](Self::min_idle). Defaults to 0 (a lazy pool).
    #[must_use]
    pub fn min_idle(mut self, n: u32) -> Self {
        self.min_idle = n;
        self
    }

    /// Sets [`pool_timeout`](Self::pool_timeout). Defaults to 30 s.
    #[must_use]
    pub fn pool_timeout(mut self, d: Duration) -> Self {
        self.pool_timeout = d;
        self
    }

    /// Sets [`leak_threshold`](Self::leak_threshold); `None` disables.
    /// Defaults to 60 s.
    #[must_use]
    pub fn leak_threshold(mut self, d: Option<Duration>) -> Self {
        self.leak_threshold = d;
        self
    }

    /// Sets [`prepared_cache_size`](Self::prepared_cache_size). Defaults to 256.
    #[must_use]
    pub fn prepared_cache_size(mut self, n: usize) -> Self {
        self.prepared_cache_size = n;
        self
    }

    /// Sets [`abandoned_grace`](Self::abandoned_grace). Defaults to 100 ms.
    #[must_use]
    pub fn abandoned_grace(mut self, d: Duration) -> Self {
        self.abandoned_grace = d;
        self
    }

    /// Sets [`AlertThresholds::slow_query_threshold`]. Defaults to 2 s.
    #[must_use]
    pub fn slow_query_threshold(mut self, d: Duration) -> Self {
        self.alerts.slow_query_threshold = d;
        self
    }

    /// Sets [`statement_cache_size`](Self::statement_cache_size). Defaults to 10 000.
    #[must_use]
    pub fn statement_cache_size(mut self, n: usize) -> Self {
        self.statement_cache_size = n;
        self
    }

    /// Sets [`max_fingerprints`](Self::max_fingerprints). Defaults to 1000.
    #[must_use]
    pub fn max_fingerprints(mut self, n: usize) -> Self {
        self.max_fingerprints = n;
        self
    }

    /// Sets [`max_query_summaries`](Self::max_query_summaries). Defaults to 100.
    #[must_use]
    pub fn max_query_summaries(mut self, n: usize) -> Self {
        self.max_query_summaries = n;
        self
    }

    /// Sets [`expose_application_messages`](Self::expose_application_messages).
    /// Defaults to `false`: the application's own messages keep no text.
    #[must_use]
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
    /// ```ignore
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
    #[must_use]
    pub fn trace_context(mut self, current: impl Fn() -> Option<TraceParent> + Send + Sync + 'static) -> Self {
        self.trace_context = Some(TraceContext(std::sync::Arc::new(current)));
        self
    }

    /// Sets [`slot`](Self::slot). Defaults to 60 s.
    #[must_use]
    pub fn slot(mut self, d: Duration) -> Self {
        self.slot = d;
        self
    }

    /// Turns the server-side view on with `view` (off by default).
    #[must_use]
    pub fn server_view(mut self, view: ServerView) -> Self {
        self.server_view = Some(view);
        self
    }

    /// Sets the alert thresholds. Defaults to [`AlertThresholds::default`].
    #[must_use]
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
        assert_eq!((c.pool_size, c.max_overflow), (20, 30));
        assert_eq!(c.pool_timeout, Duration::from_secs(30));
        assert_eq!(c.pool_recycle, Duration::from_secs(3600));
        assert_eq!(c.health_check_interval, Duration::from_secs(300));
        assert_eq!(c.metrics_reset_interval, Duration::from_secs(3600));
        assert_eq!(c.alerts, AlertThresholds::default());
        assert_eq!(
            (c.query_history, c.error_history, c.alert_history, c.pool_trend_samples),
            (1000, 1000, 500, 288)
        );
    }

    #[test]
    fn every_variable_is_read() {
        let c = from(&[
            ("DATABASE_URL", "postgres://app:secret@127.0.0.1:5433/shop"),
            ("ASYNC_DB_POOL_SIZE", "5"),
            ("ASYNC_DB_MAX_OVERFLOW", "0"),
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
        ])
        .unwrap();
        assert_eq!(c.database.as_ref().unwrap().get_dbname(), Some("shop"));
        assert_eq!((c.pool_size, c.max_overflow), (5, 0));
        assert_eq!(c.pool_timeout, Duration::from_millis(2500));
        assert_eq!(c.pool_recycle, Duration::from_secs(600));
        assert_eq!(c.health_check_interval, Duration::from_secs(15));
        assert_eq!(c.metrics_reset_interval, Duration::from_secs(7200));
        assert_eq!(c.leak_threshold, None);
        assert_eq!(c.abandoned_grace, Duration::from_millis(250));
        assert_eq!(c.alerts.slow_query_threshold, Duration::from_millis(250));
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
        assert_eq!(both_zero.variable(), "ASYNC_DB_POOL_SIZE");
    }

    #[test]
    fn a_bad_database_url_is_named_without_its_value() {
        let err = from(&[("DATABASE_URL", "postgres://u:hunter2@host:notaport/db")]).unwrap_err();
        assert_eq!(err.variable(), "DATABASE_URL");
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn pool_builder_maps_size_overflow_timeout_and_recycle() {
        use crate::testing::Never;
        let c = MonitorConfig::default().pool_size(4).max_overflow(6);
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
