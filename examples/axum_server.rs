//! An axum service with `DbMonitorLayer`: a few real endpoints on a real
//! PostgreSQL, the database health routes, and Prometheus metrics.
//!
//! ```text
//! cargo run --example axum_server
//! ```
//!
//! It logs to the terminal (`RUST_LOG`, `info` by default): the monitor's
//! alerts as they fire and resolve, and statements running past their
//! threshold. Built with `--features otlp` and run with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set (an OpenTelemetry collector's
//! OTLP/HTTP address, e.g. `http://127.0.0.1:4318`), it also exports
//! traces: tower-http's `TraceLayer` opens a span per request, and each
//! statement's span (and each transaction's) is its child; the trace id
//! reaches PostgreSQL in `application_name`.
//!
//! With `DATABASE_URL` unset it starts a throwaway PostgreSQL from the
//! server binaries on `PATH` (as the tests do) and removes it on exit
//! (Ctrl-C). It listens on `BIND` (default `127.0.0.1:3000`, or a free
//! port when that one is taken) and prints the routes to try.

#[cfg(feature = "otlp")]
#[path = "otlp_traces.rs"]
pub(crate) mod otlp_traces;
#[path = "../tests/support/pg.rs"]
mod pg;

use std::future::Future;
use std::ops::DerefMut;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use db_monitor::prometheus::{PrometheusHandle, PrometheusSetup};
use db_monitor::tokio_postgres::{Config, NoTls};
use db_monitor::{
    DbError, DbMonitor, DbMonitorLayer, GetError, MonitorConfig, MonitorHandle, MonitoredClient, MonitoredConnection,
    MonitoredPool, Objective, PoolMonitor, RequestDbStats, ServerView,
};
use serde::Deserialize;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What the demo needs of a pool: to open it, check a connection out, and
/// the monitor's handle on it. Both monitored pools have these, so the
/// same application serves on bb8 (this example) and on deadpool
/// (`examples/deadpool_server.rs`).
pub(crate) trait DemoPool: Clone + Send + Sync + 'static {
    /// The checkout guard.
    type Conn: DerefMut<Target = MonitoredClient> + Send;
    /// The pool named `primary` on the server at `pg`, sized by the
    /// monitor's configuration.
    fn open(monitor: &DbMonitor, pg: Config) -> impl Future<Output = Result<Self, Error>> + Send;
    /// A connection (its checkout site is the caller's).
    #[track_caller]
    fn checkout(&self) -> impl Future<Output = Result<Self::Conn, GetError>> + Send;
    /// The monitor's handle on the pool.
    fn monitor(&self) -> &PoolMonitor;
}

impl DemoPool for MonitoredPool<NoTls> {
    type Conn = MonitoredConnection<'static, NoTls>;

    async fn open(monitor: &DbMonitor, pg: Config) -> Result<Self, Error> {
        let manager = monitor.manager("primary", pg, NoTls).setup(APPLICATION_NAME);
        Ok(monitor.pool(manager, monitor.config().pool_builder()).await?)
    }

    #[track_caller]
    fn checkout(&self) -> impl Future<Output = Result<Self::Conn, GetError>> + Send {
        self.get_owned()
    }

    fn monitor(&self) -> &PoolMonitor {
        MonitoredPool::monitor(self)
    }
}

/// Each connection's setup statement.
pub(crate) const APPLICATION_NAME: &str = "SET application_name = 'db-monitor-axum'";

/// The running demo application: its router, its pool and the pool's
/// background task.
pub(crate) struct Demo<P> {
    pub(crate) router: Router,
    pub(crate) pool: P,
    pub(crate) background: MonitorHandle,
}

#[derive(Clone)]
struct App<P> {
    pool: P,
}

/// Builds the demo on the server at `pg`: creates its schema and data,
/// starts the monitor's background task, and mounts `DbMonitorLayer`.
/// `metrics` is served at `/metrics` when given.
#[allow(dead_code)] // the deadpool example holds this file too
pub(crate) async fn demo(
    monitor: &DbMonitor,
    pg: Config,
    metrics: Option<PrometheusHandle>,
) -> Result<Demo<MonitoredPool<NoTls>>, Error> {
    demo_on(monitor, pg, metrics).await
}

