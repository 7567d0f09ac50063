//! Latency and failure-rate anomalies per statement, against each
//! statement's own baseline.
//!
//! Each minute (a statement history slot) with enough runs is one
//! observation: `ln(p95)` and the failure rate. The latency baseline is an
//! exponentially weighted mean and variance of `ln(p95)`, plus the median
//! and MAD of the last [`RING`] normal minutes; the failure-rate baseline
//! an exponentially weighted rate. A minute is anomalous when it is `z`
//! deviations above both latency baselines (the MAD check holds against
//! heavy tails, where one wild minute inflates a variance) and above the
//! absolute floor; anomalous minutes leave the baseline as it was, so that
//! an incident is not learnt as normal. A statement is anomalous when `k`
//! of its last `n` observed minutes were (one wild minute is no incident);
//! after `relearn` anomalous minutes in a row the new level becomes the
//! baseline. State per statement: a dozen numbers and a ring of 16.

use std::collections::HashMap;

use crate::config::AnomalyThresholds;

/// Normal minutes kept for the median and MAD.
const RING: usize = 16;

/// The least deviation of `ln(p95)` the baseline assumes (5 %): a
/// statement whose p95 never moved does not make a 6 % minute an anomaly.
const MIN_LOG_SD: f64 = 0.05;

/// The least failure rate the baseline assumes (0.1 %).
const MIN_RATE: f64 = 0.001;

/// One minute of one statement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Minute {
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    /// p95 in milliseconds (absent without successful runs in the
    /// histogram).
    pub(crate) p95_ms: Option<f64>,
    /// When the minute ended (Unix milliseconds).
    pub(crate) end_unix_ms: u64,
}

/// The verdict on one statement after a minute.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Verdict {
    pub(crate) latency: Option<Finding>,
    pub(crate) errors: Option<Finding>,
}

/// One anomaly: the last anomalous minute against the baseline.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Finding {
    pub(crate) current: f64,
    pub(crate) baseline: f64,
    pub(crate) z: f64,
    pub(crate) robust_z: Option<f64>,
    pub(crate) minutes: u32,
    pub(crate) of_minutes: u32,
    pub(crate) since_unix_ms: u64,
}

/// Anomalous minutes among the last observed ones, and the episode.
#[derive(Clone, Copy, Debug, Default)]
struct Consensus {
    /// Bit 0: the last observed minute.
    flags: u32,
    /// Anomalous minutes in a row.
    streak: u32,
    /// When the episode's first anomalous minute ended.
    since_unix_ms: u64,
}

impl Consensus {
    fn push(&mut self, anomalous: bool, end_unix_ms: u64) {
        self.flags = (self.flags << 1) | u32::from(anomalous);
        if anomalous {
            if self.streak == 0 && self.flags & !1 == 0 {
                self.since_unix_ms = end_unix_ms;
            }
            self.streak += 1;
        } else {
            self.streak = 0;
            if self.flags == 0 {
                self.since_unix_ms = 0;
            }
        }
    }

    fn count(&self, n: u32) -> u32 {
        let mask = if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
        (self.flags & mask).count_ones()
    }
}

#[derive(Clone, Debug, Default)]
struct LatencyBaseline {
    /// Normal minutes seen.
    seen: u32,
    mean: f64,
    var: f64,
    ring: [f32; RING],
    ring_len: u8,
    ring_next: u8,
    consensus: Consensus,
    last: Option<Finding>,
}

#[derive(Clone, Debug, Default)]
struct ErrorBaseline {
    seen: u32,
    rate: f64,
    consensus: Consensus,
    last: Option<Finding>,
}

/// One statement's baselines.
#[derive(Clone, Debug, Default)]
struct Baseline {
    latency: LatencyBaseline,
    errors: ErrorBaseline,
}

/// The state kept per statement, in bytes (map overhead aside).
pub(crate) const STATE_BYTES: usize = std::mem::size_of::<Baseline>() + std::mem::size_of::<u64>();

/// The baselines of a pool's statements, by fingerprint.
#[derive(Debug, Default)]
pub(crate) struct Baselines {
    map: HashMap<u64, Baseline>,
}

