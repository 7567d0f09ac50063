//! The performance score, its recommendations, and the comprehensive
//! document: pure functions over the stores' reports.
//!
//! # The score
//!
//! `score = 100 × (0.40 × latency + 0.30 × errors + 0.15 × pool + 0.15 × alerts)`,
//! each part from 0 to 1, over the report's window:
//!
//! - **latency**: the [`Apdex`](crate::stats::Apdex) of every statement
//!   against the slow threshold `T` (up to `T` satisfied, up to `4 T`
//!   tolerated): `(satisfied + tolerating / 2) / runs`; 1 without runs.
//! - **errors**: `1 − rate / error_rate_5min` (at least 0), with `rate` the
//!   share of statements that failed over the last hour; 1 without
//!   statements.
//! - **pool**: 1 while the peak utilization stays below
//!   `pool_utilization`; above it, down linearly to 0.25 at 100%; at most
//!   0.5 when checkouts had to wait; 0 when a checkout timed out.
//!
//! - **alerts**: `1 − Σ weight` over the active alerts (at least 0), with
//!   a critical alert weighing 1, a high one 0.5, a medium one 0.25 and a
//!   low one 0.1: one critical alert or two high ones take the whole part.
//!
//! # Example
//!
//! ```no_run
//! # async fn run(pool: db_monitor::MonitoredPool<db_monitor::tokio_postgres::NoTls>) {
//! let score = pool.monitor().performance(60);
//! println!("{:.0}/100", score.score);
//! for advice in &score.recommendations {
//!     println!("- {advice}");
//! }
//! # }
//! ```

mod reading;
mod ready;
mod running;
mod server;

use serde::Serialize;

use crate::alert_kind::{AlertSeverity, AlertType};
use crate::classify::ErrorKind;
use crate::config::MonitorConfig;
use crate::pool::PoolSnapshot;
use crate::stats::alert_book::{Alert, AlertReport};
use crate::stats::forecast::PoolForecast;
use crate::stats::{ErrorReport, PoolTrendReport, QueryPerformanceReport, SlowQueryReport};

pub use reading::QueryStats;
pub use ready::{NotReady, ReadinessReport};
pub use running::{RunningStatement, RunningStatements};
pub use server::{
    LoadShare, Sampled, ServerActivity, ServerConnections, ServerFailure, ServerLoad, ServerLocks, ServerStatements,
};

/// One part of the score.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ScorePart {
    /// 0 to 1.
    pub score: f64,
    /// Its weight in the total.
    pub weight: f64,
    /// What it was computed from, in words.
    pub evidence: String,
}

/// The parts of the score.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ScoreParts {
    /// Apdex against the slow threshold.
    pub latency: ScorePart,
    /// Statement error rate over the last hour.
    pub errors: ScorePart,
    /// Pool utilization, waiting and timeouts.
    pub pool: ScorePart,
    /// Active alerts, by severity.
    pub alerts: ScorePart,
}

/// The performance score of a pool ([`PoolMonitor::performance`](crate::PoolMonitor::performance)).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PerformanceScore {
    /// The pool's name.
    pub pool: String,
    /// The window, in minutes.
    pub window_minutes: u32,
    /// 0 to 100.
    pub score: f64,
    /// How it was made up.
    pub parts: ScoreParts,
    /// What to do about it, each naming its evidence.
    pub recommendations: Vec<String>,
    /// When the pool is forecast to run out, with the evidence (absent
    /// before the background task's first sample).
    pub forecast: Option<PoolForecast>,
    /// Each route objective's compliance, remaining budget and burn rates
    /// (over the last 24 hours, whatever the window; see
    /// [`Objective`](crate::Objective)).
    pub objectives: Vec<crate::stats::ObjectiveStatus>,
}

