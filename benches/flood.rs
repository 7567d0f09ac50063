//! What a flood of the monitor's own routes costs the application. The
//! axum example serves on loopback on real PostgreSQL, on a runtime of its
//! own; wrk drives its `/customers/{id}` with 8 connections while another
//! wrk floods one route. The application's throughput and p99 under a
//! flood of a monitor route are compared with an equal flood of an unknown
//! page (a 404, the control), in one run: 16 clients on the comprehensive
//! report and on `/metrics`, 64 on the health route.
//!
//! ```text
//! cargo bench --bench flood
//! ```
//!
//! It prints every figure and the goal (≥ 0.8 of the control's throughput,
//! ≤ 2 × its p99); a ratio of two throughputs is what a busy neighbour
//! breaks, so it is measured here and asserted nowhere. (It was a test
//! until a loaded runner failed it every time.) That the health route
//! pings the database once a second under a flood is a test:
//! `tests/layer.rs`.

// The example carries its own copy of the PostgreSQL harness.
#![allow(clippy::duplicate_mod)]

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../examples/axum_server.rs"]
#[allow(dead_code)]
mod axum_example;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use db_monitor::prometheus::PrometheusSetup;
use db_monitor::{DbMonitor, MonitorConfig};

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

fn main() {
    let Some(wrk_bin) = support::tools::binary(&["wrk"]) else {
        eprintln!("wrk is not installed (scripts/install-test-tools installs it)");
        std::process::exit(1);
    };
    let base = serve();
    let run = |path: &str, clients: usize| flood(&wrk_bin, &base, path, clients);
    let control = run("/no-such-page", 16);
    report("an unknown page (the control)", 16, control, control);
    let comprehensive = run("/health/database/metrics/comprehensive?minutes=60&limit=1000", 16);
    let metrics = run("/metrics", 16);
    let control_64 = run("/no-such-page", 64);
    report("an unknown page (the control)", 64, control_64, control_64);
    let health = run("/health/database", 64);
    let checks = [
        ("the comprehensive report", 16, comprehensive, control),
        ("/metrics", 16, metrics, control),
        ("the health route", 64, health, control_64),
    ];
    for (what, clients, kept, control) in checks {
        let (throughput, p99) = report(what, clients, kept, control);
        let met = throughput >= 0.8 && p99 <= 2.0;
        println!(
            "  goal (throughput >= 0.80, p99 <= 2.00): {}",
            if met { "met" } else { "NOT met" }
        );
    }
}