impl Baselines {
    /// Takes one minute of the statement `fingerprint` and says whether it
    /// is anomalous now.
    pub(crate) fn observe(&mut self, fingerprint: u64, m: Minute, t: &AnomalyThresholds) -> Verdict {
        let b = self.map.entry(fingerprint).or_default();
        if m.calls < t.min_calls.max(1) {
            return Verdict {
                latency: b.latency.current(t),
                errors: b.errors.current(t),
            };
        }
        if let Some(p95) = m.p95_ms.filter(|p| *p > 0.0) {
            b.latency.observe(p95, m.end_unix_ms, t);
        }
        b.errors
            .observe(m.errors as f64 / m.calls as f64, m.calls, m.end_unix_ms, t);
        Verdict {
            latency: b.latency.current(t),
            errors: b.errors.current(t),
        }
    }

    /// Keeps only the statements `keep` says are still tracked (the
    /// statement table's fingerprints), so that the state stays bounded by
    /// the table's cap.
    pub(crate) fn retain(&mut self, keep: impl Fn(u64) -> bool) {
        self.map.retain(|fp, _| keep(*fp));
    }

    /// Statements with a baseline.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

impl LatencyBaseline {
    fn observe(&mut self, p95_ms: f64, end_unix_ms: u64, t: &AnomalyThresholds) {
        let x = p95_ms.ln();
        if self.seen == 0 {
            self.mean = x;
            self.var = 0.0;
            self.seen = 1;
            self.push_ring(x);
            self.consensus.push(false, end_unix_ms);
            return;
        }
        let sd = self.var.sqrt().max(MIN_LOG_SD);
        let z = (x - self.mean) / sd;
        let (median, mad) = self.median_mad();
        let robust_sd = (1.4826 * mad).max(MIN_LOG_SD);
        let robust_z = (x - median) / robust_sd;
        let baseline_ms = self.mean.exp();
        let increase_ms = p95_ms - baseline_ms;
        let floor_ms = t.min_increase.as_secs_f64() * 1000.0;
        let anomalous = self.seen >= t.warmup && z >= t.z && robust_z >= t.z && increase_ms >= floor_ms;
        self.consensus.push(anomalous, end_unix_ms);
        if anomalous {
            self.last = Some(Finding {
                current: p95_ms,
                baseline: baseline_ms,
                z,
                robust_z: Some(robust_z),
                minutes: 0,
                of_minutes: 0,
                since_unix_ms: 0,
            });
            if self.consensus.streak >= t.relearn.max(1) {
                // A lasting change: the new level is the baseline now.
                *self = LatencyBaseline::default();
                self.observe(p95_ms, end_unix_ms, t);
            }
            return;
        }
        // A normal minute moves the baseline (exponentially weighted).
        let alpha = t.alpha;
        let d = x - self.mean;
        self.mean += alpha * d;
        self.var = (1.0 - alpha) * (self.var + alpha * d * d);
        self.seen = self.seen.saturating_add(1);
        self.push_ring(x);
    }

    fn push_ring(&mut self, x: f64) {
        self.ring[usize::from(self.ring_next)] = x as f32;
        self.ring_next = (self.ring_next + 1) % RING as u8;
        self.ring_len = (self.ring_len + 1).min(RING as u8);
    }

    fn median_mad(&self) -> (f64, f64) {
        let mut values: Vec<f64> = self.ring[..usize::from(self.ring_len)]
            .iter()
            .map(|v| f64::from(*v))
            .collect();
        let median = median(&mut values);
        let mut deviations: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
        (median, median_of(&mut deviations))
    }

