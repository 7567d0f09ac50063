//! `SELECT 1` throughput through a plain bb8-postgres pool and through
//! `MonitoredPool` (with a Prometheus recorder installed and its upkeep
//! running), at 1, 4 and 16 concurrent tasks, interleaved round by round in
//! one run against the same local server (a throwaway one started here, or
//! `DATABASE_URL`). Each operation is a checkout, one statement and the
//! return.
//!
//! ```text
//! cargo bench --bench pool_throughput
//! ```
//!
//! Runs once with bb8's defaults (`test_on_check_out(true)`: a round trip
//! per checkout) and once with `test_on_check_out(false)`. In each round
//! every task does one operation on each pool in turn (alternating which
//! goes first) and times each; a round's ratio is the raw pool's time over
//! the monitored pool's, and a level's ratio is the median over its rounds.
//! Pairing the pools operation by operation on the same task is what makes
//! the figure steady on a 2-core machine shared with the server: with
//! whole rounds per pool, an A/A run showed 4% between two identical pools
//! at one task (the scheduler's placement of client, connection tasks and
//! backends). Ends with `monitored/raw throughput ratio: X.XXX`, the worst
//! level's median.
//! `POOL_BENCH_ROUNDS` and `POOL_BENCH_MILLIS` set the rounds per level
//! (default 30) and the length of each round (default 200 ms);
//! `POOL_BENCH_RECORDER=noop` measures with a no-op recorder instead;
//! `POOL_BENCH_AA=1` puts a second plain pool in the monitored pool's place
//! (an A/A run: the method's own bias).

#[path = "support/paired.rs"]
mod paired;
#[path = "../tests/support/pg.rs"]
mod pg;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bb8_postgres::PostgresConnectionManager;
use db_monitor::tokio_postgres::NoTls;
use db_monitor::{DbMonitor, MonitorConfig, MonitoredPool};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

const LEVELS: [usize; 3] = [1, 4, 16];

/// Both pools' settings: `max` connections, all opened up front.
fn sized<M: bb8::ManageConnection>(max: u32, test_on_check_out: bool) -> bb8::Builder<M> {
    bb8::Pool::builder()
        .max_size(max)
        .min_idle(Some(max))
        .test_on_check_out(test_on_check_out)
}

async fn compare(
    config: &db_monitor::tokio_postgres::Config,
    test_on_check_out: bool,
    rounds: u64,
    length: Duration,
) -> f64 {
    let max = *LEVELS.iter().max().unwrap() as u32;
    let plain = || async {
        sized(max, test_on_check_out)
            .build(PostgresConnectionManager::new(config.clone(), NoTls))
            .await
            .expect("plain pool")
    };
    let raw = plain().await;

    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0],
        )
        .unwrap()
        .build_recorder();
    let handle = recorder.handle();
    // `POOL_BENCH_RECORDER=noop` separates the monitor's own cost from the exporter's.
    let monitor = if std::env::var("POOL_BENCH_RECORDER").is_ok_and(|r| r == "noop") {
        DbMonitor::with_recorder(MonitorConfig::default(), Arc::new(metrics::NoopRecorder))
            .expect("a valid configuration")
    } else {
        DbMonitor::with_recorder(MonitorConfig::default(), Arc::new(recorder)).expect("a valid configuration")
    };
    let monitored: MonitoredPool<NoTls> = monitor
        .pool(
            monitor.manager("bench", config.clone(), NoTls),
            sized(max, test_on_check_out),
        )
        .await
        .expect("monitored pool");
    // `POOL_BENCH_AA=1`: an A/A run, a second plain pool in the monitored
    // pool's place, to see the method's own bias and noise.
    let twin = if std::env::var_os("POOL_BENCH_AA").is_some() {
        Some(plain().await)
    } else {
        None
    };
    // `POOL_BENCH_BYPASS=all`: the monitored pool through its escape hatches
    // (no checkout or statement instrumentation); `=statement`: monitored
    // checkouts, plain statements. To bisect a difference.
    let bypass = std::env::var("POOL_BENCH_BYPASS").ok();
    let upkeep = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            handle.run_upkeep();
        }
    });

    println!(
        "\ntest_on_check_out({test_on_check_out}): {rounds} rounds of {} ms per pool and level",
        length.as_millis()
    );
    println!(
        "{:>6} {:>14} {:>16} {:>14} {:>13}",
        "tasks", "raw ops/s", "monitored ops/s", "ratio of sums", "median ratio"
    );
    let mut worst = f64::INFINITY;
    for tasks in LEVELS {
        let raw_op = {
            let raw = raw.clone();
            move || {
                let raw = raw.clone();
                async move {
                    let conn = raw.get().await.unwrap();
                    conn.query_one("SELECT 1", &[]).await.unwrap();
                }
            }
        };
        let mon_op = {
            let (monitored, twin, bypass) = (monitored.clone(), twin.clone(), bypass.clone());
            move || {
                let (monitored, twin, bypass) = (monitored.clone(), twin.clone(), bypass.clone());
                async move {
                    if let Some(twin) = twin {
                        let conn = twin.get().await.unwrap();
                        conn.query_one("SELECT 1", &[]).await.unwrap();
                    } else if bypass.as_deref() == Some("statement") {
                        let conn = monitored.get().await.unwrap();
                        conn.raw().query_one("SELECT 1", &[]).await.unwrap();
                    } else if bypass.is_some() {
                        let conn = monitored.inner().get().await.unwrap();
                        conn.raw().query_one("SELECT 1", &[]).await.unwrap();
                    } else {
                        let conn = monitored.get().await.unwrap();
                        conn.query_one("SELECT 1", &[]).await.unwrap();
                    }
                }
            }
        };
        let paired::Level {
            raw_rate,
            mon_rate,
            median,
        } = paired::level(tasks, rounds, length, raw_op, mon_op).await;
        worst = worst.min(median);
        println!(
            "{tasks:>6} {raw_rate:>14.0} {mon_rate:>16.0} {:>14.3} {median:>13.3}",
            mon_rate / raw_rate
        );
    }
    upkeep.abort();
    println!("monitored/raw throughput ratio (test_on_check_out={test_on_check_out}): {worst:.3}");
    worst
}

fn main() {
    let server;
    let config = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url.parse().expect("DATABASE_URL"),
        _ => {
            server = pg::TempPostgres::start(&["-c", "max_connections=100"]);
            server.config()
        }
    };
    let rounds = paired::env_or("POOL_BENCH_ROUNDS", 30);
    let length = Duration::from_millis(paired::env_or("POOL_BENCH_MILLIS", 200));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let worst = rt.block_on(async {
        let with_test = compare(&config, true, rounds, length).await;
        let without_test = compare(&config, false, rounds, length).await;
        with_test.min(without_test)
    });
    println!("\n(took {:.0} s)", started.elapsed().as_secs_f64());
    println!("monitored/raw throughput ratio: {worst:.3}");
}
