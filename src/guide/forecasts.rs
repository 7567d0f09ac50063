//! The pool exhaustion forecast and per-statement anomaly detection.
//!
//! The degradation rule (p95 of 5 minutes against the hour before, a fixed
//! factor of 2) misses slow drifts, fires on noisy statements and says
//! nothing of what comes next. The background task adds two engines, never on
//! the statement path; every parameter is in [`ForecastThresholds`](crate::ForecastThresholds) and
//! [`AnomalyThresholds`](crate::AnomalyThresholds), each with its environment variable.
//!
//! **Pool exhaustion forecast.** Every 10 s (`ASYNC_DB_ALERT_FORECAST_INTERVAL`)
//! the task samples the demand: connections in use plus checkouts waiting.
//!
//! - *Estimate*: Holt's smoothed level of the demand, and the least-squares
//!   slope of the demand over the evidence window (30 min,
//!   `ASYNC_DB_ALERT_FORECAST_WINDOW`); time left = `(max_size − level) /
//!   slope`. Why the window's slope and not Holt's trend: the demand is a
//!   count sampled every few seconds, and in the noisy-ramp unit test Holt's
//!   trend wanders more than twice as far from the true slope as the
//!   forecast built on the window's slope (whose median error there is under
//!   10 %). Holt's trend still has to agree on the direction.
//! - *Checks before anything is reported*: samples spanning the whole window;
//!   a slope of at least 4 standard errors (`…_MIN_T`); the slope between the
//!   medians of the window's first and last thirds within a factor of two of
//!   the regression's (a burst at the window's edge moves a regression, not
//!   those medians); exhaustion within the horizon (1 h, `…_HORIZON`); all of
//!   it for 3 samples in a row (`…_CONFIRMATIONS`).
//! - *Little's law* as a cross-check: checkouts per second × mean hold time =
//!   the connections that must be in use on average, next to `max_size` and
//!   to the sampled mean.
//! - *Surfaces*: `forecast` in `GET …/performance` (state `gathering`,
//!   `steady`, `rising`, `forecast` or `exhausted`, with its evidence),
//!   `PoolMonitor::forecast()`, the gauge
//!   `db_monitor_pool_exhausted_in_seconds` (NaN while there is no forecast),
//!   the alert `PoolExhaustionForecast` keyed by the pool, and a Grafana
//!   panel. `deploy/prometheus/forecast.yml` computes the same forecast in
//!   Prometheus for a whole fleet (`deriv` and `predict_linear` of the
//!   exported demand); `bash deploy/prometheus/forecast-rules.sh 1h` prints
//!   it for another range (kubernetes-mixin moved from 1 h to 6 h after false
//!   alarms), and promtool tests check it.
//!
//! **Statement anomalies.** Each minute (a history slot, `ASYNC_DB_HISTORY_SLOT`)
//! every statement with at least 20 runs (`…_ANOMALY_MIN_CALLS`) is one
//! observation: the log of its p95 and its failure rate.
//!
//! - *Baseline*: an exponentially weighted mean and variance of `ln p95`
//!   (weight 0.05 a minute, `…_ALPHA`: a drift of a few percent an hour is
//!   followed), and the median and MAD of its last 16 normal minutes; a
//!   failure rate, likewise weighted. 256 bytes a statement, bounded by the
//!   fingerprint cap.
//! - *An anomalous minute* is 4 deviations (`…_Z`) above both the weighted
//!   baseline and the median (the MAD check holds against heavy tails, where
//!   one wild minute inflates a variance), and at least 2 ms above it
//!   (`…_MIN_INCREASE`: 0.2 ms becoming 0.5 ms is no incident); for the
//!   failure rate, 4 binomial deviations and at least 5 points
//!   (`…_MIN_ERROR_INCREASE`). Anomalous minutes leave the baseline as it was,
//!   so that an incident is not learnt as normal; after 60 of them in a row
//!   (`…_RELEARN`) the new level becomes the baseline.
//! - *Consensus*: a statement is anomalous when 3 of its last 5 observed
//!   minutes were (`…_K`, `…_N`), after 15 normal minutes of warm-up
//!   (`…_WARMUP`).
//! - *Surfaces*: `anomalies` in `GET …/metrics/query-performance` (each
//!   statement's marks, with `z`, `robust_z`, baseline and current value,
//!   `since_unix_ms`), `PoolMonitor::anomalies()`, the alerts
//!   `LatencyAnomaly` and `ErrorRateAnomaly` keyed by fingerprint, the gauge
//!   `db_monitor_anomalous_statements{kind}`, and a Grafana panel.
//!
//! `PerformanceDegradation` stays beside the anomalies rather than being
//! replaced: it needs no warm-up and no minimum of runs per minute, so it
//! speaks for statements too rare or too new for a baseline, and its rule
//! (2× the hour before) is one an operator can check by hand; the anomaly
//! detector is the one that tells a noisy statement from a changed one.
//! Both can fire for one step change; they are different alert types with
//! the same key.
//!
//! False alarms on a flat synthetic day, `cargo bench --bench forecasts`:
//! 1,000 statements for 24 simulated hours, 60 to 140 runs a minute, p95
//! with Gaussian jitter and a steady 1 % failure rate: **0** anomalous
//! statement-minutes of 1,440,000 at 3 % jitter, and 0 at 10 %; the
//! forecast on 100 flat days (30 of 50 connections, 3 % jitter, a sample
//! every 10 s): **0** of 864,000 samples reported a forecast. Unit tests
//! with synthetic series (`cargo test --lib forecast`): a linear ramp is
//! forecast within 10 % of the true time once the window is full, a burst is
//! no trend, a step from 20 to 60 ms is flagged in the 3rd minute and clears
//! within 2 minutes of its end, and a drift of 1 % an hour for a day is never
//! flagged. On real PostgreSQL (`tests/forecast.rs`, slot of 400 ms and a
//! 1 s window by configuration): `pg_sleep($1)` going from 1 ms to 60 ms is
//! flagged (its alert fires, the steady statement next to it is not), and
//! holders joining a pool of 8 every 250 ms are forecast before the first
//! checkout times out.
