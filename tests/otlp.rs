//! The spans through the real OpenTelemetry pipeline: the axum example's
//! app, traced by tower-http's `TraceLayer` and exported by
//! `tracing-opentelemetry` and `opentelemetry-otlp` (OTLP/HTTP, protobuf)
//! to a receiver started here, which decodes what it gets with the
//! official definitions (`opentelemetry-proto`). One request's trace holds
//! its statements under the request's span.
//!
//! The metrics through the same pipeline (feature `otlp`): `OtlpRecorder`
//! into the OpenTelemetry SDK and `opentelemetry-otlp`'s metric exporter,
//! to the receiver: the duration histogram arrives under the convention's
//! name, unit, attributes and bucket boundaries.

// The example carries its own copy of the PostgreSQL harness.
#![allow(clippy::duplicate_mod)]

mod support;

#[path = "../examples/otlp_traces.rs"]
mod otlp_traces;

#[path = "../examples/axum_server.rs"]
#[allow(dead_code)]
mod axum_example;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use db_monitor::{DbMonitor, MonitorConfig};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtelStatus;
use prost::Message;

/// A span as received: its ids, name, kind, status and attributes.
#[derive(Clone, Debug)]
struct Received {
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    name: String,
    kind: i32,
    error: bool,
    attributes: BTreeMap<String, String>,
}

impl Received {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// An OTLP/HTTP trace receiver on a loopback port: `POST /v1/traces` with
/// a protobuf `ExportTraceServiceRequest`.
async fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    receiver_of("/v1/traces", |body| {
        ExportTraceServiceRequest::decode(body).ok().map(spans_of)
    })
    .await
}

/// An OTLP/HTTP receiver on a loopback port: `POST {path}`, each body
/// decoded into what it keeps (a body that does not decode is a 400).
async fn receiver_of<T: Send + 'static>(
    path: &'static str,
    decode: fn(Bytes) -> Option<Vec<T>>,
) -> (String, Arc<Mutex<Vec<T>>>) {
    let received: Arc<Mutex<Vec<T>>> = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    let store = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let store = store.clone();
                    async move {
                        let ok = request.method() == http::Method::POST && request.uri().path() == path;
                        let body = request
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let status = match decode(body) {
                            Some(items) if ok => {
                                store.lock().unwrap().extend(items);
                                StatusCode::OK
                            }
                            _ => StatusCode::BAD_REQUEST,
                        };
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .header("content-type", "application/x-protobuf")
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, received)
}

fn spans_of(export: ExportTraceServiceRequest) -> Vec<Received> {
    let mut out = Vec::new();
    for resource in export.resource_spans {
        for scope in resource.scope_spans {
            for span in scope.spans {
                let attributes = span
                    .attributes
                    .iter()
                    .map(|kv| {
                        let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                            Some(Value::StringValue(s)) => s.clone(),
                            Some(Value::IntValue(i)) => i.to_string(),
                            Some(Value::DoubleValue(d)) => d.to_string(),
                            Some(Value::BoolValue(b)) => b.to_string(),
                            other => format!("{other:?}"),
                        };
                        (kv.key.clone(), value)
                    })
                    .collect();
                out.push(Received {
                    error: span.status.as_ref().is_some_and(|s| s.code == OtelStatus::Error as i32),
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    parent_span_id: span.parent_span_id,
                    name: span.name,
                    kind: span.kind,
                    attributes,
                });
            }
        }
    }
    out
}

/// Flushes the SDK with `flush` (which blocks), then waits until something
/// `done` accepts has arrived, and returns all that has.
async fn after_flush<T: Clone + std::fmt::Debug, E: std::fmt::Debug + Send + 'static>(
    flush: impl FnOnce() -> Result<(), E> + Send + 'static,
    received: &Arc<Mutex<Vec<T>>>,
    done: impl Fn(&T) -> bool,
) -> Vec<T> {
    tokio::task::spawn_blocking(flush).await.unwrap().expect("flush");
    let arrived = support::eventually(Duration::from_secs(10), || received.lock().unwrap().iter().any(&done)).await;
    let items = received.lock().unwrap().clone();
    assert!(arrived, "{items:#?}");
    items
}

