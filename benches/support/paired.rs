//! Two pools measured operation by operation on the same tasks: the
//! method of the throughput benches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs `tasks` loops for `length`, each doing one operation on each pool
/// in turn (the order alternating), and returns the time spent in each
/// pool's operations and how many pairs ran. Pairing the pools operation by
/// operation on the same task keeps the scheduler's placement of tasks,
/// connection tasks and backends from favouring either pool (an A/A run of
/// whole rounds per pool showed 4% between two identical pools at one
/// task).
async fn run<R, RF, M, MF>(tasks: usize, length: Duration, raw_op: R, mon_op: M) -> (Duration, Duration, u64)
where
    R: Fn() -> RF + Clone + Send + 'static,
    RF: std::future::Future<Output = ()> + Send,
    M: Fn() -> MF + Clone + Send + 'static,
    MF: std::future::Future<Output = ()> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (raw_op, mon_op, stop) = (raw_op.clone(), mon_op.clone(), stop.clone());
        handles.push(tokio::spawn(async move {
            let (mut raw, mut mon, mut pairs) = (Duration::ZERO, Duration::ZERO, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                if pairs % 2 == 0 {
                    raw_op().await;
                    let t1 = Instant::now();
                    mon_op().await;
                    raw += t1 - t0;
                    mon += t1.elapsed();
                } else {
                    mon_op().await;
                    let t1 = Instant::now();
                    raw_op().await;
                    mon += t1 - t0;
                    raw += t1.elapsed();
                }
                pairs += 1;
            }
            (raw, mon, pairs)
        }));
    }
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    let (mut raw, mut mon, mut pairs) = (Duration::ZERO, Duration::ZERO, 0);
    for h in handles {
        let (r, m, p) = h.await.unwrap();
        raw += r;
        mon += m;
        pairs += p;
    }
    (raw, mon, pairs)
}

/// One level of a comparison: each pool's operations per second (of its
/// own time, times the tasks), averaged over the rounds, and the median of
/// the rounds' ratios (the raw pool's time over the monitored pool's).
pub(crate) struct Level {
    pub(crate) raw_rate: f64,
    pub(crate) mon_rate: f64,
    pub(crate) median: f64,
}

/// Runs `rounds` rounds of `length` at `tasks` tasks (see [`run`]).
pub(crate) async fn level<R, RF, M, MF>(tasks: usize, rounds: u64, length: Duration, raw_op: R, mon_op: M) -> Level
where
    R: Fn() -> RF + Clone + Send + 'static,
    RF: std::future::Future<Output = ()> + Send,
    M: Fn() -> MF + Clone + Send + 'static,
    MF: std::future::Future<Output = ()> + Send,
{
    let (mut raw_rate, mut mon_rate, mut ratios) = (0.0, 0.0, Vec::new());
    for _ in 0..rounds {
        let (raw_time, mon_time, pairs) = run(tasks, length, raw_op.clone(), mon_op.clone()).await;
        let rate = |time: Duration| pairs as f64 / time.as_secs_f64().max(1e-9) * tasks as f64;
        raw_rate += rate(raw_time);
        mon_rate += rate(mon_time);
        ratios.push(raw_time.as_secs_f64() / mon_time.as_secs_f64().max(1e-9));
    }
    ratios.sort_by(f64::total_cmp);
    let rounds = rounds.max(1) as f64;
    Level {
        raw_rate: raw_rate / rounds,
        mon_rate: mon_rate / rounds,
        median: ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN),
    }
}

/// A number from the environment variable `name`, or `default`.
pub(crate) fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
