//! The examples, end to end over TCP on real PostgreSQL: the axum
//! example's app driven by a real HTTP client, and the hyper and tonic
//! examples answering one request each.

// Each example carries its own copy of the PostgreSQL harness.
#![allow(clippy::duplicate_mod)]

mod support;

#[cfg(not(feature = "deadpool"))]
#[path = "../examples/axum_server.rs"]
#[allow(dead_code)]
mod axum_example;
#[path = "../examples/hyper_server.rs"]
#[allow(dead_code)]
mod hyper_example;
// The deadpool example holds the axum example's application.
#[cfg(feature = "deadpool")]
#[path = "../examples/deadpool_server.rs"]
#[allow(dead_code)]
mod deadpool_example;
#[cfg(feature = "deadpool")]
use deadpool_example::axum_server as axum_example;
#[path = "../examples/tonic_server.rs"]
#[allow(dead_code)]
mod tonic_example;

use std::time::{Duration, Instant};

use bytes::Bytes;
use db_monitor::{MonitorConfig, ServerView};
use http::{Method, StatusCode};
use serde_json::Value;
use support::http::{over_tcp, tcp_client, TcpClient};

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
    took: Duration,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

async fn send(client: &TcpClient, method: Method, url: String) -> Answer {
    let start = Instant::now();
    let (status, headers, body) = over_tcp(client, method, &url).await;
    Answer {
        status,
        headers,
        body,
        took: start.elapsed(),
    }
}

/// The demo's tables are shared: one run of it at a time.
static DEMO_TABLES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_axum_example_serves_its_endpoints_and_reports_them() {
    drive_the_demo::<db_monitor::MonitoredPool<db_monitor::tokio_postgres::NoTls>>().await;
}

/// `examples/deadpool_server.rs`: the same application on deadpool.
#[cfg(feature = "deadpool")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadpool_example_serves_the_same_endpoints_and_reports() {
    drive_the_demo::<db_monitor::MonitoredDeadpool<db_monitor::tokio_postgres::NoTls>>().await;
}

