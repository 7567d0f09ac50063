//! What the forecasts and the anomaly detector last concluded for a pool:
//! its exhaustion forecast and its anomalous statements. The engines
//! (the crate's `forecast` module) compute them in the background task; the reports
//! and the alert rules read them here.

use std::sync::Mutex;

use serde::Serialize;

/// When the pool is forecast to run out, with the evidence: a part of the
/// performance document (`forecast`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PoolForecast {
    /// When the last sample was taken (Unix milliseconds).
    pub sampled_unix_ms: u64,
    /// Seconds until connections in use plus waiting checkouts reach the
    /// pool's maximum, when a forecast is reported (absent otherwise).
    pub exhausted_in_seconds: Option<f64>,
    /// `forecast` (reported), `rising` (rising, not yet or not enough to be
    /// reported), `steady`, `exhausted` (at the maximum now), or
    /// `gathering` (less evidence than the window).
    pub state: &'static str,
    /// What the forecast rests on.
    pub evidence: ForecastEvidence,
    /// Little's law over the same window, as a cross-check.
    pub little: Option<LittleCheck>,
}

impl PoolForecast {
    /// Seconds until exhaustion while a forecast is reported (`state`
    /// `forecast`): not the `exhausted` state's 0, which is the demand at
    /// the last sample (up to an interval old), a present that the live
    /// load judges better.
    pub(crate) fn reported_seconds(&self) -> Option<f64> {
        self.exhausted_in_seconds.filter(|_| self.state == "forecast")
    }
}

/// The evidence of a [`PoolForecast`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ForecastEvidence {
    /// The time the samples span, in seconds.
    pub window_seconds: f64,
    /// The window the forecast needs, in seconds.
    pub required_seconds: f64,
    /// Samples in the window.
    pub samples: usize,
    /// The pool's maximum.
    pub max_size: u32,
    /// The last sample: connections in use plus checkouts waiting.
    pub demand: f64,
    /// Holt's smoothed level of the demand.
    pub level: f64,
    /// Holt's smoothed trend, in connections per minute.
    pub trend_per_minute: f64,
    /// The least-squares slope over the window, in connections per minute.
    pub slope_per_minute: f64,
    /// That slope in standard errors (absent with fewer than three samples;
    /// very large for a perfect line).
    pub slope_t: Option<f64>,
    /// Holt's time to exhaustion before the checks, in seconds.
    pub extrapolated_seconds: Option<f64>,
    /// Samples in a row for which every check has held.
    pub held_samples: u32,
}

/// Little's law over the forecast's window: the connections in use that
/// the arrival rate and the mean hold time imply, against the pool's
/// maximum and the sampled mean.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LittleCheck {
    /// Checkouts per second.
    pub arrivals_per_second: f64,
    /// Mean time a connection was held, in milliseconds.
    pub mean_hold_ms: f64,
    /// `arrivals_per_second × mean_hold`: connections in use on average.
    pub expected_in_use: f64,
    /// `expected_in_use / max_size`.
    pub of_max_size: f64,
    /// The sampled mean of connections in use over the window.
    pub sampled_in_use: f64,
}

/// A statement that has left its own baseline.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StatementAnomaly {
    /// The statement's fingerprint (hex).
    pub fingerprint: String,
    /// Its normalized text.
    pub statement: String,
    /// `latency` (its p95) or `error_rate`.
    pub kind: &'static str,
    /// The last anomalous minute's value: p95 in milliseconds, or failure
    /// rate.
    pub current: f64,
    /// The baseline's value, in the same unit.
    pub baseline: f64,
    /// Deviations above the baseline (exponentially weighted).
    pub z: f64,
    /// Deviations above the median of the last normal minutes (by their
    /// MAD); absent for failure rates.
    pub robust_z: Option<f64>,
    /// Anomalous minutes among the last `of_minutes` observed.
    pub minutes: u32,
    /// The minutes the consensus looks at.
    pub of_minutes: u32,
    /// When the first anomalous minute of this episode ended (Unix ms).
    pub since_unix_ms: u64,
}

/// A pool's latest forecast and anomalies.
#[derive(Debug, Default)]
pub(crate) struct ForecastStore {
    forecast: Mutex<Option<PoolForecast>>,
    anomalies: Mutex<Vec<StatementAnomaly>>,
}

impl ForecastStore {
    pub(crate) fn set_forecast(&self, forecast: PoolForecast) {
        *self.forecast.lock().unwrap_or_else(|e| e.into_inner()) = Some(forecast);
    }

    pub(crate) fn forecast(&self) -> Option<PoolForecast> {
        self.forecast.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set_anomalies(&self, anomalies: Vec<StatementAnomaly>) {
        *self.anomalies.lock().unwrap_or_else(|e| e.into_inner()) = anomalies;
    }

    pub(crate) fn anomalies(&self) -> Vec<StatementAnomaly> {
        self.anomalies.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
