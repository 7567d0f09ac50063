//! [`MonitorConfig::validate`]: every setting against the range the
//! monitor can work with, each error naming the setting (its environment
//! variable where it has one, else its field).

use std::time::Duration;

use super::{ConfigError, MonitorConfig};

/// The longest period or threshold any setting may hold: past it a
/// deadline computed from it could overflow `Instant`.
pub(crate) const YEAR: Duration = Duration::from_secs(365 * 24 * 60 * 60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);
const HOUR: Duration = Duration::from_secs(60 * 60);

/// The most entries a bounded store or cache may be set to keep.
pub(crate) const MAX_ENTRIES: usize = 1_000_000;

fn fail(name: &'static str, value: impl std::fmt::Display, expected: &'static str) -> ConfigError {
    ConfigError::new(name, Some(&value.to_string()), expected)
}

/// `d` within `least..=most`.
fn duration(
    name: &'static str,
    d: Duration,
    least: Duration,
    most: Duration,
    expected: &'static str,
) -> Result<(), ConfigError> {
    if d < least || d > most {
        return Err(fail(name, format_args!("{d:?}"), expected));
    }
    Ok(())
}

/// `n` within `least..=most`.
fn count<T: PartialOrd + std::fmt::Display>(
    name: &'static str,
    n: T,
    least: T,
    most: T,
    expected: &'static str,
) -> Result<(), ConfigError> {
    if n < least || n > most {
        return Err(fail(name, n, expected));
    }
    Ok(())
}

/// A finite `x` within `least..=most`.
fn number(name: &'static str, x: f64, least: f64, most: f64, expected: &'static str) -> Result<(), ConfigError> {
    if !(x.is_finite() && x >= least && x <= most) {
        return Err(fail(name, x, expected));
    }
    Ok(())
}

