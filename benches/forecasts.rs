//! The forecasts' false alarms on a flat synthetic day, and the cost of
//! the anomaly detector's minute tick with 1,000 statements.
//!
//! ```text
//! cargo bench --bench forecasts
//! ```
//!
//! - **Anomalies, flat day**: 1,000 statements for 24 simulated hours, each
//!   minute with 60 to 140 runs, a p95 around the statement's own level
//!   with Gaussian jitter (3 %, and 10 % for contrast) and a steady 1 %
//!   failure rate, through the detector with its default thresholds. A
//!   false alarm is an anomalous statement-minute; an episode, the start
//!   of a run of them (what would page someone).
//! - **Forecast, flat days**: 100 simulated days of a demand of 30 on a pool
//!   of 50 with 3 % Gaussian jitter, sampled every 10 s, through the
//!   forecast with its default thresholds: samples that reported one.
//! - **Tick**: the background task's minute for a pool with 1,000
//!   statements, each run 20 times a minute: the history snapshot (which
//!   the tick took before) and the detector over the new slots, each timed;
//!   median of 30 minutes.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use db_monitor::__bench::{AnomalyProbe, ForecastProbe, Forecaster, StatementProbe, ANOMALY_STATE_BYTES};
use db_monitor::{DbMonitor, MonitorConfig};

/// xorshift with Box–Muller normals: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        (-2.0 * self.uniform().ln()).sqrt() * (std::f64::consts::TAU * self.uniform()).cos()
    }
}

fn flat_day(jitter: f64) -> (u64, u64, u64, u64, u64) {
    let mut probe = AnomalyProbe::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let statements = 1000u64;
    let mut was = vec![(false, false); statements as usize];
    let (mut latency_minutes, mut error_minutes, mut latency_episodes, mut error_episodes) = (0, 0, 0, 0);
    let mut observed = 0;
    for minute in 0..24 * 60u64 {
        for fp in 0..statements {
            let level = 0.5 + (fp % 200) as f64;
            let p95 = level * (jitter * rng.normal()).exp();
            let calls = 60 + (rng.uniform() * 81.0) as u64;
            let errors = (0..calls).filter(|_| rng.uniform() < 0.01).count() as u64;
            let (latency, failing) = probe.observe(fp + 1, calls, errors, p95, minute * 60_000);
            let before = &mut was[fp as usize];
            latency_minutes += u64::from(latency);
            error_minutes += u64::from(failing);
            latency_episodes += u64::from(latency && !before.0);
            error_episodes += u64::from(failing && !before.1);
            *before = (latency, failing);
            observed += 1;
        }
    }
    (
        observed,
        latency_minutes,
        error_minutes,
        latency_episodes,
        error_episodes,
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("anomaly state per statement: {ANOMALY_STATE_BYTES} bytes");
    for jitter in [0.03, 0.10] {
        let started = Instant::now();
        let (observed, lat, err, lat_ep, err_ep) = flat_day(jitter);
        println!(
            "flat day, {:.0}% jitter: {observed} statement-minutes; anomalous latency {lat} ({:.4}%), failure rate {err} ({:.4}%); \
             episodes {lat_ep} and {err_ep} in 1,000 statement-days ({:.2} s)",
            jitter * 100.0,
            lat as f64 / observed as f64 * 100.0,
            err as f64 / observed as f64 * 100.0,
            started.elapsed().as_secs_f64()
        );
    }

    let mut reported = 0u64;
    let mut samples = 0u64;
    let mut rng = Rng(12345);
    for _day in 0..100 {
        let mut forecast = ForecastProbe::new();
        let mut at = 0.0;
        while at < 24.0 * 3600.0 {
            let demand = (30.0 * (1.0 + 0.03 * rng.normal())).round().max(0.0) as u32;
            if forecast
                .observe(at, demand.min(50), u64::from(demand.saturating_sub(50)), 50)
                .is_some()
            {
                reported += 1;
            }
            samples += 1;
            at += 10.0;
        }
    }
    println!("forecast, 100 flat days (30 of 50, 3% jitter, every 10 s): {reported} of {samples} samples reported a forecast");

    let monitor = DbMonitor::with_recorder(MonitorConfig::default(), Arc::new(metrics::NoopRecorder))
        .expect("a valid configuration");
    let probe = StatementProbe::new(&monitor, "tick");
    let texts: Vec<String> = (0..1000)
        .map(|i| format!("SELECT c{i} FROM bench_table WHERE id = $1"))
        .collect();
    let base = Instant::now();
    let mut forecaster = Forecaster::new(base);
    let mut times = Vec::new();
    let mut snapshots = Vec::new();
    let mut tracked = 0;
    for minute in 1..=40u64 {
        for _ in 0..20 {
            for text in &texts {
                probe.statement(text);
            }
        }
        let now = base + Duration::from_secs(61 * minute);
        let started = Instant::now();
        probe.snapshot(now);
        let snapshotted = Instant::now();
        tracked = black_box(probe.detect(&mut forecaster, now));
        if minute > 10 {
            snapshots.push(snapshotted - started);
            times.push(snapshotted.elapsed());
        }
    }
    times.sort();
    snapshots.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "minute tick, {tracked} statements: the detector median {:.2} ms (max {:.2} ms); the history snapshot before it, \
         which the tick took before this work, median {:.2} ms",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        ms(snapshots[snapshots.len() / 2]),
    );
}
