//! The statement hot path does not allocate in the steady state.
//!
//! A binary of its own with one test, so that nothing else allocates while
//! the global allocator's counts are read.

use std::alloc::System;
use std::sync::Arc;

use db_monitor::__bench::StatementProbe;
use db_monitor::{DbMonitor, MonitorConfig};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn recording_a_statement_allocates_nothing_once_warm() {
    // A no-op recorder: what is measured is the monitor's own work (an
    // exporter may allocate storage for samples on its own schedule).
    let monitor = DbMonitor::with_recorder(MonitorConfig::default(), Arc::new(metrics::NoopRecorder));
    let probe = StatementProbe::new(&monitor, "allocations");
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

    let region = Region::new(GLOBAL);
    for _ in 0..10_000 {
        for sql in texts {
            probe.statement(sql);
        }
        probe.prepared(&prepared);
    }
    // A text built at run time (same content, new allocation each time, made
    // before the region) is found by content, not by address.
    let change = region.change();
    assert_eq!(
        (change.allocations, change.reallocations),
        (0, 0),
        "40 000 statements allocated {} times",
        change.allocations
    );

    let dynamic: Vec<String> = (0..1000).map(|_| texts[0].to_owned()).collect();
    let region = Region::new(GLOBAL);
    for sql in &dynamic {
        probe.statement(sql);
    }
    assert_eq!(region.change().allocations, 0);
}