/// [`demo`] on a pool of kind `P`.
pub(crate) async fn demo_on<P: DemoPool>(
    monitor: &DbMonitor,
    pg: Config,
    metrics: Option<PrometheusHandle>,
) -> Result<Demo<P>, Error> {
    let pool = P::open(monitor, pg).await?;
    let conn = pool.checkout().await?;
    // Idempotent, so that several instances can share one database, and
    // under an advisory lock, since `CREATE TABLE IF NOT EXISTS` is not safe
    // against another instance starting at the same moment.
    conn.batch_execute(
        "BEGIN;
         SELECT pg_advisory_xact_lock(7243);
         CREATE TABLE IF NOT EXISTS demo_customers (id int PRIMARY KEY, name text NOT NULL);
         CREATE TABLE IF NOT EXISTS demo_orders (id serial PRIMARY KEY, customer int REFERENCES demo_customers, total int);
         CREATE TABLE IF NOT EXISTS demo_accounts (id int PRIMARY KEY, balance int NOT NULL);
         INSERT INTO demo_customers SELECT g, 'customer ' || g FROM generate_series(1, 12) g ON CONFLICT DO NOTHING;
         INSERT INTO demo_orders (customer, total) SELECT 1 + g % 12, g FROM generate_series(1, 120) g
           WHERE NOT EXISTS (SELECT 1 FROM demo_orders);
         INSERT INTO demo_accounts VALUES (1, 1000), (2, 1000) ON CONFLICT DO NOTHING;
         COMMIT",
    )
    .await?;
    drop(conn);

    let background = monitor.start(pool.monitor().clone());
    let router = Router::new()
        .route("/customers/{id}", get(customer::<P>))
        .route("/orders", get(orders_n_plus_one::<P>))
        .route("/report", get(slow_report::<P>))
        .route("/transfer", post(transfer::<P>))
        .route("/hold", post(hold::<P>))
        .with_state(App { pool: pool.clone() });
    let admin_token = std::env::var("DB_MONITOR_ADMIN_TOKEN").unwrap_or_else(|_| "demo-token".to_owned());
    // `Server-Timing` (off by default): the demo's clients are its operators.
    let mut layer = DbMonitorLayer::new(pool.monitor().clone())
        .admin_token(admin_token)
        .server_timing(true);
    if let Some(metrics) = metrics {
        // GET /metrics: the Prometheus exposition, on the application's port.
        layer = layer.prometheus(metrics);
    }
    // The request's span (tower-http), outermost: the statements' spans
    // are its children.
    let router = router.layer(layer).layer(tower_http::trace::TraceLayer::new_for_http());
    Ok(Demo {
        router,
        pool,
        background,
    })
}

/// The terminal's log: `RUST_LOG`'s filter, `info` when it is unset.
fn terminal_log() -> impl tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync {
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt::layer().with_filter(filter)
}

/// One statement. A failure answers as the crate's `DbError` does: its
/// class as JSON, a deadlock a 409 to retry, a pool out of connections a
/// 503.
async fn customer<P: DemoPool>(State(app): State<App<P>>, Path(id): Path<i32>) -> Response {
    let result = async {
        let conn = app.pool.checkout().await?;
        let row = conn
            .query_opt("SELECT name FROM demo_customers WHERE id = $1", &[&id])
            .await?;
        Ok::<_, DbError>(row.map(|r| r.get::<_, String>(0)))
    };
    match result.await {
        Ok(Some(name)) => Json(serde_json::json!({ "id": id, "name": name })).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => e.into_response(),
    }
}

