//! What the server view costs the server: queries and server time per
//! cycle, measured by the server itself (`pg_stat_statements` over the
//! poller's own statements), and the cycle as the poller times it; for the
//! elected poller (the leader), a follower, and the load sampler apart.
//!
//! `cargo bench --bench server_view`: a throwaway PostgreSQL with
//! `pg_stat_statements` and a pool of 8 connections (4 idle, 1 idle in a
//! transaction, 1 holding a row and 2 waiting on it, so that the lock
//! queries run too). Three phases of 10 s, each measured from a reset of
//! `pg_stat_statements`:
//!
//! 1. the leader alone, its cycle every 100 ms (the load sampler off);
//! 2. a second instance of the same pool name beside it: a follower, its
//!    cycle every 100 ms (sampler off);
//! 3. the load sampler alone, every 100 ms (the cycle once a day), on a
//!    pool of 8 connections, all checked out (with none checked out it
//!    runs no query).

#[path = "../tests/support/pg.rs"]
mod pg;

use std::time::Duration;

use db_monitor::tokio_postgres::{Client, NoTls};
use db_monitor::{DbMonitor, MonitorConfig, ServerView};

/// The poller's statements by part, told apart by their texts as the
/// server normalized them.
const PARTS: [(&str, &str); 6] = [
    (
        "activity (leader)",
        "FROM pg_stat_activity WHERE datname = current_database",
    ),
    (
        "own backends (follower, sampler)",
        "FROM pg_stat_activity WHERE pid = ANY",
    ),
    ("election", "pg_try_advisory_lock|FROM pg_locks l "),
    ("lock tree", "FROM pg_locks w"),
    ("connection budget", "coalesce\\(current_setting|client_port"),
    ("statements", "pg_stat_statements\\(|pg_extension"),
];

/// Calls and server milliseconds of each part since the last reset.
async fn parts(admin: &Client) -> Vec<(&'static str, i64, f64)> {
    let mut out = Vec::new();
    for (name, pattern) in PARTS {
        let row = admin
            .query_one(
                "SELECT coalesce(sum(calls), 0)::int8, coalesce(sum(total_exec_time), 0)::float8 \
                 FROM pg_stat_statements WHERE query ~ $1 AND query !~ 'pg_stat_statements_reset|query ~'",
                &[&pattern],
            )
            .await
            .unwrap();
        out.push((name, row.get(0), row.get(1)));
    }
    out
}

fn monitor(view: ServerView) -> DbMonitor {
    DbMonitor::with_recorder(
        MonitorConfig::default().server_view(view),
        std::sync::Arc::new(metrics::NoopRecorder),
    )
    .expect("a valid configuration")
}

