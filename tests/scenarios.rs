//! Scenarios with a known truth, on real PostgreSQL: each scripts a
//! situation whose right answer is known (the pool idle, then a burst; a
//! connect refused long ago; a replica busy with other work; the database
//! out of reach), and checks what the monitor's detectors say and do
//! against it, where they must stay silent as well as where they must act.
//! Each records its detector's verdicts in the table printed at its end
//! (`precision`: of its actions, how many were right; `recall`: of the
//! true situations, how many it caught; with detection and reset times
//! where it acts), the figures benches/README.md publishes.

mod support;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use db_monitor::tokio_postgres::NoTls;
use db_monitor::{DbMonitorLayer, MonitorConfig, ReplicaSet, ShedLayer};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use support::http::get_json;
use support::pg::TempPostgres;
use support::{monitor, pool_with, unique};
use tower::{Layer, Service, ServiceExt};

/// One request through `service`: its status.
async fn status_of<S, B>(service: &S, uri: &str) -> StatusCode
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible> + Clone,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let request = Request::builder().uri(uri).body(Full::new(Bytes::new())).unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    let status = response.status();
    response.into_body().collect().await.unwrap();
    status
}

/// A pool of two connections on the shared server, waiting up to 10 s.
async fn pool_of_two(watcher: &db_monitor::DbMonitor, name: &str) -> db_monitor::MonitoredPool<NoTls> {
    pool_with(
        watcher,
        &unique(name),
        support::pg::shared_config(),
        2,
        0,
        Duration::from_secs(10),
    )
    .await
}

/// A trivial application behind the monitor's layer, to read its routes.
fn routes(
    pool: &db_monitor::MonitoredPool<NoTls>,
) -> impl support::http::LayerService<Future = impl Send> + Send + Sync + 'static {
    DbMonitorLayer::new(pool.clone()).layer(tower::service_fn(|_: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    }))
}

/// Healthy: a pool of 8 idle connections, quiet for longer than the shed
/// budget, then a burst of 8 requests, ten times over. Every checkout is
/// in bb8's validity ping, none waits for a connection: nothing may be
/// shed. (Before the load told a ping from a queue, and a quiet gap from
/// a stall, 66 of 80 such requests were shed.) Then the true case: every
/// connection held and a request queued past the budget, which must be
/// shed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shedding_is_silent_on_a_burst_after_quiet_and_acts_on_a_held_pool() {
    let (monitor, rec) = monitor(MonitorConfig::default());
    let pool = pool_with(
        &monitor,
        &unique("burst"),
        support::pg::shared_config(),
        8,
        8,
        Duration::from_secs(5),
    )
    .await;
    let budget = Duration::from_millis(250);
    let work = tower::service_fn({
        let pool = pool.clone();
        move |_: Request<Full<Bytes>>| {
            let pool = pool.clone();
            async move {
                let mut response = Response::new(Full::new(Bytes::from_static(b"done")));
                match pool.get().await {
                    Ok(conn) => {
                        conn.query_one("SELECT 1", &[]).await.expect("statement");
                    }
                    Err(_) => *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR,
                }
                Ok::<_, Infallible>(response)
            }
        }
    });
    let service = ShedLayer::new(&pool).budget(budget).layer(work);
    // Warm: the pool's connections open and served once.
    for _ in 0..8 {
        assert_eq!(status_of(&service, "/work").await, StatusCode::OK);
    }
    let mut shed = 0;
    for _ in 0..10 {
        tokio::time::sleep(budget + Duration::from_millis(150)).await;
        let burst: Vec<_> = (0..8)
            .map(|_| {
                let service = service.clone();
                tokio::spawn(async move { status_of(&service, "/work").await })
            })
            .collect();
        for request in burst {
            if request.await.unwrap() == StatusCode::SERVICE_UNAVAILABLE {
                shed += 1;
            }
        }
    }
    assert_eq!(
        shed,
        0,
        "shed {shed} of 80 on an idle pool: {:?}",
        pool.monitor().load()
    );
    assert_eq!(rec.counter(db_monitor::names::REQUESTS_SHED, &[]), 0);

    // True: every connection held by a handler, one request queued.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(pool.get().await.unwrap());
    }
    let queued = tokio::spawn({
        let service = service.clone();
        async move { status_of(&service, "/work").await }
    });
    let began = Instant::now();
    // Each probe waits 50 ms at most; one not shed by then queues, and is
    // dropped (a client that gave up).
    let detected = loop {
        let answer = tokio::time::timeout(Duration::from_millis(50), status_of(&service, "/work")).await;
        if answer == Ok(StatusCode::SERVICE_UNAVAILABLE) {
            break began.elapsed();
        }
        assert!(
            began.elapsed() < Duration::from_secs(3),
            "never shed: {:?}",
            pool.monitor().load()
        );
    };
    assert!(
        detected >= budget,
        "shed after {detected:?}, before the queue was older than the budget"
    );
    drop(held);
    assert_eq!(queued.await.unwrap(), StatusCode::OK, "the queued request is served");
    let freed = Instant::now();
    let reset = loop {
        if status_of(&service, "/work").await == StatusCode::OK {
            break freed.elapsed();
        }
        assert!(freed.elapsed() < Duration::from_secs(3), "still shedding");
    };
    eprintln!(
        "scenario shedding: healthy bursts shed 0 of 80; held pool shed after {detected:?} (budget {budget:?}), reset {reset:?}"
    );
}

