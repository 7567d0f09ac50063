//! The statement hot path does not allocate in the steady state, and the
//! failure path allocates nothing for a repeated error whose message needs
//! no mask.
//!
//! A binary of its own, its tests taking turns, so that nothing else of
//! theirs allocates while the global allocator's counts are read (the
//! harness's own output may: each region is the fewest of three runs).

mod support;

use std::alloc::System;
use std::sync::{Arc, Mutex};

use db_monitor::__bench::StatementProbe;
use db_monitor::{DbMonitor, MonitorConfig};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Held by each test while it counts.
static COUNTING: Mutex<()> = Mutex::new(());

/// The allocations and reallocations of `f`, the fewest of three runs.
/// The allocator's counts are the process's, and the test harness may
/// allocate on its own thread meanwhile (printing another test's result:
/// seen once in CI as one allocation in a region); an allocation that `f`
/// makes itself shows in every run.
fn counted(mut f: impl FnMut()) -> (usize, usize) {
    (0..3)
        .map(|_| {
            let region = Region::new(GLOBAL);
            f();
            let change = region.change();
            (change.allocations, change.reallocations)
        })
        .min()
        .expect("three runs")
}

fn probe(pool: &str) -> StatementProbe {
    // A no-op recorder: what is measured is the monitor's own work (an
    // exporter may allocate storage for samples on its own schedule).
    let monitor = DbMonitor::with_recorder(MonitorConfig::default(), Arc::new(metrics::NoopRecorder))
        .expect("a valid configuration");
    StatementProbe::new(&monitor, pool)
}

#[test]
fn recording_a_statement_allocates_nothing_once_warm() {
    let _turn = COUNTING.lock().unwrap_or_else(|e| e.into_inner());
    let probe = probe("allocations");
    let texts = [
        "SELECT id, name FROM users WHERE id = $1",
        "UPDATE users SET name = $1 WHERE id = $2",
        "INSERT INTO audit (user_id, action) VALUES ($1, $2)",
    ];
    let prepared = probe.prepare("SELECT 1");
    // Warm up: first sight of each text lexes it and caches it.
    for sql in texts {
        probe.statement(sql);
        probe.statement(sql);
    }
    probe.prepared(&prepared);

    let change = counted(|| {
        for _ in 0..10_000 {
            for sql in texts {
                probe.statement(sql);
            }
            probe.prepared(&prepared);
        }
    });
    assert_eq!(change, (0, 0), "40 000 statements allocated {} times", change.0);

    // A text built at run time (same content, new allocation each time, made
    // before the region) is found by content, not by address.
    let dynamic: Vec<String> = (0..1000).map(|_| texts[0].to_owned()).collect();
    let change = counted(|| {
        for sql in &dynamic {
            probe.statement(sql);
        }
    });
    assert_eq!(change.0, 0);
}

/// A statement's span, with `tracing-subscriber`'s registry wanting it,
/// allocates nothing of the crate's: once the registry's slab is warm, no
/// allocation at all.
#[test]
fn a_statement_span_allocates_nothing_once_warm() {
    use tracing_subscriber::prelude::*;

    let _turn = COUNTING.lock().unwrap_or_else(|e| e.into_inner());
    let probe = probe("allocations_spans");
    let texts = [
        "SELECT id, name FROM users WHERE id = $1",
        "UPDATE users SET name = $1 WHERE id = $2",
    ];
    let subscriber = tracing_subscriber::registry().with(tracing_subscriber::layer::Identity::new());
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..100 {
            for sql in texts {
                probe.spanned(sql);
            }
        }
        let change = counted(|| {
            for _ in 0..10_000 {
                for sql in texts {
                    probe.spanned(sql);
                }
            }
        });
        assert_eq!(
            change,
            (0, 0),
            "20 000 statements with spans allocated {} times",
            change.0
        );
    });
    // And without a subscriber, the same path allocates nothing either.
    let change = counted(|| {
        for sql in texts {
            probe.spanned(sql);
        }
    });
    assert_eq!(change.0, 0);
}

/// Real errors from PostgreSQL, replayed: counting one, keeping it in the
/// error store and waking the alert engine takes no allocation when the
/// message is PostgreSQL's own without a value (`division by zero`), and
/// one (the masked copy) when it carries a value to mask.
#[test]
fn a_repeated_failure_allocates_only_its_masked_message() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (plain, masked) = runtime.block_on(async {
        let (client, connection) = support::pg::shared_config()
            .connect(db_monitor::tokio_postgres::NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        let plain = client.simple_query("SELECT 1/0").await.unwrap_err();
        let masked = client.simple_query("SELECT 'x'::int").await.unwrap_err();
        drop(client);
        let _ = driver.await;
        (plain, masked)
    });
    drop(runtime);

    let _turn = COUNTING.lock().unwrap_or_else(|e| e.into_inner());
    let probe = probe("allocations_failures");
    let sql = "SELECT a / b FROM t WHERE id = $1";
    // Both errors are of one pattern (class, statement), which keeps the
    // latest message: warm up with the one measured first.
    for _ in 0..2 {
        probe.failed(sql, &masked);
        probe.failed(sql, &plain);
    }

    let change = counted(|| {
        for _ in 0..1_000 {
            probe.failed(sql, &plain);
        }
    });
    assert_eq!(change, (0, 0), "1 000 failures allocated {} times", change.0);

    probe.failed(sql, &masked);
    let change = counted(|| {
        for _ in 0..1_000 {
            probe.failed(sql, &masked);
        }
    });
    assert_eq!(change.0, 1_000, "one masked message per failure");
}
