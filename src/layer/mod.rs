//! The tower layer: `.layer(DbMonitorLayer::new(pool))`.
//!
//! [`DbMonitorLayer`] wraps any `tower::Service<http::Request<B>>`: axum's
//! `Router::layer`, hyper 1 through hyper-util's `TowerToHyperService`,
//! tonic's `Server::builder().layer` (with `accept_http1(true)` if the JSON
//! routes should answer curl). For each request:
//!
//! - **under the prefix** (`/health/database` by default) the layer answers
//!   itself, in JSON (`application/json`), without calling the inner service;
//! - **every other request** goes to the inner service untouched, its body
//!   streamed both ways, and gets:
//!   - a [`RequestDbStats`]: statements, database time, errors, slow ones,
//!     statements run more than once; current in a task-local scope while its
//!     future runs ([`RequestDbStats::current`]; in axum, take
//!     `RequestDbStats` as an extractor), and in its extensions when
//!     [`request_extension(true)`](DbMonitorLayer::request_extension) asks
//!     for it. Statements on tasks the handler spawns are not in it: a
//!     task-local scope does not follow `tokio::spawn`;
//!   - with [`server_timing(true)`](DbMonitorLayer::server_timing),
//!     `Server-Timing: db;dur=4.378;desc="13 queries"` on its response;
//!   - N+1 detection: a statement run more than `n_plus_one_threshold` (10)
//!     times in one request is counted (`db_monitor_n_plus_one_total`), logged
//!     once per route and statement, and listed in the comprehensive report;
//!   - with [`redundant_statements(true)`](DbMonitorLayer::redundant_statements),
//!     statements sent twice or more with the same parameters (compared by
//!     a hash of their parameters, never kept), counted by route
//!     ([`PoolMonitor::redundant_statements`](crate::PoolMonitor::redundant_statements));
//!   - serial reads: reads that ran one after another where running them
//!     together would have saved time (each over 30 ms, saving 50 ms;
//!     [`serial_reads`](DbMonitorLayer::serial_reads)), counted by route
//!     and statements ([`PoolMonitor::serial_reads`](crate::PoolMonitor::serial_reads))
//!     and logged once per pattern;
//!   - its route: the method and axum's `MatchedPath` (`GET /customers/{id}`,
//!     never `/customers/3`), a gRPC request's path, or what
//!     [`route_label`](DbMonitorLayer::route_label) returns (cut at 256
//!     bytes). It labels the recent statements the request ran and the errors
//!     it met, and fills the route table
//!     ([`PoolMonitor::route_report`](crate::PoolMonitor::route_report)).
//!     Requests that run statements with no route (axum 0.7, another
//!     framework) are told of once in the log, with the recipe.
//!
//! The service's error type is the inner service's: monitoring never changes
//! an outcome. Its response future is a named, pin-projected type; only the
//! layer's own routes box theirs.
//!
//! # Routes
//!
//! Relative to the prefix. Every field of every answer is documented on its
//! type.
//!
//! | method and path | answers |
//! |---|---|
//! | `GET /` | the health check (liveness): a checkout and `SELECT 1` under `health_timeout` (800 ms; not counted as the application's; on a pool with no connection idle at its maximum, a connection of the check's own), the pool's state and the active alerts; 200 `healthy`, 503 `unhealthy` |
//! | `GET /ready` | [`ReadinessReport`](crate::report::ReadinessReport): whether this instance can serve database work in time, from the pool's live load (no query); 200 `ready`, 503 `not_ready` with `Retry-After` (see [readiness](#liveness-and-readiness)) |
//! | `GET /metrics/comprehensive?minutes=60&limit=20` | [`ComprehensiveReport`](crate::report::ComprehensiveReport): everything below in one document, with N+1 patterns, routes and recent statements |
//! | `GET /metrics/query-performance?minutes=60&limit=20` | [`QueryPerformanceReport`](crate::stats::QueryPerformanceReport): per statement, operation and table, with degradation and anomalies |
//! | `GET /metrics/pool-trends?minutes=N` | [`PoolTrendReport`](crate::stats::PoolTrendReport) (every sample kept without `minutes`) |
//! | `GET /metrics/slow-queries?minutes=N&limit=20` | [`SlowQueryReport`](crate::stats::SlowQueryReport) |
//! | `GET /metrics/series?minutes=60` | [`StatementSeries`](crate::stats::StatementSeries): minute by minute (1 to 60), statements, failures, percentiles, failures by kind |
//! | `GET /errors?minutes=N&limit=100` | [`ErrorReport`](crate::stats::ErrorReport): counts by kind and SQLSTATE, 5 min / 15 min / 1 h rates, patterns, the latest errors |
//! | `GET /alerts` | [`AlertReport`](crate::alerts::AlertReport): active alerts, most severe first |
//! | `GET /alerts/history?limit=50` | [`AlertHistory`](crate::alerts::AlertHistory): resolved alerts, newest first |
//! | `POST /alerts/{id}/resolve` | the resolved [`Alert`](crate::alerts::Alert); 404 for an unknown or resolved id |
//! | `GET /performance?minutes=60` | [`PerformanceScore`](crate::report::PerformanceScore): the score, its parts, the forecast, recommendations |
//! | `GET /objectives` | [`ObjectiveStatus`](crate::stats::ObjectiveStatus) for each route [objective](crate::Objective): compliance and the error budget left over 24 h, burn rates over 5 min, 30 min, 1 h, 6 h |
//! | `GET /replicas` | [`ReplicaReport`](crate::ReplicaReport) of the [replica set](crate::ReplicaSet) given to [`replicas`](DbMonitorLayer::replicas): each replica's health, load and reads; `null` without one |
//! | `GET /server/activity` | [`ServerActivity`](crate::report::ServerActivity) (the [server view](crate::guide::server_view)) |
//! | `GET /server/locks` | [`ServerLocks`](crate::report::ServerLocks) (server view) |
//! | `GET /server/statements?limit=20` | [`ServerStatements`](crate::report::ServerStatements) (server view) |
//! | `GET /server/load?minutes=15` | [`ServerLoad`](crate::report::ServerLoad) (server view): the pool's database load per minute (1 to 60) as average active sessions by route and wait event |
//! | `GET /server/connections` | [`ServerConnections`](crate::report::ServerConnections) (server view): the connection budget, and which poller of the fleet reads the server |
//! | `GET /metrics/holders?limit=20` | [`HoldReport`](crate::stats::HoldReport): checkouts by route and `get()` call site, each hold split into time in statements and time held idle, the most idle first |
//! | `GET /metrics/running` | [`RunningStatements`](crate::report::RunningStatements): statements running now past their slow threshold, with route and call site |
//! | `POST /metrics/comprehensive/reset` | empties every store of the pool (never the metrics recorder) |
//! | `POST /errors/reset` | empties the error store |
//! | `GET /dashboard` | the [dashboard](#the-dashboard) page |
//! | `GET /dashboard/app.css`, `GET /dashboard/app.js`, `GET /dashboard/favicon.svg` | its files |
//!
//! With [`prometheus(handle)`](DbMonitorLayer::prometheus) (feature
//! `prometheus`), `GET /metrics` on the application's port (not under the
//! prefix; [`prometheus_at`](DbMonitorLayer::prometheus_at) for another path)
//! serves the exposition, in Prometheus's protobuf format when the scrape
//! asks for it and the feature `native-histograms` is on.
//!
//! `minutes` is 1 to 1440 and `limit` 1 to 1000 ([`MAX_LIMIT`]). Errors are
//! JSON too: `{"status": 400, "error": "invalid_parameter", "message":
//! "minutes must be a whole number from 1 to 1440", "parameter": "minutes"}`
//! for a bad parameter (`abc`, `-5`, `0`, `1441`, a number too big for 64
//! bits, the parameter given twice); 404 for an unknown path or alert; 405
//! with `Allow` for a wrong method; 401 for a missing or wrong admin token;
//! 403 for a mutating route when no token is set, or a reading route the read
//! guard refuses. No answer holds a statement's parameters or literals (see
//! [what text leaves the process](crate::guide::privacy)).
//!
//! # Liveness and readiness
//!
//! The two checks answer different questions, for different callers:
//!
//! | check | asks | fails when | a failure should |
//! |---|---|---|---|
//! | liveness, `GET {prefix}` | can this process reach its database at all? | the health check's checkout or `SELECT 1` fails or takes over 800 ms | alert a human; restarting the process rarely helps a database outage, so do not wire it to a liveness probe that restarts |
//! | readiness, `GET {prefix}/ready` | can this instance serve database work *in time*, now? | every connection is checked out and checkouts have been pending without a pause for 10 s (the pool saturated); the last 10 s of checkout waits have a p95 over 1 s; or the pool's exhaustion is forecast within 60 s | take traffic away from this instance (a Kubernetes `readinessProbe`, a load balancer's health check) until it answers 200 again |
//!
//! Readiness counts what is this instance's own. The database out of reach
//! is every instance's at once: if it made each unready, a load balancer
//! would take them all out together and an outage of the database (or of
//! one network path) would become a total outage of the service, refused
//! at the balancer before the application could answer with its own error
//! or fallback (the "deep health check" failure). So it is listed among the
//! report's `shared_reasons` and does not count, unless
//! [`Readiness::out_of_reach_unready`](crate::Readiness::out_of_reach_unready)
//! says it should (where another set of instances, on another database,
//! can take the traffic).
//!
//! Readiness runs no query: it reads the pool's live load (checkouts
//! waiting and the last ten seconds of checkouts, kept with atomics by
//! every checkout), so a probe every second costs the database nothing and
//! answers even when the pool is full. Its document says why it is
//! unready, with the figures; its `Retry-After` (5 s) says when to ask
//! again. Each bound is a setting ([`Readiness`](crate::Readiness),
//! `ASYNC_DB_READY_*`). Both checks stay open under
//! [`reads_need_token`](DbMonitorLayer::reads_need_token): probes carry no
//! token.
//!
//! ```yaml
//! readinessProbe:
//!   httpGet: { path: /health/database/ready, port: 8080 }
//!   periodSeconds: 2
//!   failureThreshold: 1
//! ```
//!
//! # Who may read and change
//!
//! The reading routes are open by default, like a Prometheus exposition: the
//! layer is mounted on services whose internal scrapers, load balancers and
//! on-call engineers read it without credentials, and what it answers holds
//! no value from the application. It does show the schema (table and column
//! names in normalized statements) and the route names, so on a port the
//! public reaches:
//!
//! - [`reads_need_token(true)`](DbMonitorLayer::reads_need_token) puts them
//!   behind the admin token (the health check on the prefix itself and
//!   `…/ready` stay open for load balancers and probes; the dashboard's page and files, which hold no data,
//!   load without it and the page asks for the token);
//! - or a [`read_guard`](DbMonitorLayer::read_guard) of your own refuses them
//!   (403; the dashboard's files too).
//!
//! `POST` routes need `Authorization: Bearer <token>` when
//! [`admin_token`](DbMonitorLayer::admin_token) is set and are refused (403)
//! when it is not. The token is compared in a time that tells neither its
//! bytes nor its length, and after ten wrong tokens in a second every token
//! check answers 429 for a second.
//!
//! # The routes cannot starve the application
//!
//! Each document (a route with its parameters), the exposition and the health
//! verdict is computed once at a time and shared by the requests that wait
//! for it, then reused for [`cache_for`](DbMonitorLayer::cache_for) (1 s).
//! Reports and the exposition are computed on Tokio's blocking pool, one at a
//! time across all of them, never on the async workers; a mutating route
//! forgets every answer. Documents and the exposition together send at most
//! [`max_bytes_per_second`](DbMonitorLayer::max_bytes_per_second) (4 MiB/s)
//! on average; past it they answer 429 with `Retry-After` (the health check
//! is not counted). So a flood of health requests holds at most one pool
//! connection (one `SELECT 1` a second), and a flood of the comprehensive
//! report costs the application what a flood of 404s costs (`benches/flood.rs`;
//! figures in the repository's benches/README.md).
//!
//! # The dashboard
//!
//! `GET {prefix}/dashboard` is one page that reads the JSON routes above from
//! the browser and draws them: status cards (health with the ping, the score
//! with its four parts, active alerts by severity, the pool in use / max with
//! waiters), four charts of the last hour (p50/p95/p99 per minute, statements
//! and failures per minute, failures by kind, pool utilization and its peak)
//! with a value under the pointer, the forecast and the anomalous statements,
//! the slowest statements, the statements running past their threshold,
//! the active alerts with a resolve button, recent errors, N+1 patterns by
//! route, and the server view when it is on (who polls for the fleet, the
//! database load by wait type with a route picker and the heaviest routes,
//! the connection budget, the slow statements' plans, the backends and the
//! lock tree).
//!
//! - **Refresh**: every 10 s by default (5, 30, 60 s or paused, in the page);
//!   paused while the tab is hidden; never two fetches at once; a banner says
//!   when the server stopped answering (the last data stays, dimmed). Cards
//!   and charts keep their size, so nothing moves on a refresh.
//! - **Look**: light or dark by `prefers-color-scheme`; one screen at 1280
//!   px, one column at phone width; every number with its unit.
//! - **Weight and safety**: the page, its stylesheet, script and icon are
//!   compiled into the crate and weigh about 29 KB together (the tests hold
//!   them under 100 KB). No chart library, no CDN, no font, no inline script
//!   or style: every file is served with `Content-Security-Policy:
//!   default-src 'none'; script-src 'self'; style-src 'self'; connect-src
//!   'self'; img-src 'self'; base-uri 'none'; form-action 'none';
//!   frame-ancestors 'none'`, `X-Content-Type-Options: nosniff` and
//!   `Referrer-Policy: no-referrer`. Text from the server is set as text,
//!   never as markup. The resolve button asks for the admin token in a
//!   dialog, keeps it in the tab's memory and sends it only in the
//!   `Authorization` header.
//! - **Who may see it**: exactly who may read the JSON routes, since it shows
//!   nothing they do not. [`dashboard(false)`](DbMonitorLayer::dashboard)
//!   removes it (404) and leaves the JSON routes as they are.
//!
//! # Example
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use db_monitor::{DbMonitorLayer, MonitoredPool, RequestDbStats};
//! use db_monitor::tokio_postgres::NoTls;
//!
//! async fn orders(db: RequestDbStats) -> String {
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
mod labels;
#[allow(clippy::module_inception)]
mod layer;
mod read;
mod routes;
mod service;
mod shed;
mod source;

pub use crate::funnel::scope::{RepeatedStatement, RequestDbSnapshot, RequestDbStats};
pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use layer::DbMonitorLayer;
pub(crate) use layer::Deferred;
pub use read::MAX_LIMIT;
pub use service::DbMonitorService;
pub use shed::{ShedFuture, ShedLayer, ShedService};
