//! The dashboard in-process (tower `oneshot`): the page and its two assets
//! with their types and the Content-Security-Policy, within the size
//! budget; the read guard and the token refusing them like any reading
//! route; and the per-minute series the charts draw.

mod support;

use std::convert::Infallible;

use bytes::Bytes;
use db_monitor::{DbMonitorLayer, MonitorConfig};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use support::http::{call, get_json, LayerService};
use tower::{service_fn, Layer};

const PAGE: &str = "/health/database/dashboard";
const ASSETS: [(&str, &str); 4] = [
    (PAGE, "text/html; charset=utf-8"),
    ("/health/database/dashboard/app.css", "text/css; charset=utf-8"),
    ("/health/database/dashboard/app.js", "text/javascript; charset=utf-8"),
    ("/health/database/dashboard/favicon.svg", "image/svg+xml"),
];

fn app(layer: DbMonitorLayer) -> impl LayerService {
    layer.layer(service_fn(|_: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"app"))))
    }))
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_under_a_strict_policy_within_budget() {
    let (monitor, _rec) = support::monitor(MonitorConfig::default());
    let pool = support::pool(&monitor, "dashboard", 2).await;
    let service = app(DbMonitorLayer::new(pool.clone()));
    let mut total = 0;
    for (path, content_type) in ASSETS {
        let (status, headers, body) = call(&service, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers["content-type"], content_type, "{path}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe"), "{policy}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        total += body.len();
        // HEAD answers like GET (the server drops the body on the wire).
        let (status, headers, _) = call(&service, Method::HEAD, path, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], content_type);
    }
    assert!(total < 100 * 1024, "page and assets: {total} bytes");
    let (_, _, page) = call(&service, Method::GET, PAGE, None).await;
    let page = String::from_utf8(page.to_vec()).unwrap();
    assert!(page.contains(r#"<script src="dashboard/app.js" defer></script>"#));
    assert!(!page.contains("<script>"), "no inline script");
    let (status, _, body) = call(&service, Method::POST, PAGE, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body:?}");
    let (status, _, _) = call(&service, Method::GET, "/health/database/dashboard/other.js", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The read guard refuses the page like any reading route; the admin
/// token does not: a browser sends no `Authorization` when it opens a
/// page, and the page holds no data (it asks for the token, and its reads
/// need it).
#[tokio::test]
async fn the_guard_refuses_the_page_and_the_token_guards_only_its_data() {
    let (monitor, _rec) = support::monitor(MonitorConfig::default());
    let pool = support::pool(&monitor, "dashboard_guard", 2).await;
    let guarded = app(DbMonitorLayer::new(pool.clone()).read_guard(|_| false));
    let tokened = app(DbMonitorLayer::new(pool.clone())
        .admin_token("s3cret")
        .reads_need_token(true));
    let off = app(DbMonitorLayer::new(pool.clone()).dashboard(false));
    for (path, _) in ASSETS {
        let (status, headers, body) = call(&guarded, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(headers["content-type"], "application/json");
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
        let (status, _, _) = call(&tokened, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let (status, _, _) = call(&off, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _, _) = call(&tokened, Method::GET, "/health/database/metrics/series", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the page's data");
    // The health check stays open to load balancers.
    let (status, _, _) = call(&guarded, Method::GET, "/health/database", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_series_gives_the_minutes_the_charts_draw() {
    let (monitor, _rec) = support::monitor(MonitorConfig::default());
    let pool = support::pool(&monitor, "dashboard_series", 2).await;
    let conn = pool.get().await.unwrap();
    for _ in 0..5 {
        conn.query("SELECT 1", &[]).await.unwrap();
    }
    let _ = conn.query("SELECT 1/0", &[]).await.unwrap_err();
    let service = app(DbMonitorLayer::new(pool.clone()));
    // Six runs in the open minute: too few for its percentiles to stand
    // beside a whole minute's. (Another window than below: documents are
    // cached briefly.)
    let few = get_json(&service, "/health/database/metrics/series?minutes=4").await;
    assert!(few["points"][3]["p95_ms"].is_null(), "{few:#}");
    assert_eq!(few["points"][3]["partial"], true, "{few:#}");
    for _ in 0..20 {
        conn.query("SELECT 1", &[]).await.unwrap();
    }
    drop(conn);
    let series = get_json(&service, "/health/database/metrics/series?minutes=5").await;
    assert_eq!(series["minutes"], 5);
    assert_eq!(series["slot_seconds"], 60.0);
    let points = series["points"].as_array().unwrap();
    assert_eq!(points.len(), 5);
    // Nothing has closed a slot yet: the runs are in the open minute, which
    // is the last point, so that the charts show them from the start; the
    // error store's failures are placed by their time.
    let last = &points[4];
    assert_eq!(
        (last["statements"].as_u64(), last["errors"].as_u64()),
        (Some(26), Some(1)),
        "{series:#}"
    );
    assert!(last["p95_ms"].as_f64().is_some(), "{series:#}");
    assert_eq!(last["errors_by_kind"]["other"], 1, "{series:#}");
    assert!(points[..4].iter().all(|p| p["statements"] == 0), "{series:#}");
    for bad in ["minutes=0", "minutes=61", "minutes=x", "minutes=1&minutes=2"] {
        let (status, headers, body) = call(
            &service,
            Method::GET,
            &format!("/health/database/metrics/series?{bad}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(headers["content-type"], "application/json");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["parameter"], "minutes", "{bad}");
    }
}