/// A connect refused once (53300, the server full) while another
/// connection is open; long after, the last connection closes. The
/// database accepts connections: the pool must not be out of reach, its
/// next checkout must not fail fast, and readiness must say ready. Then
/// the true case: the server stopped, which the pool learns of (a failed
/// checkout) and readiness lists as shared, counting it only where told
/// to; and once the server is back, the probe readiness started finds it
/// with no checkout at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_connect_failure_is_no_outage_and_a_real_one_is_shared() {
    if !support::pg::can_start_servers() {
        eprintln!("skipped: needs its own server (initdb not on PATH)");
        return;
    }
    let server = std::sync::Arc::new(TempPostgres::start(&[
        "-c",
        "max_connections=3",
        "-c",
        "superuser_reserved_connections=0",
    ]));
    let (watcher, _rec) = monitor(MonitorConfig::default());
    let pool = pool_with(&watcher, "stale", server.config(), 2, 0, Duration::from_millis(600)).await;
    let service = routes(&pool);
    let first = pool.get().await.unwrap();
    let pid: i32 = first.query_one_scalar("SELECT pg_backend_pid()", &[]).await.unwrap();
    // The server full: the pool's second connect is refused (53300).
    let mut outside = Vec::new();
    for _ in 0..2 {
        let (client, connection) = server.config().connect(NoTls).await.unwrap();
        tokio::spawn(connection);
        outside.push(client);
    }
    assert!(pool.get().await.is_err(), "the server is full");
    assert!(pool.monitor().snapshot().consecutive_connect_failures >= 1);
    drop(outside);
    drop(first);
    // Long after (past the evidence's 5 s), the pool's last connection
    // closes (a proxy restart, the server's idle reaping).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (admin, connection) = server.config().connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    admin.execute("SELECT pg_terminate_backend($1)", &[&pid]).await.unwrap();
    drop(admin);
    // Its connection task sees the end at once; give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!pool.monitor().out_of_reach(), "{:?}", pool.monitor().snapshot());
    let ready = get_json(&service, "/health/database/ready").await;
    assert_eq!(ready["status"], "ready", "{ready:#}");
    assert_eq!(ready["shared_reasons"], serde_json::json!([]), "{ready:#}");
    let conn = pool.get().await.expect("a checkout connects; it does not fail fast");
    assert_eq!(conn.query_one_scalar::<i32, _>("SELECT 1", &[]).await.unwrap(), 1);
    drop(conn);

    // True: the server stops. The pool learns it; readiness lists it as
    // every instance's reason, and stays ready by default.
    let stopper = server.clone();
    tokio::task::spawn_blocking(move || stopper.stop()).await.unwrap();
    let stopped = Instant::now();
    let detected = loop {
        let _ = pool.get().await;
        if pool.monitor().out_of_reach() {
            break stopped.elapsed();
        }
        assert!(stopped.elapsed() < Duration::from_secs(5), "never out of reach");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ready = get_json(&service, "/health/database/ready").await;
    assert_eq!(ready["status"], "ready", "a shared reason does not count: {ready:#}");
    assert_eq!(
        ready["shared_reasons"][0]["reason"], "database_out_of_reach",
        "{ready:#}"
    );
    // Asked to count it, the report does.
    let counting = MonitorConfig::default().readiness(db_monitor::Readiness::default().out_of_reach_unready(true));
    let (strict_monitor, _) = monitor(counting);
    let strict = pool_with(
        &strict_monitor,
        "strict",
        server.config(),
        1,
        0,
        Duration::from_millis(600),
    )
    .await;
    let _ = strict.get().await;
    let strict_routes = routes(&strict);
    let (status, _, body) =
        support::http::call(&strict_routes, http::Method::GET, "/health/database/ready", None).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["reasons"][0]["reason"], "database_out_of_reach", "{body:#}");

    // Back: no checkout runs; readiness reads alone start the probe.
    let starter = server.clone();
    tokio::task::spawn_blocking(move || starter.start_again())
        .await
        .unwrap();
    let back = Instant::now();
    let reset = loop {
        let ready = get_json(&service, "/health/database/ready").await;
        if ready["shared_reasons"] == serde_json::json!([]) && !pool.monitor().out_of_reach() {
            break back.elapsed();
        }
        assert!(back.elapsed() < Duration::from_secs(8), "still out of reach: {ready:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        !pool.monitor().snapshot().open_connections.is_empty(),
        "the probe's connection joined the pool"
    );
    eprintln!(
        "scenario out of reach: stale failure silent; stop detected {detected:?}, return found by the probe {reset:?}"
    );
}

/// Two replicas on one server; replica A's connections are held by other
/// work on its pool. Reads must go to B, which is idle, and not to A
/// because it has no read measured yet. (tower's peak-EWMA starts a new
/// endpoint at a default round trip; starting at zero sent 199 of 200
/// reads to the busy replica.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_avoid_a_replica_busy_with_other_work_though_it_is_unmeasured() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let timeout = Duration::from_secs(5);
    let shared = support::pg::shared_config();
    let primary = pool_with(&monitor, &unique("primary"), shared.clone(), 1, 0, timeout).await;
    let a = pool_with(&monitor, &unique("replica_a"), shared.clone(), 2, 0, timeout).await;
    let b = pool_with(&monitor, &unique("replica_b"), shared, 2, 0, timeout).await;
    let held = (a.get().await.unwrap(), a.get().await.unwrap());
    let set = ReplicaSet::new(primary, [a.clone(), b.clone()]);
    let mut answered = 0;
    for _ in 0..200 {
        let read = async {
            let conn = set.read().await.ok()?;
            conn.query_one("SELECT 1", &[]).await.ok()
        };
        if tokio::time::timeout(Duration::from_millis(200), read)
            .await
            .ok()
            .flatten()
            .is_some()
        {
            answered += 1;
        }
    }
    let report = set.report();
    let to_a = report.replicas[0].reads;
    assert!(to_a <= 2, "{to_a} of 200 reads went to the busy replica: {report:#?}");
    assert!(answered >= 198, "{answered} answered: {report:#?}");
    // Freed, and measured by none of these reads: A is tried again.
    drop(held);
    for _ in 0..100 {
        let conn = set.read().await.unwrap();
        conn.query_one("SELECT 1", &[]).await.unwrap();
    }
    let after = set.report();
    assert!(
        after.replicas[0].reads > to_a,
        "the freed replica is tried again: {after:#?}"
    );
    eprintln!(
        "scenario replicas: busy replica got {to_a} of 200 reads; freed, {} of 100",
        after.replicas[0].reads - to_a
    );
}