async fn send(base: &str, method: http::Method, path: &str) -> StatusCode {
    let client = support::http::tcp_client();
    support::http::over_tcp(&client, method, &format!("{base}{path}"))
        .await
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_exports_its_statements_under_its_span() {
    let (endpoint, received) = receiver().await;
    let provider = otlp_traces::trace_to_otlp(&endpoint).expect("exporter");
    let config = MonitorConfig::default().trace_context(otlp_traces::current_trace);
    let monitor = DbMonitor::new(config).expect("a valid configuration");
    let demo = axum_example::demo(&monitor, support::pg::shared_config(), None)
        .await
        .expect("demo");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, demo.router).await });

    assert_eq!(send(&base, http::Method::GET, "/customers/3").await, StatusCode::OK);
    assert_eq!(
        send(&base, http::Method::POST, "/transfer?from=1&to=2").await,
        StatusCode::OK
    );
    let flushing = provider.clone();
    let spans = after_flush(move || flushing.force_flush(), &received, |s| s.name == "COMMIT").await;

    // GET /customers/3: the request's span (tower-http's), and below it the
    // statement's, in the same trace.
    let select = spans
        .iter()
        .find(|s| s.name == "SELECT demo_customers")
        .unwrap_or_else(|| panic!("{spans:#?}"));
    let request = spans
        .iter()
        .find(|s| s.span_id == select.parent_span_id)
        .unwrap_or_else(|| panic!("the statement's parent: {spans:#?}"));
    assert_eq!(request.name, "request", "tower-http's span");
    assert_eq!(request.attribute("uri"), Some("/customers/3"));
    assert_eq!(request.trace_id, select.trace_id);
    assert_eq!(select.kind, SpanKind::Client as i32);
    assert!(!select.error);
    assert_eq!(select.attribute("db.system.name"), Some("postgresql"));
    assert_eq!(select.attribute("db.query.summary"), Some("SELECT demo_customers"));
    assert_eq!(
        select.attribute("db.query.text"),
        Some("SELECT name FROM demo_customers WHERE id = $1")
    );
    assert_eq!(select.attribute("db.response.returned_rows"), Some("1"));
    assert_eq!(select.attribute("db.client.connection.pool.name"), Some("primary"));
    assert!(select.attribute("db_monitor.checkout.wait_ms").is_some());
    assert!(select.attribute("db.namespace").is_some());

    // POST /transfer: a transaction span under the request, its statements
    // under it.
    let transaction = spans
        .iter()
        .find(|s| s.name == "transaction")
        .unwrap_or_else(|| panic!("{spans:#?}"));
    let request = spans
        .iter()
        .find(|s| s.span_id == transaction.parent_span_id)
        .expect("the transaction's parent");
    assert_eq!(request.attribute("uri"), Some("/transfer?from=1&to=2"));
    assert_eq!(
        transaction.attribute("db_monitor.transaction.outcome"),
        Some("committed")
    );
    assert_eq!(transaction.kind, SpanKind::Internal as i32);
    let mut children: Vec<&str> = spans
        .iter()
        .filter(|s| s.parent_span_id == transaction.span_id)
        .map(|s| s.name.as_str())
        .collect();
    children.sort_unstable();
    assert_eq!(
        children,
        [
            "BEGIN",
            "COMMIT",
            "SELECT",
            "UPDATE demo_accounts",
            "UPDATE demo_accounts"
        ],
        "{spans:#?}"
    );
    assert!(spans
        .iter()
        .filter(|s| s.parent_span_id == transaction.span_id)
        .all(|s| s.trace_id == transaction.trace_id));
    let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
}

/// A metric as received: its name, unit, and each data point's attributes
/// with, for a histogram, its bucket bounds and count.
#[cfg(feature = "otlp")]
#[derive(Clone, Debug)]
struct Metric {
    name: String,
    unit: String,
    points: Vec<(BTreeMap<String, String>, Vec<f64>, u64)>,
}

#[cfg(feature = "otlp")]
fn metrics_of(export: opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest) -> Vec<Metric> {
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
        kvs.iter()
            .map(|kv| {
                let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(Value::StringValue(s)) => s.clone(),
                    other => format!("{other:?}"),
                };
                (kv.key.clone(), value)
            })
            .collect()
    }
    let mut out = Vec::new();
    for resource in export.resource_metrics {
        for scope in resource.scope_metrics {
            for metric in scope.metrics {
                let points = match &metric.data {
                    Some(Data::Histogram(h)) => h
                        .data_points
                        .iter()
                        .map(|p| (attributes(&p.attributes), p.explicit_bounds.clone(), p.count))
                        .collect(),
                    Some(Data::Gauge(g)) => g
                        .data_points
                        .iter()
                        .map(|p| (attributes(&p.attributes), vec![], 0))
                        .collect(),
                    Some(Data::Sum(s)) => s
                        .data_points
                        .iter()
                        .map(|p| (attributes(&p.attributes), vec![], 0))
                        .collect(),
                    _ => Vec::new(),
                };
                out.push(Metric {
                    name: metric.name,
                    unit: metric.unit,
                    points,
                });
            }
        }
    }
    out
}

