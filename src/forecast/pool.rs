//! The pool exhaustion forecast on the demand (connections in use plus
//! checkouts waiting): Holt's smoothed level and trend, the least-squares
//! slope over the evidence window, a robust slope, and Little's law as a
//! cross-check.
//!
//! - The time to exhaustion is `(max_size − level) / slope`, with Holt's
//!   level (the current demand, smoothed) and the window's least-squares
//!   slope. Holt's own trend is used only for its direction (the rise is
//!   still going on): on a count sampled every 10 s with a few percent of
//!   noise it wanders ±30 % around the true slope, where the slope of the
//!   whole window stays within ±6 % (the noisy-ramp test shows both).
//! - The slope must be significant: at least `min_t` standard errors (a t
//!   of 4 happens by chance about once in 30 000 windows of white noise).
//! - A burst at the window's edge moves a regression, not the medians of
//!   the window's first and last thirds: their slope must agree with the
//!   regression's within a factor of two.
//! - And the exhaustion must be within the horizon, every check holding
//!   for `confirmations` samples in a row.

use std::collections::VecDeque;

use crate::config::ForecastThresholds;
use crate::stats::forecast::{ForecastEvidence, LittleCheck, PoolForecast};

/// Holt's smoothing weights: of a new sample in the level, and of the
/// level's latest step in the trend. Small, because the demand is a count
/// (it moves in steps of one) and a trend worth forecasting lasts many
/// samples: at the default 10 s, the level remembers about a minute and a
/// half and the trend about eight.
const ALPHA: f64 = 0.1;
const BETA: f64 = 0.02;

/// Samples kept for the regression at most; past it, every other one is
/// dropped (the window keeps its span at half the resolution).
const MAX_POINTS: usize = 2048;

/// One sample of the pool.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PoolObservation {
    /// Seconds on a monotonic clock.
    pub(crate) at: f64,
    /// When, on the wall clock (Unix milliseconds).
    pub(crate) at_unix_ms: u64,
    pub(crate) in_use: u32,
    pub(crate) waiters: u64,
    pub(crate) max_size: u32,
    /// Checkouts so far (cumulative).
    pub(crate) checkouts: u64,
    /// Checkouts returned so far, and the time they were held, in
    /// nanoseconds (cumulative).
    pub(crate) returns: u64,
    pub(crate) held_nanos: u64,
}

impl PoolObservation {
    fn demand(&self) -> f64 {
        f64::from(self.in_use) + self.waiters as f64
    }
}

/// The forecaster's state for one pool.
#[derive(Debug, Default)]
pub(crate) struct PoolForecaster {
    /// Holt's level and trend (per second), and when they were last updated.
    holt: Option<(f64, f64, f64)>,
    /// The samples within the window.
    points: VecDeque<PoolObservation>,
    /// Samples in a row for which every check held.
    held: u32,
}

