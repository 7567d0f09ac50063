//! Client instructions per statement and per checkout, through real I/O,
//! for the raw driver and through the monitor: the program that
//! `benches/io_callgrind.sh` runs under callgrind.
//!
//! ```text
//! bash benches/io_callgrind.sh
//! ```
//!
//! `io_instructions ARM N [RECORDER]` runs N operations of one arm on a
//! current-thread runtime, against a throwaway PostgreSQL started here (or
//! `DATABASE_URL`), inside `measured`, which the script counts alone
//! (`--toggle-collect`) at two lengths; the slope is the cost of one
//! operation, start-up excluded. Arms:
//!
//! - `raw_statement`: a prepared `SELECT 1` on a connection checked out of a
//!   plain bb8-postgres pool (the stack the monitor wraps);
//! - `monitored_statement`: the same through a `MonitoredConnection`;
//! - `raw_checkout`: checkout from a bb8-postgres pool, `query_one("SELECT 1")`,
//!   return;
//! - `monitored_checkout`: the same through a `MonitoredPool`;
//! - `replica_checkout`: the same through [`ReplicaSet::read`](db_monitor::ReplicaSet::read)
//!   over two replicas (monitored pools on the same server): the
//!   difference to `monitored_checkout` is what the replica choice adds.
//!
//! `RECORDER` is `prometheus` (the default: a Prometheus recorder with its
//! buckets, as an application installs it) or `noop`. The monitored arms
//! run the monitor's background task, as an application does.
//!
//! `TRACE=on` (the environment) gives the monitored pool a trace context
//! at every checkout ([`MonitorConfig::trace_context`]), so that each
//! checkout sends the prepared `set_config` ahead of its statement.
//!
//! `SPANS` (the environment) says who wants the statement spans:
//!
//! - `none` (the default): no `tracing` subscriber;
//! - `filtered`: a subscriber that wants only WARN and above (an
//!   application logging warnings: the spans' callsites are never
//!   interesting);
//! - `registry`: `tracing-subscriber`'s registry with a layer that wants
//!   everything and does nothing (the least a recorded span costs);
//! - `otel`: `tracing-opentelemetry` into the OpenTelemetry SDK's tracer,
//!   whose span processor hands each finished span to an exporter that
//!   drops it (everything but the network).

#[path = "../tests/support/pg.rs"]
mod pg;

use std::hint::black_box;
use std::sync::Arc;

use bb8_postgres::PostgresConnectionManager;
use db_monitor::prometheus::PrometheusSetup;
use db_monitor::tokio_postgres::{Config, NoTls};
use db_monitor::{DbMonitor, MonitorConfig};
use tokio::runtime::Runtime;

/// What one arm does N times (one value per run: its size does not matter).
#[allow(clippy::large_enum_variant)]
enum Arm {
    RawStatement(
        bb8::PooledConnection<'static, PostgresConnectionManager<NoTls>>,
        db_monitor::tokio_postgres::Statement,
    ),
    MonitoredStatement(
        db_monitor::MonitoredConnection<'static, NoTls>,
        db_monitor::MonitoredStatement,
    ),
    RawCheckout(bb8::Pool<PostgresConnectionManager<NoTls>>),
    MonitoredCheckout(db_monitor::MonitoredPool<NoTls>),
    ReplicaCheckout(db_monitor::ReplicaSet<NoTls>),
}

/// The operations counted: only this function is collected.
#[inline(never)]
fn measured(runtime: &Runtime, arm: &Arm, n: u64) {
    runtime.block_on(async {
        for _ in 0..n {
            match arm {
                Arm::RawStatement(client, statement) => {
                    black_box(client.query_one(statement, &[]).await.unwrap());
                }
                Arm::MonitoredStatement(conn, statement) => {
                    black_box(conn.query_one(statement, &[]).await.unwrap());
                }
                Arm::RawCheckout(pool) => {
                    let conn = pool.get().await.unwrap();
                    black_box(conn.query_one("SELECT 1", &[]).await.unwrap());
                }
                Arm::MonitoredCheckout(pool) => {
                    let conn = pool.get().await.unwrap();
                    black_box(conn.query_one("SELECT 1", &[]).await.unwrap());
                }
                Arm::ReplicaCheckout(set) => {
                    let conn = set.read().await.unwrap();
                    black_box(conn.query_one("SELECT 1", &[]).await.unwrap());
                }
            }
        }
    });
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(arm), Some(n)) = (args.next(), args.next().and_then(|n| n.parse::<u64>().ok())) else {
        // `cargo bench` runs every bench with `--bench`: say how to run this one.
        println!("io_instructions: run `bash benches/io_callgrind.sh` (callgrind counts, raw against monitored)");
        return;
    };
    let recorder = args.next().unwrap_or_else(|| "prometheus".to_owned());
    let database: Option<Config> = std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .map(|url| url.parse().expect("DATABASE_URL is not a valid PostgreSQL URL"));
    let (_server, config) = pg::example_server(database.as_ref());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut settings = MonitorConfig::default();
    if std::env::var("TRACE").is_ok_and(|t| t == "on") {
        let parent = db_monitor::TraceParent::new([0x4b; 16], [0x2a; 8], true);
        settings = settings.trace_context(move || parent);
    }
    let monitor = if recorder == "noop" {
        DbMonitor::builder(settings)
            .recorder(Arc::new(metrics::NoopRecorder))
            .build()
            .expect("a valid configuration")
    } else {
        let (prometheus, _handle, _upkeep) = PrometheusSetup::new().build();
        DbMonitor::builder(settings)
            .recorder(Arc::new(prometheus))
            .build()
            .expect("a valid configuration")
    };
    let _spans = spans(&std::env::var("SPANS").unwrap_or_default());
    let (arm, _background) = runtime.block_on(setup(&arm, &config, &monitor));
    // Warm up: caches, handles, the statement table.
    measured(&runtime, &arm, 200);
    measured(&runtime, &arm, n);
}