/// Statements through a pool whose monitor records into `OtlpRecorder`,
/// exported by `opentelemetry-otlp` over OTLP/HTTP: the duration histogram
/// arrives as `db.client.operation.duration` in `s`, with the convention's
/// attributes (a failure's with `error.type` and `db.response.status_code`)
/// and bucket boundaries; the connection count as a gauge with its state;
/// the crate's own metrics under `db_monitor.*`.
#[cfg(feature = "otlp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_arrive_over_otlp_under_the_conventions_names() {
    use db_monitor::names::{DURATION_BUCKETS, ROW_BUCKETS};
    use db_monitor::otlp::OtlpRecorder;
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

    let (endpoint, received) = receiver_of("/v1/metrics", |body| {
        ExportMetricsServiceRequest::decode(body).ok().map(metrics_of)
    })
    .await;
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_endpoint(&endpoint)
        .build()
        .expect("exporter");
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_periodic_exporter(exporter)
        .build();
    let recorder = OtlpRecorder::new(provider.meter("otlp-test"));
    let monitor = DbMonitor::with_recorder(MonitorConfig::default().returned_rows(true), Arc::new(recorder))
        .expect("a valid configuration");
    let pool = monitor
        .pool(
            monitor.manager("otlp", support::pg::shared_config(), db_monitor::tokio_postgres::NoTls),
            db_monitor::bb8::Pool::builder().max_size(2),
        )
        .await
        .unwrap();
    let conn = pool.get().await.unwrap();
    conn.query("SELECT generate_series(1, 3)", &[]).await.unwrap();
    assert!(conn.query("SELECT * FROM no_such_table_otlp", &[]).await.is_err());
    drop(conn);
    let flushing = provider.clone();
    let metrics = after_flush(
        move || flushing.force_flush(),
        &received,
        |m| m.name == "db.client.operation.duration",
    )
    .await;
    let find = |name: &str| {
        metrics
            .iter()
            .rev()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no {name} in {metrics:#?}"))
            .clone()
    };

    let duration = find("db.client.operation.duration");
    assert_eq!(duration.unit, "s");
    let ok = duration
        .points
        .iter()
        .find(|(a, ..)| a.get("db.query.summary").map(String::as_str) == Some("SELECT"))
        .unwrap_or_else(|| panic!("{duration:#?}"));
    assert_eq!(ok.1, DURATION_BUCKETS, "the convention's advised boundaries");
    assert_eq!(ok.2, 1);
    let config = support::pg::shared_config();
    let database = config.get_dbname().or(config.get_user()).unwrap();
    assert_eq!(ok.0.get("db.system.name").map(String::as_str), Some("postgresql"));
    assert_eq!(ok.0.get("db.namespace").map(String::as_str), Some(database));
    assert!(ok.0.contains_key("server.address"), "{ok:?}");
    assert!(!ok.0.contains_key("error.type"));
    let failed = duration
        .points
        .iter()
        .find(|(a, ..)| a.contains_key("error.type"))
        .unwrap_or_else(|| panic!("{duration:#?}"));
    assert_eq!(failed.0["error.type"], "syntax_or_access");
    assert_eq!(failed.0["db.response.status_code"], "42P01");

    let rows = find("db.client.response.returned_rows");
    assert_eq!(rows.points[0].1, ROW_BUCKETS);
    let count = find("db.client.connection.count");
    let states: Vec<&str> = count
        .points
        .iter()
        .filter_map(|(a, ..)| a.get("db.client.connection.state").map(String::as_str))
        .collect();
    assert!(states.contains(&"idle") && states.contains(&"used"), "{count:#?}");
    find("db_monitor.errors");
    find("db_monitor.connection_gets");
    assert!(
        metrics.iter().all(|m| !m.name.starts_with("db_client_")),
        "no Prometheus name over OTLP"
    );
    let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
}
