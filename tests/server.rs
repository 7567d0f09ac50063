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
use support::sources::TestPool;
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

/// An outside session that made `table` (`id`, `v`) with one row and
/// holds that row in an open transaction.
async fn holding_a_row(table: &str) -> db_monitor::tokio_postgres::Client {
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
    outside
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
    let outside = holding_a_row(&table).await;
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
    assert_eq!(s.rows_sharing_fingerprint, 1);
    assert!(s.difference_ms.is_some(), "one server row, one client row: compared");
    // The client's split beside the server's mean: its last row is the
    // client's mean; nothing was pipelined.
    let split = s.client_split.as_ref().expect("the client's split");
    assert!((split.last_row_ms - client_ms).abs() < 1e-6, "{split:?}");
    assert_eq!(split.queued_ms, 0.0, "{split:?}");

    // The same statement with a literal and with a parameter: two rows on
    // the server, one on the client. The client's figures cover both, so
    // no difference is computed against either (it read -2,168 ms when
    // the client's mix was set against one variant).
    let conn = pool.get().await.unwrap();
    for _ in 0..3 {
        conn.execute("SELECT pg_sleep(0.05)", &[]).await.unwrap();
        conn.execute("SELECT pg_sleep($1)", &[&0.001_f64]).await.unwrap();
    }
    drop(conn);
    let variants = |pool: &MonitoredPool<NoTls>| {
        pool.monitor()
            .server_statements(50)
            .statements
            .into_iter()
            .filter(|s| s.statement.contains("pg_sleep") && !s.statement.contains("slow_lookup"))
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(Duration::from_secs(5), || variants(&pool).len() == 2
            && variants(&pool).iter().all(|s| s.calls == 3 && s.client_calls.is_some()))
        .await,
        "{:#?}",
        variants(&pool)
    );
    for variant in variants(&pool) {
        assert_eq!(variant.rows_sharing_fingerprint, 2, "{variant:#?}");
        assert_eq!(variant.client_calls, Some(6), "{variant:#?}");
        assert_eq!(variant.difference_ms, None, "{variant:#?}");
    }

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

/// The same marker as the privacy suite's: no value of it may leave.
const MARK: &str = "zqxjmark";

/// The load sampler: a request blocked on a row lock counts as its
/// route's `Lock` wait, a CPU-bound statement as its route's `CPU`; the
/// route answers the same, and the gauge by wait type follows.
async fn the_load_shows_each_route_by_wait_event<P: TestPool>() {
    let view = ServerView::default()
        .interval(Duration::from_millis(500))
        .load_interval(Duration::from_millis(100));
    let (monitor, rec) = support::monitor(MonitorConfig::default().server_view(view));
    let name = unique("server_load");
    let pool = P::make(&monitor, &name, shared_config(), 4, Duration::from_secs(10)).await;
    let _background = monitor.start(pool.monitor().clone());
    let table = unique("load");
    let outside = holding_a_row(&table).await;
    let inner_pool = pool.clone();
    let update = format!("UPDATE {table} SET v = v + 1 WHERE id = 1");
    let service = DbMonitorLayer::new(pool.monitor().clone())
        .route_label(|_, uri| {
            Some(
                if uri.path().starts_with("/orders/") {
                    "PUT /orders/{id}"
                } else {
                    "GET /report"
                }
                .to_owned(),
            )
        })
        .layer(service_fn(move |request: Request<Full<Bytes>>| {
            let pool = inner_pool.clone();
            let update = update.clone();
            async move {
                let conn = pool.get().await.unwrap();
                if request.uri().path().starts_with("/orders/") {
                    conn.execute(update.as_str(), &[]).await.unwrap();
                } else {
                    // On CPU until the timeout ends it.
                    conn.batch_execute("SET statement_timeout = '3s'").await.unwrap();
                    let _ = conn
                        .query("SELECT count(*) FROM pg_class a, pg_class b, pg_class c", &[])
                        .await;
                    conn.batch_execute("RESET statement_timeout").await.unwrap();
                }
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }
        }));
    let call = |method: http::Method, uri: &'static str| {
        let service = service.clone();
        tokio::spawn(async move {
            let request = Request::builder()
                .method(method)
                .uri(uri)
                .body(Full::new(Bytes::new()))
                .unwrap();
            service.oneshot(request).await.unwrap().status()
        })
    };
    let orders = call(http::Method::PUT, "/orders/1");
    let report = call(http::Method::GET, "/report");
    let load_of = |route: &str, wait: &str| {
        pool.monitor()
            .server_load(5)
            .total
            .iter()
            .filter(|s| s.route == route && s.wait_event_type == wait)
            .map(|s| s.average_active_sessions)
            .sum::<f64>()
    };
    let seen = eventually(Duration::from_secs(10), || {
        load_of("PUT /orders/{id}", "Lock") > 0.0 && load_of("GET /report", "CPU") > 0.0
    })
    .await;
    assert!(seen, "{:#?}", pool.monitor().server_load(5));
    let lock = pool
        .monitor()
        .server_load(5)
        .total
        .into_iter()
        .find(|s| s.route == "PUT /orders/{id}")
        .unwrap();
    assert_eq!(
        (lock.wait_event_type.as_str(), lock.wait_event.as_str()),
        ("Lock", "transactionid")
    );
    // The sampler keeps a sample, then sets the gauges from it: the store
    // can show a sample a moment before the gauge does (1 run in 5 beside
    // two busy loops read the gauge in that moment).
    let lock_gauge = || {
        rec.gauge(
            db_monitor::names::SERVER_LOAD,
            &[
                ("db_client_connection_pool_name", name.as_str()),
                ("wait_event_type", "Lock"),
            ],
        )
        .is_some_and(|g| g > 0.0)
    };
    assert!(
        eventually(Duration::from_secs(5), lock_gauge).await,
        "the gauge by wait type"
    );
    outside.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(orders.await.unwrap(), StatusCode::OK);
    assert_eq!(report.await.unwrap(), StatusCode::OK);

    let document = get_json(&service, "/health/database/server/load?minutes=5").await;
    assert_eq!(document["enabled"], true);
    let routes: Vec<&str> = document["by_route"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(
        routes.contains(&"PUT /orders/{id}") && routes.contains(&"GET /report"),
        "{document:#}"
    );
    assert!(document["minutes"][0]["samples"].as_u64().unwrap() > 0);
    let (status, _, body) = support::http::call(
        &service,
        http::Method::GET,
        "/health/database/server/load?minutes=61",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(&body));
    outside.batch_execute(&format!("DROP TABLE {table}")).await.unwrap();
}

/// A statement still running past its slow threshold is listed with its
/// route and call site, and logged once, before it ends.
async fn a_statement_running_past_its_threshold_is_listed_and_logged_before_it_ends<P: TestPool>() {
    let logs = support::leaks::captured_logs();
    let (monitor, _rec) = support::monitor(MonitorConfig::default().slow_query_threshold(Duration::from_millis(300)));
    let name = unique("server_running");
    let pool = P::make(&monitor, &name, shared_config(), 2, Duration::from_secs(5)).await;
    let _background = monitor.start(pool.monitor().clone());
    let inner_pool = pool.clone();
    let service = DbMonitorLayer::new(pool.monitor().clone())
        .route_label(|_, _| Some("GET /sleepy".to_owned()))
        .layer(service_fn(move |_request: Request<Full<Bytes>>| {
            let pool = inner_pool.clone();
            async move {
                let conn = pool.get().await.unwrap();
                conn.query("SELECT pg_sleep(3)", &[]).await.unwrap();
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }
        }));
    let request = {
        let service = service.clone();
        tokio::spawn(async move {
            service
                .oneshot(Request::get("/sleepy").body(Full::new(Bytes::new())).unwrap())
                .await
        })
    };
    let listed = eventually(Duration::from_secs(2), || {
        !pool.monitor().running_statements().statements.is_empty()
    })
    .await;
    assert!(listed, "{:#?}", pool.monitor().running_statements());
    let running = &pool.monitor().running_statements().statements[0];
    assert_eq!(running.route.as_deref(), Some("GET /sleepy"));
    assert_eq!(running.statement, "SELECT pg_sleep(?)");
    assert!(running
        .checkout_site
        .as_deref()
        .is_some_and(|s| s.contains("tests/server.rs")));
    assert!(
        running.running_ms >= 300.0 && running.threshold_ms == 300.0,
        "{running:?}"
    );
    let document = get_json(&service, "/health/database/metrics/running").await;
    assert_eq!(document["statements"][0]["route"], "GET /sleepy");
    let logged = |logs: &str| {
        logs.lines()
            .filter(|l| l.contains("statement still running past its slow threshold") && l.contains(name.as_str()))
            .count()
    };
    let in_log = eventually(Duration::from_secs(2), || logged(&logs.lock().unwrap()) == 1).await;
    assert!(in_log, "logged while it runs");
    assert!(!request.is_finished(), "the statement has not ended");
    let line = logs
        .lock()
        .unwrap()
        .lines()
        .find(|l| l.contains("statement still running") && l.contains(name.as_str()))
        .unwrap()
        .to_owned();
    assert!(line.contains("GET /sleepy") && line.contains("pg_sleep(?)"), "{line}");
    assert_eq!(request.await.unwrap().unwrap().status(), StatusCode::OK);
    assert!(pool.monitor().running_statements().statements.is_empty());
    assert_eq!(logged(&logs.lock().unwrap()), 1, "logged once");
}

on_both_pools!(
    the_load_shows_each_route_by_wait_event,
    a_statement_running_past_its_threshold_is_listed_and_logged_before_it_ends,
);

/// Two instances (one pool name) whose maximums exceed a small
/// `max_connections`: one poller is elected, it reads the budget with
/// both instances in it, and the budget alert fires; too few free
/// connections fire it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_alert_fires_when_the_pools_can_open_more_than_the_server_allows() {
    let server = TempPostgres::start(&["-c", "max_connections=12"]);
    let config = MonitorConfig::default()
        .server_view(ServerView::default().interval(Duration::from_millis(100)))
        .alerts(alerts());
    let (first, first_rec) = support::monitor(config.clone());
    let (second, second_rec) = support::monitor(config);
    let a = pool_with(&first, "budget", server.config(), 6, 0, Duration::from_secs(5)).await;
    let b = pool_with(&second, "budget", server.config(), 6, 0, Duration::from_secs(5)).await;
    let _a = first.start(&a);
    let _b = second.start(&b);
    let both = || [&a, &b].map(|p| p.monitor().server_connections());
    let elected = eventually(Duration::from_secs(10), || {
        let [x, y] = both();
        let leaders = [&x, &y]
            .iter()
            .filter(|c| c.budget.as_ref().is_some_and(|b| b.instances.len() == 2))
            .count();
        let followers = [&x, &y]
            .iter()
            .filter(|c| {
                c.sampled
                    .poller
                    .as_ref()
                    .is_some_and(|p| !p.leader && p.leader_pid.is_some())
            })
            .count();
        leaders == 1 && followers == 1
    })
    .await;
    assert!(elected, "{:#?}", both());
    let ((leader, leader_rec), (follower, follower_rec)) = if a.monitor().server_connections().budget.is_some() {
        ((&a, &first_rec), (&b, &second_rec))
    } else {
        ((&b, &second_rec), (&a, &first_rec))
    };
    let budget = leader.monitor().server_connections().budget.unwrap();
    assert_eq!(
        (budget.max_connections, budget.available, budget.committed),
        (12, 12 - budget.reserved, 14)
    );
    assert!(budget.instances.iter().all(|i| i.pool_max == 6));
    assert_eq!(budget.instances.iter().filter(|i| i.this_instance).count(), 1);
    // The gauges: the leader's figures; the follower's NaN (compared as
    // false by the Prometheus rule), never zeros that read as a full server.
    let gauge = |rec: &support::Recorded, state: &str| {
        rec.gauge(
            "db_monitor_server_connections",
            &[("db_client_connection_pool_name", "budget"), ("state", state)],
        )
    };
    assert_eq!(gauge(leader_rec, "committed"), Some(14.0));
    for state in ["available", "used", "committed"] {
        let value = gauge(follower_rec, state);
        assert!(value.is_some_and(f64::is_nan), "the follower's {state}: {value:?}");
    }
    let leader_pid = leader.monitor().server_connections().sampled.poller.unwrap().pid;
    let seen_by_follower = follower.monitor().server_connections().sampled.poller.unwrap();
    assert_eq!(seen_by_follower.leader_pid, leader_pid);
    // The leader's name as the budget shows it: its configured name is
    // this instance's own, so it is shown.
    assert_eq!(
        seen_by_follower.leader_application_name.as_deref(),
        Some("db-monitor [pool max 6]")
    );

    let active = |key: &str| {
        leader
            .monitor()
            .alerts()
            .active
            .into_iter()
            .find(|x| x.alert_type == AlertType::ConnectionBudget && x.key == key)
    };
    assert!(eventually(Duration::from_secs(5), || active("overcommitted").is_some()).await);
    let alert = active("overcommitted").unwrap();
    assert!(alert.message.contains("can open 14 connections"), "{}", alert.message);
    assert!(active("free").is_none(), "{budget:#?}");
    // Taking connections until fewer than 5 are free fires the other rule.
    let mut held = Vec::new();
    for _ in 0..(budget.free - 4).max(1) {
        held.push(raw_client(&server.config()).await);
    }
    // Any client may name itself like a poller: one advertising a maximum
    // no pool has is no instance (and overflows no sum).
    held[0]
        .batch_execute("SET application_name = 'x [pool max 9223372036854775807]'")
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || active("free").is_some()).await,
        "{:#?}",
        leader.monitor().server_connections().budget
    );
    let budget = leader.monitor().server_connections().budget.unwrap();
    assert_eq!((budget.instances.len(), budget.committed), (2, 14), "{budget:#?}");
    assert!(leader.monitor().server_connections().sampled.last_failure.is_none());
    let budget_alerts = |pool: &MonitoredPool<NoTls>| {
        pool.monitor()
            .alerts()
            .active
            .into_iter()
            .filter(|x| x.alert_type == AlertType::ConnectionBudget)
            .count()
    };
    assert_eq!(budget_alerts(follower), 0);

    // The leader's poller session terminated: the follower takes the lock
    // at its next cycle, and the old leader reconnects as a follower, its
    // budget gone from its documents, its gauges NaN and its alerts
    // resolved, while the new leader raises them.
    let terminated: bool = held[0]
        .query_one("SELECT pg_terminate_backend($1)", &[&leader_pid])
        .await
        .unwrap()
        .get(0);
    assert!(terminated);
    let handed_over = eventually(Duration::from_secs(10), || {
        let old = leader.monitor().server_connections();
        follower.monitor().server_connections().budget.is_some()
            && old.budget.is_none()
            && old
                .sampled
                .poller
                .is_some_and(|p| !p.leader && p.leader_pid.is_some_and(|pid| Some(pid) != leader_pid))
    })
    .await;
    assert!(
        handed_over,
        "{:#?}",
        [leader, follower].map(|p| p.monitor().server_connections())
    );
    for state in ["available", "used", "committed"] {
        let value = gauge(leader_rec, state);
        assert!(value.is_some_and(f64::is_nan), "the old leader's {state}: {value:?}");
    }
    // Both instances again once the old leader's poller is back (an
    // instance is found by its poller's connection).
    assert!(
        eventually(Duration::from_secs(5), || gauge(follower_rec, "committed")
            == Some(14.0))
        .await,
        "{:#?}",
        follower.monitor().server_connections().budget
    );
    assert!(
        eventually(Duration::from_secs(5), || budget_alerts(leader) == 0
            && budget_alerts(follower) == 2)
        .await,
        "{:#?}",
        [leader, follower].map(|p| p.monitor().alerts().active)
    );
    drop(held);
}