impl MonitorConfig {
    /// Checks every setting against the range the monitor and bb8 can
    /// work with. [`DbMonitor::new`](crate::DbMonitor::new) and
    /// [`from_env`](Self::from_env) call it, so a configuration that gets
    /// past them is one the monitor runs with as written.
    ///
    /// Durations are at most a year (a day for the periods of the
    /// background work, an hour for the history slot and the grace of an
    /// abandoned statement), sizes of stores and caches at most 1,000,000,
    /// ratios between 0 and 1.
    ///
    /// # Errors
    ///
    /// The first setting out of range, named by its `ASYNC_DB_*` variable
    /// when it has one and by its field otherwise (`query_history`,
    /// `server_view.top_statements`), with the value and what was expected.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = Duration::from_nanos(1);
        if self.max_size == 0 {
            return Err(fail("ASYNC_DB_MAX_SIZE", self.max_size, "at least 1"));
        }
        if self.min_idle > self.max_size {
            // bb8 would panic on it.
            return Err(fail("ASYNC_DB_MIN_IDLE", self.min_idle, "at most ASYNC_DB_MAX_SIZE"));
        }
        let a_year = "a positive duration of at most a year";
        let up_to_a_year = "a duration of at most a year";
        duration("ASYNC_DB_POOL_TIMEOUT", self.pool_timeout, positive, YEAR, a_year)?;
        duration(
            "ASYNC_DB_POOL_RECYCLE",
            self.pool_recycle,
            Duration::ZERO,
            YEAR,
            up_to_a_year,
        )?;
        duration(
            "ASYNC_DB_HEALTH_CHECK_INTERVAL",
            self.health_check_interval,
            positive,
            DAY,
            "a positive duration of at most a day",
        )?;
        duration(
            "ASYNC_DB_METRICS_RESET_INTERVAL",
            self.metrics_reset_interval,
            Duration::ZERO,
            YEAR,
            "a duration of at most a year (0: never)",
        )?;
        if let Some(leak) = self.leak_threshold {
            duration("ASYNC_DB_LEAK_THRESHOLD", leak, positive, YEAR, a_year)?;
        }
        duration(
            "ASYNC_DB_ABANDONED_GRACE",
            self.abandoned_grace,
            Duration::ZERO,
            HOUR,
            "a duration of at most an hour",
        )?;
        duration(
            "ASYNC_DB_HISTORY_SLOT",
            self.slot,
            Duration::from_millis(100),
            HOUR,
            "a duration from 100ms to an hour",
        )?;
        self.validate_stores()?;
        if let Some(view) = &self.server_view {
            validate_view(view)?;
        }
        self.validate_alerts()
    }

    /// The bounded stores and caches.
    fn validate_stores(&self) -> Result<(), ConfigError> {
        let store = "a number of entries from 1 to 1000000";
        let cache = "a number of entries from 0 to 1000000";
        count("query_history", self.query_history, 1, MAX_ENTRIES, store)?;
        count("error_history", self.error_history, 1, MAX_ENTRIES, store)?;
        count("alert_history", self.alert_history, 1, MAX_ENTRIES, store)?;
        count("pool_trend_samples", self.pool_trend_samples, 1, MAX_ENTRIES, store)?;
        count("statement_cache_size", self.statement_cache_size, 0, MAX_ENTRIES, cache)?;
        count(
            "ASYNC_DB_PREPARED_CACHE_SIZE",
            self.prepared_cache_size,
            0,
            MAX_ENTRIES,
            cache,
        )?;
        count("max_fingerprints", self.max_fingerprints, 1, MAX_ENTRIES, store)?;
        count("max_query_summaries", self.max_query_summaries, 1, MAX_ENTRIES, store)?;
        count("max_status_codes", self.max_status_codes, 1, MAX_ENTRIES, store)?;
        number(
            "degradation_factor",
            self.degradation_factor,
            1.0,
            1e6,
            "a factor from 1 to 1000000",
        )?;
        Ok(())
    }

    fn validate_alerts(&self) -> Result<(), ConfigError> {
        let positive = Duration::from_nanos(1);
        let a_year = "a positive duration of at most a year";
        let a = &self.alerts;
        let ratio = "a number between 0 and 1";
        number("ASYNC_DB_ALERT_ERROR_RATE_5MIN", a.error_rate_5min, 0.0, 1.0, ratio)?;
        number("ASYNC_DB_ALERT_ERROR_RATE_15MIN", a.error_rate_15min, 0.0, 1.0, ratio)?;
        number("ASYNC_DB_ALERT_ERROR_RATE_1HOUR", a.error_rate_1hour, 0.0, 1.0, ratio)?;
        number("ASYNC_DB_ALERT_POOL_UTILIZATION", a.pool_utilization, 0.0, 1.0, ratio)?;
        number("ASYNC_DB_ALERT_HELD_IDLE_SHARE", a.held_idle_share, 0.0, 1.0, ratio)?;
        duration(
            "ASYNC_DB_SLOW_QUERY_THRESHOLD",
            self.slow_query_threshold,
            positive,
            YEAR,
            a_year,
        )?;
        count(
            "ASYNC_DB_ALERT_CONSECUTIVE_FAILURES",
            a.consecutive_failures,
            1,
            1_000_000,
            "a number of failures from 1 to 1000000",
        )?;
        duration(
            "ASYNC_DB_ALERT_COOLDOWN",
            a.cooldown,
            Duration::ZERO,
            YEAR,
            "a duration of at most a year",
        )?;
        for (&alert_type, &cooldown) in &a.cooldowns {
            duration(
                alert_type.cooldown_variable(),
                cooldown,
                Duration::ZERO,
                YEAR,
                "a duration of at most a year",
            )?;
        }
        duration(
            "ASYNC_DB_ALERT_CLEAR_AFTER",
            a.clear_after,
            Duration::ZERO,
            YEAR,
            "a duration of at most a year",
        )?;
        duration("ASYNC_DB_ALERT_EXPIRE_AFTER", a.expire_after, positive, YEAR, a_year)?;
        duration(
            "ASYNC_DB_ALERT_ERROR_RATE_EVIDENCE",
            a.error_rate_evidence,
            Duration::ZERO,
            Duration::from_secs(300),
            "a duration of at most the 5 min window (0: judge at once)",
        )?;
        duration(
            "ASYNC_DB_ALERT_EVALUATION_INTERVAL",
            a.evaluation_interval,
            positive,
            DAY,
            "a positive duration of at most a day",
        )?;
        duration(
            "ASYNC_DB_ALERT_IDLE_IN_TRANSACTION",
            a.idle_in_transaction,
            positive,
            YEAR,
            a_year,
        )?;
        duration(
            "ASYNC_DB_ALERT_TRANSACTION_AGE",
            a.transaction_age,
            positive,
            YEAR,
            a_year,
        )?;
        duration("ASYNC_DB_ALERT_BLOCKED", a.blocked, positive, YEAR, a_year)?;
        validate_forecast(&a.forecast)?;
        validate_anomaly(&a.anomaly)?;
        validate_readiness(&self.readiness)?;
        validate_objectives(&self.objectives)?;
        if self.slow_statements.len() > MAX_OBJECTIVES * 100 {
            return Err(fail(
                "ASYNC_DB_SLOW_STATEMENTS",
                self.slow_statements.len(),
                "at most 10000 statements",
            ));
        }
        for threshold in self.slow_statements.values() {
            duration(
                "ASYNC_DB_SLOW_STATEMENTS",
                *threshold,
                positive,
                YEAR,
                "thresholds that are positive durations of at most a year",
            )?;
        }
        Ok(())
    }
}

