//! The instrumentation cost of one statement, with no I/O: two clock reads,
//! the statement-text lookup, the metrics (through an installed Prometheus
//! recorder, with its upkeep running) and the per-fingerprint and
//! per-connection counters. Compared with a bare `Instant::now()` pair in
//! the same run.
//!
//! ```text
//! cargo bench --bench statement_overhead
//! ```
//!
//! For instruction counts (stable under machine noise), `benches/callgrind.sh`
//! runs this binary under `valgrind --tool=callgrind` with
//! `--callgrind N` for two values of N and prints the slope.

#[path = "support/criterion_dir.rs"]
mod criterion_dir;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use criterion_dir::median;
use db_monitor::__bench::StatementProbe;
use db_monitor::{sql, DbMonitor, MonitorConfig};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const SHORT: &str = "SELECT id, name, email FROM users WHERE id = $1";
const LONG: &str = "SELECT o.id, o.total, c.name FROM orders o JOIN customers c ON c.id = o.customer_id \
                    WHERE o.created_at > $1 AND o.status IN ('paid', 'shipped') ORDER BY o.created_at DESC LIMIT 50";

/// A Prometheus recorder as an application would set it up: explicit
/// buckets for our `_seconds` histograms, upkeep on a thread.
fn prometheus() -> (Arc<metrics_exporter_prometheus::PrometheusRecorder>, PrometheusHandle) {
    let buckets = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
        .expect("buckets")
        .build_recorder();
    let handle = recorder.handle();
    (Arc::new(recorder), handle)
}

fn probe(config: MonitorConfig) -> (StatementProbe, PrometheusHandle) {
    let (recorder, handle) = prometheus();
    let monitor = DbMonitor::with_recorder(config, recorder).expect("a valid configuration");
    (StatementProbe::new(&monitor, "bench"), handle)
}

