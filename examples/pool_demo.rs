//! The monitored pool on a real PostgreSQL: a small workload with a slow
//! statement, a real deadlock, an abandoned statement and a failing one,
//! then what the monitor saw, as Prometheus text and per-statement counts.
//!
//! ```text
//! cargo run --example pool_demo
//! ```
//!
//! With `DATABASE_URL` unset it starts a throwaway PostgreSQL from the
//! server binaries on `PATH` (as the tests do) and removes it on exit.

#[path = "../tests/support/pg.rs"]
mod pg;

use std::time::Duration;

use db_monitor::tokio_postgres::NoTls;
use db_monitor::{DbMonitor, ErrorKind, MonitorConfig};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // The application, not the library, installs the recorder.
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        )?
        .install_recorder()?;

    let config = MonitorConfig::from_env()?
        .max_size(8)
        .slow_query_threshold(Duration::from_millis(200));
    // Kept until the end of main: dropping it stops the throwaway server.
    let (_server, pg) = pg::example_server(config.database_config());

    let monitor = DbMonitor::new(config.clone())?;
    let manager = monitor
        .manager("primary", pg, NoTls)
        .setup("SET application_name = 'db-monitor-demo'");
    let pool = monitor.pool(manager, config.pool_builder()).await?;

    let conn = pool.get().await?;
    conn.batch_execute(
        "DROP TABLE IF EXISTS demo_accounts;
         CREATE TABLE demo_accounts (id int PRIMARY KEY, owner text, balance int);
         INSERT INTO demo_accounts SELECT g, 'owner ' || g, 100 FROM generate_series(1, 100) g",
    )
    .await?;
    for id in 1..=50 {
        conn.query_opt("SELECT owner, balance FROM demo_accounts WHERE id = $1", &[&id])
            .await?;
    }
    conn.query("SELECT pg_sleep(0.3)", &[]).await?; // slow
    let missing = conn.query("SELECT * FROM demo_missing_table", &[]).await.unwrap_err();
    println!("a missing table is {:?}", ErrorKind::of(&missing));
    let abandoned = tokio::time::timeout(Duration::from_millis(100), conn.query("SELECT pg_sleep(5)", &[])).await;
    println!(
        "a statement abandoned after 100 ms: {}",
        if abandoned.is_err() { "cancelled" } else { "finished?" }
    );
    drop(conn);

    // A real deadlock: two transfers in opposite order.
    let (mut a, mut b) = (pool.get().await?, pool.get().await?);
    for c in [&a, &b] {
        c.batch_execute("SET deadlock_timeout = '100ms'").await?;
    }
    let (ta, tb) = (a.transaction().await?, b.transaction().await?);
    let transfer = "UPDATE demo_accounts SET balance = balance - 1 WHERE id = $1";
    ta.execute(transfer, &[&1_i32]).await?;
    tb.execute(transfer, &[&2_i32]).await?;
    let (ra, rb) = tokio::join!(ta.execute(transfer, &[&2_i32]), tb.execute(transfer, &[&1_i32]));
    for result in [ra, rb] {
        if let Err(e) = result {
            println!(
                "one transfer failed: {:?} ({})",
                ErrorKind::of(&e),
                e.code().map_or("", |c| c.code())
            );
        }
    }
    drop((ta, tb));
    drop((a, b));

    println!("\nper statement (normalized, no literal values):");
    for q in pool.monitor().query_stats() {
        println!(
            "  {:>4} runs {:>3} errors {:>2} cancelled {:>9.3} ms mean  {}",
            q.calls,
            q.errors,
            q.cancelled,
            q.mean_time().as_secs_f64() * 1e3,
            q.normalized
        );
    }
    pool.monitor().publish_state();
    println!("\nPrometheus exposition (db_monitor_errors_total and the pool):");
    for line in prometheus.render().lines() {
        if line.starts_with("db_monitor_errors_total") || line.starts_with("db_client_connection_count") {
            println!("  {line}");
        }
    }
    Ok(())
}