/// Everything the monitor knows about a pool, in one document
/// ([`PoolMonitor::comprehensive`](crate::PoolMonitor::comprehensive)).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ComprehensiveReport {
    /// The pool and its connections now.
    pub pool: PoolSnapshot,
    /// The latest statements, newest first.
    pub recent_statements: Vec<crate::stats::RecentStatement>,
    /// The score and its recommendations.
    pub performance: PerformanceScore,
    /// Statement performance.
    pub queries: QueryPerformanceReport,
    /// Slow statements.
    pub slow_queries: SlowQueryReport,
    /// Errors.
    pub errors: ErrorReport,
    /// The pool trend.
    pub pool_trend: PoolTrendReport,
    /// N+1 patterns seen by [`DbMonitorLayer`](crate::DbMonitorLayer): one
    /// statement run more than the threshold within one request.
    pub n_plus_one: Vec<crate::stats::NPlusOnePattern>,
    /// Requests by route, the most database time first (see
    /// [`PoolMonitor::route_report`](crate::PoolMonitor::route_report)).
    pub routes: Vec<crate::stats::RouteStats>,
    /// Checkouts by route and call site, the most time held idle first
    /// (see [`PoolMonitor::hold_report`](crate::PoolMonitor::hold_report)).
    pub holders: Vec<crate::stats::HoldStats>,
    /// Reads run one after another that could have run together, by route
    /// (see [`PoolMonitor::serial_reads`](crate::PoolMonitor::serial_reads)).
    pub serial_reads: Vec<crate::stats::SerialReadsPattern>,
    /// Statements sent more than once with the same parameters in one
    /// request (see [`PoolMonitor::redundant_statements`](crate::PoolMonitor::redundant_statements)).
    pub redundant_statements: Vec<crate::stats::NPlusOnePattern>,
    /// Active alerts.
    pub alerts: AlertReport,
    /// The server view's last sample, summed up (absent when it is off).
    pub server: Option<ServerSummary>,
    /// Whether the pool can serve in time now, as `…/ready` answers.
    pub readiness: ReadinessReport,
}

/// The server view in the comprehensive document.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ServerSummary {
    /// When the sample was taken, in milliseconds since the Unix epoch
    /// (absent: none yet).
    pub sampled_unix_ms: Option<u64>,
    /// The pool's backends the server showed.
    pub backends: usize,
    /// Of them, running a statement.
    pub active: usize,
    /// Of them, idle in a transaction.
    pub idle_in_transaction: usize,
    /// Of them, waiting on a lock.
    pub waiting_on_locks: usize,
    /// Age of the oldest transaction open on one of them, in milliseconds.
    pub oldest_transaction_ms: Option<f64>,
    /// The poller's last failure, if its last cycle failed.
    pub last_failure: Option<String>,
}

const LATENCY_WEIGHT: f64 = 0.40;
const ERRORS_WEIGHT: f64 = 0.30;
const POOL_WEIGHT: f64 = 0.15;
const ALERTS_WEIGHT: f64 = 0.15;

/// How much one active alert of a severity takes off the alerts part.
fn alert_weight(severity: AlertSeverity) -> f64 {
    match severity {
        AlertSeverity::Critical => 1.0,
        AlertSeverity::High => 0.5,
        AlertSeverity::Medium => 0.25,
        AlertSeverity::Low => 0.1,
    }
}

/// What the score is computed from: the reports of one window.
pub(crate) struct Inputs<'a> {
    pub(crate) config: &'a MonitorConfig,
    pub(crate) max_size: u32,
    pub(crate) queries: &'a QueryPerformanceReport,
    pub(crate) slow: &'a SlowQueryReport,
    pub(crate) errors: &'a ErrorReport,
    pub(crate) trend: &'a PoolTrendReport,
    pub(crate) alerts: &'a [Alert],
    pub(crate) forecast: Option<PoolForecast>,
    pub(crate) objectives: Vec<crate::stats::ObjectiveStatus>,
}

