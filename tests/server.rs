//! The server-side view on real PostgreSQL: the lock tree joined to the
//! routes holding the backends, the idle-in-transaction alert, the
//! statements next to the client's means, a poller that fails without
//! harm, and a role that may read only its own backends.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use db_monitor::alerts::AlertType;
use db_monitor::tokio_postgres::NoTls;
use db_monitor::{AlertThresholds, DbMonitorLayer, MonitorConfig, MonitoredPool, ServerView};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use support::http::get_json;
use support::pg::{shared_config, TempPostgres};
use support::{eventually, pool_with, unique};
use tower::{service_fn, Layer, ServiceExt};

/// A configuration with the server view sampling every 100 ms and the
/// alert rules evaluated every 50 ms.
fn config() -> MonitorConfig {
    MonitorConfig::default()
        .server_view(ServerView::default().interval(Duration::from_millis(100)))
        .alerts(alerts())
}

fn alerts() -> AlertThresholds {
    AlertThresholds::default()
        .evaluation_interval(Duration::from_millis(50))
        .clear_after(Duration::from_millis(300))
}

async fn raw_client(config: &db_monitor::tokio_postgres::Config) -> db_monitor::tokio_postgres::Client {
    let (client, connection) = config.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

async fn pid(client: &db_monitor::tokio_postgres::Client) -> i32 {
    client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0)
}

/// An outside session holds a row; a request on `PUT /orders/{id}` waits
/// for it, and a request on `PUT /accounts/{id}` waits behind that one.
/// The tree shows the outside blocker first, then both routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_chain_shows_the_routes_holding_each_backend() {
    let (monitor, _rec) = support::monitor(config());
    let pool = pool_with(&monitor, "server_locks", shared_config(), 4, 0, Duration::from_secs(5)).await;
    let _background = monitor.start(&pool);
    let table = unique("chain");
    let outside = raw_client(&shared_config()).await;
    outside
        .batch_execute(&format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, v int); INSERT INTO {table} VALUES (1, 0)"
        ))
        .await
        .unwrap();
    outside
        .batch_execute(&format!("BEGIN; UPDATE {table} SET v = 1 WHERE id = 1"))
        .await
        .unwrap();
    let outside_pid = pid(&outside).await;

    let inner_pool = pool.clone();
    let update = format!("UPDATE {table} SET v = v + 1 WHERE id = 1");
    let service = DbMonitorLayer::new(pool.clone())
        .route_label(|_, uri| {
            let path = uri.path();
            Some(
                if path.starts_with("/orders/") {
                    "PUT /orders/{id}"
                } else {
                    "PUT /accounts/{id}"
                }
                .to_owned(),
            )
        })
        .layer(service_fn(move |_request: Request<Full<Bytes>>| {
            let pool = inner_pool.clone();
            let update = update.clone();
            async move {
                let conn = pool.get().await.unwrap();
                conn.batch_execute(&format!("BEGIN; {update}; COMMIT")).await.unwrap();
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }
        }));
    let call = |uri: &'static str| {
        let service = service.clone();
        tokio::spawn(async move {
            let request = Request::put(uri).body(Full::new(Bytes::new())).unwrap();
            service.oneshot(request).await.unwrap().status()
        })
    };
    let orders = call("/orders/1");
    // The second request queues behind the first one's lock.
    assert!(
        eventually(Duration::from_secs(5), || pool.monitor().server_locks().waiting == 1).await,
        "{:?}",
        pool.monitor().server_locks()
    );
    let accounts = call("/accounts/1");
    assert!(eventually(Duration::from_secs(5), || pool.monitor().server_locks().waiting == 2).await);

    let locks = get_json(&service, "/health/database/server/locks").await;
    assert_eq!(locks["enabled"], true);
    assert!(locks["sampled_unix_ms"].as_u64().is_some());
    let roots = pool.monitor().server_locks().roots;
    assert_eq!(roots.len(), 1, "{roots:#?}");
    let root = &roots[0];
    assert_eq!(root.pid, outside_pid, "the outside session is the root blocker");
    assert!(!root.ours && root.route.is_none());
    assert!(root.holding.is_some(), "{root:#?}");
    let first = &root.blocking[0];
    assert!(first.ours);
    assert_eq!(first.route.as_deref(), Some("PUT /orders/{id}"));
    assert!(first
        .checkout_site
        .as_deref()
        .is_some_and(|s| s.contains("tests/server.rs")));
    let second = &first.blocking[0];
    assert_eq!(second.route.as_deref(), Some("PUT /accounts/{id}"));
    assert!(second.waiting_for.is_some());
    assert_eq!(
        locks["roots"][0]["blocking"][0]["blocking"][0]["route"], "PUT /accounts/{id}",
        "the route answers the same tree"
    );

    // The activity document names the same routes, with no literal.
    let activity = pool.monitor().server_activity();
    let waiting: Vec<_> = activity
        .backends
        .iter()
        .filter(|b| b.wait_event_type.as_deref() == Some("Lock"))
        .collect();
    assert_eq!(waiting.len(), 2, "{activity:#?}");
    assert!(waiting.iter().all(|b| b
        .statement
        .as_deref()
        .is_some_and(|s| s.contains("SET v = v + ? WHERE id = ?"))));

    outside.batch_execute("COMMIT").await.unwrap();
    assert_eq!(orders.await.unwrap(), StatusCode::OK);
    assert_eq!(accounts.await.unwrap(), StatusCode::OK);
    assert!(eventually(Duration::from_secs(5), || pool.monitor().server_locks().waiting == 0).await);
}