    fn current(&self, t: &AnomalyThresholds) -> Option<Finding> {
        current(&self.consensus, self.last.as_ref(), t)
    }
}

impl ErrorBaseline {
    fn observe(&mut self, rate: f64, calls: u64, end_unix_ms: u64, t: &AnomalyThresholds) {
        if self.seen == 0 {
            self.rate = rate;
            self.seen = 1;
            self.consensus.push(false, end_unix_ms);
            return;
        }
        let p = self.rate.clamp(MIN_RATE, 1.0 - MIN_RATE);
        // The binomial deviation of this minute's failures from the
        // baseline rate.
        let z = (rate - p) * (calls as f64).sqrt() / (p * (1.0 - p)).sqrt();
        let anomalous = self.seen >= t.warmup && z >= t.z && rate - self.rate >= t.min_error_increase;
        self.consensus.push(anomalous, end_unix_ms);
        if anomalous {
            self.last = Some(Finding {
                current: rate,
                baseline: self.rate,
                z,
                robust_z: None,
                minutes: 0,
                of_minutes: 0,
                since_unix_ms: 0,
            });
            if self.consensus.streak >= t.relearn.max(1) {
                *self = ErrorBaseline::default();
                self.observe(rate, calls, end_unix_ms, t);
            }
            return;
        }
        self.rate += t.alpha * (rate - self.rate);
        self.seen = self.seen.saturating_add(1);
    }

