//! The spans through the real OpenTelemetry pipeline: the axum example's
//! app, traced by tower-http's `TraceLayer` and exported by
//! `tracing-opentelemetry` and `opentelemetry-otlp` (OTLP/HTTP, protobuf)
//! to a receiver started here, which decodes what it gets with the
//! official definitions (`opentelemetry-proto`). One request's trace holds
//! its statements under the request's span.

// The example carries its own copy of the PostgreSQL harness.
#![allow(clippy::duplicate_mod)]

mod support;

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
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
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
                        let ok = request.method() == http::Method::POST && request.uri().path() == "/v1/traces";
                        let body = request
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let status = match ExportTraceServiceRequest::decode(body) {
                            Ok(export) if ok => {
                                store.lock().unwrap().extend(spans_of(export));
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

async fn send(base: &str, method: http::Method, path: &str) -> StatusCode {
    let client = support::http::tcp_client();
    support::http::over_tcp(&client, method, &format!("{base}{path}"))
        .await
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_exports_its_statements_under_its_span() {
    let (endpoint, received) = receiver().await;
    let provider = axum_example::trace_to_otlp(&endpoint).expect("exporter");
    let config = MonitorConfig::default().trace_context(axum_example::current_trace);
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
    tokio::task::spawn_blocking(move || flushing.force_flush())
        .await
        .unwrap()
        .expect("flush");
    let arrived = support::eventually(Duration::from_secs(10), || {
        received.lock().unwrap().iter().any(|s| s.name == "COMMIT")
    })
    .await;
    let spans = received.lock().unwrap().clone();
    assert!(arrived, "{spans:#?}");

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
        Some("SELECT name FROM demo_customers WHERE id = ?")
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
