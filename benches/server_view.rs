//! What the server view costs the server: queries and server time per
//! cycle, measured by the server itself (`pg_stat_statements` over the
//! poller's own statements), and the cycle as the poller times it.
//!
//! `cargo bench --bench server_view`: a throwaway PostgreSQL with
//! `pg_stat_statements`, a pool of 8 connections (4 idle, 1 idle in a
//! transaction, 1 holding a row and 2 waiting on it, so that the lock
//! queries run too), and the poller every 100 ms for 10 s.

#[path = "../tests/support/pg.rs"]
mod pg;

use std::time::Duration;

use db_monitor::tokio_postgres::NoTls;
use db_monitor::{DbMonitor, MonitorConfig, ServerView};

#[tokio::main]
async fn main() {
    let server = pg::TempPostgres::start(&["-c", "shared_preload_libraries=pg_stat_statements"]);
    let (admin, connection) = server.config().connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    admin
        .batch_execute(
            "CREATE EXTENSION pg_stat_statements;
             CREATE TABLE bench_rows (id int PRIMARY KEY, v int); INSERT INTO bench_rows VALUES (1, 0)",
        )
        .await
        .unwrap();

    let config = MonitorConfig::default().server_view(ServerView::default().interval(Duration::from_millis(100)));
    let monitor =
        DbMonitor::with_recorder(config, std::sync::Arc::new(metrics::NoopRecorder)).expect("a valid configuration");
    let builder = db_monitor::bb8::Pool::builder().max_size(8).min_idle(Some(8));
    let pool = monitor
        .pool(monitor.manager("bench", server.config(), NoTls), builder)
        .await
        .unwrap();
    // One idle in a transaction, one holding the row, two waiting on it.
    let idle = pool.get_owned().await.unwrap();
    idle.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let holder = pool.get_owned().await.unwrap();
    holder
        .batch_execute("BEGIN; UPDATE bench_rows SET v = 1 WHERE id = 1")
        .await
        .unwrap();
    let mut waiters = Vec::new();
    for _ in 0..2 {
        let pool = pool.clone();
        waiters.push(tokio::spawn(async move {
            let conn = pool.get().await.unwrap();
            conn.batch_execute("UPDATE bench_rows SET v = v + 1 WHERE id = 1")
                .await
                .unwrap();
        }));
    }
    admin.batch_execute("SELECT pg_stat_statements_reset()").await.unwrap();

    let background = monitor.start(&pool);
    let mut took = Vec::new();
    let mut last = None;
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < end {
        let sampled = pool.monitor().server_activity().sampled;
        if sampled.sampled_unix_ms != last && sampled.sampled_unix_ms.is_some() {
            last = sampled.sampled_unix_ms;
            took.push((sampled.sample_took_ms.unwrap(), sampled.sample_queries.unwrap()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    background.shutdown().await;
    assert_eq!(pool.monitor().server_locks().waiting, 2, "the lock queries ran");

    // The poller's statements, as the server counted them.
    let rows = admin
        .query(
            "SELECT query, calls, total_exec_time FROM pg_stat_statements \
             WHERE query ~ 'pg_stat_activity|pg_locks|pg_extension|pg_stat_statements\\(' \
             AND query !~ 'pg_stat_statements_reset|query ~'",
            &[],
        )
        .await
        .unwrap();
    let cycles = rows
        .iter()
        .filter(|r| r.get::<_, String>(0).contains("coalesce(application_name"))
        .map(|r| r.get::<_, i64>(1))
        .sum::<i64>()
        .max(1) as f64;
    let calls: i64 = rows.iter().map(|r| r.get::<_, i64>(1)).sum();
    let server_ms: f64 = rows.iter().map(|r| r.get::<_, f64>(2)).sum();
    took.sort_by(|a, b| a.0.total_cmp(&b.0));
    let median = took.get(took.len() / 2).map_or(0.0, |t| t.0);
    println!("server view: {cycles:.0} cycles in 10 s (every 100 ms), 8 connections, 2 waiting on a lock");
    println!(
        "server view: {:.2} queries per cycle, {:.3} ms of server execution time per cycle",
        calls as f64 / cycles,
        server_ms / cycles
    );
    println!("server view: cycle as the poller times it (round trips included), median {median:.2} ms");
    // Raw `BEGIN`s stay open on a returned connection (as with plain
    // bb8-postgres): end them, or the waiters wait for ever.
    idle.batch_execute("ROLLBACK").await.unwrap();
    holder.batch_execute("ROLLBACK").await.unwrap();
    drop((idle, holder));
    for w in waiters {
        let _ = w.await;
    }
}