/// The score and recommendations from the reports of one window.
pub(crate) fn score(inputs: &Inputs<'_>) -> PerformanceScore {
    let parts = ScoreParts {
        latency: latency_part(inputs.queries),
        errors: errors_part(inputs),
        pool: pool_part(inputs),
        alerts: alerts_part(inputs.alerts),
    };
    let score = 100.0
        * [&parts.latency, &parts.errors, &parts.pool, &parts.alerts]
            .iter()
            .map(|part| part.score * part.weight)
            .sum::<f64>();
    PerformanceScore {
        pool: inputs.queries.pool.clone(),
        window_minutes: inputs.queries.window_minutes,
        score: (score * 10.0).round() / 10.0,
        recommendations: recommendations(inputs),
        forecast: inputs.forecast.clone(),
        objectives: inputs.objectives.clone(),
        parts,
    }
}

/// Latency: the window's Apdex.
fn latency_part(queries: &QueryPerformanceReport) -> ScorePart {
    let window = describe_minutes(queries.window_minutes);
    let apdex = &queries.apdex;
    ScorePart {
        score: apdex.score.unwrap_or(1.0),
        weight: LATENCY_WEIGHT,
        evidence: match apdex.score {
            Some(s) => format!(
                "Apdex {s:.2} against {:.0} ms over {}: {} satisfied, {} tolerating, {} frustrated",
                apdex.threshold_ms, window, apdex.satisfied, apdex.tolerating, apdex.frustrated
            ),
            None => format!("no statement finished in the last {window}"),
        },
    }
}

/// Errors: the last hour's error rate against the 5-minute alert threshold.
fn errors_part(inputs: &Inputs<'_>) -> ScorePart {
    let hour = inputs.errors.rates.iter().find(|r| r.window_minutes == 60);
    let threshold = inputs.config.alerts.error_rate_5min.max(f64::EPSILON);
    match hour.and_then(|r| r.rate.map(|rate| (r, rate))) {
        Some((r, rate)) => ScorePart {
            score: (1.0 - rate / threshold).clamp(0.0, 1.0),
            weight: ERRORS_WEIGHT,
            evidence: format!(
                "{:.2}% of statements failed in the last hour ({} of {})",
                rate * 100.0,
                r.errors,
                r.statements
            ),
        },
        None => ScorePart {
            score: 1.0,
            weight: ERRORS_WEIGHT,
            evidence: "no statement ran in the last hour".to_owned(),
        },
    }
}

/// The pool: its peak utilization over the alert threshold, waiters and
/// checkout timeouts.
fn pool_part(inputs: &Inputs<'_>) -> ScorePart {
    let trend = inputs.trend;
    let limit = inputs.config.alerts.pool_utilization;
    let peak = trend.peak_utilization;
    let mut score = if peak <= limit || limit >= 1.0 {
        1.0
    } else {
        1.0 - 0.75 * ((peak - limit) / (1.0 - limit)).clamp(0.0, 1.0)
    };
    if trend.max_waiters > 0 {
        score = score.min(0.5);
    }
    if trend.timeouts > 0 {
        score = 0.0;
    }
    ScorePart {
        score,
        weight: POOL_WEIGHT,
        evidence: if trend.samples.is_empty() {
            "no pool sample yet (the background task takes them)".to_owned()
        } else {
            format!(
                "peak utilization {:.0}% of {} connections, at most {} waiting, {} checkout timeouts over {} samples",
                peak * 100.0,
                inputs.max_size,
                trend.max_waiters,
                trend.timeouts,
                trend.samples.len()
            )
        },
    }
}

/// Alerts: each active one takes off by its severity.
fn alerts_part(alerts: &[Alert]) -> ScorePart {
    ScorePart {
        score: (1.0 - alerts.iter().map(|a| alert_weight(a.severity)).sum::<f64>()).max(0.0),
        weight: ALERTS_WEIGHT,
        evidence: if alerts.is_empty() {
            "no active alert".to_owned()
        } else {
            let by_severity: Vec<String> = AlertSeverity::ALL
                .iter()
                .rev()
                .filter_map(|s| {
                    let n = alerts.iter().filter(|a| a.severity == *s).count();
                    (n > 0).then(|| format!("{n} {s}"))
                })
                .collect();
            format!(
                "{} active alert{}: {}",
                alerts.len(),
                if alerts.len() == 1 { "" } else { "s" },
                by_severity.join(", ")
            )
        },
    }
}

