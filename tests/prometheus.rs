//! The Prometheus side: the exposition of the axum example after real
//! traffic passes `promtool check metrics`; the alerting rules pass
//! `promtool check rules` and their tests; the rules and the Grafana
//! dashboard name only metrics the crate exports; the two-instance demo
//! answers a cross-instance query from a real Prometheus; and a real
//! Prometheus stores the native histograms (feature `native-histograms`).

// The example carries its own copy of the PostgreSQL harness.
#![allow(clippy::duplicate_mod)]

mod support;

#[path = "../examples/axum_server.rs"]
#[allow(dead_code)]
mod axum_example;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use db_monitor::names::{self, Kind};
use db_monitor::prometheus::PrometheusSetup;
use db_monitor::{DbMonitor, MonitorConfig};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(path)
}

fn promtool() -> Option<PathBuf> {
    support::tools::binary(&["promtool"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exposition_after_real_traffic_passes_promtool_check_metrics() {
    let Some(promtool) = promtool() else { return };
    let (recorder, handle, _upkeep) = PrometheusSetup::new().global_label("service", "promtool-test").build();
    let config = MonitorConfig::default()
        .max_size(8)
        .slow_query_threshold(Duration::from_millis(250))
        .returned_rows(true)
        .hold_times(true);
    let monitor = DbMonitor::with_recorder(config, Arc::new(recorder)).expect("a valid configuration");
    let demo = axum_example::demo(&monitor, support::pg::shared_config(), Some(handle))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, demo.router).await });
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let get = |path: &str| {
        let request = http::Request::get(format!("{base}{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        client.request(request)
    };
    let post = |path: &str| {
        let request = http::Request::post(format!("{base}{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        client.request(request)
    };

    // Traffic with every kind of series: statements, an N+1, a slow one,
    // errors (a deadlock), transactions.
    get("/customers/1").await.unwrap();
    get("/customers/999").await.unwrap();
    get("/orders").await.unwrap();
    get("/report?seconds=0.3").await.unwrap();
    for _ in 0..10 {
        let (a, b) = tokio::join!(post("/transfer?from=1&to=2"), post("/transfer?from=2&to=1"));
        if [a.unwrap().status(), b.unwrap().status()].contains(&http::StatusCode::CONFLICT) {
            break;
        }
    }
    let response = get("/metrics").await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    for expected in [
        "db_client_operation_duration_seconds_bucket{",
        "error_type=\"deadlock\"",
        "db_monitor_slow_queries_total{",
        "db_monitor_n_plus_one_total{",
        "db_monitor_transaction_duration_seconds_bucket{",
        "service=\"promtool-test\"",
        "# HELP db_client_operation_duration_seconds Duration of database client operations.",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    assert!(!text.contains("quantile=\""), "histograms, not summaries");
    conventions_hold(&text);

    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = check.wait_with_output().unwrap();
    // One lint is the convention's choice, not a mistake: OpenTelemetry's
    // `db.client.connection.count` is `db_client_connection_count` in
    // Prometheus form, a gauge whose name ends in `_count`. Any other
    // problem fails.
    let accepted = "db_client_connection_count non-histogram and non-summary metrics should not have \"_count\" suffix";
    let problems: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&output.stderr).lines())
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != accepted)
        .map(str::to_owned)
        .collect();
    assert!(problems.is_empty(), "promtool check metrics: {problems:#?}");
    server.abort();
    demo.background.shutdown().await;
}

#[test]
fn the_alerting_rules_pass_promtool_check_and_their_unit_tests() {
    let Some(promtool) = promtool() else { return };
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts.test.yml"],
        vec!["check", "rules", "forecast.yml"],
        vec!["test", "rules", "forecast.test.yml"],
    ] {
        let output = Command::new(&promtool)
            .args(&args)
            .current_dir(deploy("prometheus"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The forecast rules are the generator's output for its default range, and
/// the generator's rules for other ranges pass `promtool check rules` too.
#[test]
fn the_forecast_rules_are_generated_and_any_range_checks() {
    let generate = |range: Option<&str>| {
        let mut command = Command::new("bash");
        command.arg("forecast-rules.sh").current_dir(deploy("prometheus"));
        command.args(range);
        let output = command.output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let checked_in = std::fs::read_to_string(deploy("prometheus/forecast.yml")).unwrap();
    assert_eq!(
        generate(None),
        checked_in,
        "forecast.yml differs from `bash forecast-rules.sh`"
    );
    let bad = Command::new("bash")
        .args(["forecast-rules.sh", "thirty minutes"])
        .current_dir(deploy("prometheus"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RANGE must be a Prometheus duration"));
    let Some(promtool) = promtool() else { return };
    for range in ["5m", "1h", "6h"] {
        let dir = std::env::temp_dir().join(format!("db-monitor-forecast-{}-{range}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("forecast.yml");
        std::fs::write(&file, generate(Some(range))).unwrap();
        let output = Command::new(&promtool)
            .args(["check", "rules"])
            .arg(&file)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            output.status.success(),
            "{range}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// One series of an exposition: its name and labels.
fn series(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let Some(open) = line.find('{') else {
            out.push((line.split(' ').next().unwrap().to_owned(), Vec::new()));
            continue;
        };
        let name = line[..open].to_owned();
        let mut labels = Vec::new();
        let mut rest = &line[open + 1..];
        while let Some(eq) = rest.find("=\"") {
            let key = rest[..eq].trim_start_matches(',').to_owned();
            let mut value = String::new();
            let mut chars = rest[eq + 2..].char_indices();
            let mut end = 0;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = eq + 2 + i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            labels.push((key, value));
            rest = &rest[end..];
            if rest.starts_with('}') {
                break;
            }
        }
        out.push((name, labels));
    }
    out
}

/// The exposition against OpenTelemetry's database metrics (v1.44),
/// written from the conventions: each metric's name (dots as underscores,
/// the unit as a suffix), kind, labels and buckets; the crate's own
/// metrics outside the convention's `db_client_` namespace.
fn conventions_hold(text: &str) {
    const DURATION: &[&str] = &["0.001", "0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "10", "+Inf"];
    const ROWS: &[&str] = &[
        "1", "2", "5", "10", "20", "50", "100", "200", "500", "1000", "2000", "5000", "10000", "+Inf",
    ];
    const POOL: &[&str] = &["db_system_name", "db_client_connection_pool_name"];
    const STATEMENT: &[&str] = &["db_system_name", "db_namespace", "server_address", "db_query_summary"];
    // name, kind, labels every series has, buckets.
    type Row = (
        &'static str,
        &'static str,
        &'static [&'static str],
        Option<&'static [&'static str]>,
    );
    let table: &[Row] = &[
        (
            "db_client_operation_duration_seconds",
            "histogram",
            STATEMENT,
            Some(DURATION),
        ),
        ("db_client_response_returned_rows", "histogram", STATEMENT, Some(ROWS)),
        (
            "db_client_connection_count",
            "gauge",
            &["db_client_connection_pool_name", "db_client_connection_state"],
            None,
        ),
        ("db_client_connection_idle_max", "gauge", POOL, None),
        ("db_client_connection_idle_min", "gauge", POOL, None),
        ("db_client_connection_max", "gauge", POOL, None),
        ("db_client_connection_pending_requests", "gauge", POOL, None),
        ("db_client_connection_timeouts_total", "counter", POOL, None),
        (
            "db_client_connection_create_time_seconds",
            "histogram",
            POOL,
            Some(DURATION),
        ),
        (
            "db_client_connection_wait_time_seconds",
            "histogram",
            POOL,
            Some(DURATION),
        ),
        (
            "db_client_connection_use_time_seconds",
            "histogram",
            POOL,
            Some(DURATION),
        ),
        (
            "db_monitor_connection_held_idle_seconds",
            "histogram",
            POOL,
            Some(DURATION),
        ),
    ];
    let all = series(text);
    for (name, kind, labels, buckets) in table {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} is no {kind}:\n{text}"
        );
        let sample = if *kind == "histogram" {
            format!("{name}_count")
        } else {
            (*name).to_owned()
        };
        let of_name: Vec<_> = all.iter().filter(|(n, _)| *n == sample).collect();
        assert!(!of_name.is_empty(), "no {sample} in:\n{text}");
        for (_, have) in &of_name {
            for label in *labels {
                assert!(
                    have.iter().any(|(k, _)| k == label),
                    "{sample} without {label}: {have:?}"
                );
            }
        }
        if let Some(bounds) = buckets {
            let bucket = format!("{name}_bucket");
            let first: Vec<&(String, Vec<(String, String)>)> = all.iter().filter(|(n, _)| *n == bucket).collect();
            let first_labels: Vec<_> = first[0].1.iter().filter(|(k, _)| k != "le").collect();
            let les: Vec<&str> = first
                .iter()
                .filter(|(_, l)| l.iter().filter(|(k, _)| k != "le").collect::<Vec<_>>() == first_labels)
                .filter_map(|(_, l)| l.iter().find(|(k, _)| k == "le").map(|(_, v)| v.as_str()))
                .collect();
            assert_eq!(&les, bounds, "{name}'s buckets");
        }
    }
    // The operation and the table are no labels of their own; a failure
    // carries its error type and its SQLSTATE.
    let durations: Vec<_> = all
        .iter()
        .filter(|(n, _)| n == "db_client_operation_duration_seconds_count")
        .collect();
    for (_, labels) in &durations {
        for gone in ["db_operation_name", "db_collection_name"] {
            assert!(labels.iter().all(|(k, _)| k != gone), "{gone} in {labels:?}");
        }
    }
    assert!(
        durations
            .iter()
            .any(|(_, l)| l.contains(&("error_type".to_owned(), "deadlock".to_owned()))
                && l.contains(&("db_response_status_code".to_owned(), "40P01".to_owned()))),
        "no deadlock with its SQLSTATE among {durations:?}"
    );
    let states: BTreeSet<&str> = all
        .iter()
        .filter(|(n, _)| n == "db_client_connection_count")
        .filter_map(|(_, l)| {
            l.iter()
                .find(|(k, _)| k == "db_client_connection_state")
                .map(|(_, v)| v.as_str())
        })
        .collect();
    assert_eq!(states, BTreeSet::from(["idle", "used"]));
    // Nothing else in the convention's namespace: the crate's own metrics
    // are `db_monitor_*`.
    let convention: BTreeSet<&str> = table.iter().map(|(name, ..)| *name).collect();
    for (name, _) in &all {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|base| text.contains(&format!("# TYPE {base} histogram\n")))
            .unwrap_or(name);
        if base.starts_with("db_client_") {
            assert!(convention.contains(base), "{base} is in the convention's namespace");
        }
    }
    for own in [
        "db_monitor_errors_total",
        "db_monitor_slow_queries_total",
        "db_monitor_transaction_duration_seconds_count",
        "db_monitor_connection_created_total",
        "db_monitor_connection_gets_total",
    ] {
        assert!(all.iter().any(|(n, _)| n == own), "no {own}");
    }
}

/// Every `db_…` word in `text` that is not a label name.
fn metric_words(text: &str) -> BTreeSet<String> {
    let labels = [
        names::DB_SYSTEM_NAME,
        names::POOL_NAME,
        names::NAMESPACE,
        names::CONNECTION_STATE,
        names::QUERY_SUMMARY,
        names::RESPONSE_STATUS_CODE,
    ];
    let mut words = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts =
            text[i..].starts_with("db_") && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if starts {
            let end = text[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(text.len(), |n| i + n);
            let word = &text[i..end];
            if !labels.contains(&word) {
                words.insert(word.to_owned());
            }
            i = end;
        } else {
            i += 1;
        }
    }
    words
}

/// The series names the crate exports.
fn exported() -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for (name, kind) in names::all() {
        all.insert(name.to_owned());
        if kind == Kind::Histogram {
            for suffix in ["_bucket", "_sum", "_count"] {
                all.insert(format!("{name}{suffix}"));
            }
        }
    }
    all
}

#[test]
fn the_rules_and_the_dashboard_name_only_exported_metrics() {
    let exported = exported();
    // The recording rules' own names (`level:metric:operation`) are not
    // exported series; everything else they read must be.
    let forecast: String = std::fs::read_to_string(deploy("prometheus/forecast.yml"))
        .unwrap()
        .split_whitespace()
        .filter(|w| !w.contains(':') || w.starts_with("db_"))
        .collect::<Vec<_>>()
        .join(" ");
    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap() + &forecast;
    let used = metric_words(&rules);
    assert!(used.len() >= 6, "the scan found too little: {used:?}");
    for word in &used {
        assert!(
            exported.contains(word),
            "alerts.yml uses {word}, which the crate does not export"
        );
    }

    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(deploy("grafana/db-monitor.json")).unwrap()).unwrap();
    let mut exprs = Vec::new();
    let mut shown = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let mut own: Vec<String> = Vec::new();
        for target in panel["targets"].as_array().unwrap() {
            own.push(target["expr"].as_str().unwrap().to_owned());
        }
        assert!(
            shown.insert(own.clone()),
            "two panels show the same queries (the second is {}): {own:?}",
            panel["title"]
        );
        exprs.extend(own);
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"]["query"].as_str() {
            exprs.push(query.to_owned());
        }
    }
    let mut used = BTreeSet::new();
    for expr in &exprs {
        for word in metric_words(expr) {
            assert!(exported.contains(&word), "the dashboard uses {word} in `{expr}`");
            used.insert(word);
        }
    }
    // What the dashboard has to show.
    for needed in [
        "db_client_operation_duration_seconds_count",
        "db_client_operation_duration_seconds_bucket",
        "db_monitor_errors_total",
        "db_client_connection_count",
        "db_client_connection_max",
        "db_client_connection_pending_requests",
        "db_client_connection_wait_time_seconds_bucket",
        "db_client_connection_use_time_seconds_bucket",
        "db_client_connection_create_time_seconds_bucket",
        "db_monitor_alerts_active",
        "db_monitor_performance_score",
        "db_monitor_server_load_sessions",
        "db_monitor_server_connections",
    ] {
        assert!(used.contains(needed), "the dashboard shows no {needed}");
    }
    let text = exprs.join("\n");
    for grouping in ["by (db_query_summary", "by (error_type)"] {
        assert!(text.contains(grouping), "the dashboard never groups {grouping}");
    }
}

#[test]
fn the_two_instance_demo_answers_a_cross_instance_query() {
    let Some(_) = support::tools::binary(&["prometheus"]) else {
        return;
    };
    let Some(_) = support::tools::binary(&["prometheus-alertmanager", "alertmanager"]) else {
        return;
    };
    if std::env::var_os("DATABASE_URL").is_some_and(|v| !v.is_empty()) && !support::pg::can_start_servers() {
        eprintln!("skipped: the demo starts its own PostgreSQL");
        return;
    }
    // The example binary that `cargo test` built next to this test.
    let target = std::env::current_exe().unwrap();
    let debug = target.parent().and_then(Path::parent).unwrap();
    let example = debug.join("examples").join("axum_server");
    assert!(example.exists(), "{} was not built", example.display());
    let output = Command::new(deploy("demo/run"))
        .arg("--check")
        .env("AXUM_SERVER", &example)
        .env("DEMO_SECONDS", "12")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "deploy/demo/run --check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("both instances present"), "{stdout}");
    assert!(stdout.contains("sum matches"), "{stdout}");
    assert!(stdout.contains(" queries run, "), "every dashboard query ran: {stdout}");
}

/// With `native_histograms`, a real Prometheus (started with native
/// histograms on) scrapes the layer's `/metrics` in protobuf and stores the
/// durations as native histograms: one series per histogram, no `_bucket`
/// series, and `histogram_quantile` answers over it.
#[cfg(feature = "native-histograms")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_stores_the_native_histograms() {
    use db_monitor::prometheus::NativeHistogramConfig;
    use support::daemon::Daemon;

    let Some(prometheus) = support::tools::binary(&["prometheus"]) else {
        return;
    };
    let native = NativeHistogramConfig::new(1.1, 160, 1e-9).unwrap();
    let (recorder, handle, _upkeep) = PrometheusSetup::new()
        .native_histograms(native)
        .upkeep_every(Duration::from_millis(200))
        .build();
    let monitor = DbMonitor::with_recorder(MonitorConfig::default().max_size(2), Arc::new(recorder))
        .expect("a valid configuration");
    let demo = axum_example::demo(&monitor, support::pg::shared_config(), Some(handle))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, demo.router).await });
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let get = |path: &str, accept: &'static str| {
        let request = http::Request::get(format!("http://{target}{path}"))
            .header("accept", accept)
            .body(Full::new(Bytes::new()))
            .unwrap();
        client.request(request)
    };
    const STATEMENTS: usize = 20;
    for n in 0..STATEMENTS {
        let response = get(&format!("/customers/{}", n % 5 + 1), "*/*").await.unwrap();
        assert_eq!(response.status(), http::StatusCode::OK);
    }
    // A text scrape still answers, without the native histograms.
    let text = get("/metrics", "text/plain").await.unwrap();
    assert_eq!(
        text.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(text.headers()["vary"], "accept");
    let text = String::from_utf8(text.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(text.contains("db_client_connection_count{"), "{text}");
    assert!(!text.contains(names::OPERATION_DURATION), "{text}");

    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{target}']\n"
    );
    let prometheus = tokio::task::spawn_blocking(move || {
        Daemon::start(
            "prometheus",
            &prometheus,
            &[("prometheus.yml", &config)],
            |dir, port| {
                vec![
                    format!("--config.file={}", dir.join("prometheus.yml").display()),
                    format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
                    format!("--web.listen-address=127.0.0.1:{port}"),
                    "--enable-feature=native-histograms".to_owned(),
                    "--log.level=warn".to_owned(),
                ]
            },
            "/-/ready",
        )
    })
    .await
    .unwrap();
    let prometheus = Arc::new(prometheus);
    let query = |promql: &str| {
        let prometheus = prometheus.clone();
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        async move {
            let answer = tokio::task::spawn_blocking(move || prometheus.get(&path))
                .await
                .unwrap();
            match answer {
                Some((200, body)) => {
                    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
                    body["data"]["result"].as_array().cloned().unwrap_or_default()
                }
                other => panic!("query {other:?}"),
            }
        }
    };
    let duration = format!("{}{{job=\"app\"}}", names::OPERATION_DURATION);
    let mut stored = Vec::new();
    for _ in 0..60 {
        stored = query(&duration).await;
        if !stored.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        !stored.is_empty(),
        "Prometheus never stored the durations; its targets: {:?}\nits log:\n{}",
        prometheus.get("/api/v1/targets"),
        prometheus.log()
    );
    for series in &stored {
        assert!(
            series.get("histogram").is_some() && series.get("value").is_none(),
            "a native histogram, not a float sample: {series}"
        );
    }
    let count = query(&format!("sum(histogram_count({duration}))")).await;
    let count: f64 = count[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(
        count >= STATEMENTS as f64,
        "{count} observations, {STATEMENTS} statements at least"
    );
    let median = query(&format!("histogram_quantile(0.5, sum({duration}))")).await;
    let median: f64 = median[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(median > 0.0 && median < 1.0, "the median statement took {median} s");
    let buckets = query(&format!("{}_bucket", names::OPERATION_DURATION)).await;
    assert!(buckets.is_empty(), "no classic buckets: {buckets:?}");
    // Counters and gauges come through the protobuf scrape as well.
    assert!(!query("db_client_connection_count{job=\"app\"}").await.is_empty());
    server.abort();
    demo.background.shutdown().await;
}

/// `s` with every byte but unreserved ones percent-encoded, for a query
/// string.
#[cfg(feature = "native-histograms")]
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The objective rules generated from a declaration pass `promtool check
/// rules`, and `promtool test rules` with series of two routes: the one
/// whose requests miss their latency bound one time in five pages and
/// opens a ticket; the other, and the first's success objective, stay quiet.
#[test]
fn the_generated_objective_rules_check_and_fire_for_the_burning_route_only() {
    use db_monitor::{prometheus::objective_rules, MonitorConfig, Objective};
    let config = MonitorConfig::default()
        .objective(
            Objective::route("GET /login")
                .latency(Duration::from_millis(50), 0.99)
                .success(0.999),
        )
        .objective(Objective::route("GET /\"quoted\"").latency(Duration::from_millis(200), 0.95));
    let rules = objective_rules(&config);
    let Some(promtool) = promtool() else { return };
    let dir = std::env::temp_dir().join(format!("db-monitor-objectives-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("objectives.yml"), &rules).unwrap();
    let labels = r#"instance="a:9", db_client_connection_pool_name="main""#;
    let page_labels = |severity: &str| {
        format!(
            "          - exp_labels: {{severity: {severity}, alert_type: objective_burn, objective: latency, http_route: \"GET /login\", instance: \"a:9\", db_client_connection_pool_name: main}}\n            \
             exp_annotations:\n              \
             summary: \"Route GET /login burns its latency objective's error budget on pool main of a:9\"\n              \
             description: \"{}x the rate its target allows, over the last {}.\"\n",
            if severity == "critical" { "14.4" } else { "6" },
            if severity == "critical" { "1h and the last 5m" } else { "6h and the last 30m" },
        )
    };
    let test = format!(
        r#"rule_files: [objectives.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'db_monitor_objective_requests_total{{{labels}, http_route="GET /login"}}'
        values: '0+100x120'
      - series: 'db_monitor_objective_requests_slow_total{{{labels}, http_route="GET /login"}}'
        values: '0+20x120'
      - series: 'db_monitor_objective_requests_failed_total{{{labels}, http_route="GET /login"}}'
        values: '0+0x120'
      - series: 'db_monitor_objective_requests_total{{{labels}, http_route="GET /\"quoted\""}}'
        values: '0+100x120'
      - series: 'db_monitor_objective_requests_slow_total{{{labels}, http_route="GET /\"quoted\""}}'
        values: '0+1x120'
      - series: 'db_monitor_objective_requests_failed_total{{{labels}, http_route="GET /\"quoted\""}}'
        values: '0+0x120'
    alert_rule_test:
      - eval_time: 70m
        alertname: DbObjectiveBurn
        exp_alerts:
{critical}{medium}"#,
        critical = page_labels("critical"),
        medium = page_labels("medium"),
    );
    std::fs::write(dir.join("objectives.test.yml"), test).unwrap();
    for args in [
        ["check", "rules", "objectives.yml"],
        ["test", "rules", "objectives.test.yml"],
    ] {
        let output = Command::new(&promtool).args(args).current_dir(&dir).output().unwrap();
        assert!(
            output.status.success(),
            "promtool {}: {}{}\n{rules}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