impl PoolForecaster {
    /// Takes a sample and says what the forecast is now.
    pub(crate) fn observe(&mut self, o: PoolObservation, t: &ForecastThresholds) -> PoolForecast {
        let y = o.demand();
        let (level, trend) = self.smooth(o);
        let window = t.window.as_secs_f64();
        self.keep(o, window);
        let span = o.at - self.points.front().map_or(o.at, |p| p.at);
        let (slope, slope_t) = regression(&self.points);
        let robust = robust_slope(&self.points);
        let max = f64::from(o.max_size);
        let extrapolated = (slope > 0.0 && level < max).then(|| (max - level) / slope);

        let enough = span + 1e-9 >= window;
        let holds = enough
            && max > 0.0
            && y < max
            && trend > 0.0
            && slope > 0.0
            && slope_t.is_some_and(|t_value| t_value >= t.min_t)
            && robust.is_some_and(|r| r > 0.0 && slope <= 2.0 * r && r <= 2.0 * slope)
            && extrapolated.is_some_and(|s| s <= t.horizon.as_secs_f64());
        self.held = if holds { self.held.saturating_add(1) } else { 0 };
        let reported = holds && self.held >= t.confirmations.max(1);
        let state = if max > 0.0 && y >= max {
            "exhausted"
        } else if !enough {
            "gathering"
        } else if reported {
            "forecast"
        } else if trend > 0.0 && slope > 0.0 {
            "rising"
        } else {
            "steady"
        };
        PoolForecast {
            sampled_unix_ms: o.at_unix_ms,
            exhausted_in_seconds: if state == "exhausted" {
                Some(0.0)
            } else if reported {
                extrapolated
            } else {
                None
            },
            state,
            evidence: ForecastEvidence {
                window_seconds: span,
                required_seconds: window,
                samples: self.points.len(),
                max_size: o.max_size,
                demand: y,
                level,
                trend_per_minute: trend * 60.0,
                slope_per_minute: slope * 60.0,
                slope_t,
                extrapolated_seconds: extrapolated,
                held_samples: self.held,
            },
            little: little(&self.points),
        }
    }
}

impl PoolForecaster {
    /// Holt's level and trend after `o`.
    fn smooth(&mut self, o: PoolObservation) -> (f64, f64) {
        let y = o.demand();
        let (level, trend) = match self.holt {
            None => (y, 0.0),
            Some((level, trend, at)) => {
                let dt = (o.at - at).max(1e-9);
                let predicted = level + trend * dt;
                let new_level = ALPHA * y + (1.0 - ALPHA) * predicted;
                let new_trend = BETA * (new_level - level) / dt + (1.0 - BETA) * trend;
                (new_level, new_trend)
            }
        };
        self.holt = Some((level, trend, o.at));
        (level, trend)
    }

    /// Adds `o` to the samples, keeping those within `window` seconds (and
    /// one at or before the window's start, so that the span can reach the
    /// whole window), thinned by half past [`MAX_POINTS`].
    fn keep(&mut self, o: PoolObservation, window: f64) {
        self.points.push_back(o);
        while self.points.len() > 2 && o.at - self.points[1].at >= window {
            self.points.pop_front();
        }
        if self.points.len() > MAX_POINTS {
            let last = self.points.len() - 1;
            let thinned: VecDeque<PoolObservation> = self
                .points
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 2 == 0 || *i == last)
                .map(|(_, p)| *p)
                .collect();
            self.points = thinned;
        }
    }
}

/// The least-squares slope of the demand over the samples (per second) and
/// its t statistic.
fn regression(points: &VecDeque<PoolObservation>) -> (f64, Option<f64>) {
    let n = points.len() as f64;
    if points.len() < 2 {
        return (0.0, None);
    }
    let t0 = points[0].at;
    let mean_t = points.iter().map(|p| p.at - t0).sum::<f64>() / n;
    let mean_y = points.iter().map(PoolObservation::demand).sum::<f64>() / n;
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for p in points {
        let dt = p.at - t0 - mean_t;
        let dy = p.demand() - mean_y;
        sxx += dt * dt;
        sxy += dt * dy;
        syy += dy * dy;
    }
    if sxx <= 0.0 {
        return (0.0, None);
    }
    let slope = sxy / sxx;
    if points.len() < 3 {
        return (slope, None);
    }
    let residual = ((syy - slope * sxy) / (n - 2.0)).max(0.0);
    let standard_error = (residual / sxx).sqrt();
    let t_value = if standard_error > 0.0 {
        slope / standard_error
    } else if slope > 0.0 {
        f64::MAX
    } else if slope < 0.0 {
        f64::MIN
    } else {
        0.0
    };
    (slope, Some(t_value))
}

