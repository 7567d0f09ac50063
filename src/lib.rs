//! PostgreSQL observability for tokio/tower services.
//!
//! `db-monitor` watches the database side of an async service that talks to
//! PostgreSQL through a [bb8] pool of [tokio_postgres] clients. A
//! [`DbMonitor`] builds an instrumented pool ([`MonitoredPool`]) that times
//! every statement, checkout and connect, classifies every failure
//! ([`ErrorKind`]: deadlock, serialization failure, statement or lock
//! timeout, pool exhaustion, connection failure, too many connections,
//! shutdown…), and emits everything through the [`metrics`] facade with
//! OpenTelemetry's database names ([`names`]), so Prometheus and Grafana can
//! watch one or many instances.
//!
//! # Overview
//!
//! - [`DbMonitor`]: the front door that builds monitored pools and wires
//!   their events to a recorder and notifiers; cheap to clone.
//! - [`MonitorConfig`]: sizes, intervals and thresholds, from the
//!   environment with [`MonitorConfig::from_env`].
//! - [`MonitoredPool`] / [`MonitoredConnection`] / [`MonitoredClient`]:
//!   tokio-postgres's client methods under their own names, each one timed.
//! - [`sql`]: the lexer that turns statement text into a normalized form
//!   and a fingerprint, so that no literal value ever reaches a label.
//! - [`DbMonitor::track`]: time any async operation by name.
//! - [`DbMonitor::start`]: the background task (pool sampling, alert
//!   evaluation, store resets), stopped by [`MonitorHandle::shutdown`] or
//!   by dropping the handle.
//! - [`alerts`]: the alert engine: seven rules, severities, cooldowns,
//!   resolve, and notifiers (`tracing` by default, Alertmanager's webhook,
//!   your own).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use db_monitor::{DbMonitor, MonitorConfig};
//! use db_monitor::tokio_postgres::{Config, NoTls};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // The application installs a recorder (here Prometheus); the library only emits.
//! let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
//!
//! let config = MonitorConfig::from_env()?;
//! let monitor = DbMonitor::new(config.clone())?;
//!
//! let mut pg: Config = "host=127.0.0.1 user=app dbname=app".parse()?;
//! // Without these, a silently dropped network hangs a statement forever.
//! pg.keepalives_idle(Duration::from_secs(30)).tcp_user_timeout(Duration::from_secs(10));
//!
//! let pool = monitor.pool(monitor.manager("primary", pg, NoTls), config.pool_builder()).await?;
//! let conn = pool.get().await?;
//! let rows = conn.query("SELECT id FROM orders WHERE customer = $1", &[&42_i64]).await?;
//! println!("{} orders; {}", rows.len(), prometheus.render().lines().count());
//! # Ok(()) }
//! ```
//!
//! The same pool works with any TLS connector that bb8-postgres accepts
//! (`NoTls`, `tokio-postgres-rustls`, `postgres-native-tls`).
//!
//! # Recorders
//!
//! Libraries never install a recorder. Metric handles are registered on
//! first use and cached, so install yours before the first statement runs,
//! or give the monitor one of its own with [`DbMonitor::with_recorder`]
//! (which is also how tests read what was recorded, with
//! `metrics_util::debugging::DebuggingRecorder`).
//!
//! # Feature flags
//!
//! - `webhook` (on by default): [`alerts::AlertmanagerNotifier`], over
//!   hyper's HTTP/1 client.
//! - `prometheus` (on by default): [`prometheus::PrometheusSetup`], a
//!   `metrics-exporter-prometheus` recorder with explicit buckets for this
//!   crate's histograms, global labels and upkeep, and
//!   [`DbMonitorLayer::prometheus`] to serve `GET /metrics`.
//! - `axum` (on by default): the layer labels requests with axum's
//!   `MatchedPath`.

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

// The floors, from the ground up (see the README's "Architecture"):
// imports point down only.