/// A slow statement gets its generic plan on PostgreSQL 16 and later (this
/// suite runs on 18 too: tests/postgres18.rs): a sequential scan over a
/// large table flagged, the planner's estimate beside the client's rows,
/// and no literal anywhere. On 15 the report says plans need 16.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_statement_gets_a_generic_plan_without_a_value() {
    let server = TempPostgres::start(&[]);
    let admin = raw_client(&server.config()).await;
    admin
        .batch_execute(
            "CREATE TABLE big (id int, note text); \
             INSERT INTO big SELECT g, 'n' || g FROM generate_series(1, 100000) g; ANALYZE big",
        )
        .await
        .unwrap();
    let version = support::pg::server_version(&admin).await;
    let config = MonitorConfig::default()
        .slow_query_threshold(Duration::from_millis(1))
        .server_view(ServerView::default().interval(Duration::from_millis(100)));
    let (monitor, _rec) = support::monitor(config);
    let pool = pool_with(&monitor, "server_plans", server.config(), 2, 0, Duration::from_secs(5)).await;
    let _background = monitor.start(&pool);
    let sql = format!("SELECT count(*) FROM big WHERE note = '{MARK}' AND id > 7");
    let conn = pool.get().await.unwrap();
    for _ in 0..3 {
        conn.query(sql.as_str(), &[]).await.unwrap();
    }
    // A jsonb `?` operator is not told from a replaced literal: its
    // rewritten text does not parse, and the server's error is the plan's.
    let jsonb = format!("SELECT count(*) FROM big WHERE jsonb_build_object(note, id) ? '{MARK}'");
    conn.query(jsonb.as_str(), &[]).await.unwrap();
    drop(conn);
    if version < 160_000 {
        let said = eventually(Duration::from_secs(10), || {
            pool.monitor()
                .slow_query_report(None, 20)
                .plans_unavailable
                .is_some_and(|why| why.contains("PostgreSQL 16"))
        })
        .await;
        assert!(said, "{:#?}", pool.monitor().slow_query_report(None, 20));
        return;
    }
    let planned = || {
        pool.monitor()
            .slow_query_report(None, 20)
            .groups
            .into_iter()
            .find(|g| g.statement.contains("note = "))
            .and_then(|g| g.plan.clone().map(|p| (g, p)))
    };
    assert!(
        eventually(Duration::from_secs(10), || planned().is_some()).await,
        "{:#?}",
        pool.monitor().slow_query_report(None, 20)
    );
    let (group, plan) = planned().unwrap();
    assert_eq!(plan.failed, None);
    assert_eq!(plan.explained, "SELECT count(*) FROM big WHERE note = $1 AND id > $2");
    assert!(
        plan.nodes
            .iter()
            .any(|n| n.node_type == "Seq Scan" && n.relation.as_deref() == Some("public.big")),
        "{plan:#?}"
    );
    assert_eq!(plan.large_seq_scans.len(), 1, "{plan:#?}");
    assert_eq!(plan.large_seq_scans[0].relation, "public.big");
    assert!(plan.large_seq_scans[0].table_rows >= 90_000);
    assert!(plan.estimated_rows.is_some());
    assert_eq!(group.client_rows_per_call, Some(1.0));
    let failed = || {
        pool.monitor()
            .slow_query_report(None, 20)
            .groups
            .into_iter()
            .find(|g| g.statement.contains("jsonb_build_object"))
            .and_then(|g| g.plan)
    };
    assert!(eventually(Duration::from_secs(10), || failed().is_some()).await);
    let failed = failed().unwrap();
    assert!(failed.nodes.is_empty(), "{failed:#?}");
    assert!(
        failed.failed.as_deref().is_some_and(|why| why.contains("42601")),
        "{failed:#?}"
    );
    let report = serde_json::to_string(&pool.monitor().slow_query_report(None, 20)).unwrap();
    assert!(!report.contains(MARK) && !report.contains("'"), "{report}");
    let everything = serde_json::to_string(&pool.monitor().comprehensive(60, 20)).unwrap();
    assert!(!everything.contains(MARK), "{everything}");
    let advice = pool.monitor().performance(60).recommendations;
    assert!(
        advice
            .iter()
            .any(|r| r.contains("scans public.big (") && r.contains("sequentially")),
        "{advice:#?}"
    );
}