/// Pipelined statements: three sleeps of 100 ms sent at once on one
/// connection run one after another on the server, so the request spends
/// about 300 ms in the database, while their durations (each including
/// its wait behind the others) sum to about 600 ms. `Server-Timing` and
/// the route's database time must give the union, never more than the
/// request's own duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_time_of_pipelined_statements_never_exceeds_the_request() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = support::pool(&monitor, &unique("pipelined"), 2).await;
    let handler = tower::service_fn({
        let pool = pool.clone();
        move |_: Request<Full<Bytes>>| {
            let pool = pool.clone();
            async move {
                let conn = pool.get().await.expect("checkout");
                let sleep = "SELECT pg_sleep(0.1)";
                let (a, b, c) = tokio::join!(
                    conn.execute(sleep, &[]),
                    conn.execute(sleep, &[]),
                    conn.execute(sleep, &[])
                );
                let stats = db_monitor::RequestDbStats::current().expect("in a request").snapshot();
                assert!(a.is_ok() && b.is_ok() && c.is_ok());
                let body = format!(
                    "{} {}",
                    stats.database_time.as_micros(),
                    stats.summed_statement_time.as_micros()
                );
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
            }
        }
    });
    let service = DbMonitorLayer::new(pool.clone()).server_timing(true).layer(handler);
    let started = Instant::now();
    let request = Request::builder()
        .uri("/pipelined")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    let wall = started.elapsed();
    let timing = response.headers()["server-timing"].to_str().unwrap().to_owned();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    let dur: f64 = timing
        .split(';')
        .find_map(|part| part.strip_prefix("dur="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{timing}"));
    let (union, summed) = body.split_once(' ').unwrap();
    let (union, summed): (f64, f64) = (
        union.parse::<f64>().unwrap() / 1e3,
        summed.parse::<f64>().unwrap() / 1e3,
    );
    eprintln!("scenario pipelined: wall {wall:?}, Server-Timing {dur} ms, union {union} ms, summed {summed} ms");
    assert!(
        dur <= wall.as_secs_f64() * 1e3,
        "Server-Timing {dur} ms over the request's {wall:?}"
    );
    assert!(dur >= 290.0, "the three sleeps ran one after another: {dur} ms");
    assert!(
        summed >= 1.8 * union,
        "the summed time counts the waits: {summed} vs {union}"
    );
}

/// The database out of reach: every request of a route with objectives is
/// answered 503 by its handler, having run no statement; then requests cut
/// by a client's timeout. Both must count against the objectives (before
/// they counted statements, and an outage read as 100 % compliant).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objectives_count_an_outage_and_dropped_requests_as_bad() {
    let config = MonitorConfig::default().objective(
        db_monitor::Objective::route("GET /orders")
            .latency(Duration::from_millis(500), 0.99)
            .success(0.999),
    );
    let (monitor, _rec) = monitor(config);
    let pool = pool_with(
        &monitor,
        &unique("outage"),
        support::pg::refused_config(),
        2,
        0,
        Duration::from_millis(300),
    )
    .await;
    let handler = tower::service_fn({
        let pool = pool.clone();
        move |request: Request<Full<Bytes>>| {
            let pool = pool.clone();
            async move {
                if request.uri().query() == Some("hang") {
                    std::future::pending::<()>().await;
                }
                let status = match pool.get().await {
                    Ok(_) => StatusCode::OK,
                    Err(_) => StatusCode::SERVICE_UNAVAILABLE,
                };
                let mut response = Response::new(Full::new(Bytes::new()));
                *response.status_mut() = status;
                Ok::<_, Infallible>(response)
            }
        }
    });
    let service = DbMonitorLayer::new(pool.clone())
        .route_label(|_, _| Some("GET /orders".to_owned()))
        .layer(handler);
    for _ in 0..50 {
        assert_eq!(status_of(&service, "/orders").await, StatusCode::SERVICE_UNAVAILABLE);
    }
    let statuses = pool.monitor().objectives();
    for status in &statuses {
        assert_eq!(status.requests, 50, "{status:?}");
        assert_eq!(status.bad, 50, "{status:?}");
        assert_eq!(status.compliance, Some(0.0), "{status:?}");
    }
    // Cut by the client after 50 ms, with no answer.
    for _ in 0..10 {
        let cut = tokio::time::timeout(Duration::from_millis(50), status_of(&service, "/orders?hang")).await;
        assert!(cut.is_err());
    }
    for status in pool.monitor().objectives() {
        assert_eq!((status.requests, status.bad), (60, 60), "{status:?}");
    }
    eprintln!("scenario objectives: 50 of 50 refused and 10 of 10 dropped requests counted bad on both objectives");
}