    fn current(&self, t: &AnomalyThresholds) -> Option<Finding> {
        current(&self.consensus, self.last.as_ref(), t)
    }
}

/// The anomaly a consensus stands for, if `k` of the last `n` minutes were
/// anomalous.
fn current(consensus: &Consensus, last: Option<&Finding>, t: &AnomalyThresholds) -> Option<Finding> {
    let n = t.n.clamp(1, 32);
    let minutes = consensus.count(n);
    if minutes < t.k.max(1) {
        return None;
    }
    let mut finding = last?.clone();
    finding.minutes = minutes;
    finding.of_minutes = n;
    finding.since_unix_ms = consensus.since_unix_ms;
    Some(finding)
}

fn median(values: &mut [f64]) -> f64 {
    median_of(values)
}

fn median_of(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::pool::tests::Noise;

    fn minute(i: u64, p95_ms: f64, calls: u64, errors: u64) -> Minute {
        Minute {
            calls,
            errors,
            p95_ms: Some(p95_ms),
            end_unix_ms: i * 60_000,
        }
    }

    /// 24 hours, 100 statements each with its own level, 3 % jitter on the
    /// p95 and a steady 1 % failure rate: no anomaly at all.
    #[test]
    fn flat_noise_raises_no_anomaly_in_a_day() {
        let t = AnomalyThresholds::default();
        let mut baselines = Baselines::default();
        let mut noise = Noise::new(3);
        let mut anomalous_minutes = 0;
        for i in 0..24 * 60 {
            for fp in 0..100u64 {
                let level = 2.0 + fp as f64;
                let p95 = level * (1.0 + 0.03 * noise.normal());
                let calls = 200;
                let errors = u64::from(noise.uniform() < 0.01) + u64::from(noise.uniform() < 0.01);
                let v = baselines.observe(fp, minute(i, p95, calls, errors), &t);
                anomalous_minutes += usize::from(v.latency.is_some()) + usize::from(v.errors.is_some());
            }
        }
        assert_eq!(anomalous_minutes, 0);
    }

    /// A statement at 20 ms that goes to 60 ms for 20 minutes is flagged
    /// within k minutes of the step, and clear again within n minutes of
    /// its end.
    #[test]
    fn a_step_is_flagged_within_k_minutes_and_clears_after() {
        let t = AnomalyThresholds::default();
        let mut baselines = Baselines::default();
        let mut noise = Noise::new(11);
        let (step, end) = (120u64, 140u64);
        let mut flagged_at = None;
        let mut cleared_at = None;
        for i in 0..240u64 {
            let level = if (step..end).contains(&i) { 60.0 } else { 20.0 };
            let p95 = level * (1.0 + 0.03 * noise.normal());
            let v = baselines.observe(1, minute(i, p95, 100, 0), &t);
            if i < step {
                assert!(v.latency.is_none(), "minute {i} before the step");
            }
            if let (Some(f), None) = (&v.latency, flagged_at) {
                flagged_at = Some(i);
                assert!((f.baseline - 20.0).abs() < 2.0, "{f:?}");
                assert!(f.current > 50.0 && f.z >= t.z && f.robust_z.unwrap() >= t.z, "{f:?}");
                assert_eq!(f.since_unix_ms, step * 60_000);
            }
            if i >= end && v.latency.is_none() && cleared_at.is_none() {
                cleared_at = Some(i);
            }
            if (step + u64::from(t.k)..end).contains(&i) {
                let f = v.latency.expect("anomalous through the step");
                // The baseline froze: still the old level.
                assert!((f.baseline - 20.0).abs() < 2.0, "minute {i}: {f:?}");
            }
        }
        assert_eq!(flagged_at, Some(step + u64::from(t.k) - 1));
        let cleared = cleared_at.expect("cleared");
        assert!(cleared < end + u64::from(t.n), "cleared at {cleared}");
    }

    /// A drift of 1 % an hour for a day (27 % in all) is followed, never
    /// flagged.
    #[test]
    fn a_slow_drift_is_absorbed() {
        let t = AnomalyThresholds::default();
        let mut baselines = Baselines::default();
        let mut noise = Noise::new(5);
        for i in 0..24 * 60u64 {
            let level = 30.0 * 1.01f64.powf(i as f64 / 60.0);
            let p95 = level * (1.0 + 0.03 * noise.normal());
            let v = baselines.observe(9, minute(i, p95, 100, 0), &t);
            assert!(v.latency.is_none(), "minute {i}: {v:?}");
        }
    }

    /// 0.2 ms becoming 0.5 ms is many deviations, and below the floor.
    #[test]
    fn a_change_below_the_floor_is_no_incident() {
        let t = AnomalyThresholds::default();
        let mut baselines = Baselines::default();
        for i in 0..120u64 {
            let p95 = if i >= 60 { 0.5 } else { 0.2 };
            let v = baselines.observe(2, minute(i, p95, 100, 0), &t);
            assert!(v.latency.is_none(), "minute {i}");
        }
    }

    /// One wild minute in heavy-tailed traffic is no incident; too few
    /// calls are no evidence.
    #[test]
    fn single_spikes_and_thin_minutes_are_not_anomalies() {
        let t = AnomalyThresholds::default();
        let mut baselines = Baselines::default();
        for i in 0..200u64 {
            let p95 = if i % 37 == 0 { 400.0 } else { 10.0 };
            let v = baselines.observe(3, minute(i, p95, 100, 0), &t);
            assert!(v.latency.is_none(), "minute {i}");
            let thin = baselines.observe(4, minute(i, if i > 100 { 500.0 } else { 10.0 }, 5, 0), &t);
            assert!(thin.latency.is_none());
        }
    }

    /// A statement that starts failing a quarter of its runs is flagged
    /// by the failure-rate baseline; its latency is not.
    #[test]
    fn a_failure_rate_step_is_flagged() {
        let t = AnomalyThresholds::default();
        let mut baselines = Baselines::default();
        let mut noise = Noise::new(13);
        let mut flagged = None;
        for i in 0..100u64 {
            let share = if i >= 60 { 0.25 } else { 0.01 };
            let errors = (0..200).filter(|_| noise.uniform() < share).count() as u64;
            let v = baselines.observe(5, minute(i, 15.0, 200, errors), &t);
            assert!(v.latency.is_none());
            if let Some(f) = v.errors {
                flagged.get_or_insert((i, f));
            }
        }
        let (at, finding) = flagged.expect("flagged");
        assert_eq!(at, 60 + u64::from(t.k) - 1);
        assert!(finding.baseline < 0.03 && finding.current > 0.15, "{finding:?}");
    }

    /// A lasting change is learnt after `relearn` minutes.
    #[test]
    fn a_lasting_change_becomes_the_baseline() {
        let t = AnomalyThresholds::default();
        let mut baselines = Baselines::default();
        let mut last = None;
        for i in 0..200u64 {
            let p95 = if i >= 60 { 80.0 } else { 20.0 };
            last = Some(baselines.observe(6, minute(i, p95, 100, 0), &t));
        }
        assert!(last.unwrap().latency.is_none(), "relearnt");
    }
}
