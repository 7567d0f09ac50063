//! `DbMonitorLayer` in-process (`oneshot`): every route with known store
//! contents, every bad input, the token rules, and the pass-through path
//! with its per-request statistics.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use db_monitor::tokio_postgres::NoTls;
use db_monitor::{DbMonitorLayer, MonitorConfig, MonitoredPool, RequestDbStats};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use support::http::{call, call_with, get_json};
use support::{deadlock, monitor, pool, unique};
use tower::{service_fn, Layer, ServiceExt};

const TOKEN: &str = "s3cret-token";

/// An inner service that runs `statements` copies of one statement on
/// `pool` and answers with what its request scope saw.
fn app(
    pool: MonitoredPool<NoTls>,
    layer: DbMonitorLayer,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<db_monitor::layer::ResponseBody<Full<Bytes>>>,
    Error = Infallible,
> + Clone {
    layer.layer(service_fn(move |request: Request<Full<Bytes>>| {
        let pool = pool.clone();
        async move {
            let runs: usize = request
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("runs="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let from_extensions = request.extensions().get::<RequestDbStats>().cloned();
            let conn = pool.get().await.expect("checkout");
            for i in 0..runs {
                conn.query("SELECT $1::int + 1", &[&(i as i32)])
                    .await
                    .expect("statement");
            }
            let current = RequestDbStats::current().expect("a request scope").snapshot();
            if let Some(from_extensions) = &from_extensions {
                assert_eq!(from_extensions.snapshot(), current);
            }
            let body = format!("inner saw {} statements", current.statements);
            let mut response = Response::new(Full::new(Bytes::from(body)));
            if from_extensions.is_some() {
                response
                    .headers_mut()
                    .insert("x-in-extensions", HeaderValue::from_static("1"));
            }
            Ok::<_, Infallible>(response)
        }
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_json_from_the_stores_without_literals() {
    let (monitor, _rec) = monitor(MonitorConfig::default().slow_query_threshold(Duration::from_millis(100)));
    let pool = pool(&monitor, "layer_routes", 4).await;
    let conn = pool.get().await.unwrap();
    conn.query("SELECT pg_sleep(0.12), 'secret-literal-42'", &[])
        .await
        .unwrap();
    let table = unique("layer");
    conn.batch_execute(&format!("CREATE TABLE {table} (id int PRIMARY KEY)"))
        .await
        .unwrap();
    conn.execute(&format!("INSERT INTO {table} VALUES (731958246)"), &[])
        .await
        .unwrap();
    let duplicate = conn
        .execute(&format!("INSERT INTO {table} VALUES (731958246)"), &[])
        .await;
    assert!(duplicate.is_err());
    drop(conn);
    let _ = deadlock(&pool).await;
    pool.monitor().sample();
    pool.monitor().evaluate_alerts();
    let service = app(pool.clone(), DbMonitorLayer::new(pool.clone()).admin_token(TOKEN));

    let health = get_json(&service, "/health/database").await;
    assert_eq!(health["status"], "healthy");
    assert!(health["ping_ms"].as_f64().is_some());
    assert!(
        health["checkout_ms"].as_f64().is_some(),
        "the checkout apart from the answer"
    );
    let everything = get_json(&service, "/health/database/metrics/comprehensive?minutes=5&limit=50").await;
    for key in [
        "pool",
        "recent_statements",
        "performance",
        "queries",
        "slow_queries",
        "errors",
        "pool_trend",
        "n_plus_one",
        "alerts",
    ] {
        assert!(everything.get(key).is_some(), "comprehensive lacks {key}");
    }
    let queries = get_json(&service, "/health/database/metrics/query-performance?minutes=5").await;
    assert!(queries["overall"]["count"].as_u64().unwrap() >= 5);
    let slow = get_json(&service, "/health/database/metrics/slow-queries?limit=5").await;
    assert_eq!(slow["groups"][0]["statement"], "SELECT pg_sleep(?), ?");
    let trend = get_json(&service, "/health/database/metrics/pool-trends").await;
    assert_eq!(trend["samples"].as_array().unwrap().len(), 1);
    let errors = get_json(&service, "/health/database/errors?minutes=10").await;
    assert_eq!(errors["by_type"]["constraint_violation"], 1);
    assert_eq!(errors["by_type"]["deadlock"], 1);
    let alerts = get_json(&service, "/health/database/alerts").await;
    let active = alerts["active"].as_array().unwrap();
    assert!(active.iter().any(|a| a["alert_type"] == "deadlock"), "{alerts}");
    assert!(active.iter().any(|a| a["alert_type"] == "slow_query"), "{alerts}");
    let history = get_json(&service, "/health/database/alerts/history?limit=3").await;
    assert_eq!(history["resolved"].as_array().unwrap().len(), 0);
    let score = get_json(&service, "/health/database/performance?minutes=1440").await;
    assert!(score["score"].as_f64().unwrap() < 100.0);
    // HEAD is answered like GET.
    let (status, _, _) = call(&service, Method::HEAD, "/health/database/alerts", None).await;
    assert_eq!(status, StatusCode::OK);

    for json in [&everything, &queries, &slow, &errors, &alerts, &score] {
        let text = json.to_string();
        // Nine digits: a shorter number can turn up inside a timestamp.
        for literal in ["secret-literal-42", "731958246"] {
            assert!(!text.contains(literal), "a literal leaked: {text}");
        }
    }

    // Resolving: unknown id 404, a real one 200, then it is gone.
    let (status, _, body) = call(
        &service,
        Method::POST,
        "/health/database/alerts/0123456789abcdef/resolve",
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{}", String::from_utf8_lossy(&body));
    let id = active[0]["id"].as_str().unwrap();
    let uri = format!("/health/database/alerts/{id}/resolve");
    let (status, _, body) = call(&service, Method::POST, &uri, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let resolved: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (resolved["status"].as_str(), resolved["resolved_by"].as_str()),
        (Some("resolved"), Some("http"))
    );
    assert_eq!(
        call(&service, Method::POST, &uri, Some(TOKEN)).await.0,
        StatusCode::NOT_FOUND
    );

    // Resets.
    let (status, _, _) = call(&service, Method::POST, "/health/database/errors/reset", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(get_json(&service, "/health/database/errors").await["errors"], 0);
    let (status, _, _) = call(
        &service,
        Method::POST,
        "/health/database/metrics/comprehensive/reset",
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        get_json(&service, "/health/database/metrics/slow-queries").await["occurrences"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_json_4xx_naming_what_was_wrong() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, "layer_bad_input", 2).await;
    let service = app(pool.clone(), DbMonitorLayer::new(pool.clone()).admin_token(TOKEN));
    let bad = [
        ("/health/database/metrics/query-performance?minutes=abc", "minutes"),
        ("/health/database/metrics/query-performance?minutes=-5", "minutes"),
        ("/health/database/metrics/query-performance?minutes=0", "minutes"),
        ("/health/database/metrics/pool-trends?minutes=1441", "minutes"),
        ("/health/database/errors?minutes=99999999999999999999999999", "minutes"),
        ("/health/database/errors?minutes=", "minutes"),
        ("/health/database/errors?minutes=1.5", "minutes"),
        ("/health/database/metrics/slow-queries?limit=0", "limit"),
        ("/health/database/metrics/slow-queries?limit=1001", "limit"),
        ("/health/database/alerts/history?limit=%31", "limit"),
        ("/health/database/metrics/holders?limit=x", "limit"),
        ("/health/database/performance?minutes=5&minutes=6", "minutes"),
    ];
    for (uri, parameter) in bad {
        let (status, headers, body) = call(&service, Method::GET, uri, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(headers["content-type"], "application/json");
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["parameter"], parameter, "{uri}: {json}");
        assert_eq!(json["error"], "invalid_parameter");
        assert!(json["message"].as_str().unwrap().starts_with(parameter));
    }
    // Unknown parameters are ignored; edges are accepted.
    get_json(
        &service,
        "/health/database/metrics/query-performance?minutes=1440&limit=1000&x=y",
    )
    .await;
    get_json(&service, "/health/database/metrics/query-performance?minutes=1&limit=1").await;

    for uri in [
        "/health/database/nope",
        "/health/database/metrics",
        "/health/database/alerts/x/y/z",
    ] {
        let (status, _, body) = call(&service, Method::GET, uri, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"], "not_found");
    }
    let (status, headers, _) = call(&service, Method::POST, "/health/database/alerts", Some(TOKEN)).await;
    assert_eq!(
        (status, &headers["allow"]),
        (StatusCode::METHOD_NOT_ALLOWED, &"GET, HEAD".parse().unwrap())
    );
    let (status, headers, _) = call(&service, Method::GET, "/health/database/errors/reset", None).await;
    assert_eq!(
        (status, &headers["allow"]),
        (StatusCode::METHOD_NOT_ALLOWED, &"POST".parse().unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_routes_need_the_token_and_are_refused_without_one() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, "layer_tokens", 2).await;
    let guarded = app(pool.clone(), DbMonitorLayer::new(pool.clone()).admin_token(TOKEN));
    let reset = "/health/database/errors/reset";
    let (status, headers, _) = call(&guarded, Method::POST, reset, None).await;
    assert_eq!(
        (status, &headers["www-authenticate"]),
        (StatusCode::UNAUTHORIZED, &"Bearer".parse().unwrap())
    );
    assert_eq!(
        call(&guarded, Method::POST, reset, Some("s3cret-tokeN")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&guarded, Method::POST, reset, Some("s3cret")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(call(&guarded, Method::POST, reset, Some(TOKEN)).await.0, StatusCode::OK);

    let open = app(pool.clone(), DbMonitorLayer::new(pool.clone()));
    let (status, _, body) = call(&open, Method::POST, reset, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&body).contains("no admin token is configured"));

    // An empty or blank token is no token: an empty `Bearer` cannot pass.
    for blank in ["", "  "] {
        let empty = app(pool.clone(), DbMonitorLayer::new(pool.clone()).admin_token(blank));
        let request = Request::post(reset)
            .header("authorization", HeaderValue::from_static("Bearer "))
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(
            empty.clone().oneshot(request).await.unwrap().status(),
            StatusCode::FORBIDDEN,
            "token {blank:?}"
        );
    }

    let closed = app(
        pool.clone(),
        DbMonitorLayer::new(pool.clone()).read_guard(|parts| parts.headers.contains_key("x-internal")),
    );
    assert_eq!(
        call(&closed, Method::GET, "/health/database/alerts", None).await.0,
        StatusCode::FORBIDDEN
    );
    let request = Request::get("/health/database/alerts")
        .header("x-internal", "1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(closed.clone().oneshot(request).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_past_their_share_of_bytes_get_429_and_the_health_check_still_answers() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, "layer_budget", 2).await;
    let layer = DbMonitorLayer::new(pool.clone()).max_bytes_per_second(Some(100));
    let service = app(pool.clone(), layer);
    // The first answer is sent whole (it is larger than a second's worth)…
    let uri = "/health/database/metrics/comprehensive";
    let (status, _, body) = call(&service, Method::GET, uri, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.len() > 100);
    // …and paid for afterwards: the next documents wait.
    let (status, headers, body) = call(&service, Method::GET, "/health/database/alerts", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1, "{retry}");
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"], "too_many_requests");
    assert_eq!(
        call(&service, Method::GET, "/health/database", None).await.0,
        StatusCode::OK,
        "the health check is not counted"
    );
    // Without a limit, nothing waits.
    let open = app(
        pool.clone(),
        DbMonitorLayer::new(pool.clone()).max_bytes_per_second(None),
    );
    for _ in 0..5 {
        assert_eq!(call(&open, Method::GET, uri, None).await.0, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_routes_can_require_the_admin_token_while_the_health_check_stays_open() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, "layer_read_tokens", 2).await;
    let layer = DbMonitorLayer::new(pool.clone())
        .admin_token(TOKEN)
        .reads_need_token(true);
    let service = app(pool.clone(), layer);
    for uri in [
        "/health/database/alerts",
        "/health/database/metrics/comprehensive",
        "/health/database/errors?minutes=5",
    ] {
        let (status, headers, _) = call(&service, Method::GET, uri, None).await;
        assert_eq!(
            (status, &headers["www-authenticate"]),
            (StatusCode::UNAUTHORIZED, &"Bearer".parse().unwrap()),
            "{uri}"
        );
        assert_eq!(
            call(&service, Method::GET, uri, Some("wrong")).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&service, Method::GET, uri, Some(TOKEN)).await.0,
            StatusCode::OK,
            "{uri}"
        );
    }
    assert_eq!(
        call(&service, Method::GET, "/health/database", None).await.0,
        StatusCode::OK,
        "the health check needs no token"
    );
    // The token is asked for before the parameters are read: a stranger
    // learns nothing about a route.
    assert_eq!(
        call(&service, Method::GET, "/health/database/errors?minutes=abc", None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    let no_token = app(pool.clone(), DbMonitorLayer::new(pool.clone()).reads_need_token(true));
    let (status, _, body) = call(&no_token, Method::GET, "/health/database/alerts", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&body).contains("reading routes are disabled"));
}

/// A scrape sees the pool as it is: the connections used by a burst that
/// has ended are idle in the exposition (the gauges are published at the
/// scrape, not only at the checkouts, which publish at most four times a
/// second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_sees_the_pool_as_it_is_after_traffic_stops() {
    let (recorder, handle, _upkeep) = db_monitor::prometheus::PrometheusSetup::new().build();
    let monitor =
        db_monitor::DbMonitor::with_recorder(MonitorConfig::default(), std::sync::Arc::new(recorder)).unwrap();
    let pool = pool(&monitor, "layer_fresh_gauges", 4).await;
    let service = app(pool.clone(), DbMonitorLayer::new(pool.clone()).prometheus(handle));
    let held: Vec<_> = futures_util::future::join_all((0..4).map(|_| pool.get())).await;
    assert!(held.iter().all(Result::is_ok));
    drop(held);
    let (status, _, body) = call(&service, Method::GET, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body.to_vec()).unwrap();
    let used = text
        .lines()
        .find(|l| l.starts_with("db_client_connection_count{") && l.contains("db_client_connection_state=\"used\""))
        .unwrap_or_else(|| panic!("no used gauge in:\n{text}"));
    assert!(used.ends_with(" 0"), "{used}");
}

/// With reads behind the token, the dashboard's page and assets (no data)
/// still load in a browser, which sends no `Authorization` when it opens a
/// page; its data stays guarded. `…/dashboard/` is sent to `…/dashboard`,
/// where its relative links resolve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_loads_without_the_token_and_its_data_needs_it() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, "layer_dashboard_token", 2).await;
    let layer = DbMonitorLayer::new(pool.clone())
        .admin_token(TOKEN)
        .reads_need_token(true);
    let service = app(pool.clone(), layer);
    for asset in [
        "dashboard",
        "dashboard/app.js",
        "dashboard/app.css",
        "dashboard/favicon.svg",
    ] {
        let (status, _, body) = call(&service, Method::GET, &format!("/health/database/{asset}"), None).await;
        assert_eq!(status, StatusCode::OK, "{asset}");
        assert!(!body.is_empty());
    }
    let (status, _, _) = call(&service, Method::GET, "/health/database/metrics/series", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the data the page reads");
    let (status, headers, _) = call(&service, Method::GET, "/health/database/dashboard/?x=1", None).await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(headers["location"], "/health/database/dashboard?x=1");
}

/// The scheme is matched in any case (RFC 9110); wrong tokens past ten a
/// second are refused without a comparison, for a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_scheme_is_case_insensitive_and_guessing_is_slowed() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, "layer_token_check", 2).await;
    let layer = DbMonitorLayer::new(pool.clone())
        .admin_token(TOKEN)
        .reads_need_token(true);
    let service = app(pool.clone(), layer);
    let uri = "/health/database/alerts";
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let header = format!("{scheme} {TOKEN}");
        assert_eq!(
            call_with(&service, Method::GET, uri, Some(&header)).await.0,
            StatusCode::OK,
            "{scheme}"
        );
    }
    assert_eq!(
        call_with(&service, Method::GET, uri, Some(&format!("Basic {TOKEN}")))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let mut statuses = Vec::new();
    for i in 0..30 {
        statuses.push(call(&service, Method::GET, uri, Some(&format!("guess-{i}"))).await.0);
    }
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    let (status, headers, _) = call(&service, Method::GET, uri, Some(TOKEN)).await;
    assert_eq!(
        (status, &headers["retry-after"]),
        (StatusCode::TOO_MANY_REQUESTS, &"1".parse().unwrap())
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        call(&service, Method::GET, uri, Some(TOKEN)).await.0,
        StatusCode::OK,
        "a second later"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_prefix_is_refused_so_the_application_keeps_its_routes() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, "layer_root", 2).await;
    for root in ["", "/", "//"] {
        let service = app(pool.clone(), DbMonitorLayer::new(pool.clone()).prefix(root));
        let (status, _, body) = call(&service, Method::GET, "/items?runs=1", None).await;
        assert_eq!(
            (status, &body[..]),
            (StatusCode::OK, &b"inner saw 1 statements"[..]),
            "prefix {root:?}"
        );
        assert_eq!(
            call(&service, Method::GET, "/alerts", None).await.1.get("content-type"),
            None,
            "prefix {root:?}: the inner service answers"
        );
        assert_eq!(
            call(&service, Method::GET, "/health/database/alerts", None).await.0,
            StatusCode::OK,
            "prefix {root:?}: the routes stay where they were"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_timing_is_only_for_requests_that_may_read_the_monitor() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, "layer_timing", 2).await;
    // Off by default, as the request's extension is.
    let default = app(pool.clone(), DbMonitorLayer::new(pool.clone()));
    let (status, headers, body) = call(&default, Method::GET, "/items?runs=2", None).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"inner saw 2 statements"[..]));
    assert!(headers.get("server-timing").is_none(), "off by default");
    assert!(
        headers.get("x-in-extensions").is_none(),
        "not in the extensions by default"
    );

    let guarded = app(
        pool.clone(),
        DbMonitorLayer::new(pool.clone())
            .server_timing(true)
            .read_guard(|parts| parts.headers.contains_key("x-internal")),
    );
    let (status, headers, _) = call(&guarded, Method::GET, "/items?runs=2", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("server-timing").is_none(), "refused by the read guard");
    let request = Request::get("/items?runs=2")
        .header("x-internal", "1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = guarded.clone().oneshot(request).await.unwrap();
    assert!(
        response.headers().get("server-timing").is_some(),
        "allowed by the read guard"
    );

    let tokened = app(
        pool.clone(),
        DbMonitorLayer::new(pool.clone())
            .server_timing(true)
            .admin_token(TOKEN)
            .reads_need_token(true),
    );
    let (_, headers, _) = call(&tokened, Method::GET, "/items?runs=1", None).await;
    assert!(headers.get("server-timing").is_none(), "no token");
    let (_, headers, _) = call(&tokened, Method::GET, "/items?runs=1", Some(TOKEN)).await;
    assert!(headers.get("server-timing").is_some(), "the admin token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passing_requests_get_their_own_statistics_server_timing_and_n_plus_one() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, "layer_pass", 2).await;
    let layer = DbMonitorLayer::new(pool.clone())
        .server_timing(true)
        .request_extension(true)
        .prefix("/db/")
        .n_plus_one_threshold(5)
        .route_label(|_, uri| Some(uri.path().to_owned()));
    let service = app(pool.clone(), layer);

    let (status, headers, body) = call(&service, Method::GET, "/items?runs=3", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "inner saw 3 statements", "the inner body passes untouched");
    assert!(
        headers.get("x-in-extensions").is_some(),
        "in the extensions when asked for"
    );
    let timing = headers["server-timing"].to_str().unwrap();
    assert!(
        timing.starts_with("db;dur=") && timing.ends_with(";desc=\"3 queries\""),
        "{timing}"
    );
    let ms: f64 = timing["db;dur=".len()..timing.find(";desc").unwrap()].parse().unwrap();
    assert!(ms > 0.0 && ms < 5000.0, "{ms}");
    assert!(
        pool.monitor().comprehensive(5, 10).n_plus_one.is_empty(),
        "3 runs is no N+1 at 5"
    );

    // Six runs of one statement in one request: an N+1 pattern, once per
    // request, under the route.
    for _ in 0..2 {
        let (_, headers, _) = call(&service, Method::GET, "/items?runs=6", None).await;
        assert_eq!(
            headers["server-timing"].to_str().unwrap().split("desc=").nth(1),
            Some("\"6 queries\"")
        );
    }
    let patterns = pool.monitor().comprehensive(5, 10).n_plus_one;
    assert_eq!(patterns.len(), 1, "{patterns:#?}");
    assert_eq!(patterns[0].route.as_deref(), Some("/items"));
    assert_eq!(patterns[0].statement.as_deref(), Some("SELECT ?::int + ?"));
    assert_eq!((patterns[0].requests, patterns[0].max_runs), (2, 6));
    // Where the handler took its connection.
    let site = patterns[0].checkout_site.as_deref().unwrap_or_default();
    assert!(site.starts_with("tests/layer.rs:"), "{site:?}");
    let recent = pool.monitor().recent_statements(1);
    assert_eq!(recent[0].route.as_deref(), Some("/items"));

    // The prefix moved; the old one is the application's now.
    let (status, _, body) = call(&service, Method::GET, "/health/database", None).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"inner saw 0 statements"[..]));
    get_json(&service, "/db").await;
    get_json(&service, "/db/alerts").await;
    // Statements outside any request have no scope and no route.
    assert!(RequestDbStats::current().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_when_the_database_cannot_answer() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let config = support::pg::refused_config();
    let builder = db_monitor::bb8::Pool::builder()
        .max_size(1)
        .min_idle(Some(0))
        .connection_timeout(Duration::from_millis(200));
    let pool = monitor.pool_unchecked(monitor.manager("layer_down", config, NoTls), builder);
    let service = app(
        pool.clone(),
        DbMonitorLayer::new(pool.clone()).health_timeout(Duration::from_secs(2)),
    );
    let (status, headers, body) = call(&service, Method::GET, "/health/database", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["content-type"], "application/json");
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["status"], "unhealthy");
    assert!(json["error"].as_str().unwrap().contains("connect"), "{json}");
}

/// The health check is the monitor's own work: its checkout and
/// `SELECT 1` are not among the application's statements or checkouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_are_not_counted_as_the_application_s_work() {
    let (monitor, rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, "layer_health_own", 2).await;
    let service = app(
        pool.clone(),
        DbMonitorLayer::new(pool.clone()).cache_for(Duration::ZERO),
    );
    for _ in 0..5 {
        let (status, _, _) = call(&service, Method::GET, "/health/database", None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let statements = pool.monitor().query_performance(60, 50);
    assert!(statements.by_statement.is_empty(), "{statements:#?}");
    assert!(pool.monitor().recent_statements(10).is_empty());
    assert_eq!(
        rec.count("db_client_connection_wait_time_seconds", &[]),
        0,
        "no checkout recorded"
    );
}

/// A flood of the health route costs the database one ping per second of
/// reuse, however many clients ask: 64 at once, for 2 s, make at most a
/// ping at the start and one a second after (with a second's margin for a
/// late answer on a loaded machine). (tests/flood.rs counted them from
/// the exposition, where the monitor's own pings are not: it could not
/// fail. Without the reuse this counts over a thousand.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_the_health_route_pings_the_database_once_a_second() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, "layer_health_flood", 2).await;
    let service = app(pool.clone(), DbMonitorLayer::new(pool.clone()));
    // Each ping checks a connection out of bb8 (the monitor does not
    // record its own statements); nothing else checks out here.
    let pings = || pool.inner().state().statistics.get_started;
    let before = pings();
    let started = std::time::Instant::now();
    let flood = (0..64).map(|_| async {
        let mut answered = 0;
        while started.elapsed() < Duration::from_secs(2) {
            let (status, _, _) = call(&service, Method::GET, "/health/database", None).await;
            assert_eq!(status, StatusCode::OK);
            answered += 1;
        }
        answered
    });
    let answered: u32 = futures_util::future::join_all(flood).await.into_iter().sum();
    let seconds = started.elapsed().as_secs_f64().ceil() as u64;
    let during = pings() - before;
    assert!(answered >= 64, "every client was answered: {answered}");
    assert!(
        (1..=seconds + 2).contains(&during),
        "{during} pings for {answered} answers over {seconds} s"
    );
}

/// With no `route_label`, a request axum routed is labelled with its
/// method and route (GET, PATCH and DELETE of one path are three routes),
/// and a gRPC request with its path; other requests have none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_routes_carry_the_method_and_grpc_paths_label_themselves() {
    use axum::routing::get;
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, "layer_default_routes", 2).await;
    let handler = |axum::extract::State(pool): axum::extract::State<MonitoredPool<NoTls>>| async move {
        let conn = pool.get().await.unwrap();
        conn.query_one("SELECT 1::int", &[]).await.unwrap();
        "ok"
    };
    let router = axum::Router::new()
        .route("/stories/{id}", get(handler).patch(handler).delete(handler))
        .with_state(pool.clone())
        .layer(DbMonitorLayer::new(pool.clone()));
    let route_of_last = |pool: MonitoredPool<NoTls>| pool.monitor().recent_statements(1)[0].route.clone();
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let request = Request::builder()
            .method(method.clone())
            .uri("/stories/14")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(route_of_last(pool.clone()), Some(format!("{method} /stories/{{id}}")));
    }

    // A gRPC call (as tonic sends it) outside axum: its path is the label;
    // a path no service would have is none.
    let grpc = DbMonitorLayer::new(pool.clone()).layer(service_fn({
        let pool = pool.clone();
        move |_: Request<Full<Bytes>>| {
            let pool = pool.clone();
            async move {
                let conn = pool.get().await.unwrap();
                conn.query_one("SELECT 2::int", &[]).await.unwrap();
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }
        }
    }));
    for (path, label) in [
        (
            "/stories.v1.Stories/Get".to_owned(),
            Some("/stories.v1.Stories/Get".to_owned()),
        ),
        (format!("/{}", "x".repeat(300)), None),
    ] {
        let request = Request::builder()
            .method(Method::POST)
            .uri(&path)
            .header("content-type", "application/grpc")
            .body(Full::new(Bytes::new()))
            .unwrap();
        grpc.clone().oneshot(request).await.unwrap();
        assert_eq!(route_of_last(pool.clone()), label);
    }
    let plain = Request::builder()
        .uri("/stories.v1.Stories/Get")
        .body(Full::new(Bytes::new()))
        .unwrap();
    grpc.clone().oneshot(plain).await.unwrap();
    assert_eq!(route_of_last(pool.clone()), None, "not gRPC: no label");
}

/// An axum handler takes `RequestDbStats` as an extractor (from the
/// request's scope: no extension needed), or `Option<RequestDbStats>`;
/// outside the layer the first is a 500 that says why, the second `None`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_handlers_take_request_db_stats_as_an_extractor() {
    use axum::routing::get;
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, "layer_extractor", 2).await;
    let two = |axum::extract::State(pool): axum::extract::State<MonitoredPool<NoTls>>, db: RequestDbStats| async move {
        let conn = pool.get().await.unwrap();
        for _ in 0..2 {
            conn.query_one("SELECT 1::int", &[]).await.unwrap();
        }
        format!("{} statements", db.snapshot().statements)
    };
    let maybe = |db: Option<RequestDbStats>| async move { format!("{}", db.is_some()) };
    let routes = || {
        axum::Router::new()
            .route("/two", get(two))
            .route("/maybe", get(maybe))
            .with_state(pool.clone())
    };
    let text = |router: axum::Router, path: &'static str| async move {
        let request = Request::builder().uri(path).body(axum::body::Body::empty()).unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    };
    let layered = routes().layer(DbMonitorLayer::new(pool.clone()));
    assert_eq!(
        text(layered.clone(), "/two").await,
        (StatusCode::OK, "2 statements".to_owned())
    );
    assert_eq!(text(layered, "/maybe").await, (StatusCode::OK, "true".to_owned()));
    let (status, body) = text(routes(), "/two").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("did not pass through DbMonitorLayer"), "{body}");
    assert_eq!(text(routes(), "/maybe").await, (StatusCode::OK, "false".to_owned()));
}

/// Each route's requests add up (requests, statements and database time
/// per request, its p95, requests with a failure), and a failure inside a
/// request is kept with its route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_have_their_own_table_and_errors_their_route() {
    use axum::routing::get;
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, "layer_route_table", 2).await;
    let three = |axum::extract::State(pool): axum::extract::State<MonitoredPool<NoTls>>| async move {
        let conn = pool.get().await.unwrap();
        for _ in 0..3 {
            conn.query_one("SELECT pg_sleep(0.002)::text", &[]).await.unwrap();
        }
        "ok"
    };
    let fail = |axum::extract::State(pool): axum::extract::State<MonitoredPool<NoTls>>| async move {
        let conn = pool.get().await.unwrap();
        conn.query_one("SELECT 1/0", &[]).await.unwrap_err();
        "failed"
    };
    let router = axum::Router::new()
        .route("/three", get(three))
        .route("/fail", get(fail))
        .with_state(pool.clone())
        .layer(DbMonitorLayer::new(pool.clone()));
    for path in ["/three", "/three", "/three", "/three", "/fail"] {
        let request = Request::builder().uri(path).body(axum::body::Body::empty()).unwrap();
        router.clone().oneshot(request).await.unwrap();
    }
    let routes = pool.monitor().route_report();
    assert_eq!(routes.len(), 2, "{routes:#?}");
    let three = &routes[0];
    assert_eq!(three.route, "GET /three", "the most database time first");
    assert_eq!(
        (three.requests, three.statements, three.requests_with_errors),
        (4, 12, 0)
    );
    assert_eq!(three.statements_per_request, 3.0);
    assert!(three.database_ms_per_request >= 6.0, "{three:?}");
    assert!(three.p95_database_ms.unwrap() >= 6.0 * 0.9, "{three:?}");
    assert_eq!(
        (routes[1].route.as_str(), routes[1].requests_with_errors),
        ("GET /fail", 1)
    );

    let errors = pool.monitor().error_report(None);
    assert_eq!(errors.recent[0].route.as_deref(), Some("GET /fail"), "{errors:#?}");
    let doc = pool.monitor().comprehensive(60, 10);
    assert_eq!(doc.routes, routes);
}

/// Where the pool's time goes: a route that holds its connection across a
/// 200 ms await (a slow HTTP call, say) shows at least 200 ms held idle per
/// checkout, at its own `get()` call site; a route that only runs a
/// statement spends its hold in it; a checkout outside any request has no
/// route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_split_into_statement_time_and_idle_by_route_and_call_site() {
    use axum::extract::State;
    use axum::routing::get;
    // Off by default: nothing kept.
    let held_idle = "db_monitor_connection_held_idle_seconds";
    let (quiet, quiet_rec) = monitor(MonitorConfig::default());
    let quiet_pool = pool(&quiet, "layer_holds_off", 1).await;
    drop(quiet_pool.get().await.unwrap());
    assert!(quiet_pool.monitor().hold_report(10).holders.is_empty());
    assert_eq!(quiet_rec.count(held_idle, &[]), 0, "no histogram either");

    let (monitor, rec) = monitor(MonitorConfig::default().hold_times(true));
    let pool = pool(&monitor, "layer_holds", 2).await;
    let awaits = |State(pool): State<MonitoredPool<NoTls>>| async move {
        let conn = pool.get().await.unwrap();
        conn.query_one("SELECT 1::int", &[]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        conn.query_one("SELECT 2::int", &[]).await.unwrap();
        "ok"
    };
    let busy = |State(pool): State<MonitoredPool<NoTls>>| async move {
        let conn = pool.get().await.unwrap();
        conn.query_one("SELECT pg_sleep(0.05)::text", &[]).await.unwrap();
        "ok"
    };
    let router = axum::Router::new()
        .route("/awaits", get(awaits))
        .route("/busy", get(busy))
        .with_state(pool.clone())
        .layer(DbMonitorLayer::new(pool.clone()));
    for path in ["/awaits", "/busy", "/awaits", "/busy", "/awaits", "/busy"] {
        let request = Request::builder().uri(path).body(axum::body::Body::empty()).unwrap();
        assert_eq!(router.clone().oneshot(request).await.unwrap().status(), StatusCode::OK);
    }
    drop(pool.get().await.unwrap());

    let report = pool.monitor().hold_report(10);
    assert_eq!(report.holders.len(), 3, "{report:#?}");
    let awaits = &report.holders[0];
    assert_eq!(
        awaits.route.as_deref(),
        Some("GET /awaits"),
        "the most idle first: {report:#?}"
    );
    assert_eq!(awaits.checkouts, 3);
    assert!(awaits.call_site.starts_with("tests/layer.rs:"), "{awaits:?}");
    assert!(awaits.held_idle_ms_per_checkout >= 199.0, "{awaits:?}");
    assert!(awaits.in_statements_ms_per_checkout > 0.0, "{awaits:?}");
    let parts = awaits.in_statements_ms_per_checkout + awaits.held_idle_ms_per_checkout;
    assert!((parts - awaits.held_ms_per_checkout).abs() < 0.01, "{awaits:?}");
    assert!(
        awaits.max_held_idle_ms >= 199.0 && awaits.held_idle_seconds >= 0.597,
        "{awaits:?}"
    );

    let busy = report
        .holders
        .iter()
        .find(|h| h.route.as_deref() == Some("GET /busy"))
        .expect("the busy route");
    assert_eq!(busy.checkouts, 3);
    assert_ne!(busy.call_site, awaits.call_site);
    assert!(busy.in_statements_ms_per_checkout >= 50.0, "{busy:?}");
    let outside = report.holders.iter().find(|h| h.route.is_none()).expect("no route");
    assert_eq!(outside.checkouts, 1);
    // One sample a checkout, three of them past 199 ms.
    let samples = rec.samples(held_idle, &[]);
    assert_eq!(samples.len(), 7, "{samples:?}");
    assert_eq!(samples.iter().filter(|&&s| s >= 0.199).count(), 3, "{samples:?}");

    // The same, as the route serves it.
    let request = Request::builder()
        .uri("/health/database/metrics/holders?limit=1")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let document: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(document["holders"][0]["route"], "GET /awaits", "{document}");
    assert_eq!(document["holders"].as_array().unwrap().len(), 1);
    assert_eq!(document["not_kept"], 0);
}

/// The same split through deadpool: its checkouts return through their
/// own path (the object's drop), which must time the hold as bb8's do.
#[cfg(feature = "deadpool")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadpool_holds_split_the_same_way() {
    let (monitor, _rec) = monitor(MonitorConfig::default().hold_times(true));
    let pool: db_monitor::MonitoredDeadpool<NoTls> =
        support::sources::pool_of(&monitor, &unique("layer_holds_deadpool"), 2).await;
    let service = DbMonitorLayer::new(pool.clone())
        .route_label(|_, uri| Some(format!("GET {}", uri.path())))
        .layer(service_fn({
            let pool = pool.clone();
            move |_: Request<Full<Bytes>>| {
                let pool = pool.clone();
                async move {
                    let conn = pool.get().await.expect("checkout");
                    conn.query_one("SELECT 1::int", &[]).await.expect("read");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    conn.query_one("SELECT 2::int", &[]).await.expect("read");
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                }
            }
        }));
    for _ in 0..2 {
        let request = Request::builder().uri("/awaits").body(Full::new(Bytes::new())).unwrap();
        assert_eq!(service.clone().oneshot(request).await.unwrap().status(), StatusCode::OK);
    }
    let report = pool.monitor().hold_report(10);
    assert_eq!(report.holders.len(), 1, "{report:#?}");
    let awaits = &report.holders[0];
    assert_eq!((awaits.route.as_deref(), awaits.checkouts), (Some("GET /awaits"), 2));
    assert!(awaits.call_site.starts_with("tests/layer.rs:"), "{awaits:?}");
    assert!(
        awaits.held_idle_ms_per_checkout >= 199.0 && awaits.in_statements_ms_per_checkout > 0.0,
        "{awaits:?}"
    );
}

/// A `route_label` that returns raw paths cannot grow the route table
/// with the paths' bytes: labels are cut at 256 bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_path_labels_are_cut_so_long_paths_cannot_grow_the_tables() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, "layer_long_paths", 2).await;
    let layer = DbMonitorLayer::new(pool.clone()).route_label(|_, uri| Some(uri.path().to_owned()));
    let service = app(pool.clone(), layer);
    for i in 0..50 {
        let path = format!("/{i}/{}?runs=1", "p".repeat(60_000));
        let (status, _, _) = call(&service, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let routes = pool.monitor().route_report();
    assert!(!routes.is_empty());
    assert!(
        routes.iter().all(|r| r.route.len() <= 256 && r.route.ends_with('…')),
        "{:?}",
        routes.iter().map(|r| r.route.len()).collect::<Vec<_>>()
    );
    let recent = pool.monitor().recent_statements(1);
    assert!(recent[0].route.as_deref().is_some_and(|r| r.len() <= 256));
}

/// `DbMonitor::layer`: one value for the router, which keeps the pool's
/// background task running while the layer (or a service made from it)
/// lives, and lets it stop once the last is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitors_layer_keeps_the_background_task_while_it_lives() {
    let config = MonitorConfig::default().health_check_interval(Duration::from_secs(1));
    let (monitor, _rec) = monitor(config);
    let pool = pool(&monitor, "layer_keeps_background", 1).await;
    let samples = || pool.monitor().trend_report(None).samples.len();
    let service = app(pool.clone(), monitor.layer(&pool));
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let running = samples();
    assert!(running >= 2, "the task samples while the layer lives: {running}");
    get_json(&service, "/health/database").await;
    drop(service);
    // The task wakes up once more, sees it was let go, and stops.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopped = samples();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(samples(), stopped, "no sample after the last service was dropped");
}

/// One request through any service whose body is collectable: its
/// status, headers and body.
async fn send_any<S, B>(service: &S, uri: &str) -> (StatusCode, http::HeaderMap, Bytes)
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible> + Clone,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    use http_body_util::BodyExt;
    let request = Request::get(uri).body(Full::new(Bytes::new())).unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("a body").to_bytes();
    (parts.status, parts.headers, body)
}