/// The most objectives a monitor takes (each is a few labelled series).
const MAX_OBJECTIVES: usize = 100;

/// The objectives: a route each, named once, with a target in (0, 1) and
/// a positive bound of at most a day.
fn validate_objectives(objectives: &[super::Objective]) -> Result<(), ConfigError> {
    const NAME: &str = "ASYNC_DB_OBJECTIVES";
    if objectives.len() > MAX_OBJECTIVES {
        return Err(fail(NAME, objectives.len(), "at most 100 objectives"));
    }
    for (i, o) in objectives.iter().enumerate() {
        if o.route.is_empty() || o.route.len() > 200 || o.route.chars().any(char::is_control) {
            return Err(fail(
                NAME,
                &o.route,
                "a route name of 1 to 200 bytes, without control characters",
            ));
        }
        if objectives[..i].iter().any(|p| p.route == o.route) {
            return Err(fail(NAME, &o.route, "each route once"));
        }
        if o.latency.is_none() && o.success.is_none() {
            return Err(fail(NAME, o, "a latency or a success target for each route"));
        }
        let targets = o.latency.map(|(_, t)| t).into_iter().chain(o.success);
        for target in targets {
            if !(target > 0.0 && target < 1.0) {
                return Err(fail(NAME, o, "targets above 0% and below 100%"));
            }
        }
        if let Some((bound, _)) = o.latency {
            duration(
                NAME,
                bound,
                Duration::from_nanos(1),
                DAY,
                "latency bounds that are positive durations of at most a day",
            )?;
        }
    }
    Ok(())
}

/// When the pool is unready.
fn validate_readiness(r: &super::Readiness) -> Result<(), ConfigError> {
    let a_day = "a positive duration of at most a day";
    duration(
        "ASYNC_DB_READY_SATURATED_FOR",
        r.saturated_for,
        Duration::from_nanos(1),
        DAY,
        a_day,
    )?;
    duration(
        "ASYNC_DB_READY_WAIT_P95",
        r.wait_p95,
        Duration::from_nanos(1),
        DAY,
        a_day,
    )?;
    duration(
        "ASYNC_DB_READY_EXHAUSTION_WITHIN",
        r.exhaustion_within,
        Duration::ZERO,
        DAY,
        "a duration of at most a day (0: never)",
    )?;
    duration(
        "ASYNC_DB_READY_RETRY_AFTER",
        r.retry_after,
        Duration::from_secs(1),
        DAY,
        "a duration from 1 s to a day",
    )
}

/// The exhaustion forecast's settings.
fn validate_forecast(f: &super::ForecastThresholds) -> Result<(), ConfigError> {
    let positive = Duration::from_nanos(1);
    let a_year = "a positive duration of at most a year";
    duration(
        "ASYNC_DB_ALERT_FORECAST_INTERVAL",
        f.interval,
        positive,
        DAY,
        "a positive duration of at most a day",
    )?;
    if f.window < f.interval || f.window > YEAR {
        return Err(fail(
            "ASYNC_DB_ALERT_FORECAST_WINDOW",
            format_args!("{:?}", f.window),
            "a duration from ASYNC_DB_ALERT_FORECAST_INTERVAL to a year",
        ));
    }
    duration("ASYNC_DB_ALERT_FORECAST_HORIZON", f.horizon, positive, YEAR, a_year)?;
    count(
        "ASYNC_DB_ALERT_FORECAST_CONFIRMATIONS",
        f.confirmations,
        1,
        10_000,
        "a number of samples from 1 to 10000",
    )?;
    number(
        "ASYNC_DB_ALERT_FORECAST_MIN_T",
        f.min_t,
        0.0,
        1e6,
        "a number of standard errors, zero or more",
    )?;
    Ok(())
}

/// The anomaly detector's settings.
fn validate_anomaly(n: &super::AnomalyThresholds) -> Result<(), ConfigError> {
    let ratio = "a number between 0 and 1";
    count(
        "ASYNC_DB_ALERT_ANOMALY_N",
        n.n,
        1,
        32,
        "a number of minutes from 1 to 32",
    )?;
    count(
        "ASYNC_DB_ALERT_ANOMALY_K",
        n.k,
        1,
        n.n,
        "a number of minutes from 1 to ASYNC_DB_ALERT_ANOMALY_N",
    )?;
    if !(n.alpha > 0.0 && n.alpha <= 1.0) {
        return Err(fail(
            "ASYNC_DB_ALERT_ANOMALY_ALPHA",
            n.alpha,
            "a weight above 0 and at most 1",
        ));
    }
    if !(n.z.is_finite() && n.z > 0.0) {
        return Err(fail("ASYNC_DB_ALERT_ANOMALY_Z", n.z, "a positive number of deviations"));
    }
    duration(
        "ASYNC_DB_ALERT_ANOMALY_MIN_INCREASE",
        n.min_increase,
        Duration::ZERO,
        YEAR,
        "a duration of at most a year",
    )?;
    number(
        "ASYNC_DB_ALERT_ANOMALY_MIN_ERROR_INCREASE",
        n.min_error_increase,
        0.0,
        1.0,
        ratio,
    )?;
    let minutes = "a number of minutes from 0 to 525600 (a year)";
    count("ASYNC_DB_ALERT_ANOMALY_WARMUP", n.warmup, 0, 525_600, minutes)?;
    count("ASYNC_DB_ALERT_ANOMALY_RELEARN", n.relearn, 0, 525_600, minutes)?;
    Ok(())
}

