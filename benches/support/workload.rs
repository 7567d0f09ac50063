//! The adoption benches' frame: the server and its table of stories, the
//! story each side asks for, and the two workloads measured level by level
//! (`paired`'s method), ending with the worst level's ratio.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use db_monitor::tokio_postgres::{Config, NoTls};

/// The task counts each workload runs at; the largest is the pools' size.
pub(crate) const LEVELS: [usize; 3] = [1, 4, 16];

/// The cached statement of the whole request.
pub(crate) const BY_ID: &str = "SELECT id, title FROM stories WHERE id = $1";

/// The story a request of one side asks for: 1 to 200, in turn. Each side
/// counts its own, so that both run the same sequence (one counter for
/// both would hand every transaction to one side at one task, as the pairs
/// alternate).
pub(crate) fn next_id(side: &AtomicU32) -> i32 {
    (side.fetch_add(1, Ordering::Relaxed) % 200) as i32 + 1
}

/// The bench's `main`: a server (`DATABASE_URL`, or a throwaway one), the
/// table `stories` of 200 rows in a new schema `schema`, then `body` with
/// the server's config, the rounds per level and their length
/// (`ADOPTION_BENCH_ROUNDS`, `ADOPTION_BENCH_MILLIS`). Prints the worst
/// ratio `body` returns.
pub(crate) fn main<F>(schema: &str, body: impl FnOnce(Config, u64, Duration) -> F)
where
    F: Future<Output = f64>,
{
    let server;
    let config: Config = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url.parse().expect("DATABASE_URL"),
        _ => {
            server = crate::pg::TempPostgres::start(&["-c", "max_connections=100"]);
            server.config()
        }
    };
    let rounds = crate::paired::env_or("ADOPTION_BENCH_ROUNDS", 30);
    let length = Duration::from_millis(crate::paired::env_or("ADOPTION_BENCH_MILLIS", 200));
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
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; \
                 CREATE TABLE {schema}.stories (id int PRIMARY KEY, title text NOT NULL); \
                 INSERT INTO {schema}.stories SELECT g, 'story ' || g FROM generate_series(1, 200) g"
            ))
            .await
            .expect("schema");
        body(config, rounds, length).await
    });
    println!("(took {:.0} s)", started.elapsed().as_secs_f64());
    println!("dbm/raw throughput ratio: {worst:.3}");
}

/// Both workloads (the whole request, then the stream alone), each at
/// every level: `raw(full)` and `mon(full)` make one request's operation.
/// Prints a table per workload; returns the worst level's median ratio.
pub(crate) async fn both_workloads<R, RF, M, MF>(
    rounds: u64,
    length: Duration,
    raw: impl Fn(bool) -> R,
    mon: impl Fn(bool) -> M,
) -> f64
where
    R: Fn() -> RF + Clone + Send + 'static,
    RF: Future<Output = ()> + Send,
    M: Fn() -> MF + Clone + Send + 'static,
    MF: Future<Output = ()> + Send,
{
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
            let crate::paired::Level {
                raw_rate,
                mon_rate,
                median,
            } = crate::paired::level(tasks, rounds, length, raw(full), mon(full)).await;
            worst = worst.min(median);
            println!("{tasks:>6} {raw_rate:>12.0} {mon_rate:>12.0} {median:>13.3}");
        }
    }
    worst
}
