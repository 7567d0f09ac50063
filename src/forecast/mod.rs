//! Forecasts and anomalies, computed in the pool's background task and
//! never on the statement path:
//!
//! - [`pool`]: when the pool runs out, from the demand's smoothed level and
//!   trend (Holt), checked by the window's regression and cross-checked with
//!   Little's law; sampled every
//!   [`ForecastThresholds::interval`](crate::ForecastThresholds::interval).
//! - [`anomaly`]: per statement, each minute of its history against its own
//!   baseline of latency and failure rate, at the minute tick.
//!
//! What they conclude goes through the funnel into the pool's stores, where
//! the reports (the performance document's `forecast`, the query
//! performance's `anomalies`), the alert rules and the gauge
//! `db_monitor_pool_exhausted_in_seconds` read it.

pub(crate) mod anomaly;
pub(crate) mod pool;

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Instant, SystemTime};

use crate::funnel::{Event, Sink};
use crate::pool::PoolMonitor;
use crate::stats::forecast::StatementAnomaly;
use crate::units::{hex, unix_ms};

/// One pool's forecasting state, owned by its background task.
#[derive(Debug)]
pub(crate) struct Forecaster {
    pool: pool::PoolForecaster,
    baselines: anomaly::Baselines,
    /// The history slots ending up to this instant have been observed.
    observed_until: Instant,
    /// The statement table's generation the baselines belong to.
    epoch: Instant,
}

impl Forecaster {
    pub(crate) fn new(now: Instant) -> Self {
        Forecaster {
            pool: pool::PoolForecaster::default(),
            baselines: anomaly::Baselines::default(),
            observed_until: now,
            epoch: now,
        }
    }

    /// Statements with a baseline.
    pub(crate) fn baselines_len(&self) -> usize {
        self.baselines.len()
    }
}

impl PoolMonitor {
    /// Samples the pool's demand into the forecast and publishes it.
    pub(crate) fn forecast_tick(&self, f: &mut Forecaster) {
        let s = self.source.status();
        let in_use = self.shared.in_use.load(Relaxed);
        let checkouts = s.counters.gets_direct + s.counters.gets_waited;
        let observation = pool::PoolObservation {
            at: f.epoch.elapsed().as_secs_f64(),
            at_unix_ms: unix_ms(SystemTime::now()),
            in_use,
            waiters: s.pending,
            max_size: self.shared.max_size.load(Relaxed),
            checkouts,
            returns: checkouts.saturating_sub(u64::from(in_use)),
            held_nanos: self.shared.held_nanos.load(Relaxed),
        };
        let forecast = f.pool.observe(observation, &self.sink().config.alerts.forecast);
        self.shared.record(Event::Forecast(&forecast));
    }
}

/// The anomaly detector's tick for the pool behind `sink`: every
/// statement's history slots that ended since the last tick, against its
/// baseline; the statements anomalous now go to the funnel.
pub(crate) fn observe_minutes(sink: &Sink, f: &mut Forecaster, now: Instant) {
    let t = &sink.config.alerts.anomaly;
    let entries = sink.queries.entries();
    let since = f.observed_until;
    let wall_now = SystemTime::now();
    let mut anomalies = Vec::new();
    for entry in &entries {
        let mut latest = None;
        for slot in entry.history.slots_between(since, now) {
            let ago = now.saturating_duration_since(slot.end);
            let end_unix_ms = unix_ms(wall_now.checked_sub(ago).unwrap_or(wall_now));
            let minute = anomaly::Minute {
                calls: slot.finished,
                errors: slot.errors,
                p95_ms: slot.p95_ns.map(|ns| ns as f64 / 1e6),
                end_unix_ms,
            };
            latest = Some(f.baselines.observe(entry.fingerprint, minute, t));
        }
        let Some(verdict) = latest else { continue };
        let found = [("latency", verdict.latency), ("error_rate", verdict.errors)];
        for (kind, finding) in found {
            if let Some(finding) = finding {
                anomalies.push(StatementAnomaly {
                    fingerprint: hex(entry.fingerprint),
                    statement: entry.normalized.to_string(),
                    kind,
                    current: finding.current,
                    baseline: finding.baseline,
                    z: finding.z,
                    robust_z: finding.robust_z,
                    minutes: finding.minutes,
                    of_minutes: finding.of_minutes,
                    since_unix_ms: finding.since_unix_ms,
                });
            }
        }
    }
    f.observed_until = now;
    let tracked: std::collections::HashSet<u64> = entries.iter().map(|e| e.fingerprint).collect();
    f.baselines.retain(|fp| tracked.contains(&fp));
    anomalies.sort_by(|a, b| b.z.total_cmp(&a.z));
    crate::funnel::record(sink, Event::Anomalies(anomalies));
}