async fn drive_the_demo<P: axum_example::DemoPool>() {
    let _alone = DEMO_TABLES.lock().await;
    let (monitor, _rec) = support::monitor(
        MonitorConfig::default()
            .max_size(8)
            .slow_query_threshold(Duration::from_millis(250))
            .server_view(ServerView::default().interval(Duration::from_millis(100))),
    );
    let demo = axum_example::demo_on::<P>(&monitor, support::pg::shared_config(), None)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, demo.router).await });
    let client = tcp_client();

    let one = send(&client, Method::GET, format!("{base}/customers/3")).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json()["name"], "customer 3");
    assert_eq!(
        one.headers["server-timing"].to_str().unwrap().split("desc=").nth(1),
        Some("\"1 query\"")
    );

    // The N+1 endpoint: 13 statements, and Server-Timing says so with a
    // database time no longer than the whole request took.
    let orders = send(&client, Method::GET, format!("{base}/orders")).await;
    assert_eq!(orders.status, StatusCode::OK);
    assert_eq!(orders.json()["statements_in_this_request"], 13);
    let timing = orders.headers["server-timing"].to_str().unwrap().to_owned();
    assert!(timing.ends_with("desc=\"13 queries\""), "{timing}");
    let db_ms: f64 = timing["db;dur=".len()..timing.find(";desc").unwrap()].parse().unwrap();
    assert!(
        db_ms > 0.0 && db_ms <= orders.took.as_secs_f64() * 1e3,
        "{db_ms} ms of {:?}",
        orders.took
    );

    let slow = send(&client, Method::GET, format!("{base}/report?seconds=0.3")).await;
    assert_eq!(slow.status, StatusCode::OK);

    // Two opposite transfers at once deadlock (one gets 409).
    let mut deadlocked = false;
    for _ in 0..10 {
        let (a, b) = tokio::join!(
            send(&client, Method::POST, format!("{base}/transfer?from=1&to=2")),
            send(&client, Method::POST, format!("{base}/transfer?from=2&to=1")),
        );
        let statuses = [a.status, b.status];
        if statuses.contains(&StatusCode::CONFLICT) {
            assert!(statuses.contains(&StatusCode::OK), "{statuses:?}");
            deadlocked = true;
            break;
        }
    }
    assert!(deadlocked, "no deadlock in 10 tries");

    // What the routes report.
    let report = send(
        &client,
        Method::GET,
        format!("{base}/health/database/metrics/comprehensive?minutes=5&limit=50"),
    )
    .await;
    assert_eq!(report.status, StatusCode::OK);
    assert_eq!(report.headers["content-type"], "application/json");
    let report = report.json();
    let n_plus_one = &report["n_plus_one"][0];
    assert_eq!(n_plus_one["route"], "GET /orders");
    assert_eq!(
        n_plus_one["statement"],
        "SELECT count(*), coalesce(sum(total), ?) FROM demo_orders WHERE customer = ?"
    );
    assert_eq!(n_plus_one["max_runs"], 12);
    let slow_groups = report["slow_queries"]["groups"].as_array().unwrap();
    assert!(
        slow_groups
            .iter()
            .any(|g| g["statement"] == "SELECT pg_sleep(?), count(*) FROM demo_orders"),
        "{slow_groups:#?}"
    );
    assert!(report["errors"]["by_type"]["deadlock"].as_u64().unwrap() >= 1);
    let recent = report["recent_statements"].as_array().unwrap();
    assert!(recent.iter().any(|r| r["route"] == "POST /transfer"), "{recent:#?}");
    assert!(
        recent.iter().any(|r| r["route"] == "GET /customers/{id}"),
        "the matched route, not the path"
    );
    assert!(!report.to_string().contains("customers/3"), "no raw path");

    // The background task turns the deadlock and the slow statement into alerts.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alerts = send(&client, Method::GET, format!("{base}/health/database/alerts"))
            .await
            .json();
        let types: Vec<&str> = alerts["active"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["alert_type"].as_str())
            .collect();
        if types.contains(&"deadlock") && types.contains(&"slow_query") {
            break;
        }
        assert!(Instant::now() < deadline, "alerts: {alerts:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let health = send(&client, Method::GET, format!("{base}/health/database")).await;
    assert_eq!(
        (health.status, health.json()["status"].as_str()),
        (StatusCode::OK, Some("healthy"))
    );
    let bad = send(
        &client,
        Method::GET,
        format!("{base}/health/database/errors?minutes=-1"),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // The server view guide's lock tree: a transfer blocked by a request on /hold.
    let post = |path: &str| {
        let (client, url) = (client.clone(), format!("{base}{path}"));
        tokio::spawn(async move { send(&client, Method::POST, url).await })
    };
    let hold = post("/hold?seconds=2");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let transfer = post("/transfer?from=1&to=2");
    let deadline = Instant::now() + Duration::from_secs(10);
    let locks = loop {
        let locks = send(&client, Method::GET, format!("{base}/health/database/server/locks"))
            .await
            .json();
        if locks["roots"][0]["blocking"][0]["route"] == "POST /transfer" {
            break locks;
        }
        assert!(Instant::now() < deadline, "locks: {locks:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(locks["roots"][0]["route"], "POST /hold", "{locks:#}");
    assert_eq!(locks["roots"][0]["ours"], true);
    assert!(locks["roots"][0]["checkout_site"]
        .as_str()
        .is_some_and(|s| s.contains("axum_server.rs:")));
    assert_eq!(hold.await.unwrap().status, StatusCode::OK);
    assert_eq!(transfer.await.unwrap().status, StatusCode::OK);
    server.abort();
    demo.background.shutdown().await;
}

/// The pool held full by the example's `/hold` (two requests hold its two
/// connections, two more wait for one): `/ready` turns 503 with
/// `Retry-After` once checkouts have waited without a pause for the set
/// time, while the liveness check stays 200 (it pings on a connection of
/// its own); both are 200 once the holds are over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_turns_while_the_pool_is_held_full_and_liveness_stays_up() {
    let _alone = DEMO_TABLES.lock().await;
    let (monitor, _rec) = support::monitor(
        MonitorConfig::default().max_size(2).readiness(
            db_monitor::Readiness::default()
                .saturated_for(Duration::from_secs(1))
                .retry_after(Duration::from_secs(2)),
        ),
    );
    let demo = axum_example::demo_on::<db_monitor::MonitoredPool<db_monitor::tokio_postgres::NoTls>>(
        &monitor,
        support::pg::shared_config(),
        None,
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, demo.router).await });
    let client = tcp_client();
    let ready = format!("{base}/health/database/ready");
    let live = format!("{base}/health/database");

    let before = send(&client, Method::GET, ready.clone()).await;
    assert_eq!(
        before.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&before.body)
    );
    assert_eq!(before.json()["status"], "ready");

    let holds: Vec<_> = (0..4)
        .map(|_| {
            let (client, url) = (client.clone(), format!("{base}/hold?seconds=2"));
            tokio::spawn(async move { send(&client, Method::POST, url).await })
        })
        .collect();
    let started = Instant::now();
    let unready = loop {
        let answer = send(&client, Method::GET, ready.clone()).await;
        if answer.status == StatusCode::SERVICE_UNAVAILABLE {
            break answer;
        }
        assert_eq!(answer.status, StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "still ready: {}",
            answer.json()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "unready after {waited:?}, before the 1 s"
    );
    let body = unready.json();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["reasons"][0]["reason"], "saturated", "{body:#}");
    assert!(body["load"]["waiting"].as_u64().unwrap() >= 1, "{body:#}");
    assert_eq!(unready.headers["retry-after"], "2");

    let liveness = send(&client, Method::GET, live.clone()).await;
    assert_eq!(
        liveness.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&liveness.body)
    );
    assert_eq!(liveness.json()["status"], "healthy");

    for hold in holds {
        assert_eq!(hold.await.unwrap().status, StatusCode::OK);
    }
    let after = send(&client, Method::GET, ready).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.json());
    assert_eq!(send(&client, Method::GET, live).await.status, StatusCode::OK);
    server.abort();
    demo.background.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hyper_example_answers_through_the_layer() {
    let (monitor, _rec) = support::monitor(MonitorConfig::default());
    let pool = support::pool(&monitor, "hyper_example", 2).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(hyper_example::serve(listener, pool));
    let client = tcp_client();
    let now = send(&client, Method::GET, format!("{base}/now")).await;
    assert_eq!(now.status, StatusCode::OK, "{:?}", now.body);
    assert!(now.headers.get("server-timing").is_none(), "off by default");
    let health = send(&client, Method::GET, format!("{base}/health/database")).await;
    assert_eq!(health.json()["status"], "healthy");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tonic_example_answers_a_health_check_that_touches_the_database() {
    let (monitor, _rec) = support::monitor(MonitorConfig::default());
    let pool = support::pool(&monitor, "tonic_example", 2).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(tonic_example::serve(listener, pool.clone()));
    let status = tonic_example::check(format!("http://{addr}")).await.unwrap();
    assert_eq!(status, "Serving");
    let stats = pool.monitor().query_stats();
    assert!(stats.iter().any(|q| q.normalized == "SELECT ?"), "{stats:#?}");
    let recent = pool.monitor().recent_statements(5);
    assert_eq!(recent[0].route.as_deref(), Some("/grpc.health.v1.Health/Check"));
    // The layer's own routes answer on the gRPC server's port too.
    let client = tcp_client();
    let health = send(&client, Method::GET, format!("http://{addr}/health/database")).await;
    assert_eq!(health.json()["status"], "healthy");
    server.abort();
}

/// One instance of the example program (its binary, built by `cargo
/// test`), killed when dropped.
struct Instance {
    child: std::process::Child,
    base: String,
}

impl Instance {
    /// Starts the example on `database` with a server view every 500 ms.
    fn start(binary: &std::path::Path, database: &str) -> Instance {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let child = std::process::Command::new(binary)
            .env("DATABASE_URL", database)
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("ASYNC_DB_SERVER_VIEW", "500ms")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the example program");
        Instance {
            child,
            base: format!("http://127.0.0.1:{port}/health/database"),
        }
    }

    /// Its poller's role, once it has one.
    async fn poller(&self, client: &TcpClient) -> Option<Value> {
        let url = format!("{}/server/connections", self.base);
        let request = http::Request::get(url)
            .body(http_body_util::Full::new(Bytes::new()))
            .ok()?;
        let response = client.request(request).await.ok()?;
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .ok()?
            .to_bytes();
        let document: Value = serde_json::from_slice(&body).ok()?;
        Some(document).filter(|d| !d["poller"].is_null())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two instances of the example on one server elect one poller for the
/// server-wide queries; when the holder's process is killed, the other
/// takes over within a cycle or two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_elect_one_poller_and_the_other_takes_over_when_the_holder_is_killed() {
    let binary = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("examples/axum_server"))
        .unwrap();
    if !binary.exists() {
        assert!(std::env::var_os("CI").is_none(), "{} is not built", binary.display());
        eprintln!("skipped: {} is not built (cargo test builds it)", binary.display());
        return;
    }
    let server = support::pg::TempPostgres::start(&[]);
    let database = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port());
    let client = tcp_client();
    let role = |d: &Value| (d["poller"]["leader"].as_bool(), d["poller"]["pid"].as_i64());
    let mut first = Instance::start(&binary, &database);
    let mut leader = None;
    for _ in 0..300 {
        if let Some(d) = first.poller(&client).await {
            if role(&d).0 == Some(true) {
                leader = role(&d).1;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let leader = leader.unwrap_or_else(|| {
        panic!(
            "the first instance leads: {} answered no poller (a stale binary? `cargo test` builds the examples, \
             `cargo test --test examples` alone does not)",
            binary.display()
        )
    });
    let second = Instance::start(&binary, &database);
    let mut follows = None;
    for _ in 0..300 {
        if let Some(d) = second.poller(&client).await {
            follows = Some(d.clone());
            if d["poller"]["leader_pid"].as_i64() == Some(leader) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let follows = follows.expect("the second instance answers");
    assert_eq!(follows["poller"]["leader"], false, "{follows:#}");
    assert_eq!(follows["poller"]["leader_pid"].as_i64(), Some(leader), "{follows:#}");
    assert!(follows["budget"].is_null(), "a follower reads no budget");
    // The holder's budget counts both instances' pools (10 each) and pollers.
    let mut budget = Value::Null;
    for _ in 0..100 {
        budget = first
            .poller(&client)
            .await
            .map(|d| d["budget"].clone())
            .unwrap_or_default();
        if budget["instances"].as_array().map(Vec::len) == Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(budget["instances"].as_array().map(Vec::len), Some(2), "{budget:#}");
    assert_eq!(budget["committed"], 22, "{budget:#}");

    // The holder's process dies: its session, and with it the lock, ends.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let killed = Instant::now();
    let mut took = None;
    while killed.elapsed() < Duration::from_secs(10) {
        if let Some(d) = second.poller(&client).await {
            if role(&d).0 == Some(true) && d["budget"]["instances"].as_array().is_some() {
                took = Some(killed.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = took.expect("the second instance takes over");
    println!("the second instance took over {took:?} after the holder was killed");
    // One cycle is 500 ms; the sample shows it at the end of the cycle.
    assert!(took < Duration::from_secs(3), "took {took:?}");
}