/// The server view's settings.
fn validate_view(view: &super::ServerView) -> Result<(), ConfigError> {
    duration(
        "ASYNC_DB_SERVER_VIEW",
        view.interval,
        Duration::from_millis(100),
        DAY,
        "a poll interval from 100ms to a day, or off",
    )?;
    let bound = "a positive duration of at most an hour";
    duration(
        "server_view.statement_timeout",
        view.statement_timeout,
        Duration::from_millis(1),
        HOUR,
        bound,
    )?;
    duration(
        "server_view.lock_timeout",
        view.lock_timeout,
        Duration::from_millis(1),
        HOUR,
        bound,
    )?;
    // PostgreSQL truncates application_name at 63 bytes and keeps
    // printable ASCII only.
    let name = &view.application_name;
    if name.len() > 63 || !name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(fail(
            "server_view.application_name",
            name,
            "at most 63 printable ASCII characters",
        ));
    }
    count(
        "server_view.top_statements",
        view.top_statements,
        1,
        1000,
        "a number of statements from 1 to 1000",
    )?;
    if !view.load_interval.is_zero() {
        duration(
            "server_view.load_interval",
            view.load_interval,
            Duration::from_millis(100),
            HOUR,
            "a sampling interval from 100ms to an hour, or zero (off)",
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerView;

    fn rejected(config: MonitorConfig) -> String {
        config.validate().expect_err("out of range").variable().to_owned()
    }

    #[test]
    fn the_defaults_pass() {
        MonitorConfig::default().validate().unwrap();
        MonitorConfig::default()
            .server_view(ServerView::default())
            .validate()
            .unwrap();
    }

    #[test]
    fn each_out_of_range_setting_is_named() {
        let base = MonitorConfig::default;
        assert_eq!(
            rejected(base().slot(Duration::from_secs(u64::MAX / 4))),
            "ASYNC_DB_HISTORY_SLOT"
        );
        assert_eq!(
            rejected(base().slot(Duration::from_millis(10))),
            "ASYNC_DB_HISTORY_SLOT"
        );
        let mut c = base();
        c.query_history = 0;
        assert_eq!(rejected(c), "query_history");
        let mut c = base();
        c.error_history = usize::MAX;
        assert_eq!(rejected(c), "error_history");
        let mut c = base();
        c.degradation_factor = f64::NAN;
        assert_eq!(rejected(c), "degradation_factor");
        let mut c = base();
        c.alerts.pool_utilization = 1.5;
        assert_eq!(rejected(c), "ASYNC_DB_ALERT_POOL_UTILIZATION");
        let mut c = base();
        c.alerts.cooldown = Duration::MAX;
        assert_eq!(rejected(c), "ASYNC_DB_ALERT_COOLDOWN");
        let mut c = base();
        c.pool_timeout = Duration::MAX;
        assert_eq!(rejected(c), "ASYNC_DB_POOL_TIMEOUT");
        let mut c = base();
        c.alerts.forecast.window = Duration::from_millis(1);
        assert_eq!(rejected(c), "ASYNC_DB_ALERT_FORECAST_WINDOW");
        let view = ServerView {
            application_name: "x".repeat(64),
            ..ServerView::default()
        };
        assert_eq!(rejected(base().server_view(view)), "server_view.application_name");
        let view = ServerView {
            top_statements: 0,
            ..ServerView::default()
        };
        assert_eq!(rejected(base().server_view(view)), "server_view.top_statements");
        let view = ServerView::default().interval(Duration::from_millis(1));
        assert_eq!(rejected(base().server_view(view)), "ASYNC_DB_SERVER_VIEW");
    }

    #[test]
    fn the_error_shows_the_value_and_the_range() {
        let err = MonitorConfig::default()
            .slot(Duration::from_secs(7200))
            .validate()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid ASYNC_DB_HISTORY_SLOT \"7200s\": expected a duration from 100ms to an hour"
        );
    }
}
