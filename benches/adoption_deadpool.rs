//! `adoption` on deadpool-postgres: an application's workload through
//! plain deadpool-postgres and through `MonitoredDeadpool`, side by side in
//! one run.
//!
//! ```text
//! cargo bench --bench adoption_deadpool --features deadpool
//! ```
//!
//! The request is `adoption`'s: a checkout; a `query_raw` stream read for
//! its first row and dropped; a statement from the connection's statement
//! cache (`prepare_cached` on both sides: deadpool-postgres's own and the
//! monitor's); a text query through a function generic over the client;
//! every fourth request a transaction whose `INSERT` fails on a duplicate
//! key and which is then dropped; then the stream alone. Every connection
//! gets `SET search_path` from a `post_create` hook on both sides, and both
//! recycle with `RecyclingMethod::Fast`. Method, levels and the closing
//! `dbm/raw throughput ratio` as in `adoption` (`ADOPTION_BENCH_ROUNDS`,
//! `ADOPTION_BENCH_MILLIS`).

#[path = "support/paired.rs"]
mod paired;
#[path = "../tests/support/pg.rs"]
mod pg;
/// The application's data access, generic over the client.
#[path = "../tests/support/stories.rs"]
mod stories;
#[path = "support/workload.rs"]
mod workload;

use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use db_monitor::deadpool::managed::{Hook, HookError};
use db_monitor::deadpool_postgres::{self as dp, ManagerConfig, RecyclingMethod};
use db_monitor::tokio_postgres::NoTls;
use db_monitor::{DbMonitor, MonitorConfig, MonitoredDeadpool};
use metrics_exporter_prometheus::PrometheusBuilder;

const SCHEMA: &str = "adoption_deadpool_bench";

fn fast() -> ManagerConfig {
    ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    }
}

static RAW_IDS: AtomicU32 = AtomicU32::new(0);
static MONITORED_IDS: AtomicU32 = AtomicU32::new(0);

async fn raw_request(pool: dp::Pool, full: bool) {
    let id = workload::next_id(&RAW_IDS);
    let mut conn = pool.get().await.unwrap();
    let client: &db_monitor::tokio_postgres::Client = &conn;
    stories::first_story_from(client, id).await.unwrap().unwrap();
    if !full {
        return;
    }
    let statement = conn.prepare_cached(workload::BY_ID).await.unwrap();
    conn.query_one(&statement, &[&id]).await.unwrap();
    stories::story_title(client, id).await.unwrap().unwrap();
    if id % 4 == 0 {
        let tx = conn.transaction().await.unwrap();
        stories::add_story(&*tx, id, "again").await.unwrap_err();
    }
}

async fn monitored_request(pool: MonitoredDeadpool<NoTls>, full: bool) {
    let id = workload::next_id(&MONITORED_IDS);
    let mut conn = pool.get().await.unwrap();
    stories::first_story_from(&*conn, id).await.unwrap().unwrap();
    if !full {
        return;
    }
    let statement = conn.prepare_cached(workload::BY_ID).await.unwrap();
    conn.query_one(&statement, &[&id]).await.unwrap();
    stories::story_title(&*conn, id).await.unwrap().unwrap();
    if id % 4 == 0 {
        let tx = conn.transaction().await.unwrap();
        stories::add_story(&tx, id, "again").await.unwrap_err();
    }
}

fn main() {
    workload::main(SCHEMA, |config, rounds, length| async move {
        let search_path = format!("SET search_path = {SCHEMA}");
        let max = *workload::LEVELS.iter().max().unwrap();
        let sql = search_path.clone();
        let raw = dp::Pool::builder(dp::Manager::from_config(config.clone(), NoTls, fast()))
            .max_size(max)
            .runtime(db_monitor::deadpool::Runtime::Tokio1)
            .post_create(Hook::async_fn(move |conn: &mut dp::ClientWrapper, _| {
                let sql = sql.clone();
                Box::pin(async move { conn.batch_execute(&sql).await.map_err(HookError::Backend) })
            }))
            .build()
            .expect("plain pool");
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let monitor =
            DbMonitor::with_recorder(MonitorConfig::default(), Arc::new(recorder)).expect("a valid configuration");
        let builder = monitor
            .manager("adoption", config.clone(), NoTls)
            .deadpool_builder(fast())
            .max_size(max)
            .post_create(Hook::async_fn(move |conn: &mut db_monitor::MonitoredClient, _| {
                let sql = search_path.clone();
                Box::pin(async move { conn.batch_execute(&sql).await.map_err(HookError::Backend) })
            }));
        let monitored = monitor.deadpool(builder).expect("monitored pool");
        let upkeep = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                handle.run_upkeep();
            }
        });
        let worst = workload::both_workloads(
            rounds,
            length,
            |full| {
                let raw = raw.clone();
                move || raw_request(raw.clone(), full)
            },
            |full| {
                let monitored = monitored.clone();
                move || monitored_request(monitored.clone(), full)
            },
        )
        .await;
        upkeep.abort();
        println!(
            "monitored pool: {} connections set up; plain pool: {:?}",
            monitored.monitor().snapshot().connections_set_up,
            raw.status()
        );
        worst
    });
}