/// Resets the server's counts, waits `secs`, and prints each part per
/// unit (`unit` names the part whose calls count the units).
async fn phase(admin: &Client, title: &str, unit: &str, secs: u64) -> (f64, f64) {
    admin.batch_execute("SELECT pg_stat_statements_reset()").await.unwrap();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let parts = parts(admin).await;
    let units = parts.iter().find(|p| p.0 == unit).map_or(0, |p| p.1).max(1) as f64;
    println!("server view, {title}: {units:.0} in {secs} s");
    let (mut calls, mut ms) = (0, 0.0);
    for (name, n, t) in &parts {
        if *n > 0 {
            println!(
                "  {name:34} {:6.2} queries, {:.4} ms of server time each",
                *n as f64 / units,
                t / units
            );
        }
        calls += n;
        ms += t;
    }
    let (per_queries, per_ms) = (calls as f64 / units, ms / units);
    println!(
        "  {:34} {per_queries:6.2} queries, {per_ms:.4} ms of server time each",
        "in all"
    );
    (per_queries, per_ms)
}

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

    let every = Duration::from_millis(100);
    let leader = monitor(ServerView::default().interval(every).load_interval(Duration::ZERO));
    let builder = db_monitor::bb8::Pool::builder().max_size(8).min_idle(Some(8));
    let pool = leader
        .pool(leader.manager("bench", server.config(), NoTls), builder)
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

    // 1. The leader alone; its cycle as it times it.
    let background = leader.start(&pool);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let timing = tokio::spawn({
        let pool = pool.clone();
        async move {
            let mut took = Vec::new();
            let mut last = None;
            let end = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < end {
                let sampled = pool.monitor().server_activity().sampled;
                if sampled.sampled_unix_ms != last && sampled.sampled_unix_ms.is_some() {
                    last = sampled.sampled_unix_ms;
                    took.push(sampled.sample_took_ms.unwrap());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            took.sort_by(f64::total_cmp);
            took.get(took.len() / 2).copied().unwrap_or(0.0)
        }
    });
    let (leader_queries, leader_ms) = phase(
        &admin,
        "the leader's cycles (8 connections, 2 waiting on a lock)",
        PARTS[0].0,
        10,
    )
    .await;
    let median = timing.await.unwrap();
    println!("  the leader's cycle as it times it (round trips included): median {median:.2} ms");
    assert_eq!(pool.monitor().server_locks().waiting, 2, "the lock queries ran");
    assert!(pool
        .monitor()
        .server_activity()
        .sampled
        .poller
        .is_some_and(|p| p.leader));

    // 2. A follower beside it (another instance of the pool "bench").
    let second = monitor(ServerView::default().interval(every).load_interval(Duration::ZERO));
    let follower_pool = second
        .pool(
            second.manager("bench", server.config(), NoTls),
            db_monitor::bb8::Pool::builder().max_size(2).min_idle(Some(2)),
        )
        .await
        .unwrap();
    let follower_background = second.start(&follower_pool);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(follower_pool
        .monitor()
        .server_activity()
        .sampled
        .poller
        .is_some_and(|p| !p.leader));
    // A follower's cycle reads its own backends once (the leader, which
    // holds the lock without a query, reads every backend instead): its
    // parts are the election and its own backends.
    admin.batch_execute("SELECT pg_stat_statements_reset()").await.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let counts = parts(&admin).await;
    let get = |name: &str| counts.iter().find(|p| p.0 == name).map_or((0, 0.0), |p| (p.1, p.2));
    let (tries, election_ms) = get("election");
    let (own, own_ms) = get("own backends (follower, sampler)");
    let cycles = own.max(1) as f64;
    let follower_queries = (tries + own) as f64 / cycles;
    let follower_ms = (election_ms + own_ms) / cycles;
    println!("server view, a follower's cycles: {cycles:.0} in 10 s");
    println!(
        "  {:34} {follower_queries:6.2} queries, {follower_ms:.4} ms of server time each (the lock tried, its holder named, its own backends)",
        "in all"
    );
    follower_background.shutdown().await;
    drop(follower_pool);

    // 3. The load sampler alone.
    background.shutdown().await;
    let sampler = monitor(
        ServerView::default()
            .interval(Duration::from_secs(24 * 3600))
            .load_interval(every),
    );
    let sampled = sampler
        .pool(
            sampler.manager("sampled", server.config(), NoTls),
            db_monitor::bb8::Pool::builder().max_size(8).min_idle(Some(8)),
        )
        .await
        .unwrap();
    // Each connection checked out (the sampler reads only those in use;
    // with none it runs no query).
    let mut in_use = Vec::new();
    for _ in 0..8 {
        in_use.push(sampled.get_owned().await.unwrap());
    }
    let sampler_background = sampler.start(&sampled);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (sampler_queries, sampler_ms) = phase(
        &admin,
        "the load sampler's samples (8 connections checked out)",
        "own backends (follower, sampler)",
        10,
    )
    .await;
    sampler_background.shutdown().await;
    drop(in_use);
    println!(
        "server view: at the defaults (cycle 15 s, sampler 1 s) a leader costs the server {:.3} ms a second, a follower {:.3} ms, and each instance's sampler {:.3} ms while connections are in use ({leader_queries:.2}, {follower_queries:.2} and {sampler_queries:.2} queries)",
        leader_ms / 15.0,
        follower_ms / 15.0,
        sampler_ms
    );

    // Raw `BEGIN`s stay open on a returned connection (as with plain
    // bb8-postgres): end them, or the waiters wait for ever.
    idle.batch_execute("ROLLBACK").await.unwrap();
    holder.batch_execute("ROLLBACK").await.unwrap();
    drop((idle, holder));
    for w in waiters {
        let _ = w.await;
    }
}