/// A checkout left idle in a transaction raises its alert with the call
/// site, and the alert resolves once the connection is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_transaction_fires_its_alert_and_resolves_when_released() {
    let config = config().alerts(alerts().idle_in_transaction(Duration::from_millis(300)));
    let (monitor, rec) = support::monitor(config);
    let pool = pool_with(&monitor, "server_idle", shared_config(), 2, 0, Duration::from_secs(5)).await;
    let _background = monitor.start(&pool);
    let conn = pool.get().await.unwrap();
    conn.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let alert = |pool: &MonitoredPool<NoTls>| {
        pool.monitor()
            .alerts()
            .active
            .into_iter()
            .find(|a| a.alert_type == AlertType::IdleInTransaction)
    };
    assert!(eventually(Duration::from_secs(5), || alert(&pool).is_some()).await);
    let fired = alert(&pool).unwrap();
    assert_eq!(fired.key, format!("connection {}", conn.connection_id()));
    assert!(fired.message.contains("idle in transaction") && fired.message.contains("tests/server.rs"));
    assert_eq!(
        rec.gauge(
            db_monitor::names::SERVER_IDLE_IN_TRANSACTION,
            &[("db_client_connection_pool_name", "server_idle")]
        ),
        Some(1.0)
    );
    conn.batch_execute("ROLLBACK").await.unwrap();
    drop(conn);
    assert!(
        eventually(Duration::from_secs(5), || alert(&pool).is_none()).await,
        "resolved once released"
    );
}

/// With `pg_stat_statements` loaded, a statement slowed on the server shows
/// server time close to client time; without it, the document says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_put_server_time_next_to_client_time() {
    let server = TempPostgres::start(&["-c", "shared_preload_libraries=pg_stat_statements"]);
    let setup = raw_client(&server.config()).await;
    setup
        .batch_execute(
            "CREATE EXTENSION pg_stat_statements;
             CREATE FUNCTION slow_lookup(n int) RETURNS int LANGUAGE sql AS $$ SELECT n FROM pg_sleep(0.03) $$",
        )
        .await
        .unwrap();
    let (monitor, _rec) = support::monitor(config());
    let pool = pool_with(
        &monitor,
        "server_statements",
        server.config(),
        2,
        0,
        Duration::from_secs(5),
    )
    .await;
    let _background = monitor.start(&pool);
    let conn = pool.get().await.unwrap();
    for i in 0..5 {
        conn.query_one("SELECT slow_lookup($1)", &[&i]).await.unwrap();
    }
    drop(conn);
    let find = |pool: &MonitoredPool<NoTls>| {
        pool.monitor()
            .server_statements(50)
            .statements
            .into_iter()
            .find(|s| s.statement.contains("slow_lookup") && s.client_calls.is_some())
    };
    assert!(
        eventually(Duration::from_secs(5), || find(&pool).is_some_and(|s| s.calls == 5)).await,
        "{:#?}",
        pool.monitor().server_statements(50)
    );
    let s = find(&pool).unwrap();
    assert_eq!(s.client_calls, Some(5));
    let (server_ms, client_ms) = (s.server_mean_ms, s.client_mean_ms.unwrap());
    assert!(server_ms >= 30.0, "{s:#?}");
    assert!(
        client_ms >= server_ms && client_ms < server_ms * 1.5 + 5.0,
        "server {server_ms:.1} ms, client {client_ms:.1} ms"
    );
    let all = pool.monitor().server_statements(50).statements;
    assert!(
        !all.iter().any(|s| s.statement.contains("pg_stat_activity")),
        "the monitor's own queries are left out: {all:#?}"
    );

    // The shared server has no pg_stat_statements.
    let (monitor, _rec) = support::monitor(config());
    let plain = pool_with(&monitor, "server_plain", shared_config(), 1, 0, Duration::from_secs(5)).await;
    let _background = monitor.start(&plain);
    assert!(
        eventually(Duration::from_secs(5), || plain
            .monitor()
            .server_statements(10)
            .sampled
            .sampled_unix_ms
            .is_some())
        .await
    );
    let document = plain.monitor().server_statements(10);
    assert!(!document.available);
    assert!(
        document.missing.as_deref().is_some_and(|m| m.contains("not installed")),
        "{document:#?}"
    );
}

