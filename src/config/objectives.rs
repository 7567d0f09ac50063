//! Objectives per route and slow thresholds per statement: what a user
//! declares ([`Objective`], [`MonitorConfig::objective`](super::MonitorConfig::objective),
//! [`MonitorConfig::slow_statement`](super::MonitorConfig::slow_statement)),
//! and the syntax of their variables.

use std::fmt;
use std::time::Duration;

/// An objective for one route, over the requests that pass through
/// [`DbMonitorLayer`](crate::DbMonitorLayer) under that route (its name as
/// the layer records it: `GET /users/{id}`): the share of requests
/// answered within a bound, and the share answered without going wrong.
/// Each request counts as the layer sees it end, whatever its statements
/// did: a 5xx answer (the database out of reach, a checkout that timed
/// out, a request shed) or a request dropped before its answer (a client
/// that gave up) is bad for both; it need not have run a statement.
/// Alerts on it burn its error budget at the
/// rates of Google's SRE workbook (see [`crate::alerts`]); the `…/objectives`
/// document and the dashboard show its compliance and remaining budget.
///
/// ```
/// use std::time::Duration;
/// use db_monitor::{MonitorConfig, Objective};
///
/// let config = MonitorConfig::default()
///     .objective(Objective::route("GET /login").latency(Duration::from_millis(50), 0.99).success(0.999));
/// // The same, as `ASYNC_DB_OBJECTIVES`:
/// let same = MonitorConfig::from_lookup(|name| {
///     (name == "ASYNC_DB_OBJECTIVES").then(|| "GET /login = 99% < 50ms, 99.9% ok".to_owned())
/// })?;
/// assert_eq!(format!("{config:?}"), format!("{same:?}"));
/// # Ok::<(), db_monitor::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct Objective {
    pub(crate) route: String,
    pub(crate) latency: Option<(Duration, f64)>,
    pub(crate) success: Option<f64>,
}

impl Objective {
    /// An objective for `route`, with no target yet.
    pub fn route(route: impl Into<String>) -> Self {
        Objective {
            route: route.into(),
            latency: None,
            success: None,
        }
    }

    /// The share `target` (0.99: 99 %) of the route's requests is answered
    /// in less than `bound` (from the layer's call to the response's
    /// head), and not dropped before it.
    pub fn latency(mut self, bound: Duration, target: f64) -> Self {
        self.latency = Some((bound, target));
        self
    }

    /// The share `target` (0.999: 99.9 %) of the route's requests is
    /// answered without a 5xx status and without a failed statement, and
    /// not dropped before its answer.
    pub fn success(mut self, target: f64) -> Self {
        self.success = Some(target);
        self
    }

    /// The route.
    pub fn route_name(&self) -> &str {
        &self.route
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} =", self.route)?;
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { " " } else { ", " };
            first = false;
            f.write_str(s)
        };
        if let Some((bound, target)) = self.latency {
            sep(f)?;
            write!(f, "{}% < {}ms", round(target * 100.0), bound.as_secs_f64() * 1e3)?;
        }
        if let Some(target) = self.success {
            sep(f)?;
            write!(f, "{}% ok", round(target * 100.0))?;
        }
        Ok(())
    }
}

/// `x` to twelve decimals: `99.9 / 100` is then the `0.999` written.
fn round(x: f64) -> f64 {
    (x * 1e12).round() / 1e12
}

/// Parses `ASYNC_DB_OBJECTIVES`: objectives separated by `;`, each
/// `ROUTE = CLAUSE, CLAUSE` where a clause is `P% < DURATION` (latency) or
/// `P% ok` (success).
pub(super) fn parse_objectives(text: &str) -> Option<Vec<Objective>> {
    let mut objectives = Vec::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (route, clauses) = entry.rsplit_once('=')?;
        let mut objective = Objective::route(route.trim());
        if objective.route.is_empty() {
            return None;
        }
        for clause in clauses.split(',').map(str::trim) {
            let (percent, rest) = clause.split_once('%')?;
            let target = round(percent.trim().parse::<f64>().ok()? / 100.0);
            let rest = rest.trim();
            if rest.eq_ignore_ascii_case("ok") {
                objective.success = Some(target);
            } else {
                let bound = super::env::parse_duration(rest.strip_prefix('<')?)?;
                objective.latency = Some((bound, target));
            }
        }
        objectives.push(objective);
    }
    Some(objectives)
}

/// Parses `ASYNC_DB_SLOW_STATEMENTS`: `FINGERPRINT=DURATION` pairs
/// separated by `,`, the fingerprint as the reports show it (16
/// hexadecimal digits).
pub(super) fn parse_slow_statements(text: &str) -> Option<Vec<(u64, Duration)>> {
    text.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (fingerprint, bound) = entry.split_once('=')?;
            let fingerprint = fingerprint.trim();
            if fingerprint.len() != 16 {
                return None;
            }
            Some((
                u64::from_str_radix(fingerprint, 16).ok()?,
                super::env::parse_duration(bound)?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objectives_parse_from_their_variable() {
        let parsed = parse_objectives("GET /login = 99% < 50ms, 99.9% ok; POST /orders/{id} = 95%<2s").unwrap();
        assert_eq!(
            parsed,
            [
                Objective::route("GET /login")
                    .latency(Duration::from_millis(50), 0.99)
                    .success(0.999),
                Objective::route("POST /orders/{id}").latency(Duration::from_secs(2), 0.95),
            ]
        );
        // A route with `=` in it keeps it: the clauses follow the last one.
        assert_eq!(parse_objectives("GET /a=b = 90% ok").unwrap()[0].route, "GET /a=b");
        assert_eq!(parse_objectives("").unwrap(), []);
        for bad in [
            "GET /x",
            "= 99% ok",
            "GET /x = 99",
            "GET /x = 99% < soon",
            "GET /x = 99% maybe",
            "GET /x = abc% ok",
        ] {
            assert_eq!(parse_objectives(bad), None, "{bad}");
        }
    }

    #[test]
    fn objectives_display_as_they_are_written() {
        let o = Objective::route("GET /login")
            .latency(Duration::from_millis(50), 0.99)
            .success(0.999);
        assert_eq!(o.to_string(), "GET /login = 99% < 50ms, 99.9% ok");
        assert_eq!(parse_objectives(&o.to_string()).unwrap(), [o]);
    }

    #[test]
    fn slow_statements_parse_by_fingerprint() {
        assert_eq!(
            parse_slow_statements("00000000000000ff=5s, 8000000000000000 = 100ms").unwrap(),
            [(255, Duration::from_secs(5)), (1 << 63, Duration::from_millis(100))]
        );
        for bad in [
            "ff=5s",
            "00000000000000ff",
            "00000000000000fg=1s",
            "00000000000000ff=soon",
        ] {
            assert_eq!(parse_slow_statements(bad), None, "{bad}");
        }
    }
}