// Vocabulary: the lexer, error kinds, metric names, alert kinds, units,
// configuration.
mod alert_kind;
mod classify;
mod config;
pub mod names;
pub mod sql;
#[cfg(test)]
mod testing;
mod units;
// Stores: bounded, each owning its striping and counters.
pub mod stats;
// Funnel: events, the statement table, the per-pool sink, the request scope.
mod funnel;
// Sources: the bb8 and tokio-postgres wrappers.
mod pool;
mod server;
// Engines over the stores: reports and the alert engine.
pub mod alerts;
mod forecast;
pub mod report;
// Surfaces: the tower layer and the Prometheus helper.
pub mod layer;
#[cfg(feature = "prometheus")]
pub mod prometheus;
// Front door: the monitor and its background task.
pub mod background;
mod monitor;

#[doc = include_str!("../docs/migrating.md")]
pub mod migrating {}

pub use bb8;
pub use tokio_postgres;

pub use background::MonitorHandle;
pub use classify::{ErrorKind, GetError};
pub use config::{
    AlertThresholds, AnomalyThresholds, ConfigError, ForecastThresholds, MonitorConfig, ServerView, TraceContext,
    TraceParent, TraceParentError,
};
pub use funnel::scope::RequestDbStats;
pub use layer::{DbMonitorLayer, DbMonitorService};
pub use monitor::{DbMonitor, DbMonitorBuilder};
pub use pool::{
    ConnectionInfo, GenericClient, MakeTls, MonitorErrorSink, MonitoredClient, MonitoredConnection, MonitoredManager,
    MonitoredPool, MonitoredStatement, MonitoredStream, MonitoredTransaction, MonitoredTransactionBuilder,
    PoolSnapshot, SessionStats, ToMonitoredStatement,
};
pub use report::QueryStats;

/// Not public API: hooks for the crate's own benchmarks.
#[doc(hidden)]
pub mod __bench {
    use std::sync::Arc;

    use crate::funnel::{Outcome, QueryEntry, Rows, Sink};
    use crate::pool::shared::{ConnStats, PoolShared};
    use crate::pool::{statement_ended, QueryRef};

    /// Runs the instrumentation of one statement, exactly as a
    /// `MonitoredClient` method does around its I/O, with no I/O.
    #[allow(missing_debug_implementations)]
    pub struct StatementProbe {
        pool: Arc<PoolShared>,
        conn: Arc<ConnStats>,
    }

    /// A statement's entry, as a prepared statement holds it.
    #[allow(missing_debug_implementations)]
    pub struct Prepared(Arc<QueryEntry>);

    impl StatementProbe {
        /// A probe recording into a pool called `pool` of `monitor`.
        pub fn new(monitor: &crate::DbMonitor, pool: &str) -> Self {
            let sink: Sink = monitor.sink(pool);
            let pool = Arc::new(PoolShared::new(sink, Arc::new(|_| {})));
            let conn = pool.new_connection();
            StatementProbe { pool, conn }
        }

        /// One successful statement given as text: two clock reads, the text
        /// lookup, the metrics and the counters.
        #[inline(never)]
        pub fn statement(&self, sql: &str) {
            self.run(&QueryRef::Text(sql));
        }

        /// One successful statement given as text with its span opened and
        /// completed as a client method does (`Span::none()` unless a
        /// subscriber wants it).
        #[inline(never)]
        pub fn spanned(&self, sql: &str) {
            let sink = &self.pool.sink;
            let span = crate::funnel::span::statement(&sink.name, &sink.span_target, None, || 0);
            let start = crate::units::now();
            statement_ended(
                &self.pool,
                &self.conn,
                &QueryRef::Text(sql),
                span.as_ref(),
                start,
                crate::units::now(),
                Outcome::Ok(Rows::Returned(1)),
            );
        }

        /// Another probe on the same pool with a connection of its own, as
        /// a second task holding a second connection would be.
        pub fn second_connection(&self) -> Self {
            StatementProbe {
                pool: self.pool.clone(),
                conn: self.pool.new_connection(),
            }
        }

        /// The entry of `sql`, as a prepared statement holds it.
        pub fn prepare(&self, sql: &str) -> Prepared {
            Prepared(self.pool.sink.queries.entry(sql))
        }

        /// One successful run of a prepared statement: no text lookup.
        #[inline(never)]
        pub fn prepared(&self, statement: &Prepared) {
            self.run(&QueryRef::Entry(&statement.0));
        }