/// A poller whose query waits on a lock past its `lock_timeout` reports the
/// failure; the application's statements go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poller_that_times_out_reports_it_and_harms_nothing() {
    let server = TempPostgres::start(&[]);
    let (monitor, _rec) = support::monitor(config());
    let pool = pool_with(
        &monitor,
        "server_timeout",
        server.config(),
        2,
        0,
        Duration::from_secs(5),
    )
    .await;
    let _background = monitor.start(&pool);
    assert!(
        eventually(Duration::from_secs(5), || pool
            .monitor()
            .server_activity()
            .sampled
            .sampled_unix_ms
            .is_some())
        .await
    );
    // A catalog the poller reads, locked by another session.
    let locker = raw_client(&server.config()).await;
    locker
        .batch_execute("BEGIN; LOCK TABLE pg_catalog.pg_extension IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || pool
            .monitor()
            .server_activity()
            .sampled
            .last_failure
            .is_some())
        .await,
        "the failure is reported"
    );
    let failure = pool.monitor().server_activity().sampled.last_failure.unwrap();
    assert!(failure.message.contains("55P03"), "{failure:?}");
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.query_one_scalar::<i32, _>("SELECT 41 + 1", &[]).await.unwrap(), 42);
    drop(conn);
    locker.batch_execute("ROLLBACK").await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || pool
            .monitor()
            .server_activity()
            .sampled
            .last_failure
            .is_none())
        .await,
        "sampling again"
    );
}

/// A role without `pg_read_all_stats` sees its own backends whole, counts
/// the others it may not read as `unknown`, and says what it could not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_privileges_still_sees_its_own_backends() {
    let server = TempPostgres::start(&[]);
    let admin = raw_client(&server.config()).await;
    admin
        .batch_execute("CREATE ROLE app_viewer LOGIN; GRANT CREATE ON SCHEMA public TO app_viewer")
        .await
        .unwrap();
    // The superuser's own session, which the role may not read.
    admin.batch_execute("SELECT 1").await.unwrap();
    let mut as_app = server.config();
    as_app.user("app_viewer");
    let (monitor, _rec) = support::monitor(config());
    let pool = pool_with(&monitor, "server_role", as_app, 2, 0, Duration::from_secs(5)).await;
    let _background = monitor.start(&pool);
    let conn = pool.get().await.unwrap();
    conn.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let id = conn.connection_id();
    let seen = |pool: &MonitoredPool<NoTls>| {
        let a = pool.monitor().server_activity();
        a.backends
            .iter()
            .any(|b| b.connection == id && b.state.as_deref() == Some("idle in transaction"))
    };
    assert!(
        eventually(Duration::from_secs(5), || seen(&pool)).await,
        "{:#?}",
        pool.monitor().server_activity()
    );
    let activity = pool.monitor().server_activity();
    assert!(
        activity
            .sampled
            .unreadable
            .iter()
            .any(|u| u.contains("pg_read_all_stats")),
        "{activity:#?}"
    );
    assert!(activity.other_backends.iter().any(|o| o.state == "unknown"));
    conn.batch_execute("ROLLBACK").await.unwrap();
}
