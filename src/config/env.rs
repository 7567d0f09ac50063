//! Reading the configuration from the environment: [`ConfigError`] and
//! the parsers that name the variable they could not use.

use std::fmt;
use std::time::Duration;

use super::MonitorConfig;
use crate::alert_kind::AlertType;

/// A configuration value that could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    variable: &'static str,
    value: Option<String>,
    expected: &'static str,
    /// The setting is needed and was not given at all.
    unset: bool,
}

impl ConfigError {
    pub(super) fn new(variable: &'static str, value: Option<&str>, expected: &'static str) -> Self {
        ConfigError {
            variable,
            value: value.map(str::to_owned),
            expected,
            unset: false,
        }
    }

    /// `variable` is needed here and was not set.
    pub(crate) fn unset(variable: &'static str, expected: &'static str) -> Self {
        ConfigError {
            unset: true,
            ..ConfigError::new(variable, None, expected)
        }
    }

    /// The variable (or setting) that was rejected.
    pub fn variable(&self) -> &str {
        self.variable
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unset {
            return write!(f, "{} is not set: expected {}", self.variable, self.expected);
        }
        write!(f, "invalid {}", self.variable)?;
        if let Some(value) = &self.value {
            write!(f, " {value:?}")?;
        }
        write!(f, ": expected {}", self.expected)
    }
}

impl std::error::Error for ConfigError {}

const DURATION: &str = "a duration such as 30, 2.5, 500ms, 30s, 5m or 1h";

/// Parses a duration: bare seconds (`30`, `2.5`) or a number with one of the
/// units `ms`, `s`, `m`, `h`.
pub(super) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

struct Env<F> {
    lookup: F,
}

impl<F: Fn(&'static str) -> Option<String>> Env<F> {
    fn read<T>(
        &self,
        name: &'static str,
        expected: &'static str,
        parse: impl Fn(&str) -> Option<T>,
        target: &mut T,
    ) -> Result<(), ConfigError> {
        if let Some(raw) = (self.lookup)(name) {
            *target = parse(raw.trim()).ok_or_else(|| ConfigError::new(name, Some(&raw), expected))?;
        }
        Ok(())
    }

    fn duration(&self, name: &'static str, target: &mut Duration) -> Result<(), ConfigError> {
        self.read(name, DURATION, parse_duration, target)
    }

    fn ratio(&self, name: &'static str, target: &mut f64) -> Result<(), ConfigError> {
        self.read(
            name,
            "a number between 0 and 1",
            |s| s.parse::<f64>().ok().filter(|v| (0.0..=1.0).contains(v)),
            target,
        )
    }

    fn number(&self, name: &'static str, target: &mut f64) -> Result<(), ConfigError> {
        self.read(
            name,
            "a number, zero or more",
            |s| s.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0),
            target,
        )
    }

    fn flag(&self, name: &'static str, target: &mut bool) -> Result<(), ConfigError> {
        self.read(
            name,
            "true or false (or 1 or 0)",
            |s| match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Some(true),
                "false" | "0" | "no" | "off" => Some(false),
                _ => None,
            },
            target,
        )
    }

    fn count<T: std::str::FromStr>(&self, name: &'static str, target: &mut T) -> Result<(), ConfigError> {
        self.read(name, "a non-negative integer", |s| s.parse().ok(), target)
    }
}