fn describe_minutes(minutes: u32) -> String {
    match minutes {
        1 => "minute".to_owned(),
        60 => "hour".to_owned(),
        m if m % 60 == 0 => format!("{} hours", m / 60),
        m => format!("{m} minutes"),
    }
}

/// What to do about a class of error.
fn advice(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Deadlock => "take row locks in one order in every transaction, and retry on deadlock",
        ErrorKind::SerializationFailure => "retry the transaction: under SERIALIZABLE this is expected",
        ErrorKind::StatementTimeout => "make the statement faster or give it a longer statement_timeout",
        ErrorKind::LockTimeout => "look for long transactions holding the lock",
        ErrorKind::IdleInTransactionTimeout => "finish transactions before doing slow work outside the database",
        ErrorKind::TooManyConnections => "the server's max_connections is reached: fewer or smaller pools, or a pooler",
        ErrorKind::AdminShutdown | ErrorKind::ConnectionFailure => "check the server and the network",
        ErrorKind::ConstraintViolation => "validate before writing, or handle the conflict (ON CONFLICT)",
        ErrorKind::SyntaxOrAccess => "this is a bug or a missing permission, not load",
        ErrorKind::PoolExhausted | ErrorKind::ConnectTimeout | ErrorKind::Other => "",
    }
}

/// Recommendations, each naming its evidence: the active alerts' advice
/// (connection failures first: nothing else works without a connection),
/// then the pool, the slow and degraded statements, and the errors.
fn recommendations(inputs: &Inputs<'_>) -> Vec<String> {
    let mut out = Vec::new();
    alert_advice(inputs.alerts, &mut out);
    let window = describe_minutes(inputs.queries.window_minutes);
    pool_advice(inputs, &window, &mut out);
    statement_advice(inputs, &window, &mut out);
    error_advice(inputs, &mut out);
    out
}

fn alert_advice(alerts: &[Alert], out: &mut Vec<String>) {
    let (connections, others): (Vec<_>, Vec<_>) = alerts
        .iter()
        .partition(|a| a.alert_type == AlertType::ConnectionFailure);
    for alert in connections {
        if let Some(advice) = alert.alert_type.advice() {
            out.push(format!(
                "{} (seen {} times): {advice}",
                alert.message, alert.occurrences
            ));
        }
    }
    for alert in others {
        if let Some(advice) = alert.alert_type.advice() {
            out.push(format!("{}: {advice}", alert.message));
        }
    }
}

fn pool_advice(inputs: &Inputs<'_>, window: &str, out: &mut Vec<String>) {
    let trend = inputs.trend;
    if trend.timeouts > 0 || trend.max_waiters > 0 || trend.peak_utilization >= inputs.config.alerts.pool_utilization {
        out.push(format!(
            "pool at {:.0}% with {} waiters at peak and {} checkout timeouts in the last {window}: raise \
             ASYNC_DB_MAX_SIZE above {} or shorten transactions",
            trend.peak_utilization * 100.0,
            trend.max_waiters,
            trend.timeouts,
            inputs.max_size
        ));
    }
}

