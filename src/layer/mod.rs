//! The tower layer: `.layer(DbMonitorLayer::new(pool))`.
//!
//! [`DbMonitorLayer`] wraps any `tower::Service<http::Request<B>>` (axum's
//! `Router::layer`, hyper 1 through hyper-util's `TowerToHyperService`,
//! tonic's `Server::builder().layer`). For each request:
//!
//! - **under the prefix** (`/health/database` by default) the layer
//!   answers itself, in JSON (`application/json`), without calling the
//!   inner service;
//! - **every other request** goes to the inner service untouched, its
//!   body streamed both ways. While its future runs, a [`RequestDbStats`]
//!   is current in a task-local scope and sits in the request's
//!   extensions: every statement the request runs on a monitored pool adds
//!   to it (statements on tasks the handler spawns do not: a task-local
//!   scope does not follow `tokio::spawn`). When the response is ready the
//!   layer adds `Server-Timing: db;dur=<ms>;desc="<n> queries"` and records
//!   each statement run more than the N+1 threshold (10) times as an N+1
//!   pattern: counted (`db_monitor_n_plus_one_total`), logged once per
//!   route and statement, listed in the comprehensive report.
//!
//! The service's error type is the inner service's: monitoring never
//! changes an outcome. Its response future is a named, pin-projected type;
//! only the layer's own routes box theirs.
//!
//! # Routes
//!
//! Relative to the prefix; `minutes` is 1 to 1440, `limit` 1 to 1000.
//!
//! | method and path | answers |
//! |---|---|
//! | `GET /` | pool state and a `SELECT 1` under a timeout: 200 healthy, 503 not |
//! | `GET /metrics/comprehensive?minutes=60&limit=20` | [`ComprehensiveReport`](crate::report::ComprehensiveReport) |
//! | `GET /metrics/query-performance?minutes=60&limit=20` | [`QueryPerformanceReport`](crate::stats::QueryPerformanceReport) |
//! | `GET /metrics/pool-trends?minutes=N` | [`PoolTrendReport`](crate::stats::PoolTrendReport) (every sample kept without `minutes`) |
//! | `GET /metrics/slow-queries?minutes=N&limit=20` | [`SlowQueryReport`](crate::stats::SlowQueryReport) |
//! | `GET /errors?minutes=N&limit=100` | [`ErrorReport`](crate::stats::ErrorReport) |
//! | `GET /alerts` | [`AlertReport`](crate::alerts::AlertReport) |
//! | `GET /alerts/history?limit=50` | [`AlertHistory`](crate::alerts::AlertHistory) |
//! | `POST /alerts/{id}/resolve` | the resolved [`Alert`](crate::alerts::Alert); 404 for an unknown or resolved id |
//! | `GET /performance?minutes=60` | [`PerformanceScore`](crate::report::PerformanceScore) |
//! | `GET /server/activity` | [`ServerActivity`](crate::report::ServerActivity) (server view) |
//! | `GET /server/locks` | [`ServerLocks`](crate::report::ServerLocks) (server view) |
//! | `GET /server/statements?limit=20` | [`ServerStatements`](crate::report::ServerStatements) (server view) |
//! | `POST /metrics/comprehensive/reset` | empties every store of the pool |
//! | `POST /errors/reset` | empties the error store |
//!
//! Errors are JSON too — `{"status": 400, "error": "invalid_parameter",
//! "message": "minutes must be a whole number from 1 to 1440",
//! "parameter": "minutes"}`: 400 for a bad parameter, 404 for an unknown
//! path or alert, 405 with `Allow` for a wrong method, 401 for a missing or
//! wrong admin token, 403 for a mutating route when no token is configured
//! or a reading route the read guard refuses. No answer holds a statement's
//! parameters or literals: SQL is shown normalized.
//!
//! # Example
//!
//! ```no_run
//! use axum::{routing::get, Extension, Router};
//! use db_monitor::{DbMonitorLayer, MonitoredPool, RequestDbStats};
//! use db_monitor::tokio_postgres::NoTls;
//!
//! async fn orders(Extension(db): Extension<RequestDbStats>) -> String {
//!     format!("{} statements so far", db.snapshot().statements)
//! }
//!
//! # async fn run(pool: MonitoredPool<NoTls>) -> std::io::Result<()> {
//! let app = Router::new()
//!     .route("/orders", get(orders))
//!     .layer(DbMonitorLayer::new(pool).admin_token("s3cret"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

mod answer;
mod auth;
mod body;
mod budget;
mod cache;
mod caches;
mod dashboard;
mod future;
#[allow(clippy::module_inception)]
mod layer;
mod read;
mod routes;
mod service;
mod source;

pub use crate::funnel::scope::{RepeatedStatement, RequestDbSnapshot, RequestDbStats};
pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use layer::DbMonitorLayer;
pub use read::MAX_LIMIT;
pub use service::DbMonitorService;
