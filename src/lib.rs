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
//! - `otlp`: [`otlp::OtlpRecorder`], the crate's metrics under
//!   OpenTelemetry's names into an OpenTelemetry `Meter`, for a pipeline
//!   that exports over OTLP.
//! - `deadpool`: deadpool-postgres as a second pool.

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
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "prometheus")]
pub mod prometheus;
// Front door: the monitor and its background task.
pub mod background;
mod monitor;

#[doc = include_str!("../docs/migrating.md")]
pub mod migrating {}

pub use bb8;
#[cfg(feature = "deadpool")]
pub use deadpool;
#[cfg(feature = "deadpool")]
pub use deadpool_postgres;
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
    MonitoredPool, MonitoredStatement, MonitoredStream, MonitoredTransaction, MonitoredTransactionBuilder, PoolMonitor,
    PoolSnapshot, SessionStats, ToMonitoredStatement,
};
#[cfg(feature = "deadpool")]
pub use pool::{DeadpoolManager, MonitoredDeadpool, MonitoredObject};
pub use report::QueryStats;

/// Not public API: hooks for the crate's own benchmarks.
#[doc(hidden)]
pub mod __bench;
