//! The cost of `DbMonitorLayer` on a request that passes through it: a
//! trivial service called directly and through the layer, in one run.
//! What the layer adds per request: the request scope (one allocation),
//! its entry in the request's extensions, the task-local around the inner
//! future, the route lookup, and the `Server-Timing` header.
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

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    // A pool that never connects: the pass-through path does not touch it.
    let monitor = DbMonitor::with_recorder(MonitorConfig::default(), std::sync::Arc::new(metrics::NoopRecorder));
    let mut pg = Config::new();
    pg.host("127.0.0.1").port(1).user("bench");
    let builder = db_monitor::bb8::Pool::builder()
        .max_size(1)
        .min_idle(Some(0))
        .connection_timeout(Duration::from_millis(100));
    let pool = monitor.pool_unchecked(monitor.manager("bench", pg, NoTls), builder);

    let mut bare = service_fn(trivial);
    let mut layered = DbMonitorLayer::new(pool.clone()).layer(service_fn(trivial));
    let mut layered_quiet = DbMonitorLayer::new(pool)
        .server_timing(false)
        .layer(service_fn(trivial));

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
    g.finish();
    c.final_summary();

    if let (Some(bare), Some(layered)) = (median("layer_overhead", "bare"), median("layer_overhead", "layered")) {
        println!("bare service (median): {bare:.1} ns per request");
        println!("through DbMonitorLayer (median): {layered:.1} ns per request");
        if let Some(quiet) = median("layer_overhead", "layered_without_server_timing") {
            println!("through DbMonitorLayer, Server-Timing off (median): {quiet:.1} ns per request");
        }
        println!("layer/bare latency ratio: {:.2}", layered / bare);
        println!("layer added: {:.0} ns per request", layered - bare);
    }
}