/// Installs the subscriber `mode` names (see the module's documentation);
/// what it returns is kept until the end.
fn spans(mode: &str) -> Option<opentelemetry_sdk::trace::SdkTracerProvider> {
    use tracing_subscriber::prelude::*;
    match mode {
        "" | "none" => None,
        "filtered" => {
            let layer =
                tracing_subscriber::layer::Identity::new().with_filter(tracing::level_filters::LevelFilter::WARN);
            tracing_subscriber::registry().with(layer).init();
            None
        }
        "registry" => {
            tracing_subscriber::registry()
                .with(tracing_subscriber::layer::Identity::new())
                .init();
            None
        }
        "otel" => {
            use opentelemetry::trace::TracerProvider;
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_simple_exporter(Dropping)
                .build();
            let tracer = provider.tracer("io_instructions");
            tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(tracer))
                .init();
            Some(provider)
        }
        other => panic!("unknown SPANS {other:?}: none, filtered, registry, otel"),
    }
}

/// An OpenTelemetry exporter that drops what it is given.
#[derive(Debug)]
struct Dropping;

impl opentelemetry_sdk::trace::SpanExporter for Dropping {
    async fn export(&self, batch: Vec<opentelemetry_sdk::trace::SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

/// A pool of one connection, opened up front.
fn one<M: bb8::ManageConnection>() -> bb8::Builder<M> {
    bb8::Pool::builder().max_size(1).min_idle(Some(1))
}

async fn setup(arm: &str, config: &Config, monitor: &DbMonitor) -> (Arm, Option<db_monitor::MonitorHandle>) {
    match arm {
        "raw_statement" => {
            let pool = one()
                .build(PostgresConnectionManager::new(config.clone(), NoTls))
                .await
                .unwrap();
            let conn = pool.get_owned().await.unwrap();
            let statement = conn.prepare("SELECT 1").await.unwrap();
            (Arm::RawStatement(conn, statement), None)
        }
        "monitored_statement" => {
            let pool = monitor
                .pool(monitor.manager("bench", config.clone(), NoTls), one())
                .await
                .unwrap();
            let background = monitor.start(&pool);
            let conn = pool.get_owned().await.unwrap();
            let statement = conn.prepare("SELECT 1").await.unwrap();
            (Arm::MonitoredStatement(conn, statement), Some(background))
        }
        "raw_checkout" => {
            let pool = one()
                .build(PostgresConnectionManager::new(config.clone(), NoTls))
                .await
                .unwrap();
            (Arm::RawCheckout(pool), None)
        }
        "monitored_checkout" => {
            let pool = monitor
                .pool(monitor.manager("bench", config.clone(), NoTls), one())
                .await
                .unwrap();
            let background = monitor.start(&pool);
            (Arm::MonitoredCheckout(pool), Some(background))
        }
        "replica_checkout" => {
            let mut pools = Vec::new();
            for name in ["primary", "replica-1", "replica-2"] {
                let pool = monitor
                    .pool(monitor.manager(name, config.clone(), NoTls), one())
                    .await
                    .unwrap();
                pools.push(pool);
            }
            let background = monitor.start(&pools[1]);
            let primary = pools.remove(0);
            (Arm::ReplicaCheckout(db_monitor::ReplicaSet::new(primary, pools)), Some(background))
        }
        other => panic!(
            "unknown arm {other:?}: raw_statement, monitored_statement, raw_checkout, monitored_checkout, replica_checkout"
        ),
    }
}
