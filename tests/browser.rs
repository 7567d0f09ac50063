//! The dashboard in a real browser: the axum example on real PostgreSQL
//! after real traffic, loaded in headless Chromium (Debian's `chromium`,
//! driven by `playwright-core`; both installed by
//! `scripts/install-test-tools`) in light, dark and phone-width views. Every
//! status card is filled, at least four charts have data, the console shows
//! no CSP violation and no script error, nothing moves on a refresh, and
//! the screenshots land in `target/dashboard-screenshots/`. A dashboard
//! whose reads need the admin token loads, asks for it and fills in.

// The example carries its own copy of the PostgreSQL harness.
#![allow(clippy::duplicate_mod)]

mod support;

#[path = "../examples/axum_server.rs"]
#[allow(dead_code)]
mod axum_example;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use db_monitor::{DbMonitor, MonitorConfig, ServerView};
use http::Method;
use serde_json::Value;
use support::http::{over_tcp, tcp_client};

/// Where the screenshots go (docs/dashboard.png is one of them, copied by hand).
fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("dashboard-screenshots")
}

/// `node` and `playwright-core` next to the script, or `None` (a failure
/// under CI).
fn driver() -> Option<PathBuf> {
    let node = support::tools::binary(&["node", "nodejs"])?;
    let module = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/node_modules/playwright-core");
    if !module.exists() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install-test-tools");
        let _ = Command::new(script).status();
    }
    if !module.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "playwright-core is required in CI (scripts/install-test-tools installs it)"
        );
        eprintln!("skipped: playwright-core is not installed (run scripts/install-test-tools)");
        return None;
    }
    Some(node)
}