/// The variables of one part of the configuration each.
impl<F: Fn(&'static str) -> Option<String>> Env<F> {
    /// `ASYNC_DB_MAX_SIZE`, or its aliases in SQLAlchemy's words: the pool
    /// size plus the overflow. Both at once would be two answers to one
    /// question, so that is refused.
    fn max_size(&self, c: &mut MonitorConfig) -> Result<(), ConfigError> {
        let (mut pool_size, mut overflow) = (None, None);
        self.read(
            "ASYNC_DB_POOL_SIZE",
            "a non-negative integer",
            |s| s.parse().ok().map(Some),
            &mut pool_size,
        )?;
        self.read(
            "ASYNC_DB_MAX_OVERFLOW",
            "a non-negative integer",
            |s| s.parse().ok().map(Some),
            &mut overflow,
        )?;
        if (self.lookup)("ASYNC_DB_MAX_SIZE").is_some() {
            if let Some(alias) = [("ASYNC_DB_POOL_SIZE", pool_size), ("ASYNC_DB_MAX_OVERFLOW", overflow)]
                .into_iter()
                .find_map(|(name, value)| value.map(|_| name))
            {
                return Err(ConfigError::new(
                    alias,
                    None,
                    "unset while ASYNC_DB_MAX_SIZE is set (it is an older alias of ASYNC_DB_MAX_SIZE)",
                ));
            }
            return self.count("ASYNC_DB_MAX_SIZE", &mut c.max_size);
        }
        if pool_size.is_some() || overflow.is_some() {
            let (pool_size, overflow): (u32, u32) = (pool_size.unwrap_or(c.max_size), overflow.unwrap_or(0));
            c.max_size = pool_size.saturating_add(overflow);
            c.overflow = overflow;
        }
        Ok(())
    }

    fn pool(&self, c: &mut MonitorConfig) -> Result<(), ConfigError> {
        self.max_size(c)?;
        self.count("ASYNC_DB_MIN_IDLE", &mut c.min_idle)?;
        self.duration("ASYNC_DB_POOL_TIMEOUT", &mut c.pool_timeout)?;
        self.duration("ASYNC_DB_POOL_RECYCLE", &mut c.pool_recycle)?;
        self.duration("ASYNC_DB_HEALTH_CHECK_INTERVAL", &mut c.health_check_interval)?;
        self.duration("ASYNC_DB_METRICS_RESET_INTERVAL", &mut c.metrics_reset_interval)?;
        let mut leak = c.leak_threshold.unwrap_or_default();
        self.duration("ASYNC_DB_LEAK_THRESHOLD", &mut leak)?;
        c.leak_threshold = (!leak.is_zero()).then_some(leak);
        self.duration("ASYNC_DB_ABANDONED_GRACE", &mut c.abandoned_grace)?;
        self.count("ASYNC_DB_PREPARED_CACHE_SIZE", &mut c.prepared_cache_size)
    }

    fn readiness(&self, r: &mut super::Readiness) -> Result<(), ConfigError> {
        self.duration("ASYNC_DB_READY_SATURATED_FOR", &mut r.saturated_for)?;
        self.duration("ASYNC_DB_READY_WAIT_P95", &mut r.wait_p95)?;
        self.duration("ASYNC_DB_READY_EXHAUSTION_WITHIN", &mut r.exhaustion_within)?;
        self.duration("ASYNC_DB_READY_RETRY_AFTER", &mut r.retry_after)?;
        self.flag("ASYNC_DB_READY_OUT_OF_REACH", &mut r.out_of_reach_unready)
    }

    fn span_level(&self, level: &mut Option<tracing::Level>) -> Result<(), ConfigError> {
        self.read(
            "ASYNC_DB_SPAN_LEVEL",
            "info, debug, trace or off",
            |s| match s.to_ascii_lowercase().as_str() {
                "off" | "none" => Some(None),
                "error" | "warn" | "info" => Some(Some(tracing::Level::INFO)),
                "debug" => Some(Some(tracing::Level::DEBUG)),
                "trace" => Some(Some(tracing::Level::TRACE)),
                _ => None,
            },
            level,
        )
    }

    fn server_view(&self, view: &mut Option<super::ServerView>) -> Result<(), ConfigError> {
        let Some(raw) = (self.lookup)("ASYNC_DB_SERVER_VIEW") else {
            return Ok(());
        };
        *view = match raw.trim() {
            "off" | "false" | "0" => None,
            text => {
                let interval = parse_duration(text).filter(|d| !d.is_zero()).ok_or_else(|| {
                    ConfigError::new(
                        "ASYNC_DB_SERVER_VIEW",
                        Some(&raw),
                        "a poll interval such as 15s, or off",
                    )
                })?;
                Some(super::ServerView::default().interval(interval))
            }
        };
        Ok(())
    }

    fn alerts(&self, a: &mut super::AlertThresholds) -> Result<(), ConfigError> {
        self.ratio("ASYNC_DB_ALERT_ERROR_RATE_5MIN", &mut a.error_rate_5min)?;
        self.ratio("ASYNC_DB_ALERT_ERROR_RATE_15MIN", &mut a.error_rate_15min)?;
        self.ratio("ASYNC_DB_ALERT_ERROR_RATE_1HOUR", &mut a.error_rate_1hour)?;
        self.ratio("ASYNC_DB_ALERT_POOL_UTILIZATION", &mut a.pool_utilization)?;
        self.ratio("ASYNC_DB_ALERT_HELD_IDLE_SHARE", &mut a.held_idle_share)?;
        self.count("ASYNC_DB_ALERT_CONSECUTIVE_FAILURES", &mut a.consecutive_failures)?;
        self.count("ASYNC_DB_ALERT_MIN_STATEMENTS", &mut a.error_rate_min_statements)?;
        self.duration("ASYNC_DB_ALERT_ERROR_RATE_EVIDENCE", &mut a.error_rate_evidence)?;
        self.duration("ASYNC_DB_ALERT_COOLDOWN", &mut a.cooldown)?;
        for alert_type in AlertType::ALL {
            let mut cooldown = a.cooldown;
            if (self.lookup)(alert_type.cooldown_variable()).is_some() {
                self.duration(alert_type.cooldown_variable(), &mut cooldown)?;
                a.cooldowns.insert(alert_type, cooldown);
            }
        }
        self.duration("ASYNC_DB_ALERT_CLEAR_AFTER", &mut a.clear_after)?;
        self.duration("ASYNC_DB_ALERT_EXPIRE_AFTER", &mut a.expire_after)?;
        self.duration("ASYNC_DB_ALERT_EVALUATION_INTERVAL", &mut a.evaluation_interval)?;
        self.duration("ASYNC_DB_ALERT_IDLE_IN_TRANSACTION", &mut a.idle_in_transaction)?;
        self.duration("ASYNC_DB_ALERT_TRANSACTION_AGE", &mut a.transaction_age)?;
        self.duration("ASYNC_DB_ALERT_BLOCKED", &mut a.blocked)
    }

    fn forecast(&self, f: &mut super::ForecastThresholds) -> Result<(), ConfigError> {
        self.duration("ASYNC_DB_ALERT_FORECAST_INTERVAL", &mut f.interval)?;
        self.duration("ASYNC_DB_ALERT_FORECAST_WINDOW", &mut f.window)?;
        self.duration("ASYNC_DB_ALERT_FORECAST_HORIZON", &mut f.horizon)?;
        self.count("ASYNC_DB_ALERT_FORECAST_CONFIRMATIONS", &mut f.confirmations)?;
        self.number("ASYNC_DB_ALERT_FORECAST_MIN_T", &mut f.min_t)
    }

    fn anomaly(&self, n: &mut super::AnomalyThresholds) -> Result<(), ConfigError> {
        self.number("ASYNC_DB_ALERT_ANOMALY_Z", &mut n.z)?;
        self.count("ASYNC_DB_ALERT_ANOMALY_K", &mut n.k)?;
        self.count("ASYNC_DB_ALERT_ANOMALY_N", &mut n.n)?;
        self.count("ASYNC_DB_ALERT_ANOMALY_MIN_CALLS", &mut n.min_calls)?;
        self.duration("ASYNC_DB_ALERT_ANOMALY_MIN_INCREASE", &mut n.min_increase)?;
        self.ratio("ASYNC_DB_ALERT_ANOMALY_MIN_ERROR_INCREASE", &mut n.min_error_increase)?;
        self.count("ASYNC_DB_ALERT_ANOMALY_WARMUP", &mut n.warmup)?;
        self.ratio("ASYNC_DB_ALERT_ANOMALY_ALPHA", &mut n.alpha)?;
        self.count("ASYNC_DB_ALERT_ANOMALY_RELEARN", &mut n.relearn)
    }
}