/// The slope between the medians of the first and the last third of the
/// samples (per second): a trend that a burst of a few samples cannot make.
fn robust_slope(points: &VecDeque<PoolObservation>) -> Option<f64> {
    let third = points.len() / 3;
    if third < 2 {
        return None;
    }
    let median = |part: &mut Vec<f64>| {
        part.sort_by(f64::total_cmp);
        part[part.len() / 2]
    };
    let mut first: Vec<f64> = points.iter().take(third).map(PoolObservation::demand).collect();
    let mut last: Vec<f64> = points
        .iter()
        .skip(points.len() - third)
        .map(PoolObservation::demand)
        .collect();
    let mut first_t: Vec<f64> = points.iter().take(third).map(|p| p.at).collect();
    let mut last_t: Vec<f64> = points.iter().skip(points.len() - third).map(|p| p.at).collect();
    let dt = median(&mut last_t) - median(&mut first_t);
    (dt > 0.0).then(|| (median(&mut last) - median(&mut first)) / dt)
}

/// Little's law over the samples: arrival rate × mean hold time.
fn little(points: &VecDeque<PoolObservation>) -> Option<LittleCheck> {
    let (first, last) = (points.front()?, points.back()?);
    let seconds = last.at - first.at;
    let returns = last.returns.checked_sub(first.returns)?;
    if seconds <= 0.0 || returns == 0 {
        return None;
    }
    let arrivals = last.checkouts.saturating_sub(first.checkouts) as f64 / seconds;
    let hold = last.held_nanos.saturating_sub(first.held_nanos) as f64 / returns as f64 / 1e9;
    let expected = arrivals * hold;
    let sampled = points.iter().map(|p| f64::from(p.in_use)).sum::<f64>() / points.len() as f64;
    Some(LittleCheck {
        arrivals_per_second: arrivals,
        mean_hold_ms: hold * 1000.0,
        expected_in_use: expected,
        of_max_size: if last.max_size > 0 {
            expected / f64::from(last.max_size)
        } else {
            0.0
        },
        sampled_in_use: sampled,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    /// A deterministic generator (xorshift) for jitter.
    pub(crate) struct Noise(u64);

    impl Noise {
        pub(crate) fn new(seed: u64) -> Self {
            Noise(seed.max(1))
        }

        /// Uniform in [0, 1).
        pub(crate) fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }

        /// Roughly normal (the sum of twelve uniforms), mean 0, sd 1.
        pub(crate) fn normal(&mut self) -> f64 {
            (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
        }
    }

    fn sample(at: f64, demand: f64, max_size: u32) -> PoolObservation {
        // Demand past the pool's size waits.
        let in_use = demand.round().clamp(0.0, f64::from(max_size)) as u32;
        let waiters = (demand.round() - f64::from(in_use)).max(0.0) as u64;
        PoolObservation {
            at,
            at_unix_ms: (at * 1000.0) as u64,
            in_use,
            waiters,
            max_size,
            ..Default::default()
        }
    }

    /// Demand rising linearly from 10 to 100 connections over 3 hours on a
    /// pool of 100, sampled every 10 s: once reported, the forecast is
    /// within 10 % of the true time left.
    #[test]
    fn a_linear_ramp_is_forecast_within_ten_percent() {
        let t = ForecastThresholds::default().horizon(Duration::from_secs(3 * 3600));
        let mut f = PoolForecaster::default();
        let rate = 90.0 / (3.0 * 3600.0);
        let mut first_report = None;
        let mut at = 0.0;
        while at < 3.0 * 3600.0 {
            let demand = 10.0 + rate * at;
            let out = f.observe(sample(at, demand, 100), &t);
            if let Some(seconds) = out.exhausted_in_seconds {
                let truth = (100.0 - demand) / rate;
                // The demand moves in whole connections: within ten minutes
                // of the end, one step of the staircase is more than 10 %.
                if truth >= 600.0 {
                    let error = (seconds - truth).abs() / truth;
                    assert!(error <= 0.10, "at {at} s: forecast {seconds:.0} s, truth {truth:.0} s");
                }
                first_report.get_or_insert(at);
            }
            at += 10.0;
        }
        let first = first_report.expect("a forecast");
        // Not before the evidence window, and soon after it.
        assert!((1800.0..=1900.0).contains(&first), "first forecast at {first} s");
    }

    /// The same ramp with 3 % noise still forecasts within 10 %, once it
    /// has settled (the slope's t rules out the early wobbles).
    #[test]
    fn a_noisy_ramp_is_forecast_within_ten_percent() {
        let t = ForecastThresholds::default().horizon(Duration::from_secs(3 * 3600));
        let mut f = PoolForecaster::default();
        let mut noise = Noise::new(7);
        let rate = 150.0 / (3.0 * 3600.0);
        let mut errors = Vec::new();
        let mut trend_errors = Vec::new();
        let mut at = 0.0;
        while at < 3.0 * 3600.0 {
            let trend = 50.0 + rate * at;
            let demand = trend * (1.0 + 0.03 * noise.normal());
            let out = f.observe(sample(at, demand, 200), &t);
            if let Some(seconds) = out.exhausted_in_seconds {
                let truth = (200.0 - trend) / rate;
                errors.push((seconds - truth).abs() / truth);
                trend_errors.push((out.evidence.trend_per_minute / 60.0 - rate).abs() / rate);
            }
            at += 10.0;
        }
        assert!(!errors.is_empty());
        errors.sort_by(f64::total_cmp);
        let median = errors[errors.len() / 2];
        assert!(median <= 0.10, "median error {median}");
        // Why the slope of the window and not Holt's trend: the trend's
        // median error is several times larger.
        trend_errors.sort_by(f64::total_cmp);
        let trend_median = trend_errors[trend_errors.len() / 2];
        assert!(
            trend_median > 2.0 * median,
            "Holt's trend {trend_median}, forecast {median}"
        );
    }

    /// 24 hours of flat demand (30 of 50) with 3 % jitter: no forecast.
    #[test]
    fn flat_noise_raises_no_forecast_in_a_day() {
        let t = ForecastThresholds::default();
        let mut f = PoolForecaster::default();
        let mut noise = Noise::new(42);
        let mut reported = 0;
        let mut at = 0.0;
        while at < 24.0 * 3600.0 {
            let demand = 30.0 * (1.0 + 0.03 * noise.normal());
            if f.observe(sample(at, demand, 50), &t).exhausted_in_seconds.is_some() {
                reported += 1;
            }
            at += 10.0;
        }
        assert_eq!(reported, 0);
    }

    /// A short burst of demand is no trend: the window's regression does
    /// not call a spike a rise.
    #[test]
    fn a_spike_is_not_a_trend() {
        let t = ForecastThresholds::default();
        let mut f = PoolForecaster::default();
        let mut at = 0.0;
        let mut reported = 0;
        while at < 3.0 * 3600.0 {
            let demand = if (5000.0..5060.0).contains(&at) { 45.0 } else { 20.0 };
            if f.observe(sample(at, demand, 50), &t).exhausted_in_seconds.is_some() {
                reported += 1;
            }
            at += 10.0;
        }
        assert_eq!(reported, 0);
    }

    #[test]
    fn littles_law_is_arrivals_times_hold() {
        let mut points = VecDeque::new();
        for i in 0..=10u64 {
            points.push_back(PoolObservation {
                at: i as f64,
                in_use: 5,
                max_size: 20,
                // 50 checkouts a second, each held 100 ms.
                checkouts: 50 * i,
                returns: 50 * i,
                held_nanos: 50 * i * 100_000_000,
                ..Default::default()
            });
        }
        let check = little(&points).unwrap();
        assert!((check.arrivals_per_second - 50.0).abs() < 1e-9);
        assert!((check.mean_hold_ms - 100.0).abs() < 1e-9);
        assert!((check.expected_in_use - 5.0).abs() < 1e-9);
        assert!((check.of_max_size - 0.25).abs() < 1e-9);
    }
}
