//! The settings of the pool exhaustion forecast and of the per-statement
//! anomaly detector ([`AlertThresholds::forecast`](super::AlertThresholds::forecast),
//! [`AlertThresholds::anomaly`](super::AlertThresholds::anomaly)).

use std::time::Duration;

/// When the pool's exhaustion is forecast (see [`crate::alerts`],
/// `PoolExhaustionForecast`).
///
/// The demand (connections in use plus checkouts waiting) is sampled every
/// `interval`; a forecast is reported only when the samples span at least
/// `window`, the smoothed trend is rising, the rise over the window is
/// significant (its least-squares slope is at least `min_t` standard
/// errors), the pool runs out within `horizon`, and all of this has held
/// for `confirmations` samples in a row.
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct ForecastThresholds {
    pub(crate) interval: Duration,
    pub(crate) window: Duration,
    pub(crate) horizon: Duration,
    pub(crate) confirmations: u32,
    pub(crate) min_t: f64,
}

impl Default for ForecastThresholds {
    fn default() -> Self {
        ForecastThresholds {
            interval: Duration::from_secs(10),
            window: Duration::from_secs(30 * 60),
            horizon: Duration::from_secs(3600),
            confirmations: 3,
            min_t: 4.0,
        }
    }
}

impl ForecastThresholds {
    /// Sets the time between two samples of the demand
    /// (`ASYNC_DB_ALERT_FORECAST_INTERVAL`). Defaults to 10 s.
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d;
        self
    }

    /// Sets the evidence a forecast needs, and the span of the regression
    /// that checks it (`ASYNC_DB_ALERT_FORECAST_WINDOW`). Defaults to 30
    /// min: Prometheus users learned that shorter windows give false
    /// alarms.
    pub fn window(mut self, d: Duration) -> Self {
        self.window = d;
        self
    }

    /// Sets how far away an exhaustion may be and still be reported
    /// (`ASYNC_DB_ALERT_FORECAST_HORIZON`). Defaults to 1 h.
    pub fn horizon(mut self, d: Duration) -> Self {
        self.horizon = d;
        self
    }

    /// Sets how many samples in a row the forecast must hold before it is
    /// reported (`ASYNC_DB_ALERT_FORECAST_CONFIRMATIONS`). Defaults to 3.
    pub fn confirmations(mut self, n: u32) -> Self {
        self.confirmations = n;
        self
    }

    /// Sets how many standard errors the window's slope must be above
    /// zero (`ASYNC_DB_ALERT_FORECAST_MIN_T`). Defaults to 4.
    pub fn min_t(mut self, t: f64) -> Self {
        self.min_t = t;
        self
    }
}

/// When a statement's latency or failure rate is anomalous against its
/// own baseline (see [`crate::alerts`], `LatencyAnomaly` and
/// `ErrorRateAnomaly`).
///
/// Each statement history slot (a minute; see
/// [`MonitorConfig::slot`](super::MonitorConfig::slot)) with at least
/// `min_calls` runs is one observation: the logarithm of its p95 and its
/// failure rate. A baseline (an exponentially weighted mean and variance,
/// and the median and MAD of the last 16 normal minutes) follows the
/// normal minutes. A minute is anomalous when its p95 is at least `z`
/// deviations above both (the MAD check holds against heavy tails) and at
/// least `min_increase` above the baseline; anomalous minutes do not move
/// the baseline. A statement is anomalous when `k` of its last `n`
/// observed minutes were.
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct AnomalyThresholds {
    pub(crate) z: f64,
    pub(crate) k: u32,
    pub(crate) n: u32,
    pub(crate) min_calls: u64,
    pub(crate) min_increase: Duration,
    pub(crate) min_error_increase: f64,
    pub(crate) warmup: u32,
    pub(crate) alpha: f64,
    pub(crate) relearn: u32,
}

impl Default for AnomalyThresholds {
    fn default() -> Self {
        AnomalyThresholds {
            z: 4.0,
            k: 3,
            n: 5,
            min_calls: 20,
            min_increase: Duration::from_millis(2),
            min_error_increase: 0.05,
            warmup: 15,
            alpha: 0.05,
            relearn: 60,
        }
    }
}

impl AnomalyThresholds {
    /// Sets how many anomalous minutes (`k`, `ASYNC_DB_ALERT_ANOMALY_K`)
    /// among the last `n` (`ASYNC_DB_ALERT_ANOMALY_N`; at most 32) make a
    /// statement anomalous. Defaults to 3 of 5.
    pub fn consensus(mut self, k: u32, n: u32) -> Self {
        self.k = k;
        self.n = n;
        self
    }

    /// Sets how many deviations above the baseline make a minute anomalous
    /// (`ASYNC_DB_ALERT_ANOMALY_Z`). Defaults to 4.
    pub fn z(mut self, z: f64) -> Self {
        self.z = z;
        self
    }

    /// Sets how many runs a minute needs to count
    /// (`ASYNC_DB_ALERT_ANOMALY_MIN_CALLS`). Defaults to 20.
    pub fn min_calls(mut self, n: u64) -> Self {
        self.min_calls = n;
        self
    }

    /// Sets the least p95 increase over the baseline that can be an
    /// anomaly (`ASYNC_DB_ALERT_ANOMALY_MIN_INCREASE`): 0.2 ms becoming 0.5
    /// ms is no incident. Defaults to 2 ms.
    pub fn min_increase(mut self, d: Duration) -> Self {
        self.min_increase = d;
        self
    }

    /// Sets the least failure-rate increase over the baseline that can be
    /// an anomaly (`ASYNC_DB_ALERT_ANOMALY_MIN_ERROR_INCREASE`). Defaults
    /// to 0.05.
    pub fn min_error_increase(mut self, rate: f64) -> Self {
        self.min_error_increase = rate;
        self
    }

    /// Sets how many normal minutes a statement needs before it can be
    /// anomalous (`ASYNC_DB_ALERT_ANOMALY_WARMUP`). Defaults to 15.
    pub fn warmup(mut self, minutes: u32) -> Self {
        self.warmup = minutes;
        self
    }

    /// Sets the weight of a new minute in the baseline
    /// (`ASYNC_DB_ALERT_ANOMALY_ALPHA`). Defaults to 0.05: about 20 minutes
    /// of memory, so that a drift of a few percent an hour is followed.
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// Sets after how many anomalous minutes the new level is taken as the
    /// baseline (`ASYNC_DB_ALERT_ANOMALY_RELEARN`): a lasting change is
    /// news once, not forever. Defaults to 60.
    pub fn relearn(mut self, minutes: u32) -> Self {
        self.relearn = minutes;
        self
    }
}