/// The three slowest statements' plans, and the statements that slowed down.
fn statement_advice(inputs: &Inputs<'_>, window: &str, out: &mut Vec<String>) {
    let slow = inputs.slow;
    for group in slow.groups.iter().take(3) {
        // What its generic plan shows, when the server view read one.
        let scans: Vec<String> = group
            .plan
            .iter()
            .flat_map(|p| &p.large_seq_scans)
            .map(|s| format!("{} ({} rows)", s.relation, s.table_rows))
            .collect();
        let look = if scans.is_empty() {
            "look at its plan with EXPLAIN (ANALYZE, BUFFERS)".to_owned()
        } else {
            format!(
                "its plan scans {} sequentially: an index on the columns it filters by may serve it",
                scans.join(", ")
            )
        };
        out.push(format!(
            "`{}` took over {:.0} ms {} times in the last {window} (mean {:.0} ms, max {:.0} ms, {:.0}% of database \
             time){}: {look}",
            group.statement,
            slow.threshold_ms,
            group.count,
            group.mean_ms,
            group.max_ms,
            group.share_of_database_time * 100.0,
            if group.getting_slower {
                ", and it is getting slower"
            } else {
                ""
            }
        ));
    }
    for d in &inputs.queries.degraded {
        out.push(format!(
            "`{}` has slowed down: p95 {:.0} ms over the last 5 minutes against {:.0} ms over the hour before \
             ({:.1}x, {} and {} runs)",
            d.statement, d.recent_p95_ms, d.baseline_p95_ms, d.factor, d.recent_samples, d.baseline_samples
        ));
    }
}