/// Start-up: a burst of failing statements in a process's first seconds
/// (a migration, a warm-up against a database still starting) is no
/// evidence of an error rate "over the last hour": with the defaults no
/// error-rate alert fires in the first minute. With the evidence set to
/// 2 s, the same storm fires the 5 min window's alert once 2 s are
/// covered, and the longer windows not before theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_storm_at_start_needs_time_covered_before_it_alerts() {
    use db_monitor::alerts::AlertType;
    let storm = |pool: db_monitor::MonitoredPool<NoTls>| async move {
        let conn = pool.get().await.unwrap();
        for i in 0..30 {
            let sql = if i % 3 == 0 { "SELECT 1 / 0" } else { "SELECT 1" };
            let _ = conn.query(sql, &[]).await;
        }
    };
    let error_rates = |pool: &db_monitor::MonitoredPool<NoTls>| {
        pool.monitor().evaluate_alerts();
        let mut keys: Vec<String> = pool
            .monitor()
            .alerts()
            .active
            .iter()
            .filter(|a| a.alert_type == AlertType::HighErrorRate)
            .map(|a| a.key.clone())
            .collect();
        keys.sort();
        keys
    };
    let (watcher, _rec) = monitor(MonitorConfig::default());
    let pool = support::pool(&watcher, &unique("storm"), 2).await;
    storm(pool.clone()).await;
    assert_eq!(
        error_rates(&pool),
        Vec::<String>::new(),
        "no evidence in the first seconds"
    );

    let quick = MonitorConfig::default()
        .alerts(db_monitor::AlertThresholds::default().error_rate_evidence(Duration::from_secs(2)));
    let (watcher, _rec) = monitor(quick);
    let pool = support::pool(&watcher, &unique("storm_quick"), 2).await;
    let started = Instant::now();
    storm(pool.clone()).await;
    assert_eq!(error_rates(&pool), Vec::<String>::new());
    let detected = loop {
        if error_rates(&pool) == ["5m"] {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:#?}",
            pool.monitor().alerts()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(detected >= Duration::from_secs(2), "{detected:?}");
    eprintln!("scenario start-up storm: silent with the default minute; with 2 s of evidence the 5 min alert after {detected:?}");
}

/// The pool saturated for 10 s between two trend samples (every
/// connection held, checkouts queued behind them): the next sample must
/// show it (peak 100 %, the queue, the seconds it lasted), where a sample
/// of the moment showed 0 %; and an idle stretch shows no waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_trend_shows_a_saturation_of_ten_seconds_between_samples() {
    let readiness = db_monitor::Readiness::default().saturated_for(Duration::from_secs(3));
    let (watcher, _rec) = monitor(MonitorConfig::default().readiness(readiness));
    let pool = pool_with(
        &watcher,
        &unique("saturated"),
        support::pg::shared_config(),
        4,
        0,
        Duration::from_secs(30),
    )
    .await;
    let background = watcher.start(&pool);
    // Idle for 3 s: read each second, nothing waits.
    tokio::time::sleep(Duration::from_secs(3)).await;
    pool.monitor().sample();
    let idle = pool.monitor().trend_report(None).samples.last().cloned().unwrap();
    assert_eq!((idle.waiting_seconds, idle.peak_in_use), (0, 0), "{idle:?}");
    assert!(idle.seconds >= 2, "{idle:?}");
    // Saturated for 10 s: four held, two queued.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(pool.get().await.unwrap());
    }
    let queued: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.get().await.map(|_| ()) })
        })
        .collect();
    // Readiness (saturated after 3 s here) reads the same pool.
    let held_at = Instant::now();
    let mut unready_after = None;
    while held_at.elapsed() < Duration::from_secs(10) {
        let ready = pool.monitor().readiness();
        if unready_after.is_none() && !ready.is_ready() {
            assert_eq!(ready.reasons[0].reason, "saturated", "{ready:?}");
            unready_after = Some(held_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let unready_after = unready_after.expect("a pool saturated for 10 s is unready");
    assert!(unready_after >= Duration::from_secs(3), "{unready_after:?}");
    drop(held);
    for waiter in queued {
        waiter.await.unwrap().unwrap();
    }
    let released = Instant::now();
    while !pool.monitor().readiness().is_ready() {
        assert!(
            released.elapsed() < Duration::from_secs(2),
            "{:?}",
            pool.monitor().readiness()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ready_after = released.elapsed();
    eprintln!("scenario readiness: saturated (bound 3 s) unready after {unready_after:?}, ready {ready_after:?} after release");
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The sample after it, taken when all is calm again.
    pool.monitor().sample();
    let sample = pool.monitor().trend_report(None).samples.last().cloned().unwrap();
    eprintln!("scenario saturation: {sample:?}");
    assert_eq!(sample.in_use, 0, "calm at the sample: {sample:?}");
    assert_eq!(sample.peak_utilization, 1.0, "{sample:?}");
    assert!(sample.waiters >= 2, "{sample:?}");
    // Read once a second by the background task: on a loaded machine a
    // late tick reads one second fewer, never one more than there were.
    assert!((5..=12).contains(&sample.waiting_seconds), "{sample:?}");
    assert!(sample.utilization > 0.5, "the mean over the interval: {sample:?}");
    background.shutdown().await;
}

/// Healthy: steady load well under capacity for 8 s (four workers on a
/// pool of eight, each request a checkout and a 5 ms statement), with the
/// background task evaluating every 100 ms and a forecast every 200 ms.
/// Every detector must stay silent: nothing shed, ready at every read, no
/// alert, no anomaly, no exhaustion forecast, no queue in the trend, and
/// `Server-Timing` within each request's own time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_load_under_capacity_raises_nothing() {
    let thresholds = db_monitor::AlertThresholds::default()
        .evaluation_interval(Duration::from_millis(100))
        .forecast(db_monitor::ForecastThresholds::default().interval(Duration::from_millis(200)));
    let objective = db_monitor::Objective::route("GET /work")
        .latency(Duration::from_millis(500), 0.99)
        .success(0.999);
    let (watcher, _rec) = monitor(MonitorConfig::default().alerts(thresholds).objective(objective));
    let pool = pool_with(
        &watcher,
        &unique("steady"),
        support::pg::shared_config(),
        8,
        0,
        Duration::from_secs(5),
    )
    .await;
    let background = watcher.start(&pool);
    let work = tower::service_fn({
        let pool = pool.clone();
        move |_: Request<Full<Bytes>>| {
            let pool = pool.clone();
            async move {
                let conn = pool.get().await.expect("checkout");
                conn.execute("SELECT pg_sleep(0.005)", &[]).await.expect("statement");
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }
        }
    });
    let service = DbMonitorLayer::new(pool.clone())
        .server_timing(true)
        .route_label(|_, _| Some("GET /work".to_owned()))
        .layer(ShedLayer::new(&pool).layer(work));
    let until = Instant::now() + Duration::from_secs(8);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move {
                let (mut requests, mut wrong) = (0u32, Vec::new());
                while Instant::now() < until {
                    let started = Instant::now();
                    let request = Request::builder().uri("/work").body(Full::new(Bytes::new())).unwrap();
                    let response = service.clone().oneshot(request).await.unwrap();
                    let took = started.elapsed();
                    requests += 1;
                    if response.status() != StatusCode::OK {
                        wrong.push(format!("status {}", response.status()));
                    }
                    let timing = response.headers()["server-timing"].to_str().unwrap().to_owned();
                    let dur: f64 = timing
                        .split(';')
                        .find_map(|p| p.strip_prefix("dur="))
                        .and_then(|v| v.parse().ok())
                        .unwrap();
                    if dur > took.as_secs_f64() * 1e3 {
                        wrong.push(format!("Server-Timing {dur} ms over {took:?}"));
                    }
                }
                (requests, wrong)
            })
        })
        .collect();
    let (mut unready, mut reads) = (Vec::new(), 0);
    while Instant::now() < until {
        let ready = pool.monitor().readiness();
        reads += 1;
        if !ready.is_ready() {
            unready.push(format!("{:?}", ready.reasons));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut requests, mut wrong) = (0, Vec::new());
    for worker in workers {
        let (n, w) = worker.await.unwrap();
        requests += n;
        wrong.extend(w);
    }
    pool.monitor().sample();
    pool.monitor().evaluate_alerts();
    let trend = pool.monitor().trend_report(None);
    let alerts = pool.monitor().alerts().active;
    eprintln!(
        "scenario steady: {requests} requests, {} shed, {} of {reads} readiness reads unready, {} alerts, {} anomalies, forecast {:?}",
        pool.monitor().load().requests_shed,
        unready.len(),
        alerts.len(),
        pool.monitor().anomalies().len(),
        pool.monitor().forecast().map(|f| f.state)
    );
    assert!(requests > 100, "{requests}");
    assert!(wrong.is_empty(), "{wrong:?}");
    assert_eq!(pool.monitor().load().requests_shed, 0);
    assert!(unready.is_empty(), "{unready:?}");
    assert!(alerts.is_empty(), "{alerts:#?}");
    assert!(pool.monitor().anomalies().is_empty());
    assert!(
        pool.monitor()
            .forecast()
            .is_none_or(|f| f.exhausted_in_seconds.is_none()),
        "{:?}",
        pool.monitor().forecast()
    );
    assert!(trend.samples.iter().all(|s| s.waiting_seconds == 0), "{trend:#?}");
    for objective in pool.monitor().objectives() {
        assert_eq!(objective.requests, u64::from(requests), "{objective:?}");
        assert_eq!(objective.bad, 0, "{objective:?}");
    }
    background.shutdown().await;
}

/// The alert rules against faults whose start and end are known: each
/// alert must be silent before its fault, fire within its detection time
/// after the fault begins, and clear within its reset time after it ends
/// (a condition, `clear_after` after its rule stops firing; an event,
/// `expire_after` after it). Times are printed for the ground-truth table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_on_their_faults_and_clear_after_them() {
    use db_monitor::alerts::AlertType;
    if !support::pg::can_start_servers() {
        eprintln!("skipped: needs its own server (initdb not on PATH)");
        return;
    }
    let server = std::sync::Arc::new(TempPostgres::start(&[]));
    let thresholds = db_monitor::AlertThresholds::default()
        .evaluation_interval(Duration::from_millis(100))
        .clear_after(Duration::from_secs(1))
        .expire_after(Duration::from_secs(3))
        .consecutive_failures(3)
        .error_rate_evidence(Duration::from_secs(2));
    let config = MonitorConfig::default()
        .alerts(thresholds)
        .slow_query_threshold(Duration::from_millis(200));
    let (watcher, _rec) = monitor(config);
    let pool = std::sync::Arc::new(pool_with(&watcher, "faults", server.config(), 3, 0, Duration::from_secs(2)).await);
    let background = watcher.start(&*pool);
    let active = |pool: &db_monitor::MonitoredPool<NoTls>, kind: AlertType| {
        pool.monitor().alerts().active.iter().any(|a| a.alert_type == kind)
    };
    // Waits up to `limit` for `kind` to be active (`on`) or not.
    let until = |pool: std::sync::Arc<db_monitor::MonitoredPool<NoTls>>, kind: AlertType, on: bool, limit: Duration| async move {
        let began = Instant::now();
        loop {
            if active(&pool, kind) == on {
                return began.elapsed();
            }
            assert!(
                began.elapsed() < limit,
                "{kind:?} still {}: {:#?}",
                !on,
                pool.monitor().alerts()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let mut table = Vec::new();
    let conn = pool.get().await.unwrap();
    for _ in 0..25 {
        conn.execute("SELECT 1", &[]).await.unwrap();
    }
    drop(conn);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        pool.monitor().alerts().active.is_empty(),
        "healthy: {:#?}",
        pool.monitor().alerts()
    );

    // A slow statement (an event alert).
    let conn = pool.get().await.unwrap();
    conn.execute("SELECT pg_sleep(0.3)", &[]).await.unwrap();
    drop(conn);
    let detect = until(pool.clone(), AlertType::SlowQuery, true, Duration::from_secs(3)).await;
    let reset = until(pool.clone(), AlertType::SlowQuery, false, Duration::from_secs(6)).await;
    table.push(("slow_query", detect, reset));

    // Every connection held, a checkout waiting (a condition).
    let held: Vec<_> = vec![
        pool.get().await.unwrap(),
        pool.get().await.unwrap(),
        pool.get().await.unwrap(),
    ];
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|_| ()) }
    });
    let detect = until(pool.clone(), AlertType::PoolExhaustion, true, Duration::from_secs(3)).await;
    drop(held);
    let _ = waiter.await.unwrap();
    let reset = until(pool.clone(), AlertType::PoolExhaustion, false, Duration::from_secs(5)).await;
    table.push(("pool_exhaustion", detect, reset));

    // A deadlock (an event).
    let _ = support::deadlock(&*pool).await;
    let detect = until(pool.clone(), AlertType::Deadlock, true, Duration::from_secs(3)).await;
    let reset = until(pool.clone(), AlertType::Deadlock, false, Duration::from_secs(6)).await;
    table.push(("deadlock", detect, reset));

    // An error storm: 11 of 30 fail; then 400 that succeed bring the rate
    // under the 5 min threshold.
    let conn = pool.get().await.unwrap();
    for i in 0..30 {
        let sql = if i % 3 == 0 { "SELECT 1 / 0" } else { "SELECT 1" };
        let _ = conn.query(sql, &[]).await;
    }
    let detect = until(pool.clone(), AlertType::HighErrorRate, true, Duration::from_secs(5)).await;
    for _ in 0..400 {
        conn.execute("SELECT 1", &[]).await.unwrap();
    }
    drop(conn);
    let storm_over = Instant::now();
    let keys = |pool: &db_monitor::MonitoredPool<NoTls>| {
        pool.monitor()
            .alerts()
            .active
            .iter()
            .filter(|a| a.alert_type == AlertType::HighErrorRate)
            .map(|a| a.key.clone())
            .collect::<Vec<_>>()
    };
    while keys(&pool).contains(&"5m".to_owned()) {
        assert!(
            storm_over.elapsed() < Duration::from_secs(5),
            "{:#?}",
            pool.monitor().alerts()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    table.push(("high_error_rate (5 min)", detect, storm_over.elapsed()));

    // The server stopped, then back (a condition).
    let stopper = server.clone();
    let stopped = Instant::now();
    tokio::task::spawn_blocking(move || stopper.stop()).await.unwrap();
    let _ = pool.get().await;
    until(
        pool.clone(),
        AlertType::ConnectionFailure,
        true,
        Duration::from_secs(15),
    )
    .await;
    let detect = stopped.elapsed();
    let starter = server.clone();
    tokio::task::spawn_blocking(move || starter.start_again())
        .await
        .unwrap();
    let reset = until(
        pool.clone(),
        AlertType::ConnectionFailure,
        false,
        Duration::from_secs(10),
    )
    .await;
    table.push(("connection_failure", detect, reset));

    for (alert, detect, reset) in &table {
        eprintln!("scenario alert {alert}: detected after {detect:?}, cleared {reset:?} after the fault ended");
    }
    background.shutdown().await;
}

/// Where the pool's time goes: handlers that keep their connection across
/// a slow await (an HTTP call, say) starve the pool without loading the
/// database. Healthy for this detector: the pool full of statements that
/// run (a busy database) with a checkout queued; the `held_idle` alert
/// must stay silent there (the utilization one may fire). Fault: both
/// connections held idle across a 600 ms await, two requests queued:
/// `held_idle` fires, naming the route and call site, and clears once
/// nothing queues. The hold report splits each hold the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_holders_starving_the_pool_are_named_and_a_busy_database_is_not_blamed_on_them() {
    use db_monitor::alerts::AlertType;
    let thresholds = db_monitor::AlertThresholds::default()
        .evaluation_interval(Duration::from_millis(100))
        .clear_after(Duration::from_secs(1));
    let (watcher, _rec) = monitor(MonitorConfig::default().alerts(thresholds).hold_times(true));
    let pool = pool_of_two(&watcher, "holders").await;
    let background = watcher.start(&pool);
    let work = tower::service_fn({
        let pool = pool.clone();
        move |request: Request<Full<Bytes>>| {
            let pool = pool.clone();
            async move {
                let conn = pool.get().await.expect("checkout");
                if request.uri().path() == "/awaits" {
                    conn.execute("SELECT 1", &[]).await.expect("statement");
                    tokio::time::sleep(Duration::from_millis(600)).await;
                    conn.execute("SELECT 1", &[]).await.expect("statement");
                } else {
                    conn.execute("SELECT pg_sleep(0.6)", &[]).await.expect("statement");
                }
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }
        }
    });
    let service = DbMonitorLayer::new(pool.clone())
        .route_label(|_, uri| Some(format!("GET {}", uri.path())))
        .layer(work);
    let held_idle = |pool: &db_monitor::MonitoredPool<NoTls>| {
        pool.monitor()
            .alerts()
            .active
            .into_iter()
            .find(|a| a.alert_type == AlertType::PoolExhaustion && a.key == "held_idle")
    };
    let burst = |path: &'static str, n: usize| {
        (0..n)
            .map(|_| {
                let service = service.clone();
                tokio::spawn(async move { status_of(&service, path).await })
            })
            .collect::<Vec<_>>()
    };

    // A busy database: three statements of 600 ms on two connections.
    let busy = burst("/busy", 3);
    let mut looked = 0;
    while !busy.iter().all(|task| task.is_finished()) {
        assert!(
            held_idle(&pool).is_none(),
            "a busy database blamed on idle holders: {:#?}",
            pool.monitor().alerts()
        );
        looked += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for task in busy {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    assert!(held_idle(&pool).is_none());

    // Idle holders: four requests, each holding its connection 600 ms
    // between two statements, on two connections.
    let started = Instant::now();
    let awaits = burst("/awaits", 4);
    let alert = loop {
        if let Some(alert) = held_idle(&pool) {
            break alert;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "no held_idle alert: {:#?}",
            pool.monitor().alerts()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let detect = started.elapsed();
    assert!(
        alert
            .message
            .contains("held idle by GET /awaits at tests/scenarios.rs:"),
        "{}",
        alert.message
    );
    for task in awaits {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    let ended = Instant::now();
    while held_idle(&pool).is_some() {
        assert!(
            ended.elapsed() < Duration::from_secs(5),
            "held_idle still active: {:#?}",
            pool.monitor().alerts()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reset = ended.elapsed();

    let report = pool.monitor().hold_report(10);
    let awaiting = report
        .holders
        .iter()
        .find(|h| h.route.as_deref() == Some("GET /awaits"))
        .expect("the awaiting route");
    assert_eq!(awaiting.checkouts, 4);
    assert!(awaiting.held_idle_ms_per_checkout >= 599.0, "{awaiting:?}");
    let busy = report
        .holders
        .iter()
        .find(|h| h.route.as_deref() == Some("GET /busy"))
        .expect("the busy route");
    assert!(busy.in_statements_ms_per_checkout >= 600.0, "{busy:?}");
    assert_eq!(
        report.holders[0].route.as_deref(),
        Some("GET /awaits"),
        "the most idle first"
    );
    eprintln!(
        "scenario held_idle: silent over {looked} looks at a busy database; detected after {detect:?}, \
         cleared {reset:?} after the last idle holder returned; {:.0} ms held idle per checkout",
        awaiting.held_idle_ms_per_checkout
    );
    background.shutdown().await;
}

/// Serial reads: three independent 40 ms reads in a row could take 40 ms
/// together; flagged under their route with about 80 ms to save. Where it
/// must stay silent: the same three sent together (pipelined on one
/// connection), three 5 ms reads (under the floor), and reads with a
/// write between them (the later ones may need it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_reads_are_flagged_and_concurrent_short_or_dependent_ones_are_not() {
    let (watcher, _rec) = monitor(MonitorConfig::default());
    let pool = pool_of_two(&watcher, "serial").await;
    let work = tower::service_fn({
        let pool = pool.clone();
        move |request: Request<Full<Bytes>>| {
            let pool = pool.clone();
            async move {
                let conn = pool.get().await.expect("checkout");
                let reads = [
                    "SELECT pg_sleep(0.04) AS customer",
                    "SELECT pg_sleep(0.04) AS orders",
                    "SELECT pg_sleep(0.04) AS stock",
                ];
                match request.uri().path() {
                    "/serial" => {
                        for sql in reads {
                            conn.execute(sql, &[]).await.expect("read");
                        }
                    }
                    "/together" => {
                        let (a, b, c) = tokio::join!(
                            conn.execute(reads[0], &[]),
                            conn.execute(reads[1], &[]),
                            conn.execute(reads[2], &[])
                        );
                        assert!(a.is_ok() && b.is_ok() && c.is_ok());
                    }
                    "/short" => {
                        for sql in ["SELECT pg_sleep(0.005) AS customer", "SELECT pg_sleep(0.005) AS orders"] {
                            conn.execute(sql, &[]).await.expect("read");
                        }
                    }
                    _ => {
                        conn.execute(reads[0], &[]).await.expect("read");
                        conn.execute("SET statement_timeout = 0", &[]).await.expect("write");
                        conn.execute(reads[1], &[]).await.expect("read");
                    }
                }
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }
        }
    });
    let service = DbMonitorLayer::new(pool.clone())
        .route_label(|_, uri| Some(format!("GET {}", uri.path())))
        .layer(work);
    for path in ["/together", "/short", "/written", "/serial", "/together", "/serial"] {
        assert_eq!(status_of(&service, path).await, StatusCode::OK);
    }
    let patterns = pool.monitor().serial_reads();
    assert_eq!(patterns.len(), 1, "only the serial route: {patterns:#?}");
    let serial = &patterns[0];
    assert_eq!(serial.route.as_deref(), Some("GET /serial"));
    assert_eq!((serial.requests, serial.max_reads), (2, 3));
    assert_eq!(serial.statements.len(), 3, "{serial:?}");
    assert!(
        serial
            .checkout_site
            .as_deref()
            .is_some_and(|s| s.starts_with("tests/scenarios.rs:")),
        "the handler's checkout: {serial:?}"
    );
    assert!(
        serial.statements[0]
            .as_deref()
            .is_some_and(|s| s.starts_with("SELECT pg_sleep(?)")),
        "normalized: {serial:?}"
    );
    // Two of the three reads could have run beside the longest: at least
    // 2 × 40 ms.
    assert!(serial.max_saving_ms >= 79.9, "{serial:?}");
    let doc = pool.monitor().comprehensive(5, 10);
    assert_eq!(doc.serial_reads, patterns);
    eprintln!(
        "scenario serial_reads: flagged GET /serial (2 of 2 requests, {:.0} ms to save at most); silent on \
         /together, /short and /written",
        serial.max_saving_ms
    );
}

/// Redundant statements: one request sending the same statement twice
/// with the same parameters (its answer could have been kept) is flagged,
/// by text or prepared; with different parameters it is not, nor is
/// anything when the layer does not look (the default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_repeated_with_the_same_parameters_is_flagged_and_with_others_it_is_not() {
    let (watcher, _rec) = monitor(MonitorConfig::default());
    let pool = pool_of_two(&watcher, "redundant").await;
    let work = tower::service_fn({
        let pool = pool.clone();
        move |request: Request<Full<Bytes>>| {
            let pool = pool.clone();
            async move {
                let conn = pool.get().await.expect("checkout");
                let (first, second): (i32, i32) = if request.uri().path() == "/vary" {
                    (7, 8)
                } else {
                    (7, 7)
                };
                if request.uri().path() == "/prepared" {
                    let statement = conn.prepare("SELECT $1::int AS account").await.expect("prepare");
                    conn.query_one(&statement, &[&first]).await.expect("read");
                    conn.query_one(&statement, &[&second]).await.expect("read");
                } else {
                    conn.query_one("SELECT $1::int AS customer", &[&first])
                        .await
                        .expect("read");
                    conn.query_opt("SELECT $1::int AS customer", &[&second])
                        .await
                        .expect("read");
                }
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }
        }
    });
    let label = |_: &http::Extensions, uri: &http::Uri| Some(format!("GET {}", uri.path()));
    let quiet = DbMonitorLayer::new(pool.clone()).route_label(label).layer(work.clone());
    assert_eq!(status_of(&quiet, "/repeat").await, StatusCode::OK);
    assert!(pool.monitor().redundant_statements().is_empty(), "off by default");

    let service = DbMonitorLayer::new(pool.clone())
        .redundant_statements(true)
        .route_label(label)
        .layer(work);
    for path in ["/vary", "/repeat", "/prepared", "/vary", "/repeat"] {
        assert_eq!(status_of(&service, path).await, StatusCode::OK);
    }
    let mut found: Vec<(Option<String>, Option<String>, u64, u64)> = pool
        .monitor()
        .redundant_statements()
        .into_iter()
        .map(|p| (p.route, p.statement, p.requests, p.max_runs))
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            (
                Some("GET /prepared".to_owned()),
                Some("SELECT ?::int AS account".to_owned()),
                1,
                2
            ),
            (
                Some("GET /repeat".to_owned()),
                Some("SELECT ?::int AS customer".to_owned()),
                2,
                2
            ),
        ],
        "not GET /vary"
    );
    assert_eq!(pool.monitor().comprehensive(5, 10).redundant_statements.len(), 2);
    assert!(
        pool.monitor().redundant_statements().iter().all(|p| p
            .checkout_site
            .as_deref()
            .is_some_and(|s| s.starts_with("tests/scenarios.rs:"))),
        "each names the handler's checkout"
    );
    eprintln!("scenario redundant: flagged GET /repeat (2 of 2) and GET /prepared (1 of 1); silent on GET /vary and with the check off");
}

/// The latency split against a script whose parts are known: a checkout
/// that waits 200 ms for the only connection, two statements pipelined
/// behind a 100 ms sleep, and a stream whose first rows come at once and
/// whose last comes 200 ms later. Each part must show where it is, and
/// only there: the checkout's second statement waited for nothing, a
/// statement run alone queued behind nothing, a collecting `query` has no
/// first row of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latency_split_shows_the_wait_the_queue_and_the_first_row_where_they_are() {
    let (watcher, _rec) = monitor(MonitorConfig::default());
    let pool = pool_with(
        &watcher,
        &unique("split"),
        support::pg::shared_config(),
        1,
        0,
        Duration::from_secs(10),
    )
    .await;
    // The connection made first: no connect inside any wait below.
    drop(pool.get().await.expect("checkout"));

    // The truth of the wait is what the waiting task saw (on a loaded
    // machine it may start late; it must still wait 200 ms once started).
    let held = pool.get().await.expect("checkout");
    let (started, has_started) = tokio::sync::oneshot::channel();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move {
            let asked = Instant::now();
            let _ = started.send(());
            let conn = pool.get().await.expect("checkout");
            let waited = asked.elapsed();
            conn.execute("SELECT 1 AS after_wait", &[]).await.expect("read");
            conn.execute("SELECT 1 AS second_of_checkout", &[]).await.expect("read");
            waited
        }
    });
    has_started.await.expect("the waiting task started");
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(held);
    let waited = waiter.await.expect("the waiting task").as_secs_f64() * 1000.0;

    let conn = pool.get().await.expect("checkout");
    // Prepared: one round trip each, answered in the order sent.
    let ahead = conn.prepare("SELECT pg_sleep(0.1) AS ahead").await.expect("prepare");
    let behind = conn.prepare("SELECT 1 AS behind").await.expect("prepare");
    let (ahead, behind) = tokio::join!(conn.execute(&ahead, &[]), conn.execute(&behind, &[]));
    assert!(ahead.is_ok() && behind.is_ok());
    // As text: each is prepared, then run, in two round trips; the short
    // one's second goes out before the sleep's and overtakes it.
    let (ahead, overtaking) = tokio::join!(
        conn.execute("SELECT pg_sleep(0.1) AS text_ahead", &[]),
        conn.execute("SELECT 1 AS overtaking", &[])
    );
    assert!(ahead.is_ok() && overtaking.is_ok());
    conn.execute("SELECT 1 AS alone", &[]).await.expect("read");
    // 99 rows of 1 kB fill the server's send buffer (8 kB) and go out at
    // once; the last row follows its 200 ms sleep.
    let streamed = "SELECT repeat('x', 1000) AS streamed, pg_sleep(CASE WHEN g = 100 THEN 0.2 ELSE 0 END) \
                    FROM generate_series(1, 100) g";
    let stream = conn
        .query_raw(streamed, std::iter::empty::<i32>())
        .await
        .expect("stream");
    let rows: Vec<_> = futures_util::TryStreamExt::try_collect(stream).await.expect("rows");
    assert_eq!(rows.len(), 100);
    let collected = streamed.replace("AS streamed", "AS collected");
    assert_eq!(conn.query(&collected, &[]).await.expect("rows").len(), 100);
    drop(conn);

    let stats = pool.monitor().query_stats();
    let split = |name: &str| {
        let q = stats
            .iter()
            .find(|q| q.normalized.contains(name))
            .unwrap_or_else(|| panic!("{name} not recorded: {stats:#?}"));
        q.split().expect("finished runs")
    };
    let (after_wait, second) = (split("after_wait"), split("second_of_checkout"));
    assert!(
        waited >= 190.0 && (after_wait.checkout_wait_ms - waited).abs() < 5.0,
        "the task waited {waited:.1} ms: {after_wait:?}"
    );
    assert_eq!(
        second.checkout_wait_ms, 0.0,
        "a checkout's wait is its first statement's"
    );
    let (ahead, behind, alone) = (split("AS ahead"), split("AS behind"), split("AS alone"));
    assert!(ahead.checkout_wait_ms < 150.0, "the pool had the connection: {ahead:?}");
    assert_eq!(ahead.queued_ms, 0.0, "nothing ran before it: {ahead:?}");
    assert!(
        behind.queued_ms >= 90.0 && behind.queued_ms <= behind.last_row_ms,
        "behind the 100 ms sleep: {behind:?}"
    );
    assert_eq!(alone.queued_ms, 0.0, "run alone: {alone:?}");
    let overtaking = split("AS overtaking");
    // Which of the two runs first depends on the order of polls: either
    // way the queue is the truth (all its time behind the sleep, or none).
    assert!(
        if overtaking.last_row_ms < 90.0 {
            overtaking.queued_ms == 0.0
        } else {
            overtaking.queued_ms >= 90.0 && overtaking.queued_ms <= overtaking.last_row_ms
        },
        "{overtaking:?}"
    );
    let (streamed, collected) = (split("AS streamed"), split("AS collected"));
    let first = streamed.first_row_ms.expect("a streamed first row");
    assert!(
        streamed.first_row_runs == 1 && first < 150.0 && streamed.last_row_ms >= 190.0,
        "{streamed:?}"
    );
    assert_eq!(collected.first_row_ms, None, "query collects: no first row of its own");
    assert!(collected.last_row_ms >= 190.0, "{collected:?}");
    assert!([&after_wait, &second, &ahead, &behind, &alone, &streamed, &collected]
        .iter()
        .all(|s| s.first_row_ms.is_none() || s.first_row_runs > 0));

    // The query-performance report's window shows the same split.
    let report = pool.monitor().query_performance(5, 50);
    let windowed = report
        .by_statement
        .iter()
        .find(|s| s.statement.contains("AS behind"))
        .and_then(|s| s.split.clone())
        .expect("behind in the report");
    assert!(
        (windowed.queued_ms - behind.queued_ms).abs() < 1e-6,
        "{windowed:?} against {behind:?}"
    );
    eprintln!(
        "scenario latency_split: checkout wait {:.1} ms on the first statement (0 on the second); queued {:.1} ms \
         behind a 100 ms sleep (0 alone, 0 ahead); first row {first:.1} ms, last {:.1} ms (a collecting query: \
         none)",
        after_wait.checkout_wait_ms, behind.queued_ms, streamed.last_row_ms
    );
}