        /// One statement given as text that failed with `error`: what a
        /// success costs, plus classifying, counting and keeping the error.
        #[inline(never)]
        pub fn failed(&self, sql: &str, error: &tokio_postgres::Error) {
            let start = crate::units::now();
            statement_ended(
                &self.pool,
                &self.conn,
                &QueryRef::Text(sql),
                None,
                start,
                crate::units::now(),
                Outcome::Failed(error),
            );
        }

        /// What a failing or slow statement adds for the alert engine:
        /// raising the evaluator's flag (already raised in a burst).
        #[inline(never)]
        pub fn alert_signal(&self) {
            self.pool.sink.stores.alerts.signal();
        }

        #[inline(always)]
        fn run(&self, query: &QueryRef<'_>) {
            let start = crate::units::now();
            statement_ended(
                &self.pool,
                &self.conn,
                query,
                None,
                start,
                crate::units::now(),
                Outcome::Ok(Rows::Returned(1)),
            );
        }

        /// The first half of the background task's minute for this
        /// probe's pool at `now` (advance it a minute at a time): every
        /// statement's history snapshot.
        pub fn snapshot(&self, now: std::time::Instant) {
            self.pool.sink.queries.snapshot_minute(now);
        }

        /// The second half: the anomaly detector over the slots that ended
        /// by `now`. Returns the statements with a baseline.
        pub fn detect(&self, forecaster: &mut Forecaster, now: std::time::Instant) -> usize {
            crate::forecast::observe_minutes(&self.pool.sink, &mut forecaster.0, now);
            forecaster.0.baselines_len()
        }
    }

    /// The anomaly detector's and the forecast's state for a probe.
    #[allow(missing_debug_implementations)]
    pub struct Forecaster(crate::forecast::Forecaster);

    impl Forecaster {
        /// State whose first minute starts at `now`.
        pub fn new(now: std::time::Instant) -> Self {
            Forecaster(crate::forecast::Forecaster::new(now))
        }
    }

    /// The anomaly detector's state per statement, in bytes.
    pub const ANOMALY_STATE_BYTES: usize = crate::forecast::anomaly::STATE_BYTES;

    /// The anomaly detector alone, on minutes the caller makes up.
    #[allow(missing_debug_implementations)]
    pub struct AnomalyProbe {
        baselines: crate::forecast::anomaly::Baselines,
        thresholds: crate::config::AnomalyThresholds,
    }

    impl AnomalyProbe {
        /// A detector with the default thresholds.
        pub fn new() -> Self {
            AnomalyProbe {
                baselines: Default::default(),
                thresholds: Default::default(),
            }
        }

        /// One minute of statement `fingerprint`: whether its latency and
        /// its failure rate are anomalous now.
        pub fn observe(
            &mut self,
            fingerprint: u64,
            calls: u64,
            errors: u64,
            p95_ms: f64,
            end_unix_ms: u64,
        ) -> (bool, bool) {
            let minute = crate::forecast::anomaly::Minute {
                calls,
                errors,
                p95_ms: Some(p95_ms),
                end_unix_ms,
            };
            let verdict = self.baselines.observe(fingerprint, minute, &self.thresholds);
            (verdict.latency.is_some(), verdict.errors.is_some())
        }
    }

    impl Default for AnomalyProbe {
        fn default() -> Self {
            Self::new()
        }
    }

    /// The exhaustion forecast alone, on samples the caller makes up.
    #[allow(missing_debug_implementations)]
    pub struct ForecastProbe {
        forecaster: crate::forecast::pool::PoolForecaster,
        thresholds: crate::config::ForecastThresholds,
    }

    impl ForecastProbe {
        /// A forecast with the default thresholds.
        pub fn new() -> Self {
            ForecastProbe {
                forecaster: Default::default(),
                thresholds: Default::default(),
            }
        }

        /// One sample at `at` seconds: the reported time to exhaustion.
        pub fn observe(&mut self, at: f64, in_use: u32, waiters: u64, max_size: u32) -> Option<f64> {
            let sample = crate::forecast::pool::PoolObservation {
                at,
                in_use,
                waiters,
                max_size,
                ..Default::default()
            };
            self.forecaster.observe(sample, &self.thresholds).exhausted_in_seconds
        }
    }

    impl Default for ForecastProbe {
        fn default() -> Self {
            Self::new()
        }
    }
}