/// The classic N+1: the customers, then one query per customer for its
/// orders (12 runs of the same statement in one request).
async fn orders_n_plus_one<P: DemoPool>(State(app): State<App<P>>, db: RequestDbStats) -> Response {
    let result = async {
        let conn = app.pool.checkout().await?;
        let customers = conn.query("SELECT id FROM demo_customers ORDER BY id", &[]).await?;
        let mut totals = Vec::new();
        for c in customers {
            let id: i32 = c.get(0);
            let row = conn
                .query_one(
                    "SELECT count(*), coalesce(sum(total), 0) FROM demo_orders WHERE customer = $1",
                    &[&id],
                )
                .await?;
            totals.push(serde_json::json!({ "customer": id, "orders": row.get::<_, i64>(0) }));
        }
        Ok::<_, DbError>(totals)
    };
    match result.await {
        Ok(totals) => Json(serde_json::json!({
            "totals": totals,
            "statements_in_this_request": db.snapshot().statements,
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct SlowParams {
    seconds: Option<f64>,
}

/// A slow statement (`pg_sleep`), 0.3 s unless `?seconds=` says otherwise
/// (at most 5).
async fn slow_report<P: DemoPool>(State(app): State<App<P>>, Query(params): Query<SlowParams>) -> Response {
    let seconds = params.seconds.unwrap_or(0.3).clamp(0.0, 5.0);
    let result = async {
        let conn = app.pool.checkout().await?;
        conn.query_one("SELECT pg_sleep($1), count(*) FROM demo_orders", &[&seconds])
            .await?;
        Ok::<_, DbError>(())
    };
    match result.await {
        Ok(()) => Json(serde_json::json!({ "slept": seconds })).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct Transfer {
    from: i32,
    to: i32,
}

/// Moves 1 from one account to another, locking the rows in the order
/// given: two opposite transfers at once can deadlock (409).
async fn transfer<P: DemoPool>(State(app): State<App<P>>, Query(t): Query<Transfer>) -> Response {
    let result = async {
        let mut conn = app.pool.checkout().await?;
        conn.batch_execute("SET deadlock_timeout = '50ms'").await?;
        let tx = conn.transaction().await?;
        tx.execute(
            "UPDATE demo_accounts SET balance = balance - 1 WHERE id = $1",
            &[&t.from],
        )
        .await?;
        tx.execute("SELECT pg_sleep(0.1)", &[]).await?;
        tx.execute("UPDATE demo_accounts SET balance = balance + 1 WHERE id = $1", &[&t.to])
            .await?;
        tx.commit().await?;
        Ok::<_, DbError>(())
    };
    match result.await {
        Ok(()) => Json(serde_json::json!({ "moved": 1 })).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct HoldParams {
    seconds: Option<f64>,
}

/// Holds account 1's row in a transaction for `?seconds=` (5 by default, at
/// most 30): a transfer meanwhile waits on it, which the server view's lock
/// tree shows with both routes.
async fn hold<P: DemoPool>(State(app): State<App<P>>, Query(params): Query<HoldParams>) -> Response {
    let seconds = params.seconds.unwrap_or(5.0).clamp(0.0, 30.0);
    let result = async {
        let mut conn = app.pool.checkout().await?;
        let tx = conn.transaction().await?;
        tx.execute("SELECT 1 FROM demo_accounts WHERE id = 1 FOR UPDATE", &[])
            .await?;
        tx.execute("SELECT pg_sleep($1)", &[&seconds]).await?;
        tx.commit().await?;
        Ok::<_, DbError>(())
    };
    match result.await {
        Ok(()) => Json(serde_json::json!({ "held": seconds })).into_response(),
        Err(e) => e.into_response(),
    }
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Error> {
    run::<MonitoredPool<NoTls>>("axum-example").await
}

/// The example's `main`, on a pool of kind `P`; `service` names it in the
/// metrics unless `SERVICE` does.
#[allow(dead_code)]
pub(crate) async fn run<P: DemoPool>(service: &str) -> Result<(), Error> {
    // The application, not the library, installs the recorder: with
    // buckets for the monitor's histograms, a `service` label on every
    // series, and its upkeep. (Prometheus adds `instance` when it scrapes.)
    let service = std::env::var("SERVICE").unwrap_or_else(|_| service.to_owned());
    let prometheus = PrometheusSetup::new().global_label("service", service).install()?;

    // The pool's size from ASYNC_DB_MAX_SIZE (10 by default); each hold
    // split by route and call site (the dashboard's "who holds the
    // connections"; off by default for its cost).
    let config = MonitorConfig::from_env()?
        .slow_query_threshold(Duration::from_millis(250))
        .hold_times(true);
    // An objective for the customer route, unless ASYNC_DB_OBJECTIVES
    // declares others: 99 % of its requests under 50 ms of database time,
    // 99.9 % without a failed statement.
    let config = if std::env::var_os("ASYNC_DB_OBJECTIVES").is_none() {
        config.objective(
            Objective::route("GET /customers/{id}")
                .latency(Duration::from_millis(50), 0.99)
                .success(0.999),
        )
    } else {
        config
    };
    // The server view, unless ASYNC_DB_SERVER_VIEW says otherwise.
    let config = if std::env::var_os("ASYNC_DB_SERVER_VIEW").is_none() {
        config.server_view(ServerView::default().interval(Duration::from_secs(2)))
    } else {
        config
    };
    // Logs to the terminal (RUST_LOG, `info` by default: the monitor's
    // alerts and the statements running past their threshold), and traces
    // when there is a collector to send them to.
    let terminal = terminal_log();
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .map(|e| format!("{}/v1/traces", e.trim_end_matches('/')));
    #[cfg(feature = "otlp")]
    let (tracing, config) = match endpoint {
        Some(endpoint) => (
            Some(otlp_traces::trace_to_otlp_beside(&endpoint, terminal)?),
            config.trace_context(otlp_traces::current_trace),
        ),
        None => {
            tracing_subscriber::util::SubscriberInitExt::try_init(tracing_subscriber::layer::SubscriberExt::with(
                tracing_subscriber::registry(),
                terminal,
            ))?;
            (None, config)
        }
    };
    #[cfg(not(feature = "otlp"))]
    let tracing: Option<()> = {
        if endpoint.is_some() {
            eprintln!("OTEL_EXPORTER_OTLP_ENDPOINT is set, but this build has no exporter: add `--features otlp`");
        }
        tracing_subscriber::util::SubscriberInitExt::try_init(tracing_subscriber::layer::SubscriberExt::with(
            tracing_subscriber::registry(),
            terminal,
        ))?;
        None
    };
    // Kept until the end of main: dropping it stops the throwaway server.
    let (_server, pg) = pg::example_server(config.database_config());
    let monitor = DbMonitor::new(config)?;
    let demo = demo_on::<P>(&monitor, pg, Some(prometheus)).await?;

    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = match tokio::net::TcpListener::bind(&bind).await {
        Ok(listener) => listener,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        Err(e) => return Err(e.into()),
    };
    let base = format!("http://{}", listener.local_addr()?);
    println!("listening on {base} (pool {:?})\n", demo.pool.monitor().name());
    if tracing.is_some() {
        println!("traces: OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (a span per request, its statements below it)\n");
    }
    println!("the dashboard:\n  {base}/health/database/dashboard\n");
    println!("the application:");
    println!("  curl {base}/customers/3                     one statement");
    println!("  curl {base}/orders                          an N+1 pattern (13 statements)");
    println!("  curl '{base}/report?seconds=0.5'            a slow statement");
    println!("  curl -X POST '{base}/transfer?from=1&to=2' & curl -X POST '{base}/transfer?from=2&to=1'");
    println!("                                                   two at once can deadlock");
    println!("  curl -X POST '{base}/hold?seconds=10' & curl -X POST '{base}/transfer?from=1&to=2'");
    println!("                                                   a transfer blocked by another route");
    println!("  curl {base}/metrics                         Prometheus");
    println!("what the monitor saw (DbMonitorLayer):");
    for route in [
        "",
        "/metrics/comprehensive",
        "/metrics/query-performance?minutes=5",
        "/metrics/slow-queries",
        "/metrics/pool-trends",
        "/errors",
        "/alerts",
        "/alerts/history",
        "/performance",
        "/server/activity",
        "/server/locks",
        "/server/statements",
    ] {
        println!("  curl {base}/health/database{route}");
    }
    println!("  curl -X POST -H 'Authorization: Bearer demo-token' {base}/health/database/errors/reset");
    println!("\nCtrl-C stops the server (and the throwaway PostgreSQL).");

    axum::serve(listener, demo.router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    demo.background.shutdown().await;
    #[cfg(feature = "otlp")]
    if let Some(provider) = tracing {
        provider.shutdown()?;
    }
    Ok(())
}