/// What applications do with statements they stop waiting for: a stream
/// read in part and dropped, and a statement whose future is dropped (a
/// timed-out request). Both are listed while they run and leave the
/// running list when dropped; a cached statement is listed by its text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_dropped_early_leave_the_running_list() {
    use futures_util::StreamExt;

    let (monitor, _rec) = support::monitor(MonitorConfig::default().slow_query_threshold(Duration::from_millis(1)));
    let pool = pool_with(
        &monitor,
        "server_dropped",
        shared_config(),
        2,
        0,
        Duration::from_secs(5),
    )
    .await;
    let running = || pool.monitor().running_statements().statements;
    let conn = pool.get().await.unwrap();

    // A stream read in part: the statement runs until the stream ends.
    let mut stream = Box::pin(
        conn.query_raw("SELECT g FROM generate_series(1, 100000) g", std::iter::empty::<i32>())
            .await
            .unwrap(),
    );
    let _first = stream.next().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(running().len(), 1, "{:#?}", running());
    assert_eq!(running()[0].statement, "SELECT g FROM generate_series(?, ?) g");
    drop(stream);
    assert!(running().is_empty(), "{:#?}", running());

    // A cached statement whose future is dropped before its answer.
    let sleep = conn.prepare_cached("SELECT pg_sleep(1)").await.unwrap();
    let timed_out = tokio::time::timeout(Duration::from_millis(200), conn.query(&sleep, &[])).await;
    assert!(timed_out.is_err());
    assert!(running().is_empty(), "{:#?}", running());
    drop(conn);

    // The next statement on the connection is listed by itself.
    let conn = pool.get().await.unwrap();
    let long = conn.query("SELECT pg_sleep(0.3)", &[]);
    let watch = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        running()
    };
    let (result, seen) = tokio::join!(long, watch);
    result.unwrap();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].statement, "SELECT pg_sleep(?)");
    assert!(running().is_empty());
}