impl MonitorConfig {
    /// Reads the configuration from the process environment.
    ///
    /// | variable | setter | default |
    /// |---|---|---|
    /// | `DATABASE_URL` | [`database`](Self::database) | unset |
    /// | `ASYNC_DB_MAX_SIZE` | [`max_size`](Self::max_size) | 10 |
    /// | `ASYNC_DB_POOL_SIZE` | an older alias: `max_size` is it plus `ASYNC_DB_MAX_OVERFLOW` (refused beside `ASYNC_DB_MAX_SIZE`) | unset |
    /// | `ASYNC_DB_MAX_OVERFLOW` | an older alias, added to `ASYNC_DB_POOL_SIZE` (or to the default size) | unset |
    /// | `ASYNC_DB_MIN_IDLE` | [`min_idle`](Self::min_idle) (`0`: lazy) | 0 |
    /// | `ASYNC_DB_POOL_TIMEOUT` | [`pool_timeout`](Self::pool_timeout) | 30 s |
    /// | `ASYNC_DB_POOL_RECYCLE` | [`pool_recycle`](Self::pool_recycle) | 3600 s |
    /// | `ASYNC_DB_HEALTH_CHECK_INTERVAL` | [`health_check_interval`](Self::health_check_interval) | 300 s |
    /// | `ASYNC_DB_METRICS_RESET_INTERVAL` | [`metrics_reset_interval`](Self::metrics_reset_interval) | 3600 s (`0`: never) |
    /// | `ASYNC_DB_LEAK_THRESHOLD` | [`leak_threshold`](Self::leak_threshold) (`0` disables) | 60 s |
    /// | `ASYNC_DB_PREPARED_CACHE_SIZE` | [`prepared_cache_size`](Self::prepared_cache_size) (per connection; `0` keeps none) | 256 |
    /// | `ASYNC_DB_ABANDONED_GRACE` | [`abandoned_grace`](Self::abandoned_grace) (`0` retires at once) | 100 ms |
    /// | `ASYNC_DB_EXPOSE_APPLICATION_MESSAGES` | [`expose_application_messages`](Self::expose_application_messages) (`true`/`false`) | `false` |
    /// | `ASYNC_DB_SERVER_VIEW` | [`server_view`](Self::server_view): its [`interval`](super::ServerView::interval), or `off` | `off` |
    /// | `ASYNC_DB_SLOW_QUERY_THRESHOLD` | [`slow_query_threshold`](Self::slow_query_threshold) | 2 s |
    /// | `ASYNC_DB_ALERT_ERROR_RATE_5MIN` | [`AlertThresholds::error_rates`](super::AlertThresholds::error_rates) | 0.1 |
    /// | `ASYNC_DB_ALERT_ERROR_RATE_15MIN` | [`AlertThresholds::error_rates`](super::AlertThresholds::error_rates) | 0.05 |
    /// | `ASYNC_DB_ALERT_ERROR_RATE_1HOUR` | [`AlertThresholds::error_rates`](super::AlertThresholds::error_rates) | 0.02 |
    /// | `ASYNC_DB_ALERT_POOL_UTILIZATION` | [`AlertThresholds::pool_utilization`](super::AlertThresholds::pool_utilization) | 0.9 |
    /// | `ASYNC_DB_ALERT_HELD_IDLE_SHARE` | [`AlertThresholds::held_idle_share`](super::AlertThresholds::held_idle_share) | 0.5 |
    /// | `ASYNC_DB_ALERT_CONSECUTIVE_FAILURES` | [`AlertThresholds::consecutive_failures`](super::AlertThresholds::consecutive_failures) | 5 |
    /// | `ASYNC_DB_ALERT_MIN_STATEMENTS` | [`AlertThresholds::error_rate_min_statements`](super::AlertThresholds::error_rate_min_statements) | 20 |
    /// | `ASYNC_DB_ALERT_ERROR_RATE_EVIDENCE` | [`AlertThresholds::error_rate_evidence`](super::AlertThresholds::error_rate_evidence) | 60 s |
    /// | `ASYNC_DB_ALERT_COOLDOWN` | [`AlertThresholds::default_cooldown`](super::AlertThresholds::default_cooldown) | 300 s |
    /// | `ASYNC_DB_ALERT_COOLDOWN_<TYPE>` | [`AlertThresholds::cooldown_of`](super::AlertThresholds::cooldown_of) (`<TYPE>` as in [`AlertType::cooldown_variable`]) | unset |
    /// | `ASYNC_DB_ALERT_CLEAR_AFTER` | [`AlertThresholds::clear_after`](super::AlertThresholds::clear_after) | 300 s |
    /// | `ASYNC_DB_ALERT_EXPIRE_AFTER` | [`AlertThresholds::expire_after`](super::AlertThresholds::expire_after) | 3600 s |
    /// | `ASYNC_DB_ALERT_EVALUATION_INTERVAL` | [`AlertThresholds::evaluation_interval`](super::AlertThresholds::evaluation_interval) | 10 s |
    /// | `ASYNC_DB_ALERT_IDLE_IN_TRANSACTION` | [`AlertThresholds::idle_in_transaction`](super::AlertThresholds::idle_in_transaction) | 60 s |
    /// | `ASYNC_DB_ALERT_TRANSACTION_AGE` | [`AlertThresholds::transaction_age`](super::AlertThresholds::transaction_age) | 300 s |
    /// | `ASYNC_DB_ALERT_BLOCKED` | [`AlertThresholds::blocked`](super::AlertThresholds::blocked) | 30 s |
    /// | `ASYNC_DB_HISTORY_SLOT` | [`slot`](Self::slot) | 60 s |
    /// | `ASYNC_DB_RETURNED_ROWS` | [`returned_rows`](Self::returned_rows) (`true`/`false`) | `false` |
    /// | `ASYNC_DB_HOLD_TIMES` | [`hold_times`](Self::hold_times) (`true`/`false`) | `false` |
    /// | `ASYNC_DB_FAIL_FAST` | [`fail_fast`](Self::fail_fast) (`true`/`false`) | `true` |
    /// | `ASYNC_DB_OBJECTIVES` | [`objective`](Self::objective), for each (`ROUTE = 99% < 50ms, 99.9% ok; …`) | unset |
    /// | `ASYNC_DB_SLOW_STATEMENTS` | [`slow_fingerprint`](Self::slow_fingerprint), for each (`0123456789abcdef=5s, …`) | unset |
    /// | `ASYNC_DB_READY_SATURATED_FOR` | [`Readiness::saturated_for`](super::Readiness::saturated_for) | 10 s |
    /// | `ASYNC_DB_READY_WAIT_P95` | [`Readiness::wait_p95`](super::Readiness::wait_p95) | 1 s |
    /// | `ASYNC_DB_READY_EXHAUSTION_WITHIN` | [`Readiness::exhaustion_within`](super::Readiness::exhaustion_within) (`0` never) | 60 s |
    /// | `ASYNC_DB_READY_RETRY_AFTER` | [`Readiness::retry_after`](super::Readiness::retry_after) | 5 s |
    /// | `ASYNC_DB_READY_OUT_OF_REACH` | [`Readiness::out_of_reach_unready`](super::Readiness::out_of_reach_unready) (`true`/`false`) | `false` |
    /// | `ASYNC_DB_SPAN_LEVEL` | [`span_level`](Self::span_level) (`info`, `debug`, `trace`, `off`) | `info` |
    /// | `ASYNC_DB_ALERT_FORECAST_INTERVAL` | [`ForecastThresholds::interval`](super::ForecastThresholds::interval) | 10 s |
    /// | `ASYNC_DB_ALERT_FORECAST_WINDOW` | [`ForecastThresholds::window`](super::ForecastThresholds::window) | 30 min |
    /// | `ASYNC_DB_ALERT_FORECAST_HORIZON` | [`ForecastThresholds::horizon`](super::ForecastThresholds::horizon) | 1 h |
    /// | `ASYNC_DB_ALERT_FORECAST_CONFIRMATIONS` | [`ForecastThresholds::confirmations`](super::ForecastThresholds::confirmations) | 3 |
    /// | `ASYNC_DB_ALERT_FORECAST_MIN_T` | [`ForecastThresholds::min_t`](super::ForecastThresholds::min_t) | 4 |
    /// | `ASYNC_DB_ALERT_ANOMALY_Z` | [`AnomalyThresholds::z`](super::AnomalyThresholds::z) | 4 |
    /// | `ASYNC_DB_ALERT_ANOMALY_K` | [`AnomalyThresholds::consensus`](super::AnomalyThresholds::consensus) (`k`) | 3 |
    /// | `ASYNC_DB_ALERT_ANOMALY_N` | [`AnomalyThresholds::consensus`](super::AnomalyThresholds::consensus) (`n`) | 5 |
    /// | `ASYNC_DB_ALERT_ANOMALY_MIN_CALLS` | [`AnomalyThresholds::min_calls`](super::AnomalyThresholds::min_calls) | 20 |
    /// | `ASYNC_DB_ALERT_ANOMALY_MIN_INCREASE` | [`AnomalyThresholds::min_increase`](super::AnomalyThresholds::min_increase) | 2 ms |
    /// | `ASYNC_DB_ALERT_ANOMALY_MIN_ERROR_INCREASE` | [`AnomalyThresholds::min_error_increase`](super::AnomalyThresholds::min_error_increase) | 0.05 |
    /// | `ASYNC_DB_ALERT_ANOMALY_WARMUP` | [`AnomalyThresholds::warmup`](super::AnomalyThresholds::warmup) | 15 |
    /// | `ASYNC_DB_ALERT_ANOMALY_ALPHA` | [`AnomalyThresholds::alpha`](super::AnomalyThresholds::alpha) | 0.05 |
    /// | `ASYNC_DB_ALERT_ANOMALY_RELEARN` | [`AnomalyThresholds::relearn`](super::AnomalyThresholds::relearn) | 60 |
    ///
    /// Durations are seconds (`30`, `2.5`) or carry a unit (`500ms`, `30s`,
    /// `5m`, `1h`).
    ///
    /// # Errors
    ///
    /// A value that does not parse, is out of range or is not valid Unicode
    /// is an error naming the variable; nothing falls back to a default
    /// silently. The value of `DATABASE_URL` is never repeated in the error.
    pub fn from_env() -> Result<Self, ConfigError> {
        let bad_unicode = std::cell::Cell::new(None);
        let config = Self::from_lookup(|name| match std::env::var(name) {
            Ok(value) => Some(value),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                bad_unicode.set(bad_unicode.get().or(Some(name)));
                None
            }
        });
        if let Some(name) = bad_unicode.get() {
            return Err(ConfigError::new(name, None, "valid UTF-8"));
        }
        config
    }

    /// Reads the configuration through `lookup` instead of the process
    /// environment (for tests, or another source of settings).
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&'static str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { lookup };
        let mut c = MonitorConfig::default();
        if let Some(url) = (env.lookup)("DATABASE_URL") {
            let parsed = url.parse::<tokio_postgres::Config>().map_err(|_| {
                ConfigError::new("DATABASE_URL", None, "a PostgreSQL connection URL or key=value string")
            })?;
            c.database = Some(parsed);
        }
        env.pool(&mut c)?;
        env.flag(
            "ASYNC_DB_EXPOSE_APPLICATION_MESSAGES",
            &mut c.expose_application_messages,
        )?;
        env.server_view(&mut c.server_view)?;
        env.duration("ASYNC_DB_SLOW_QUERY_THRESHOLD", &mut c.slow_query_threshold)?;
        env.alerts(&mut c.alerts)?;
        env.forecast(&mut c.alerts.forecast)?;
        env.anomaly(&mut c.alerts.anomaly)?;
        env.duration("ASYNC_DB_HISTORY_SLOT", &mut c.slot)?;
        env.span_level(&mut c.span_level)?;
        env.flag("ASYNC_DB_RETURNED_ROWS", &mut c.returned_rows)?;
        env.flag("ASYNC_DB_HOLD_TIMES", &mut c.hold_times)?;
        env.flag("ASYNC_DB_FAIL_FAST", &mut c.fail_fast)?;
        env.readiness(&mut c.readiness)?;
        env.read(
            "ASYNC_DB_OBJECTIVES",
            "objectives such as `GET /login = 99% < 50ms, 99.9% ok`, separated by `;`",
            super::objectives::parse_objectives,
            &mut c.objectives,
        )?;
        let mut slow = Vec::new();
        env.read(
            "ASYNC_DB_SLOW_STATEMENTS",
            "FINGERPRINT=DURATION pairs such as `0123456789abcdef=5s`, separated by `,`",
            super::objectives::parse_slow_statements,
            &mut slow,
        )?;
        c.slow_statements.extend(slow);
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    /// The rows of `from_env`'s table: variable → its default as written.
    fn table() -> BTreeMap<String, String> {
        include_str!("env.rs")
            .lines()
            .filter_map(|l| l.trim().strip_prefix("/// | `"))
            .filter_map(|row| {
                let (variable, rest) = row.split_once('`')?;
                let default = rest.trim_end_matches('|').rsplit('|').next()?.trim();
                Some((variable.to_owned(), default.to_owned()))
            })
            .collect()
    }

    /// A default as a value `from_lookup` reads (`30 s` → `30s`,
    /// `` `off` `` → `off`), or `None` for `unset`.
    fn as_value(default: &str) -> Option<String> {
        let value = default
            .split([':', ';', ','])
            .next()?
            .split(" (")
            .next()?
            .replace('`', "")
            .replace(" min", "m")
            .replace(' ', "")
            .to_ascii_lowercase();
        (value != "unset").then_some(value)
    }

    #[test]
    fn the_table_lists_every_variable_read_with_its_true_default() {
        let asked = Mutex::new(Vec::new());
        let _read = MonitorConfig::from_lookup(|name| {
            asked.lock().unwrap().push(name);
            None
        })
        .unwrap();
        let table = table();
        let per_type = "ASYNC_DB_ALERT_COOLDOWN_<TYPE>";
        for name in asked.into_inner().unwrap() {
            let row = if crate::alert_kind::AlertType::ALL
                .iter()
                .any(|t| t.cooldown_variable() == name)
            {
                per_type
            } else {
                name
            };
            assert!(table.contains_key(row), "{name} is read but not in from_env's table");
        }
        // A documented default, set explicitly, changes nothing.
        let default = format!("{:?}", MonitorConfig::default());
        for (variable, written) in &table {
            let Some(value) = as_value(written) else { continue };
            let config = MonitorConfig::from_lookup(|name| (name == variable).then(|| value.clone()))
                .unwrap_or_else(|e| panic!("{variable}={value} (its documented default): {e}"));
            assert_eq!(format!("{config:?}"), default, "{variable}: the table says {written}");
        }
    }

    #[test]
    fn the_setters_state_the_defaults_of_the_table() {
        let table = table();
        let sources = [
            include_str!("mod.rs"),
            include_str!("forecast.rs"),
            include_str!("serving.rs"),
        ];
        let mut checked = 0;
        for source in sources {
            let mut block = String::new();
            for line in source.lines().map(str::trim) {
                if let Some(doc) = line.strip_prefix("///") {
                    block.push_str(doc.trim());
                    block.push(' ');
                    continue;
                }
                let variables: Vec<&str> = table
                    .keys()
                    .filter(|v| block.contains(&format!("`{v}`")))
                    .map(String::as_str)
                    .collect();
                // Blocks that name one variable (`_15MIN` counts as one more).
                let named = block.matches("`ASYNC_DB_").count() + block.matches("`_").count();
                let stated = variables.len() == 1 && named == 1 && as_value(&table[variables[0]]).is_some();
                if let (true, Some((_, said))) = (stated, block.split_once("Defaults to ")) {
                    let variable = &variables[0];
                    let said = said.split(". ").next().unwrap_or(said).trim().trim_end_matches('.');
                    assert_eq!(
                        as_value(said),
                        as_value(&table[*variable]),
                        "the setter of {variable} says {said}, the table {}",
                        table[*variable]
                    );
                    checked += 1;
                }
                block.clear();
            }
        }
        assert!(checked >= 30, "only {checked} setters checked");
    }
}