fn upkeep(handles: Vec<PrometheusHandle>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            for h in &handles {
                h.run_upkeep();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

fn benches(c: &mut Criterion) {
    let (cached, h1) = probe(MonitorConfig::default());
    // A statement cache of zero: every run lexes its text to find the
    // fingerprint (what happens past the cache bound).
    let (uncached, h2) = probe(MonitorConfig::default().statement_cache_size(0));
    // The same with a recorder that does nothing: our share of the cost.
    let noop_monitor = DbMonitor::with_recorder(MonitorConfig::default(), Arc::new(metrics::NoopRecorder))
        .expect("a valid configuration");
    let noop = StatementProbe::new(&noop_monitor, "bench");
    let stop = Arc::new(AtomicBool::new(false));
    let upkeep = upkeep(vec![h1, h2], stop.clone());

    let mut g = c.benchmark_group("statement_overhead");
    g.bench_function("bare_instant_pair", |b| {
        b.iter(|| {
            let start = Instant::now();
            black_box(start.elapsed())
        })
    });
    g.bench_function("bare_quanta_pair", |b| {
        b.iter(|| {
            let start = quanta::Instant::now();
            black_box(quanta::Instant::now() - start)
        })
    });
    g.bench_function("statement_cached_text", |b| {
        b.iter(|| cached.statement(black_box(SHORT)))
    });
    g.bench_function("statement_cached_text_noop_recorder", |b| {
        b.iter(|| noop.statement(black_box(SHORT)))
    });
    let prepared = cached.prepare(SHORT);
    g.bench_function("statement_prepared", |b| {
        b.iter(|| cached.prepared(black_box(&prepared)))
    });
    g.bench_function("statement_uncached_text", |b| {
        b.iter(|| uncached.statement(black_box(SHORT)))
    });
    g.finish();

    let mut g = c.benchmark_group("lexer");
    g.bench_function("fingerprint_short", |b| b.iter(|| sql::fingerprint(black_box(SHORT))));
    g.bench_function("fingerprint_long", |b| b.iter(|| sql::fingerprint(black_box(LONG))));
    g.bench_function("analyze_long", |b| b.iter(|| sql::analyze(black_box(LONG))));
    g.finish();

    // A burst of deadlocks: besides the error record every failure writes
    // anyway, the alert engine costs one flag check per failure. Compared
    // with counting the failures (one relaxed atomic add).
    let mut g = c.benchmark_group("alert_burst");
    let counted = std::sync::atomic::AtomicU64::new(0);
    g.bench_function("count_failure", |b| {
        b.iter(|| black_box(&counted).fetch_add(1, Ordering::Relaxed))
    });
    cached.alert_signal();
    g.bench_function("alert_signal", |b| b.iter(|| black_box(&cached).alert_signal()));
    g.finish();

    stop.store(true, Ordering::Relaxed);
    upkeep.join().unwrap();
}

fn summary() {
    let bare = median("statement_overhead", "bare_instant_pair");
    let cached = median("statement_overhead", "statement_cached_text");
    let prepared = median("statement_overhead", "statement_prepared");
    let noop = median("statement_overhead", "statement_cached_text_noop_recorder");
    let quanta_pair = median("statement_overhead", "bare_quanta_pair");
    let uncached = median("statement_overhead", "statement_uncached_text");
    if let (Some(bare), Some(cached), Some(uncached)) = (bare, cached, uncached) {
        println!("bare Instant::now() pair (median): {bare:.1} ns");
        println!("statement instrumentation, cached text (median): {cached:.1} ns");
        println!("statement instrumentation, uncached text (median): {uncached:.1} ns");
        if let (Some(prepared), Some(noop), Some(quanta_pair)) = (prepared, noop, quanta_pair) {
            println!("statement instrumentation, prepared statement (median): {prepared:.1} ns");
            println!("statement instrumentation, no-op recorder (median): {noop:.1} ns");
            println!("bare quanta (TSC) clock pair (median): {quanta_pair:.1} ns");
        }
        println!("instrumented/bare ratio: {:.2}", cached / bare);
        println!("instrumentation added: {:.0} ns per statement", cached - bare);
    }
    for id in ["fingerprint_short", "fingerprint_long", "analyze_long"] {
        if let Some(ns) = median("lexer", id) {
            println!("lexer {id} (median): {ns:.1} ns");
        }
    }
    if let (Some(count), Some(signal)) = (
        median("alert_burst", "count_failure"),
        median("alert_burst", "alert_signal"),
    ) {
        println!("alert engine per failure in a burst (median): {signal:.2} ns; counting it: {count:.2} ns");
    }
}

/// Per-statement cost when 1 and 2 threads run the same statement on their
/// own connections (cross-core contention, which criterion's single thread
/// cannot show): the median of 5 timed runs of 2 million statements.
fn contention() {
    for (label, recorder) in [("prometheus", None), ("no-op", Some(metrics::NoopRecorder))] {
        let monitor = match recorder {
            Some(noop) => {
                DbMonitor::with_recorder(MonitorConfig::default(), Arc::new(noop)).expect("a valid configuration")
            }
            None => DbMonitor::with_recorder(MonitorConfig::default(), prometheus().0).expect("a valid configuration"),
        };
        let probe = StatementProbe::new(&monitor, "contention");
        for threads in [1, 2] {
            let mut runs: Vec<f64> = (0..5)
                .map(|_| {
                    const N: u32 = 2_000_000;
                    let start = Instant::now();
                    let handles: Vec<_> = (0..threads)
                        .map(|_| {
                            let p = probe.second_connection();
                            std::thread::spawn(move || {
                                for _ in 0..N {
                                    p.statement(black_box(SHORT));
                                }
                            })
                        })
                        .collect();
                    for h in handles {
                        h.join().unwrap();
                    }
                    start.elapsed().as_nanos() as f64 / f64::from(N)
                })
                .collect();
            runs.sort_by(f64::total_cmp);
            println!(
                "{label} recorder, {threads} thread(s) on one statement: {:.0} ns per statement",
                runs[2]
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--callgrind-lex") {
        // `--callgrind-lex N`: N fingerprints of the short statement.
        let n: u64 = args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(100_000);
        for _ in 0..n {
            black_box(sql::fingerprint(black_box(SHORT)));
        }
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--callgrind") {
        // `--callgrind N [noop]`: N cached-text statements and nothing else,
        // through the Prometheus recorder or a no-op one.
        let n: u64 = args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(100_000);
        let probe = if args.get(i + 2).is_some_and(|a| a == "noop") {
            let monitor = DbMonitor::with_recorder(MonitorConfig::default(), Arc::new(metrics::NoopRecorder))
                .expect("a valid configuration");
            StatementProbe::new(&monitor, "bench")
        } else {
            probe(MonitorConfig::default()).0
        };
        for _ in 0..n {
            probe.statement(black_box(SHORT));
        }
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
    summary();
    contention();
}
