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
pub(crate) async fn run<R, RF, M, MF>(tasks: usize, length: Duration, raw_op: R, mon_op: M) -> (Duration, Duration, u64)
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
