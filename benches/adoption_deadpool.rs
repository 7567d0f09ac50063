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

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use db_monitor::deadpool::managed::{Hook, HookError};
use db_monitor::deadpool_postgres::{self as dp, ManagerConfig, RecyclingMethod};
use db_monitor::tokio_postgres::NoTls;
use db_monitor::{DbMonitor, MonitorConfig, MonitoredDeadpool};
use metrics_exporter_prometheus::PrometheusBuilder;

const LEVELS: [usize; 3] = [1, 4, 16];
const SCHEMA: &str = "adoption_deadpool_bench";
const BY_ID: &str = "SELECT id, title FROM stories WHERE id = $1";

fn fast() -> ManagerConfig {
    ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    }
}

/// The story a request of one side asks for: 1 to 200, in turn, counted
/// per side (as in `adoption`).
fn next_id(side: &AtomicU32) -> i32 {
    (side.fetch_add(1, Ordering::Relaxed) % 200) as i32 + 1
}

static RAW_IDS: AtomicU32 = AtomicU32::new(0);
static MONITORED_IDS: AtomicU32 = AtomicU32::new(0);

async fn raw_request(pool: dp::Pool, full: bool) {
    let id = next_id(&RAW_IDS);
    let mut conn = pool.get().await.unwrap();
    let client: &db_monitor::tokio_postgres::Client = &conn;
    stories::first_story_from(client, id).await.unwrap().unwrap();
    if !full {
        return;
    }
    let statement = conn.prepare_cached(BY_ID).await.unwrap();
    conn.query_one(&statement, &[&id]).await.unwrap();
    stories::story_title(client, id).await.unwrap().unwrap();
    if id % 4 == 0 {
        let tx = conn.transaction().await.unwrap();
        stories::add_story(&*tx, id, "again").await.unwrap_err();
    }
}

async fn monitored_request(pool: MonitoredDeadpool<NoTls>, full: bool) {
    let id = next_id(&MONITORED_IDS);
    let mut conn = pool.get().await.unwrap();
    stories::first_story_from(&*conn, id).await.unwrap().unwrap();
    if !full {
        return;
    }
    let statement = conn.prepare_cached(BY_ID).await.unwrap();
    conn.query_one(&statement, &[&id]).await.unwrap();
    stories::story_title(&*conn, id).await.unwrap().unwrap();
    if id % 4 == 0 {
        let tx = conn.transaction().await.unwrap();
        stories::add_story(&tx, id, "again").await.unwrap_err();
    }
}

fn main() {
    let server;
    let config: db_monitor::tokio_postgres::Config = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url.parse().expect("DATABASE_URL"),
        _ => {
            server = pg::TempPostgres::start(&["-c", "max_connections=100"]);
            server.config()
        }
    };
    let rounds = paired::env_or("ADOPTION_BENCH_ROUNDS", 30);
    let length = Duration::from_millis(paired::env_or("ADOPTION_BENCH_MILLIS", 200));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let worst = rt.block_on(async {
        let (setup, connection) = config.connect(NoTls).await.expect("connect");
        tokio::spawn(connection);
        setup
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}; \
                 CREATE TABLE {SCHEMA}.stories (id int PRIMARY KEY, title text NOT NULL); \
                 INSERT INTO {SCHEMA}.stories SELECT g, 'story ' || g FROM generate_series(1, 200) g"
            ))
            .await
            .expect("schema");
        let search_path = format!("SET search_path = {SCHEMA}");

        let max = *LEVELS.iter().max().unwrap();
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
        let sql = search_path.clone();
        let builder = monitor
            .manager("adoption", config.clone(), NoTls)
            .deadpool_builder(fast())
            .max_size(max)
            .post_create(Hook::async_fn(move |conn: &mut db_monitor::MonitoredClient, _| {
                let sql = sql.clone();
                Box::pin(async move { conn.batch_execute(&sql).await.map_err(HookError::Backend) })
            }));
        let monitored = monitor.deadpool(builder).expect("monitored pool");
        let upkeep = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                handle.run_upkeep();
            }
        });

        let mut worst = f64::INFINITY;
        for (full, what) in [
            (
                true,
                "the whole request (stream, cached statement, text query, a failing transaction in four)",
            ),
            (
                false,
                "the stream alone (a checkout and one query_raw read for its first row)",
            ),
        ] {
            println!("\n{what}: {rounds} rounds of {} ms per level", length.as_millis());
            println!(
                "{:>6} {:>12} {:>12} {:>13}",
                "tasks", "raw req/s", "dbm req/s", "median ratio"
            );
            for tasks in LEVELS {
                let raw_op = {
                    let raw = raw.clone();
                    move || raw_request(raw.clone(), full)
                };
                let mon_op = {
                    let monitored = monitored.clone();
                    move || monitored_request(monitored.clone(), full)
                };
                let paired::Level {
                    raw_rate,
                    mon_rate,
                    median,
                } = paired::level(tasks, rounds, length, raw_op, mon_op).await;
                worst = worst.min(median);
                println!("{tasks:>6} {raw_rate:>12.0} {mon_rate:>12.0} {median:>13.3}");
            }
        }
        upkeep.abort();
        let snapshot = monitored.monitor().snapshot();
        println!(
            "monitored pool: {} connections set up; plain pool: {:?}",
            snapshot.connections_set_up,
            raw.status()
        );
        worst
    });
    println!("(took {:.0} s)", started.elapsed().as_secs_f64());
    println!("dbm/raw throughput ratio: {worst:.3}");
}
