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
#[non_exhaustive]
pub struct ForecastThresholds {
    /// Time between two samples of the demand
    /// (`ASYNC_DB_ALERT_FORECAST_INTERVAL`, 10 s).
    pub interval: Duration,
    /// The evidence a forecast needs, and the span of the regression that
    /// checks it (`ASYNC_DB_ALERT_FORECAST_WINDOW`, 30 min: Prometheus
    /// users learned that shorter windows give false alarms).
    pub window: Duration,
    /// Exhaustion further away than this is not reported
    /// (`ASYNC_DB_ALERT_FORECAST_HORIZON`, 1 h).
    pub horizon: Duration,
    /// Samples in a row the forecast must hold before it is reported
    /// (`ASYNC_DB_ALERT_FORECAST_CONFIRMATIONS`, 3).
    pub confirmations: u32,
    /// How many standard errors the window's slope must be above zero
    /// (`ASYNC_DB_ALERT_FORECAST_MIN_T`, 4).
    pub min_t: f64,
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
    /// Sets [`interval`](Self::interval). Defaults to 10 s.
    #[must_use]
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d;
        self
    }

    /// Sets [`window`](Self::window). Defaults to 30 min.
    #[must_use]
    pub fn window(mut self, d: Duration) -> Self {
        self.window = d;
        self
    }

    /// Sets [`horizon`](Self::horizon). Defaults to 1 h.
    #[must_use]
    pub fn horizon(mut self, d: Duration) -> Self {
        self.horizon = d;
        self
    }

    /// Sets [`confirmations`](Self::confirmations). Defaults to 3.
    #[must_use]
    pub fn confirmations(mut self, n: u32) -> Self {
        self.confirmations = n;
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
#[non_exhaustive]
pub struct AnomalyThresholds {
    /// Deviations above the baseline (`ASYNC_DB_ALERT_ANOMALY_Z`, 4).
    pub z: f64,
    /// Anomalous minutes needed among the last `n`
    /// (`ASYNC_DB_ALERT_ANOMALY_K`, 3).
    pub k: u32,
    /// The minutes the consensus looks at (`ASYNC_DB_ALERT_ANOMALY_N`, 5;
    /// at most 32).
    pub n: u32,
    /// Runs a minute needs to count (`ASYNC_DB_ALERT_ANOMALY_MIN_CALLS`, 20).
    pub min_calls: u64,
    /// The least p95 increase over the baseline that can be an anomaly
    /// (`ASYNC_DB_ALERT_ANOMALY_MIN_INCREASE`, 2 ms): 0.2 ms becoming 0.5
    /// ms is no incident.
    pub min_increase: Duration,
    /// The least failure-rate increase over the baseline that can be an
    /// anomaly (`ASYNC_DB_ALERT_ANOMALY_MIN_ERROR_INCREASE`, 0.05).
    pub min_error_increase: f64,
    /// Normal minutes a statement needs before it can be anomalous
    /// (`ASYNC_DB_ALERT_ANOMALY_WARMUP`, 15).
    pub warmup: u32,
    /// The weight of a new minute in the baseline
    /// (`ASYNC_DB_ALERT_ANOMALY_ALPHA`, 0.05: about 20 minutes of memory,
    /// so that a drift of a few percent an hour is followed).
    pub alpha: f64,
    /// Anomalous minutes after which the new level is taken as the baseline
    /// (`ASYNC_DB_ALERT_ANOMALY_RELEARN`, 60): a lasting change is news
    /// once, not forever.
    pub relearn: u32,
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
    /// Sets [`k`](Self::k) of [`n`](Self::n). Defaults to 3 of 5.
    #[must_use]
    pub fn consensus(mut self, k: u32, n: u32) -> Self {
        self.k = k;
        self.n = n;
        self
    }

    /// Sets [`z`](Self::z). Defaults to 4.
    #[must_use]
    pub fn z(mut self, z: f64) -> Self {
        self.z = z;
        self
    }

    /// Sets [`min_calls`](Self::min_calls). Defaults to 20.
    #[must_use]
    pub fn min_calls(mut self, n: u64) -> Self {
        self.min_calls = n;
        self
    }

    /// Sets [`min_increase`](Self::min_increase). Defaults to 2 ms.
    #[must_use]
    pub fn min_increase(mut self, d: Duration) -> Self {
        self.min_increase = d;
        self
    }

    /// Sets [`warmup`](Self::warmup). Defaults to 15 minutes.
    #[must_use]
    pub fn warmup(mut self, minutes: u32) -> Self {
        self.warmup = minutes;
        self
    }
}
