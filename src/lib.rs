//! PostgreSQL observability for tokio/tower services.
//!
//! `db-monitor` watches the database side of an async service that talks to
//! PostgreSQL through a [bb8] pool (or deadpool-postgres, feature `deadpool`)
//! of [tokio_postgres] clients. A [`DbMonitor`] builds an instrumented pool
//! ([`MonitoredPool`]) that times every statement, checkout and connect,
//! classifies every failure ([`ErrorKind`]: deadlock, serialization failure,
//! statement or lock timeout, pool exhaustion, connection failure, too many
//! connections, shutdown…), and emits everything through the [`metrics`]
//! facade with OpenTelemetry's database names ([`names`]), so Prometheus and
//! Grafana can watch one or many instances. A tower layer
//! ([`DbMonitorLayer`]) adds per-request statistics, JSON routes, alerts and
//! a dashboard; the application's own code does not change.
//!
//! # Quick start
//!
//! ```no_run
//! use axum::{extract::State, routing::get, Router};
//! use db_monitor::prometheus::PrometheusSetup;
//! use db_monitor::tokio_postgres::NoTls;
//! use db_monitor::{DbError, DbMonitor, MonitoredPool};
//!
//! // tokio-postgres's methods under their own names, each one timed; a
//! // failed checkout or statement is a `DbError` (an axum answer).
//! async fn orders(State(pool): State<MonitoredPool<NoTls>>) -> Result<String, DbError> {
//!     let conn = pool.get().await?;
//!     let rows = conn.query("SELECT id FROM orders WHERE customer = $1", &[&42_i64]).await?;
//!     Ok(format!("{} orders", rows.len()))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // The application installs a recorder; the library only emits.
//! let prometheus = PrometheusSetup::new().install()?;
//! let monitor = DbMonitor::from_env()?; // DATABASE_URL and the ASYNC_DB_* variables
//! let pool = monitor.connect(NoTls).await?;
//!
//! // The layer serves /health/database/… and /metrics, and keeps the
//! // background task (sampling, alerts, resets) running while the router lives.
//! let app = Router::new()
//!     .route("/orders", get(orders))
//!     .with_state(pool.clone())
//!     .layer(monitor.layer(&pool).prometheus(prometheus));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! [`DbMonitor::manager`] and [`DbMonitor::pool`] build a pool of another
//! name, address or builder (customizers, several pools, deadpool with the
//! `deadpool` feature).
//!
//! The same pool works with any TLS connector that bb8-postgres accepts
//! (`NoTls`, `tokio-postgres-rustls`, `postgres-native-tls`).
//!
//! # Where to read on
//!
//! - [`guide`]: how it works, chapter by chapter, with a table of where each
//!   part is documented: what is recorded, what text leaves the process, the
//!   metrics, the stores and reports, the 15 alert rules, the layer and its
//!   routes, the dashboard, the server view, spans, forecasts, every setting.
//! - [`migrating`]: moving an existing bb8-postgres application (and, with
//!   the `deadpool` feature, a deadpool-postgres one).
//! - [`MonitorConfig::from_env`]: every setting, its default and its
//!   variable.
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
//! - `native-histograms`: Prometheus native histograms
//!   (`PrometheusSetup::native_histograms`) and the protobuf exposition they
//!   need; builds with `protoc`.
//! - `axum` (on by default): the layer labels requests with axum's
//!   `MatchedPath`.
//! - `otlp`: `otlp::OtlpRecorder`, the crate's metrics under OpenTelemetry's
//!   names into an OpenTelemetry `Meter`, for a pipeline that exports over
//!   OTLP.
//! - `deadpool`: deadpool-postgres as a second pool (`MonitoredDeadpool`).

#![cfg_attr(docsrs, feature(doc_cfg))]

// The floors, from the ground up (see docs/ARCHITECTURE.md):
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

pub mod guide;
#[doc = include_str!("../docs/migrating.md")]
#[cfg_attr(feature = "deadpool", doc = "")]
#[cfg_attr(feature = "deadpool", doc = include_str!("../docs/migrating-deadpool.md"))]
pub mod migrating {}

pub use bb8;
#[cfg(feature = "deadpool")]
pub use deadpool;
#[cfg(feature = "deadpool")]
pub use deadpool_postgres;
pub use tokio_postgres;

pub use background::MonitorHandle;
pub use classify::{DbError, ErrorKind, GetError};
pub use config::{
    AlertThresholds, AnomalyThresholds, ConfigError, ForecastThresholds, MonitorConfig, Objective, Readiness,
    ServerView, TraceContext, TraceParent, TraceParentError,
};
pub use funnel::scope::RequestDbStats;
pub use layer::{DbMonitorLayer, DbMonitorService, ShedLayer};
pub use monitor::{ConnectError, DbMonitor, DbMonitorBuilder};
pub use pool::{
    ConnectionInfo, GenericClient, MakeTls, MonitorErrorSink, MonitoredClient, MonitoredConnection, MonitoredManager,
    MonitoredPool, MonitoredPortal, MonitoredStatement, MonitoredStream, MonitoredTransaction,
    MonitoredTransactionBuilder, PoolMonitor, PoolSnapshot, ReplicaConnection, ReplicaReport, ReplicaSet,
    ReplicaStatus, SessionStats, StatementCache, StatementCaches, ToMonitoredStatement,
};
#[cfg(feature = "deadpool")]
pub use pool::{DeadpoolManager, MonitoredDeadpool, MonitoredObject};
pub use report::QueryStats;

/// The README's Rust snippets, compiled as doc tests (they use axum,
/// Prometheus and deadpool).
#[cfg(all(doctest, feature = "axum", feature = "prometheus", feature = "deadpool"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Not public API: hooks for the crate's own benchmarks.
#[doc(hidden)]
pub mod __bench;
