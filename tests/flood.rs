//! The monitor's own routes cannot starve the application. The axum
//! example serves on loopback on real PostgreSQL, on a runtime of its own;
//! wrk drives its `/customers/{id}` with 8 connections while another wrk
//! floods one route. The application's throughput and p99 under a flood of a monitor
//! route are compared with an equal flood of an unknown page (a 404, the
//! control), in one run: 16 clients on the comprehensive report and on
//! `/metrics`, 64 on the health route.
//!
//! The test prints every figure and asserts only the ratios, with margins
//! for a shared 2-core machine (the goal, met with room here, is ≥ 0.8 of
//! the control's throughput and ≤ 2 × its p99).

// The example carries its own copy of the PostgreSQL harness.
#![allow(clippy::duplicate_mod)]

mod support;

#[path = "../examples/axum_server.rs"]
#[allow(dead_code)]
mod axum_example;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use db_monitor::prometheus::PrometheusSetup;
use db_monitor::{DbMonitor, MonitorConfig};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Clients driving the application's own route.
const APP_CLIENTS: usize = 8;
/// How long the application is measured under each flood, in seconds.
const ROUND_SECONDS: u64 = 2;

/// What the application kept during one flood.
#[derive(Debug, Clone, Copy)]
struct Kept {
    requests_per_second: f64,
    p99: Duration,
    /// The flood's own rate (requests per second).
    flood_requests: f64,
}

/// Serves the axum example on its own two-worker runtime; returns its
/// address. The runtime lives as long as the test process.
fn serve() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let (recorder, handle, _upkeep) = PrometheusSetup::new().build();
            let config = MonitorConfig::default().max_size(8);
            let monitor = DbMonitor::builder(config)
                .recorder(Arc::new(recorder))
                .log_alerts(false)
                .build()
                .expect("a valid configuration");
            let demo = axum_example::demo(&monitor, support::pg::shared_config(), Some(handle))
                .await
                .unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("http://{}", listener.local_addr().unwrap())).unwrap();
            let _keep = demo.background;
            axum::serve(listener, demo.router).await.unwrap();
        });
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the example server started")
}

/// GETs `url` and reads the whole body; the status is the caller's concern.
async fn get(client: &HttpClient, url: &str) -> Option<u16> {
    let response = client.get(url.parse().ok()?).await.ok()?;
    let status = response.status().as_u16();
    response.into_body().collect().await.ok()?;
    Some(status)
}

/// Runs wrk against `url` with `connections` for `seconds`, on one thread.
fn wrk(wrk: &Path, url: &str, connections: usize, seconds: u64) -> Child {
    Command::new(wrk)
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "--timeout",
            "10s",
            url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("wrk runs")
}

/// wrk's `Requests/sec` and its 99th percentile latency.
fn wrk_result(child: Child) -> (f64, Duration) {
    let output = child.wait_with_output().expect("wrk finishes");
    let text = String::from_utf8_lossy(&output.stdout);
    let rate = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no request rate in wrk's output:\n{text}"));
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(|v| parse_latency(v.trim()))
        .unwrap_or_else(|| panic!("no 99th percentile in wrk's output:\n{text}"));
    (rate, p99)
}

/// `1.23ms`, `850.00us`, `1.02s` as wrk prints them.
fn parse_latency(text: &str) -> Option<Duration> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        return None;
    };
    Some(Duration::from_secs_f64(number.parse::<f64>().ok()? * scale))
}

/// Floods `path` with `clients` connections while 8 drive the
/// application, and measures what the application kept.
fn flood(wrk_bin: &Path, base: &str, path: &str, clients: usize) -> Kept {
    let flooder = wrk(wrk_bin, &format!("{base}{path}"), clients, ROUND_SECONDS + 1);
    // Let the flood build up before the application is measured.
    std::thread::sleep(Duration::from_millis(500));
    let app = wrk(wrk_bin, &format!("{base}/customers/3"), APP_CLIENTS, ROUND_SECONDS);
    let (requests_per_second, p99) = wrk_result(app);
    let (flood_rate, _) = wrk_result(flooder);
    Kept {
        requests_per_second,
        p99,
        flood_requests: flood_rate,
    }
}

fn report(what: &str, clients: usize, kept: Kept, control: Kept) -> (f64, f64) {
    let throughput = kept.requests_per_second / control.requests_per_second;
    let p99 = kept.p99.as_secs_f64() / control.p99.as_secs_f64();
    println!(
        "flood of {what} ({clients} connections, {:.0} req/s): application {:.0} req/s, p99 {:.2} ms; \
         against the control: throughput {throughput:.2}, p99 {p99:.2}",
        kept.flood_requests,
        kept.requests_per_second,
        kept.p99.as_secs_f64() * 1e3,
    );
    (throughput, p99)
}

/// Health pings so far: runs of `SELECT 1` (summary `SELECT`, no table),
/// read from the exposition.
async fn pings(client: &HttpClient, base: &str) -> f64 {
    let response = client.get(format!("{base}/metrics").parse().unwrap()).await.unwrap();
    assert_eq!(response.status(), 200, "the exposition answers");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| {
            l.starts_with("db_client_operation_duration_seconds_count{") && l.contains("db_query_summary=\"SELECT\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_flood_of_monitor_routes_costs_the_application_no_more_than_a_flood_of_404s() {
    let Some(wrk_bin) = support::tools::binary(&["wrk"]) else {
        return;
    };
    let base = tokio::task::spawn_blocking(serve).await.unwrap();
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    assert_eq!(get(&client, &format!("{base}/customers/3")).await, Some(200));
    let run = |path: &'static str, clients: usize| {
        let (wrk_bin, base) = (wrk_bin.clone(), base.clone());
        tokio::task::spawn_blocking(move || flood(&wrk_bin, &base, path, clients))
    };

    let control = run("/no-such-page", 16).await.unwrap();
    report("an unknown page (the control)", 16, control, control);
    let comprehensive = run("/health/database/metrics/comprehensive?minutes=60&limit=1000", 16)
        .await
        .unwrap();
    let metrics = run("/metrics", 16).await.unwrap();
    let control_64 = run("/no-such-page", 64).await.unwrap();
    report("an unknown page (the control)", 64, control_64, control_64);
    // The exposition is itself reused for a second: wait it out around the
    // flood so that the count is current.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let pings_before = pings(&client, &base).await;
    let health = run("/health/database", 64).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let pings_during = pings(&client, &base).await - pings_before;
    println!("health route: {pings_during} pings during its flood (one connection at a time)");
    // One ping per second of reuse, and the one at the start.
    assert!(
        pings_during <= (ROUND_SECONDS + 3) as f64,
        "{pings_during} pings for one flood"
    );

    let checks = [
        ("the comprehensive report", 16, comprehensive, control),
        ("/metrics", 16, metrics, control),
        ("the health route", 64, health, control_64),
    ];
    let mut failures = Vec::new();
    for (what, clients, kept, control) in checks {
        let (throughput, p99) = report(what, clients, kept, control);
        if throughput < 0.6 || p99 > 3.0 {
            failures.push(format!("{what}: throughput {throughput:.2}, p99 {p99:.2}"));
        }
    }
    assert!(failures.is_empty(), "the application starved: {failures:?}");
}