/// Runs the browser script on `url` (with `token` for a dashboard whose
/// reads need it) and returns what it found in each view.
async fn browse(node: PathBuf, chromium: PathBuf, url: String, token: Option<&'static str>) -> Vec<Value> {
    let out = screenshots();
    std::fs::create_dir_all(&out).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/dashboard.mjs");
    let run = tokio::task::spawn_blocking(move || {
        let mut command = Command::new(node);
        command.arg(script).arg(&url).arg(&out).env("CHROMIUM", chromium);
        if let Some(token) = token {
            command.env("TOKEN", token);
        }
        command.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "the browser script failed: {stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("the script's JSON")
}

/// With reads behind the admin token, the page still loads in a browser
/// (which sends no `Authorization` when it opens a page), asks for the
/// token, and fills in once it is given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_behind_the_token_loads_asks_for_it_and_fills_in() {
    let Some(chromium) = support::tools::binary(&["chromium", "chromium-browser"]) else {
        return;
    };
    let Some(node) = driver() else { return };
    let (monitor, _rec) = support::monitor(MonitorConfig::default());
    let pool = support::pool(&monitor, "browser_token", 2).await;
    let conn = pool.get().await.unwrap();
    conn.query("SELECT 1", &[]).await.unwrap();
    let _ = conn.query("SELECT 1 / 0", &[]).await;
    drop(conn);
    let layer = db_monitor::DbMonitorLayer::new(pool.clone())
        .admin_token("browser-token")
        .reads_need_token(true);
    let router: axum::Router = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let views = browse(
        node,
        chromium,
        format!("{base}/health/database/dashboard"),
        Some("browser-token"),
    )
    .await;
    let view = &views[0];
    assert_eq!(view["asked"], true, "the page asked for the token: {view}");
    assert_eq!(view["problems"], serde_json::json!([]), "after the token: {view}");
    let health = view["cards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "card-health")
        .unwrap_or_else(|| panic!("no health card: {view}"));
    assert!(!health["value"].as_str().unwrap().is_empty(), "{health}");
    assert!(view["statements"].as_u64().unwrap() > 0, "the data was read: {view}");
}

async fn send(base: &str, method: Method, path: &str) {
    over_tcp(&tcp_client(), method, &format!("{base}{path}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_renders_in_chromium_light_dark_and_phone() {
    let Some(chromium) = support::tools::binary(&["chromium", "chromium-browser"]) else {
        return;
    };
    let Some(node) = driver() else { return };

    // One-second slots and samples, so that an hour's charts have points
    // after a few seconds.
    let config = MonitorConfig::default()
        .max_size(8)
        .slot(Duration::from_secs(1))
        .slow_query_threshold(Duration::from_millis(250))
        .hold_times(true)
        .server_view(ServerView::default().interval(Duration::from_millis(500)))
        .health_check_interval(Duration::from_secs(1))
        .objective(
            db_monitor::Objective::route("GET /customers/{id}")
                .latency(Duration::from_millis(50), 0.99)
                .success(0.999),
        );
    let monitor = DbMonitor::new(config).expect("a valid configuration");
    let demo = axum_example::demo(&monitor, support::pg::shared_config(), None)
        .await
        .unwrap();
    let pool = demo.pool.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, demo.router).await });

    // Real traffic over three seconds: single statements, an N+1 route, a
    // slow statement, transfers, and a failing statement.
    for round in 0..3 {
        for _ in 0..10 {
            send(&base, Method::GET, "/customers/3").await;
        }
        send(&base, Method::GET, "/orders").await;
        send(&base, Method::POST, "/transfer?from=1&to=2").await;
        if round == 0 {
            // Long enough for the load sampler (once a second) to see it.
            send(&base, Method::GET, "/report?seconds=1.2").await;
        }
        let conn = pool.get().await.unwrap();
        let _ = conn.query("SELECT 1 / 0", &[]).await;
        drop(conn);
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }

    let views = browse(node, chromium, format!("{base}/health/database/dashboard"), None).await;
    assert_eq!(views.len(), 3);
    let mut backgrounds = Vec::new();
    for view in &views {
        let name = view["view"].as_str().unwrap();
        assert_eq!(
            view["problems"],
            serde_json::json!([]),
            "{name}: console errors or CSP violations"
        );
        for card in view["cards"].as_array().unwrap() {
            for field in ["value", "detail"] {
                let text = card[field].as_str().unwrap();
                assert!(
                    !text.is_empty() && text != "–",
                    "{name}: {} has no {field}: {card}",
                    card["id"]
                );
            }
        }
        let with_data = view["charts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["points"].as_u64().unwrap_or(0) > 0 && c["axisLabels"].as_u64().unwrap_or(0) > 0)
            .count();
        assert!(
            with_data >= 4,
            "{name}: {with_data} charts with data: {}",
            view["charts"]
        );
        assert!(view["statements"].as_u64().unwrap() > 0, "{name}: no statement rows");
        assert_eq!(
            view["objectives"], 2,
            "{name}: the objective's latency and success rows"
        );
        assert!(view["errors"].as_u64().unwrap() > 0, "{name}: no error rows");
        // A request's route at its call site among the holders (which row
        // holds the most idle time first depends on the machine's load:
        // the test's own checkouts, outside any request, may).
        let holders = &view["holders"];
        assert!(
            holders.as_array().is_some_and(|rows| rows.iter().any(|row| {
                row[0]
                    .as_str()
                    .is_some_and(|r| r.starts_with("GET ") || r.starts_with("POST "))
                    && row[1].as_str().is_some_and(|s| s.contains(".rs:"))
            })),
            "{name}: who holds the connections: {holders}"
        );
        let nplusone = &view["nplusone"];
        assert!(
            nplusone.as_array().is_some_and(|rows| rows
                .iter()
                .any(|row| row[1].as_str().is_some_and(|s| s.contains(".rs:")))),
            "{name}: the N+1 pattern's call site: {nplusone}"
        );
        assert_eq!(view["statementCells"], 8, "{name}: the statements with their split");
        let load = view["charts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "chart-load");
        assert!(
            load.is_some_and(|c| c["points"].as_u64().unwrap_or(0) > 0),
            "{name}: the load chart is empty: {load:?}"
        );
        let budget = view["budget"].as_str().unwrap_or("");
        assert!(budget.contains("connections open"), "{name}: the budget: {budget:?}");
        let poller = view["poller"].as_str().unwrap_or("");
        assert!(poller.contains("reads the server"), "{name}: the poller: {poller:?}");
        assert_eq!(view["moved"], false, "{name}: the layout moved on refresh");
        assert_eq!(view["overflow"], false, "{name}: wider than the screen");
        let tip = view["tip"].as_str().unwrap_or("");
        assert!(tip.contains("p95"), "{name}: no hover value: {tip:?}");
        read_as_an_operator(name, view);
        backgrounds.push(view["bg"].as_str().unwrap().to_owned());
    }
    let luminance = |rgb: &str| -> u32 {
        rgb.trim_start_matches("rgb(")
            .trim_end_matches(')')
            .split(',')
            .filter_map(|v| v.trim().parse::<u32>().ok())
            .sum()
    };
    assert!(luminance(&backgrounds[0]) > 600, "light: {}", backgrounds[0]);
    assert!(luminance(&backgrounds[1]) < 150, "dark: {}", backgrounds[1]);
    for shot in ["light", "dark", "phone"] {
        let path = screenshots().join(format!("{shot}.png"));
        assert!(
            std::fs::metadata(&path).map(|m| m.len() > 10_000).unwrap_or(false),
            "{path:?}"
        );
    }
}

/// What an operator reads on a young process's dashboard: its data
/// across the width, on one time axis for every chart, 24-hour times,
/// latency percentiles apart on a log axis, a score detail that names what
/// lost points, no empty plans table where plans cannot be read, the
/// server view within a screen or two, text of a readable size, and a
/// resolve button on screen.
fn read_as_an_operator(name: &str, view: &Value) {
    let charts = view["charts"].as_array().unwrap();
    let chart = |id: &str| {
        charts
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("{name}: no {id}"))
    };
    // A process a few seconds old: its first point is in the left part of
    // the plot, not in a strip at the right edge of an hour.
    let latency = chart("chart-latency");
    let first = latency["firstAt"].as_f64().unwrap_or(1.0);
    assert!(
        first < 0.5,
        "{name}: the first latency point at {first:.2} of the width: {latency}"
    );
    // One time axis: the same labels under every time chart.
    for id in ["chart-statements", "chart-errors", "chart-pool", "chart-load"] {
        assert_eq!(chart(id)["times"], latency["times"], "{name}: {id}'s time axis");
    }
    for time in latency["times"].as_array().unwrap() {
        let time = time.as_str().unwrap();
        assert!(!time.contains('M'), "{name}: a 12-hour time {time}");
    }
    for when in view["errorTimes"].as_array().unwrap() {
        let when = when.as_str().unwrap();
        let digits = when
            .split(':')
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()));
        assert!(digits && when.len() == 8, "{name}: the errors table's time {when:?}");
    }
    // A log axis: no "0 µs" at its foot, decades up it.
    let values = latency["values"].as_array().unwrap();
    assert!(
        !values.iter().any(|v| v.as_str().unwrap().starts_with("0 ")),
        "{name}: {values:?}"
    );
    let score = view["cards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "card-score")
        .unwrap();
    let detail = score["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("points lost to ") || detail == "no points lost",
        "{name}: the score's detail {detail:?}"
    );
    if !view["plansText"].as_str().unwrap().is_empty() {
        assert_eq!(
            view["plansShown"], false,
            "{name}: an empty plans table under {}",
            view["plansText"]
        );
    }
    let (top, height) = (
        view["serverTop"].as_f64().unwrap(),
        view["viewportHeight"].as_f64().unwrap(),
    );
    if name != "phone" {
        assert!(
            top < 1.5 * height,
            "{name}: the server view starts at {top} px of a {height} px screen"
        );
    }
    for c in charts.iter().filter(|c| c["axisLabels"].as_u64().unwrap_or(0) > 0) {
        let smallest = c["smallestText"].as_f64().unwrap();
        assert!(smallest >= 9.0, "{name}: {} has text {smallest:.1} px high", c["id"]);
    }
    for (i, shown) in view["resolveButtons"].as_array().unwrap().iter().enumerate() {
        assert_eq!(shown, true, "{name}: resolve button {i} is off the screen");
    }
}