/// A `ShedLayer` inside the monitor's layer: with the pool free nothing is
/// shed; with both its connections held and a request already waiting for
/// one, new requests get 503 with `Retry-After` at once (not after the
/// pool's 5 s timeout), counted; the monitor's routes are never shed; once
/// the pool is free again requests pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shedding_answers_503_at_once_while_the_queue_cannot_serve_in_time() {
    let (monitor, rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, &unique("shed"), 2).await;
    let budget = Duration::from_millis(200);
    let work = service_fn({
        let pool = pool.clone();
        move |_: Request<Full<Bytes>>| {
            let pool = pool.clone();
            async move {
                let conn = pool.get().await.expect("checkout");
                conn.query_one("SELECT 1", &[]).await.expect("statement");
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"done"))))
            }
        }
    });
    let service = DbMonitorLayer::new(pool.clone()).layer(db_monitor::ShedLayer::new(&pool).budget(budget).layer(work));
    for _ in 0..30 {
        assert_eq!(send_any(&service, "/work").await.0, StatusCode::OK);
    }
    assert_eq!(rec.counter(db_monitor::names::REQUESTS_SHED, &[]), 0);

    let held = (pool.get().await.unwrap(), pool.get().await.unwrap());
    let waiting = tokio::spawn({
        let service = service.clone();
        async move { send_any(&service, "/work").await.0 }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while pool.monitor().load().waiting == 0 {
        assert!(std::time::Instant::now() < deadline, "the request never waited");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The queue has not moved for longer than the budget.
    tokio::time::sleep(budget + Duration::from_millis(50)).await;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let (status, headers, body) = send_any(&service, "/work").await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            String::from_utf8_lossy(&body)
        );
        assert!(started.elapsed() < budget, "shed after {:?}", started.elapsed());
        assert_eq!(headers["retry-after"], "1");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "overloaded");
    }
    assert_eq!(rec.counter(db_monitor::names::REQUESTS_SHED, &[]), 3);
    // The monitor's own routes are outside it.
    let (status, _, body) = send_any(&service, "/health/database/ready").await;
    assert_eq!(status, StatusCode::OK);
    let ready: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(ready["load"]["requests_shed"], 3, "{ready:#}");

    drop(held);
    assert_eq!(waiting.await.unwrap(), StatusCode::OK, "the queued request is served");
    assert_eq!(send_any(&service, "/work").await.0, StatusCode::OK);
    assert_eq!(rec.counter(db_monitor::names::REQUESTS_SHED, &[]), 3);
}

/// A checkout dropped while it waits (a request timing out, a client
/// leaving) stops counting as waiting: the load, and so readiness and
/// shedding, do not see a queue that is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_checkout_dropped_leaves_the_load() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, &unique("dropped_wait"), 1).await;
    let held = pool.get().await.unwrap();
    let gave_up = tokio::time::timeout(Duration::from_millis(200), pool.get()).await;
    assert!(gave_up.is_err(), "the pool was full");
    let load = pool.monitor().load();
    assert_eq!((load.waiting, load.waiting_for), (0, None), "{load:?}");
    assert_eq!(pool.monitor().expected_wait(), Some(Duration::ZERO));
    drop(held);
    assert!(pool.get().await.is_ok());
}
