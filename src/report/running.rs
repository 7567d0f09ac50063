//! Statements running now past their slow threshold, seen from the client:
//! each connection marks the statement it runs (the first one, when
//! several are pipelined), and this list reads the marks. The background
//! task logs each such statement once while it still runs.

use std::collections::HashSet;
use std::time::Duration;

use serde::Serialize;

use crate::pool::PoolMonitor;

/// `GET …/metrics/running`: statements running past their slow threshold.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RunningStatements {
    /// The pool's name.
    pub pool: String,
    /// The pool's slow threshold, in milliseconds (a statement with a
    /// threshold of its own is held to that one).
    pub threshold_ms: f64,
    /// Statements running now past their threshold, longest first.
    pub statements: Vec<RunningStatement>,
}

/// One statement running past its slow threshold.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RunningStatement {
    /// The pooled connection's id.
    pub connection: u64,
    /// The statement's fingerprint.
    #[serde(serialize_with = "crate::units::ser_hex")]
    pub fingerprint: u64,
    /// Its normalized text (no literal).
    pub statement: String,
    /// How long it has run, in milliseconds.
    pub running_ms: f64,
    /// The slow threshold it is held to, in milliseconds.
    pub threshold_ms: f64,
    /// The route of the request holding the connection, if any.
    pub route: Option<String>,
    /// The `get()` call site holding the connection (`file:line`).
    pub checkout_site: Option<String>,
}

impl PoolMonitor {
    /// Statements running now past their slow threshold (the pool's, or
    /// their own: [`MonitorConfig::slow_statement`](crate::MonitorConfig::slow_statement)),
    /// longest first, with the route and call site holding each. A
    /// connection lists one statement: with several pipelined on it (their
    /// futures polled at once), the first.
    pub fn running_statements(&self) -> RunningStatements {
        let mut report = self.running_past().0;
        report.statements.sort_by(|a, b| b.running_ms.total_cmp(&a.running_ms));
        report
    }

    /// The running statements past their threshold, and the `(connection,
    /// start)` of each (in the same order: unsorted).
    fn running_past(&self) -> (RunningStatements, Vec<(u64, u64)>) {
        let shared = &self.shared;
        let now = crate::units::saturating_nanos(crate::units::now().saturating_duration_since(shared.epoch));
        let config = &shared.sink.config;
        let mut statements = Vec::new();
        let mut keys = Vec::new();
        for conn in shared.live_connections() {
            let Some((since, fingerprint)) = conn.running() else {
                continue;
            };
            let age = Duration::from_nanos(now.saturating_sub(since));
            let entry = shared.sink.queries.by_fingerprint(fingerprint);
            let threshold = entry.as_ref().map_or(config.slow_query_threshold, |e| e.slow);
            if age < threshold {
                continue;
            }
            let holder = conn.holder();
            keys.push((conn.id, since));
            statements.push(RunningStatement {
                connection: conn.id,
                fingerprint,
                statement: entry.map_or_else(|| "(unknown)".to_owned(), |e| e.normalized.to_string()),
                running_ms: age.as_secs_f64() * 1000.0,
                threshold_ms: threshold.as_secs_f64() * 1000.0,
                route: holder.route,
                checkout_site: holder.site,
            });
        }
        let report = RunningStatements {
            pool: self.name().to_owned(),
            threshold_ms: config.slow_query_threshold.as_secs_f64() * 1000.0,
            statements,
        };
        (report, keys)
    }

    /// Logs each statement running past its threshold once, while it runs
    /// (the background task, every second). `logged` holds what was logged
    /// and still runs.
    pub(crate) fn log_running(&self, logged: &mut HashSet<(u64, u64)>) {
        let (report, keys) = self.running_past();
        logged.retain(|key| keys.contains(key));
        for (statement, key) in report.statements.iter().zip(keys) {
            if logged.insert(key) {
                tracing::warn!(
                    pool = %report.pool,
                    connection = statement.connection,
                    fingerprint = %format!("{:016x}", statement.fingerprint),
                    route = statement.route.as_deref().unwrap_or("-"),
                    checkout_site = statement.checkout_site.as_deref().unwrap_or("-"),
                    running_ms = statement.running_ms.round(),
                    threshold_ms = statement.threshold_ms,
                    "statement still running past its slow threshold: {}",
                    statement.statement
                );
            }
        }
    }
}