/// The last hour's error rate over its threshold, and the three statements
/// that fail most with an error that has advice.
fn error_advice(inputs: &Inputs<'_>, out: &mut Vec<String>) {
    let (errors, threshold) = (inputs.errors, inputs.config.alerts.error_rate_1hour);
    if let Some(hour) = errors.rates.iter().find(|r| r.window_minutes == 60) {
        if hour.rate.is_some_and(|r| r >= threshold) {
            out.push(format!(
                "{:.1}% of statements failed in the last hour ({} of {}), over the {:.0}% threshold",
                hour.rate.unwrap_or(0.0) * 100.0,
                hour.errors,
                hour.statements,
                threshold * 100.0
            ));
        }
    }
    for pattern in errors.patterns.iter().filter(|p| p.statement.is_some()).take(3) {
        let advice = advice(pattern.error_type);
        if advice.is_empty() {
            continue;
        }
        out.push(format!(
            "`{}` failed {} times with {}{}: {advice}",
            pattern.statement.as_deref().unwrap_or(""),
            pattern.count,
            pattern.error_type,
            pattern
                .sqlstate
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Apdex, ErrorPattern, ErrorRate, LatencyStats, SlowQueryGroup};

    fn stats() -> LatencyStats {
        LatencyStats {
            count: 0,
            errors: 0,
            success_rate: None,
            total_ms: 0.0,
            mean_ms: None,
            min_ms: None,
            max_ms: None,
            p50_ms: None,
            p95_ms: None,
            p99_ms: None,
            rows: 0,
        }
    }

    /// An Apdex of `(satisfied, tolerating, frustrated)`, or of nothing.
    fn apdex_of(counts: Option<(u64, u64, u64)>) -> Apdex {
        let (s, t, f) = counts.unwrap_or_default();
        Apdex {
            threshold_ms: 2000.0,
            satisfied: s,
            tolerating: t,
            frustrated: f,
            score: counts.map(|_| (s as f64 + t as f64 / 2.0) / (s + t + f) as f64),
        }
    }

    fn reports(
        apdex: Option<(u64, u64, u64)>,
        hour: Option<(u64, u64)>,
        peak: f64,
        waiters: u64,
        timeouts: u64,
    ) -> (QueryPerformanceReport, SlowQueryReport, ErrorReport, PoolTrendReport) {
        let queries = QueryPerformanceReport {
            pool: "p".into(),
            window_minutes: 60,
            covered_seconds: 3600.0,
            overall: stats(),
            apdex: apdex_of(apdex),
            by_operation: vec![],
            by_table: vec![],
            by_statement: vec![],
            degraded: vec![],
            anomalies: Vec::new(),
        };
        let slow = SlowQueryReport {
            pool: "p".into(),
            threshold_ms: 2000.0,
            window_minutes: Some(60),
            occurrences: 0,
            database_time_ms: 0.0,
            groups: vec![],
            recent: vec![],
            evicted: 0,
            plans_unavailable: None,
        };
        let rates = hour
            .map(|(statements, errors)| {
                vec![ErrorRate {
                    window_minutes: 60,
                    covered_seconds: 3600.0,
                    statements,
                    errors,
                    rate: (statements > 0).then(|| errors as f64 / statements as f64),
                }]
            })
            .unwrap_or_default();
        let errors = ErrorReport {
            pool: "p".into(),
            window_minutes: Some(60),
            errors: 0,
            by_type: Default::default(),
            by_sqlstate: Default::default(),
            kept: 0,
            rates,
            recent: vec![],
            patterns: vec![],
            evicted: 0,
        };
        let trend = PoolTrendReport {
            pool: "p".into(),
            window_minutes: Some(60),
            covered_seconds: 3600.0,
            peak_utilization: peak,
            average_utilization: peak / 2.0,
            max_waiters: waiters,
            timeouts,
            wait_time_ms: 0.0,
            samples: vec![],
        };
        (queries, slow, errors, trend)
    }

    fn score_of(r: (QueryPerformanceReport, SlowQueryReport, ErrorReport, PoolTrendReport)) -> PerformanceScore {
        score_with_alerts(r, &[])
    }

    fn score_with_alerts(
        r: (QueryPerformanceReport, SlowQueryReport, ErrorReport, PoolTrendReport),
        alerts: &[Alert],
    ) -> PerformanceScore {
        score(&Inputs {
            config: &MonitorConfig::default(),
            max_size: 20,
            queries: &r.0,
            slow: &r.1,
            errors: &r.2,
            trend: &r.3,
            alerts,
            forecast: None,
            objectives: Vec::new(),
        })
    }

    fn alert(alert_type: AlertType, severity: AlertSeverity) -> Alert {
        Alert {
            id: "0000000000000001".into(),
            pool: "p".into(),
            alert_type,
            severity,
            key: "k".into(),
            message: "5 connects failed or connections were lost in a row (threshold 5)".into(),
            first_seen_unix_ms: 0,
            last_seen_unix_ms: 0,
            occurrences: 5,
            status: crate::stats::alert_book::AlertStatus::Active,
            resolved_unix_ms: None,
            resolved_by: None,
        }
    }

    #[test]
    fn active_alerts_take_their_weight_off_the_alerts_part() {
        let healthy = || reports(None, None, 0.0, 0, 0);
        let s = score_with_alerts(healthy(), &[alert(AlertType::SlowQuery, AlertSeverity::Medium)]);
        assert!((s.parts.alerts.score - 0.75).abs() < 1e-12);
        assert_eq!(s.parts.alerts.evidence, "1 active alert: 1 medium");
        assert!((s.score - (100.0 - 15.0 * 0.25)).abs() < 0.05, "{}", s.score);
        let two_high = [
            alert(AlertType::Deadlock, AlertSeverity::High),
            alert(AlertType::HighErrorRate, AlertSeverity::High),
        ];
        let s = score_with_alerts(healthy(), &two_high);
        assert_eq!((s.parts.alerts.score, s.score), (0.0, 85.0));
        assert_eq!(s.parts.alerts.evidence, "2 active alerts: 2 high");
        let s = score_with_alerts(
            healthy(),
            &[
                alert(AlertType::ConnectionFailure, AlertSeverity::Critical),
                alert(AlertType::SlowQuery, AlertSeverity::Low),
            ],
        );
        assert_eq!(s.parts.alerts.score, 0.0);
        assert_eq!(s.parts.alerts.evidence, "2 active alerts: 1 critical, 1 low");
        assert_eq!(
            s.recommendations,
            [
                "5 connects failed or connections were lost in a row (threshold 5) (seen 5 times): check that the \
              server is up, reachable and not restarting"
            ]
        );
    }

    #[test]
    fn an_idle_healthy_pool_scores_100_without_advice() {
        let s = score_of(reports(None, None, 0.0, 0, 0));
        assert_eq!(s.score, 100.0);
        assert!(s.recommendations.is_empty());
        let s = score_of(reports(Some((100, 0, 0)), Some((100, 0)), 0.5, 0, 0));
        assert_eq!(s.score, 100.0);
    }

    #[test]
    fn each_part_follows_its_rule() {
        // Apdex (60 + 20/2) / 100 = 0.7.
        let s = score_of(reports(Some((60, 20, 20)), Some((100, 0)), 0.0, 0, 0));
        assert!((s.parts.latency.score - 0.7).abs() < 1e-12);
        assert!((s.score - 100.0 * (0.40 * 0.7 + 0.30 + 0.15 + 0.15)).abs() < 0.05);
        assert!(s
            .parts
            .latency
            .evidence
            .contains("60 satisfied, 20 tolerating, 20 frustrated"));
        // 5% errors against a 10% threshold: half the errors part.
        let s = score_of(reports(None, Some((200, 10)), 0.0, 0, 0));
        assert!((s.parts.errors.score - 0.5).abs() < 1e-12);
        assert!(s.parts.errors.evidence.contains("10 of 200"));
        assert!(
            s.recommendations
                .iter()
                .any(|r| r.contains("5.0% of statements failed")),
            "{:?}",
            s.recommendations
        );
        // At the threshold or beyond: nothing.
        assert_eq!(
            score_of(reports(None, Some((100, 50)), 0.0, 0, 0)).parts.errors.score,
            0.0
        );
        // Pool: 95% peak is halfway from 90% to 100%: 1 - 0.75 / 2.
        let s = score_of(reports(None, None, 0.95, 0, 0));
        assert!((s.parts.pool.score - 0.625).abs() < 1e-12);
        assert_eq!(score_of(reports(None, None, 0.5, 3, 0)).parts.pool.score, 0.5);
        let s = score_of(reports(None, None, 1.0, 12, 2));
        assert_eq!(s.parts.pool.score, 0.0);
        assert_eq!(s.score, 85.0);
        assert_eq!(
            s.recommendations[0],
            "pool at 100% with 12 waiters at peak and 2 checkout timeouts in the last hour: raise ASYNC_DB_MAX_SIZE \
             above 20 or shorten transactions"
        );
    }

    #[test]
    fn recommendations_name_the_statement_and_its_numbers() {
        let (q, mut slow, mut errors, trend) = reports(Some((10, 0, 0)), Some((1000, 1)), 0.1, 0, 0);
        slow.groups.push(SlowQueryGroup {
            fingerprint: "00000000000000aa".into(),
            statement: "SELECT * FROM orders WHERE customer = ?".into(),
            operation: crate::sql::Operation::Select,
            table: Some("orders".into()),
            count: 310,
            mean_ms: 2400.0,
            max_ms: 9100.0,
            first_seen_unix_ms: 0,
            last_seen_unix_ms: 0,
            share_of_database_time: 0.62,
            trend: Some(1.5),
            getting_slower: true,
            plan: None,
            client_rows_per_call: None,
        });
        errors.patterns.push(ErrorPattern {
            error_type: ErrorKind::Deadlock,
            fingerprint: Some("00000000000000bb".into()),
            statement: Some("UPDATE accounts SET balance = balance - ? WHERE id = ?".into()),
            sqlstate: Some("40P01".into()),
            count: 7,
            first_seen_unix_ms: 0,
            last_seen_unix_ms: 0,
        });
        let s = score_of((q, slow, errors, trend));
        assert_eq!(
            s.recommendations,
            vec![
                "`SELECT * FROM orders WHERE customer = ?` took over 2000 ms 310 times in the last hour (mean 2400 ms, \
                 max 9100 ms, 62% of database time), and it is getting slower: look at its plan with EXPLAIN \
                 (ANALYZE, BUFFERS)"
                    .to_owned(),
                "`UPDATE accounts SET balance = balance - ? WHERE id = ?` failed 7 times with deadlock (40P01): take \
                 row locks in one order in every transaction, and retry on deadlock"
                    .to_owned(),
            ]
        );
    }
}
