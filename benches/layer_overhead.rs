//! The cost of `DbMonitorLayer` on a request that passes through it: a
//! trivial service called directly and through the layer, in one run.
//! What the layer adds per request: the request scope (one allocation),
//! its entry in the request's extensions, the task-local around the inner
//! future, the route lookup, and the `Server-Timing` header; with a route,
//! its label and the route table's entry.
//!
//! ```text
//! cargo bench --bench layer_overhead
//! ```

#[path = "support/criterion_dir.rs"]
mod criterion_dir;

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::Criterion;
use criterion_dir::median;
use db_monitor::tokio_postgres::{Config, NoTls};
use db_monitor::{DbMonitor, DbMonitorLayer, MonitorConfig};
use futures_util::FutureExt;
use http::{Request, Response};
use http_body_util::Full;
use tower::{service_fn, Layer, Service};

fn request() -> Request<Full<Bytes>> {
    Request::get("/orders/42").body(Full::new(Bytes::new())).unwrap()
}

async fn trivial(_request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

/// `n` requests through `service`, each polled once: what callgrind counts.
#[inline(never)]
fn measured<S>(service: &mut S, n: u64)
where
    S: Service<Request<Full<Bytes>>>,
{
    for _ in 0..n {
        black_box(service.call(request()).now_or_never());
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    // A pool that never connects: the pass-through path does not touch it.
    let monitor = DbMonitor::with_recorder(MonitorConfig::default(), std::sync::Arc::new(metrics::NoopRecorder))
        .expect("a valid configuration");
    let mut pg = Config::new();
    pg.host("127.0.0.1").port(1).user("bench");
    let builder = db_monitor::bb8::Pool::builder()
        .max_size(1)
        .min_idle(Some(0))
        .connection_timeout(Duration::from_millis(100));
    let pool = monitor.pool_unchecked(monitor.manager("bench", pg, NoTls), builder);

    let mut bare = service_fn(trivial);
    let mut layered = DbMonitorLayer::new(pool.clone()).layer(service_fn(trivial));
    let mut layered_quiet = DbMonitorLayer::new(pool.clone())
        .server_timing(false)
        .layer(service_fn(trivial));

    // `--callgrind N VARIANT`: N requests of one variant inside `measured`,
    // for benches/layer_callgrind.sh to count.
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--callgrind") {
        let n: u64 = args[at + 1].parse().expect("a count");
        let mut routed = DbMonitorLayer::new(pool.clone())
            .route_label(|_, _| Some("GET /orders/{id}".to_owned()))
            .layer(service_fn(trivial));
        match args[at + 2].as_str() {
            "bare" => measured(&mut bare, n),
            "layered" => measured(&mut layered, n),
            "quiet" => measured(&mut layered_quiet, n),
            "routed" => measured(&mut routed, n),
            other => panic!("unknown variant {other}"),
        }
        return;
    }

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("layer_overhead");
    // The futures are ready at their first poll: no executor is involved.
    g.bench_function("bare", |b| b.iter(|| black_box(bare.call(request()).now_or_never())));
    g.bench_function("layered", |b| {
        b.iter(|| black_box(layered.call(request()).now_or_never()))
    });
    g.bench_function("layered_without_server_timing", |b| {
        b.iter(|| black_box(layered_quiet.call(request()).now_or_never()))
    });
    // A routed request: its label made per request (as axum's matched
    // route is), and its figures added to the route table at its end. Made
    // here, not with the others: built before them, it moved the
    // `layered` median by hundreds of nanoseconds (the heap's state at the
    // header map's first allocation).
    g.bench_function("layered_with_route", |b| {
        let mut routed = DbMonitorLayer::new(pool.clone())
            .route_label(|_, _| Some("GET /orders/{id}".to_owned()))
            .layer(service_fn(trivial));
        b.iter(|| black_box(routed.call(request()).now_or_never()))
    });
    g.finish();
    c.final_summary();

    if let (Some(bare), Some(layered)) = (median("layer_overhead", "bare"), median("layer_overhead", "layered")) {
        println!("bare service (median): {bare:.1} ns per request");
        println!("through DbMonitorLayer (median): {layered:.1} ns per request");
        if let Some(quiet) = median("layer_overhead", "layered_without_server_timing") {
            println!("through DbMonitorLayer, Server-Timing off (median): {quiet:.1} ns per request");
        }
        if let Some(routed) = median("layer_overhead", "layered_with_route") {
            println!("through DbMonitorLayer with a route (median): {routed:.1} ns per request");
        }
        println!("layer/bare latency ratio: {:.2}", layered / bare);
        println!("layer added: {:.0} ns per request", layered - bare);
    }
}