/// Tags other tools read: with `sql_comments` on, the server sees each
/// statement with its request's route as a sqlcommenter comment (in
/// `pg_stat_activity`, text and prepared alike), while
/// `pg_stat_statements` and the monitor still count one statement; each
/// route prepares its own variant once per connection. With a trace
/// context, a statement sent as text carries its `traceparent` too (a
/// prepared one does not: it would be prepared again for every trace).
/// Off (another layer on the same pool), nothing is added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_comments_reach_the_server_and_leave_its_statement_groups_whole() {
    let server = TempPostgres::start(&["-c", "shared_preload_libraries=pg_stat_statements"]);
    let (outside, connection) = server.config().connect(NoTls).await.expect("connect");
    tokio::spawn(connection);
    outside
        .batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .expect("the extension");
    let trace = || db_monitor::TraceParent::new([0xab; 16], [0xcd; 8], true);
    let (watcher, _rec) = monitor(MonitorConfig::default().trace_context(trace));
    let pool = pool_with(
        &watcher,
        &unique("comments"),
        server.config(),
        1,
        0,
        Duration::from_secs(10),
    )
    .await;
    let work = tower::service_fn({
        let pool = pool.clone();
        move |_: Request<Full<Bytes>>| {
            let pool = pool.clone();
            async move {
                let conn = pool.get().await.expect("checkout");
                conn.execute("SELECT pg_sleep(0.3) AS tagged_sleep", &[])
                    .await
                    .expect("sleep");
                let cached = conn.prepare_cached("SELECT $1::int AS cached").await.expect("prepare");
                let row = conn.query_one(&cached, &[&7_i32]).await.expect("read");
                assert_eq!(row.get::<_, i32>(0), 7);
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }
        }
    });
    let label = |_: &http::Extensions, uri: &http::Uri| Some(format!("GET {}", uri.path()));
    let tagged = DbMonitorLayer::new(pool.clone())
        .route_label(label)
        .sql_comments(true)
        .layer(work.clone());
    let untagged = DbMonitorLayer::new(pool.clone()).route_label(label).layer(work);

    // What the server shows while each request's sleep runs.
    async fn seen_while<F: std::future::Future<Output = StatusCode>>(
        outside: &db_monitor::tokio_postgres::Client,
        request: F,
    ) -> String {
        let watch = async {
            for _ in 0..100 {
                let rows = outside
                    .query(
                        "SELECT query FROM pg_stat_activity WHERE query LIKE '%AS tagged_sleep%' \
                         AND pid <> pg_backend_pid()",
                        &[],
                    )
                    .await
                    .expect("pg_stat_activity");
                if let Some(row) = rows.first() {
                    return row.get::<_, String>(0);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            String::new()
        };
        let (status, seen) = tokio::join!(request, watch);
        assert_eq!(status, StatusCode::OK);
        seen
    }
    let on_a = seen_while(&outside, status_of(&tagged, "/a")).await;
    let traceparent = format!("00-{}-{}-01", "ab".repeat(16), "cd".repeat(8));
    assert_eq!(
        on_a,
        format!("SELECT pg_sleep(0.3) AS tagged_sleep /*route='GET%20%2Fa',traceparent='{traceparent}'*/")
    );
    let on_b = seen_while(&outside, status_of(&tagged, "/b")).await;
    assert!(
        on_b.ends_with(&format!("/*route='GET%20%2Fb',traceparent='{traceparent}'*/")),
        "{on_b}"
    );
    let plain = seen_while(&outside, status_of(&untagged, "/plain")).await;
    assert_eq!(plain, "SELECT pg_sleep(0.3) AS tagged_sleep", "off: nothing added");
    assert_eq!(status_of(&tagged, "/a").await, StatusCode::OK);

    // The prepared statement: one variant per route on the one connection
    // (a, b, the untagged one; the second /a hits its variant).
    let info = &pool.monitor().snapshot().open_connections[0];
    assert_eq!(
        (info.prepared_cache_misses, info.prepared_cache_hits),
        (3, 1),
        "{info:?}"
    );
    // The server keeps one row per statement, whatever the comments.
    let rows = outside
        .query(
            "SELECT query, calls FROM pg_stat_statements WHERE query LIKE '%AS tagged_sleep%' \
             OR query LIKE '%AS cached%' ORDER BY query",
            &[],
        )
        .await
        .expect("pg_stat_statements");
    let calls: Vec<i64> = rows.iter().map(|r| r.get(1)).collect();
    // Its text is the first one it saw: the prepared statement's, tagged
    // in the first route that prepared it.
    let cached: String = rows[0].get(0);
    assert_eq!(cached, "SELECT $1::int AS cached /*route='GET%20%2Fa'*/");
    assert_eq!(
        calls,
        vec![4, 4],
        "one row each: {:?}",
        rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>()
    );
    // And so does the monitor, under the text as written.
    let stats = pool.monitor().query_stats();
    let ours: Vec<_> = stats
        .iter()
        .filter(|q| q.normalized.contains("tagged_sleep") || q.normalized.contains("AS cached"))
        .map(|q| (q.normalized.clone(), q.calls))
        .collect();
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert!(
        ours.iter().all(|(text, calls)| *calls == 4 && !text.contains("route")),
        "{ours:?}"
    );
    eprintln!(
        "scenario sql_comments: pg_stat_activity showed the route on 2 of 2 tagged requests and on none of the \
         untagged one; pg_stat_statements kept one row per statement (4 calls each)"
    );
}
