//! The rules: pure functions from what the stores recorded to
//! [`Observation`]s. The table in the [module docs](super) is the spec.

use std::time::Duration;

use crate::alert_kind::{AlertSeverity, AlertType};
use crate::classify::ErrorKind;
use crate::config::AlertThresholds;
use crate::stats::alert_book::{Lifetime, Observation};
use crate::stats::forecast::{PoolForecast, StatementAnomaly};
use crate::stats::server::ServerSample;
use crate::stats::{Degradation, ErrorRate, ErrorRecord, LockNode, ObjectiveStatus, PoolSample, SlowQuery};

/// The burn rates that page: over the long and the short window (1 h, 5 min).
pub(crate) const PAGE_BURN: f64 = 14.4;
/// The burn rates that open a ticket: over 6 h and 30 min.
pub(crate) const TICKET_BURN: f64 = 6.0;

/// The highest share of bad requests a page, and a ticket, may wait for:
/// a target's budget burns at most `1 / (1 - target)` times as fast as
/// allowed (every request bad), so below 93.06 % no page could ever fire
/// at 14.4x, and below 83.3 % no ticket at 6x. Their bounds are capped at
/// these shares instead (with a 90 % target a page fires when 90 % of
/// requests are bad, a burn of 9x).
pub(crate) const PAGE_CAP: f64 = 0.9;
pub(crate) const TICKET_CAP: f64 = 0.75;

/// The burn rate at which an objective of `target` alerts: `burn`, or the
/// burn at which `cap` of its requests are bad if that is lower (a target
/// whose budget cannot burn `burn` times as fast).
pub(crate) fn burn_bound(burn: f64, target: f64, cap: f64) -> f64 {
    let budget = 1.0 - target;
    if budget * burn > cap {
        // Rounded, so that the rules read 9x rather than 9.000000000000002x.
        (cap / budget * 1000.0).round() / 1000.0
    } else {
        burn
    }
}

/// The multiwindow, multi-burn-rate rule of the SRE workbook over each
/// route objective: a page when its budget burns at 14.4 times the
/// allowed rate over both the last hour and the last 5 minutes, else a
/// ticket at 6 times over both 6 hours and 30 minutes.
pub(crate) fn objectives(statuses: &[ObjectiveStatus]) -> Vec<Observation> {
    let over = |rate: Option<f64>, bound: f64| rate.is_some_and(|r| r >= bound);
    statuses
        .iter()
        .filter_map(|s| {
            let b = &s.burn_rates;
            let what = match s.bound_ms {
                Some(bound) => format!("{}% of requests under {bound:.0} ms of database time", s.target * 100.0),
                None => format!("{}% of requests without a failed statement", s.target * 100.0),
            };
            let (page, ticket) = (
                burn_bound(PAGE_BURN, s.target, PAGE_CAP),
                burn_bound(TICKET_BURN, s.target, TICKET_CAP),
            );
            let (severity, message) = if over(b.one_hour, page) && over(b.five_minutes, page) {
                (
                    AlertSeverity::Critical,
                    format!(
                        "{}: the objective ({what}) burns its error budget {:.1}x as fast as allowed over the last hour, {:.1}x over 5 min",
                        s.route,
                        b.one_hour.unwrap_or_default(),
                        b.five_minutes.unwrap_or_default()
                    ),
                )
            } else if over(b.six_hours, ticket) && over(b.thirty_minutes, ticket) {
                (
                    AlertSeverity::Medium,
                    format!(
                        "{}: the objective ({what}) burns its error budget {:.1}x as fast as allowed over 6 h, {:.1}x over 30 min",
                        s.route,
                        b.six_hours.unwrap_or_default(),
                        b.thirty_minutes.unwrap_or_default()
                    ),
                )
            } else {
                return None;
            };
            Some(condition(
                AlertType::ObjectiveBurn,
                &format!("{} {}", s.route, s.objective),
                severity,
                message,
            ))
        })
        .collect()
}

fn event(alert_type: AlertType, key: String, severity: AlertSeverity, message: String) -> Observation {
    Observation {
        alert_type,
        key,
        severity,
        message,
        lifetime: Lifetime::Event,
        count: 1,
    }
}

fn condition(alert_type: AlertType, key: &str, severity: AlertSeverity, message: String) -> Observation {
    Observation {
        alert_type,
        key: key.to_owned(),
        severity,
        message,
        lifetime: Lifetime::Condition,
        count: 1,
    }
}

/// `` on `SELECT …` `` when the error came from a statement.
fn on_statement(record: &ErrorRecord) -> String {
    record
        .statement
        .as_deref()
        .map(|sql| format!(" on `{sql}`"))
        .unwrap_or_default()
}

/// The event rules over one error record: deadlocks, transaction timeouts,
/// server shutdowns and exhausted-pool timeouts.
pub(crate) fn from_error(record: &ErrorRecord) -> Option<Observation> {
    let code = record.sqlstate.as_deref().unwrap_or("no SQLSTATE");
    let key_or = |fallback: &str| record.fingerprint.clone().unwrap_or_else(|| fallback.to_owned());
    Some(match record.error_type {
        ErrorKind::Deadlock => event(
            AlertType::Deadlock,
            key_or("unknown"),
            AlertSeverity::High,
            format!(
                "deadlock detected ({code}){}{}",
                on_statement(record),
                // The pool's connections on the other side, when known.
                record
                    .message
                    .split_once("; the other side: ")
                    .map(|(_, peers)| format!("; the other side: {peers}"))
                    .unwrap_or_default()
            ),
        ),
        kind @ (ErrorKind::StatementTimeout | ErrorKind::LockTimeout | ErrorKind::IdleInTransactionTimeout) => event(
            AlertType::TransactionTimeout,
            kind.as_str().to_owned(),
            AlertSeverity::Medium,
            format!(
                "{} ({code}){}: {}",
                kind.as_str().replace('_', " "),
                on_statement(record),
                record.message
            ),
        ),
        ErrorKind::AdminShutdown => event(
            AlertType::ConnectionFailure,
            "admin_shutdown".to_owned(),
            AlertSeverity::Critical,
            format!("the server shut a connection down ({code}): {}", record.message),
        ),
        ErrorKind::PoolExhausted => event(
            AlertType::PoolExhaustion,
            "timeout".to_owned(),
            AlertSeverity::Critical,
            format!("a checkout timed out: {}", record.message),
        ),
        _ => return None,
    })
}

/// The slow-query rule: one alert per fingerprint.
pub(crate) fn from_slow(query: &SlowQuery) -> Observation {
    event(
        AlertType::SlowQuery,
        query.fingerprint.clone(),
        AlertSeverity::Medium,
        format!(
            "`{}` took {:.0} ms (slow threshold {:.0} ms)",
            query.statement, query.duration_ms, query.threshold_ms
        ),
    )
}

/// Merges observations of the same (type, key) read in one batch into one,
/// counting them, keeping the highest severity and the latest message.
pub(crate) fn fold(observations: impl IntoIterator<Item = Observation>) -> Vec<Observation> {
    let mut folded: Vec<Observation> = Vec::new();
    for obs in observations {
        match folded
            .iter_mut()
            .find(|o| o.alert_type == obs.alert_type && o.key == obs.key)
        {
            Some(o) => {
                o.count += obs.count;
                o.severity = o.severity.max(obs.severity);
                o.message = obs.message;
            }
            None => folded.push(obs),
        }
    }
    folded
}

/// The time a window's rate must cover before it is judged: the 5 min
/// window's `evidence`, and as many times more for a longer window as it
/// is longer. A process 20 s old has no hour's rate to speak of, and its
/// first statements (a migration, a warm-up against a database still
/// starting) are no evidence of one.
pub(crate) fn evidence_needed(window_minutes: u32, evidence: Duration) -> f64 {
    evidence.as_secs_f64() * f64::from(window_minutes) / 5.0
}

/// The error-rate rule over the 5 min, 15 min and 1 h rates, each once
/// it covers enough time ([`evidence_needed`]) and statements.
pub(crate) fn error_rates(rates: &[ErrorRate], t: &AlertThresholds) -> Vec<Observation> {
    rates
        .iter()
        .filter_map(|r| {
            let (threshold, key, severity) = match r.window_minutes {
                5 => (t.error_rate_5min, "5m", AlertSeverity::High),
                15 => (t.error_rate_15min, "15m", AlertSeverity::Medium),
                60 => (t.error_rate_1hour, "1h", AlertSeverity::Low),
                _ => return None,
            };
            let rate = r.rate?;
            if r.statements < t.error_rate_min_statements
                || rate <= threshold
                || r.covered_seconds < evidence_needed(r.window_minutes, t.error_rate_evidence)
            {
                return None;
            }
            Some(condition(
                AlertType::HighErrorRate,
                key,
                severity,
                format!(
                    "{:.1}% of statements failed over the last {} ({} of {}; threshold {:.1}%)",
                    rate * 100.0,
                    describe_window(r.window_minutes, r.covered_seconds),
                    r.errors,
                    r.statements,
                    threshold * 100.0
                ),
            ))
        })
        .collect()
}

fn describe_window(minutes: u32, covered_seconds: f64) -> String {
    let full = f64::from(minutes) * 60.0;
    if covered_seconds + 1.0 < full {
        format!("{covered_seconds:.1} s (of a {minutes} min window)")
    } else if minutes == 60 {
        "hour".to_owned()
    } else {
        format!("{minutes} min")
    }
}

/// The utilization rule: at a trend sample (its peak since the previous
/// one), or at an evaluation while checkouts wait.
pub(crate) fn utilization(
    max_size: u32,
    in_use: u32,
    waiters: u64,
    sample: Option<&PoolSample>,
    t: &AlertThresholds,
) -> Option<Observation> {
    if max_size == 0 {
        return None;
    }
    let (in_use, waiters, when) = match sample {
        Some(s) if s.peak_utilization >= t.pool_utilization => (s.peak_in_use, s.waiters, "at the last sample"),
        _ if waiters > 0 && f64::from(in_use) / f64::from(max_size) >= t.pool_utilization => (in_use, waiters, "now"),
        _ => return None,
    };
    let utilization = f64::from(in_use) / f64::from(max_size);
    Some(condition(
        AlertType::PoolExhaustion,
        "utilization",
        AlertSeverity::High,
        format!(
            "pool at {:.0}% {when} ({in_use} of {max_size} connections in use, {waiters} checkouts waiting; threshold {:.0}%)",
            utilization * 100.0,
            t.pool_utilization * 100.0
        ),
    ))
}

/// A checked-out connection as the held-idle rule reads it: who holds it,
/// whether a statement runs on it now, and how long it has been held
/// without one (since its checkout or its last statement's end, whichever
/// is later).
pub(crate) struct HeldConnection {
    pub(crate) route: Option<String>,
    pub(crate) site: Option<String>,
    pub(crate) running: bool,
    pub(crate) idle_for: Duration,
}

/// How long a connection must have been held with no statement before the
/// held-idle rule counts it idle: a checkout that has not sent its first
/// statement yet, or is on its way back after its last, is no idle holder.
pub(crate) const HELD_IDLE_MIN: Duration = Duration::from_millis(50);

impl HeldConnection {
    fn idle(&self) -> bool {
        !self.running && self.idle_for >= HELD_IDLE_MIN
    }
}

/// The holders' starvation rule: checkouts queue for a connection while
/// `held_idle_share` or more of the checked-out ones run no statement
/// (their handlers keep them across other awaits). Names the route and
/// call site holding the most of them idle.
pub(crate) fn held_idle(queued: u32, held: &[HeldConnection], t: &AlertThresholds) -> Option<Observation> {
    let idle: Vec<&HeldConnection> = held.iter().filter(|c| c.idle()).collect();
    if queued == 0 || idle.is_empty() {
        return None;
    }
    let share = idle.len() as f64 / held.len() as f64;
    if share < t.held_idle_share {
        return None;
    }
    let mut by_holder: std::collections::BTreeMap<(Option<&str>, Option<&str>), usize> = Default::default();
    for c in &idle {
        *by_holder.entry((c.route.as_deref(), c.site.as_deref())).or_default() += 1;
    }
    // The most; of equals, the first in order (a stable message).
    let ((route, site), most) = by_holder.into_iter().fold(
        ((None, None), 0),
        |best, (key, n)| if n > best.1 { (key, n) } else { best },
    );
    let whose = match (route, site) {
        (Some(route), Some(site)) => format!("{route} at {site}"),
        (None, Some(site)) => format!("a checkout outside any request at {site}"),
        (Some(route), None) => route.to_owned(),
        (None, None) => "an unknown holder".to_owned(),
    };
    Some(condition(
        AlertType::PoolExhaustion,
        "held_idle",
        AlertSeverity::High,
        format!(
            "{queued} checkouts wait while {} of the {} checked-out connections run no statement ({:.0}%, threshold \
             {:.0}%): the pool is starved by its holders, not by the database; {most} held idle by {whose}",
            idle.len(),
            held.len(),
            share * 100.0,
            t.held_idle_share * 100.0
        ),
    ))
}

/// The connection-failure rule over the longest failure streak since the
/// last evaluation.
pub(crate) fn connection_streak(peak: u32, last_error: Option<&str>, t: &AlertThresholds) -> Option<Observation> {
    (peak >= t.consecutive_failures).then(|| {
        condition(
            AlertType::ConnectionFailure,
            "consecutive",
            AlertSeverity::High,
            format!(
                "{peak} connects failed or connections were lost in a row (threshold {}){}",
                t.consecutive_failures,
                last_error
                    .map(|e| format!("; last connect error: {e}"))
                    .unwrap_or_default()
            ),
        )
    })
}

/// The connection budget's rules: the monitored pools can open more than
/// the server allows; the free connections are under the bound.
fn connection_budget(b: &crate::stats::ConnectionBudget) -> Vec<Observation> {
    let mut out = Vec::new();
    if b.committed > b.available {
        out.push(condition(
            AlertType::ConnectionBudget,
            "overcommitted",
            AlertSeverity::High,
            format!(
                "the pools of {} monitored instance(s) can open {} connections (their maximums, one poller each); \
                 the server allows {} (max_connections {} less {} reserved)",
                b.instances.len(),
                b.committed,
                b.available,
                b.max_connections,
                b.reserved
            ),
        ));
    }
    if b.free < b.min_free {
        out.push(condition(
            AlertType::ConnectionBudget,
            "free",
            AlertSeverity::High,
            format!(
                "{} of the server's {} connections are free ({} open; threshold {})",
                b.free.max(0),
                b.available,
                b.used,
                b.min_free
            ),
        ));
    }
    out
}

/// The server view's rules over its latest sample: each of the pool's
/// backends idle in a transaction, holding one open or waiting on a lock
/// too long is a condition of its own, keyed by its connection.
pub(crate) fn server(sample: &ServerSample, t: &AlertThresholds) -> Vec<Observation> {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut out = Vec::new();
    if let Some(budget) = &sample.budget {
        out.extend(connection_budget(budget));
    }
    for b in &sample.backends {
        let key = format!("connection {}", b.connection);
        let who = holder(b.route.as_deref(), b.checkout_site.as_deref());
        let state_age = b.state_age_ms.unwrap_or(0.0);
        if b.idle_in_transaction() && state_age >= ms(t.idle_in_transaction) {
            out.push(condition(
                AlertType::IdleInTransaction,
                &key,
                AlertSeverity::Medium,
                format!(
                    "{key} (pid {}) idle in transaction for {:.0} s{who} (threshold {:.0} s)",
                    b.pid,
                    state_age / 1000.0,
                    t.idle_in_transaction.as_secs_f64()
                ),
            ));
        }
        if let Some(age) = b.transaction_age_ms.filter(|&a| a >= ms(t.transaction_age)) {
            out.push(condition(
                AlertType::LongTransaction,
                &key,
                AlertSeverity::Medium,
                format!(
                    "{key} (pid {}) has held a transaction open for {:.0} s{who} (threshold {:.0} s)",
                    b.pid,
                    age / 1000.0,
                    t.transaction_age.as_secs_f64()
                ),
            ));
        }
        if b.waits_on_lock() && state_age >= ms(t.blocked) {
            let blockers: Vec<String> = blockers_of(&sample.locks, b.pid)
                .into_iter()
                .map(|n| match (&n.route, n.ours) {
                    (Some(route), _) => format!("pid {} ({route})", n.pid),
                    (None, true) => format!("pid {} (this pool)", n.pid),
                    (None, false) => format!("pid {}", n.pid),
                })
                .collect();
            out.push(condition(
                AlertType::BlockedBackend,
                &key,
                AlertSeverity::High,
                format!(
                    "{key} (pid {}) has waited on a lock for {:.0} s{who}, blocked by {} (threshold {:.0} s)",
                    b.pid,
                    state_age / 1000.0,
                    if blockers.is_empty() {
                        "an unknown backend".to_owned()
                    } else {
                        blockers.join(", ")
                    },
                    t.blocked.as_secs_f64()
                ),
            ));
        }
    }
    out
}

/// Whose the backend's connection is: the request that checked it out.
/// ("held by" read as the holder of the lock a blocked backend waits on.)
fn holder(route: Option<&str>, site: Option<&str>) -> String {
    match (route, site) {
        (Some(route), Some(site)) => format!(", its connection checked out by {route} at {site}"),
        (None, Some(site)) => format!(", its connection checked out at {site}"),
        (Some(route), None) => format!(", its connection checked out by {route}"),
        (None, None) => String::new(),
    }
}

/// The nodes of the lock tree that block `pid` directly.
fn blockers_of(roots: &[LockNode], pid: i32) -> Vec<&LockNode> {
    let mut found = Vec::new();
    fn walk<'a>(node: &'a LockNode, pid: i32, found: &mut Vec<&'a LockNode>) {
        if node.blocking.iter().any(|n| n.pid == pid) && !found.iter().any(|f: &&LockNode| f.pid == node.pid) {
            found.push(node);
        }
        for child in &node.blocking {
            walk(child, pid, found);
        }
    }
    for root in roots {
        walk(root, pid, &mut found);
    }
    found
}

/// The forecast rule: the pool is forecast to run out (keyed by the pool;
/// high when it is within 15 minutes).
pub(crate) fn forecast(pool: &str, forecast: &PoolForecast) -> Option<Observation> {
    let seconds = forecast.reported_seconds()?;
    let e = &forecast.evidence;
    let little = forecast
        .little
        .as_ref()
        .map(|l| {
            format!(
                "; Little's law: {:.1} checkouts/s × {:.0} ms held = {:.1} in use ({:.0}% of the pool)",
                l.arrivals_per_second,
                l.mean_hold_ms,
                l.expected_in_use,
                l.of_max_size * 100.0
            )
        })
        .unwrap_or_default();
    Some(condition(
        AlertType::PoolExhaustionForecast,
        pool,
        if seconds <= 15.0 * 60.0 {
            AlertSeverity::High
        } else {
            AlertSeverity::Medium
        },
        format!(
            "pool forecast to run out in {:.0} min: demand {:.1} of {} rising {:.2} connections/min over the last {:.0} min (slope {:.1} standard errors){little}",
            seconds / 60.0,
            e.level,
            e.max_size,
            e.slope_per_minute,
            e.window_seconds / 60.0,
            e.slope_t.unwrap_or(0.0).min(999.0),
        ),
    ))
}

/// The anomaly rules: each anomalous statement a condition of its own,
/// keyed by its fingerprint.
pub(crate) fn anomalies(list: &[StatementAnomaly]) -> Vec<Observation> {
    list.iter()
        .map(|a| {
            let (alert_type, what) = if a.kind == "latency" {
                (
                    AlertType::LatencyAnomaly,
                    format!(
                        "p95 {:.1} ms against a baseline of {:.1} ms ({:.1} deviations{})",
                        a.current,
                        a.baseline,
                        a.z,
                        a.robust_z
                            .map(|r| format!(", {r:.1} by the median"))
                            .unwrap_or_default()
                    ),
                )
            } else {
                (
                    AlertType::ErrorRateAnomaly,
                    format!(
                        "{:.1}% of runs failing against a baseline of {:.1}% ({:.1} deviations)",
                        a.current * 100.0,
                        a.baseline * 100.0,
                        a.z
                    ),
                )
            };
            condition(
                alert_type,
                &a.fingerprint,
                AlertSeverity::Medium,
                format!(
                    "`{}`: {what}, in {} of the last {} minutes",
                    a.statement, a.minutes, a.of_minutes
                ),
            )
        })
        .collect()
}

/// The degradation rule over the stores' degradation report.
pub(crate) fn degradations(list: &[Degradation]) -> Vec<Observation> {
    list.iter()
        .map(|d| {
            condition(
                AlertType::PerformanceDegradation,
                &d.fingerprint,
                AlertSeverity::Medium,
                format!(
                    "`{}` p95 {:.1} ms over the last 5 min against {:.1} ms the hour before ({:.1}x; {} and {} runs)",
                    d.statement, d.recent_p95_ms, d.baseline_p95_ms, d.factor, d.recent_samples, d.baseline_samples
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::ErrorSource;

    fn rate(window_minutes: u32, statements: u64, errors: u64) -> ErrorRate {
        ErrorRate {
            window_minutes,
            covered_seconds: f64::from(window_minutes) * 60.0,
            statements,
            errors,
            rate: (statements > 0).then(|| errors as f64 / statements as f64),
        }
    }

    fn fired(rates: &[ErrorRate]) -> Vec<(String, AlertSeverity)> {
        error_rates(rates, &AlertThresholds::default())
            .into_iter()
            .map(|o| (o.key, o.severity))
            .collect()
    }

    #[test]
    fn an_error_rate_needs_time_covered_before_it_fires() {
        let t = AlertThresholds::default();
        // 20 s after start: 50 of 100 statements failed, in every window.
        let young: Vec<ErrorRate> = [5, 15, 60]
            .into_iter()
            .map(|minutes| ErrorRate {
                covered_seconds: 20.0,
                ..rate(minutes, 100, 50)
            })
            .collect();
        assert!(error_rates(&young, &t).is_empty(), "no window has evidence yet");
        // 90 s: the 5 min window speaks (60 s), the longer ones not yet
        // (180 s, 12 min).
        let older: Vec<ErrorRate> = young
            .iter()
            .map(|r| ErrorRate {
                covered_seconds: 90.0,
                ..r.clone()
            })
            .collect();
        let fired = error_rates(&older, &t);
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert!(
            fired[0].message.contains("90.0 s (of a 5 min window)"),
            "{}",
            fired[0].message
        );
    }

    #[test]
    fn a_low_target_pages_and_tickets_at_a_capped_bound() {
        // 99.9 %: the workbook's 14.4x and 6x stand.
        assert_eq!(burn_bound(PAGE_BURN, 0.999, PAGE_CAP), PAGE_BURN);
        assert_eq!(burn_bound(TICKET_BURN, 0.999, TICKET_CAP), TICKET_BURN);
        // 90 %: at most 10x is possible; the page waits for 90 % bad (9x),
        // the ticket's 6x (60 % bad) stands.
        assert_eq!(burn_bound(PAGE_BURN, 0.9, PAGE_CAP), 9.0);
        assert_eq!(burn_bound(TICKET_BURN, 0.9, TICKET_CAP), TICKET_BURN);
        // 80 %: both capped, and both reachable.
        for (burn, cap) in [(PAGE_BURN, PAGE_CAP), (TICKET_BURN, TICKET_CAP)] {
            let bound = burn_bound(burn, 0.8, cap);
            assert!(bound < 1.0 / 0.2, "{bound}");
        }
    }

    #[test]
    fn error_rates_fire_over_their_threshold_only() {
        // 5 min, threshold 10%: 9.9% under, 10% at, 10.1% over.
        assert!(fired(&[rate(5, 1000, 99)]).is_empty());
        assert!(fired(&[rate(5, 1000, 100)]).is_empty());
        assert_eq!(fired(&[rate(5, 1000, 101)]), [("5m".to_owned(), AlertSeverity::High)]);
        // 15 min at 5%, 1 h at 2%; the severity follows the window.
        assert!(fired(&[rate(15, 1000, 50), rate(60, 1000, 20)]).is_empty());
        assert_eq!(
            fired(&[rate(15, 1000, 51), rate(60, 1000, 21)]),
            [
                ("15m".to_owned(), AlertSeverity::Medium),
                ("1h".to_owned(), AlertSeverity::Low)
            ]
        );
        let message = &error_rates(&[rate(5, 200, 24)], &AlertThresholds::default())[0].message;
        assert_eq!(
            message,
            "12.0% of statements failed over the last 5 min (24 of 200; threshold 10.0%)"
        );
    }

    #[test]
    fn an_error_rate_needs_the_minimum_number_of_statements() {
        // One failure in one statement is 100%, and no alert.
        assert!(fired(&[rate(5, 1, 1)]).is_empty());
        assert!(fired(&[rate(5, 19, 19)]).is_empty());
        assert_eq!(fired(&[rate(5, 20, 3)]).len(), 1);
        assert!(fired(&[rate(5, 0, 0)]).is_empty());
        let strict = AlertThresholds::default().error_rate_min_statements(100);
        assert!(error_rates(&[rate(5, 99, 50)], &strict).is_empty());
    }

    fn sample(in_use: u32, peak_in_use: u32, waiters: u64) -> PoolSample {
        PoolSample {
            at_unix_ms: 0,
            max_size: 10,
            size: 10,
            idle: 10 - in_use,
            in_use,
            waiters,
            utilization: f64::from(in_use) / 10.0,
            waiting_seconds: 0,
            seconds: 0,
            peak_in_use,
            peak_utilization: f64::from(peak_in_use) / 10.0,
            timeouts: 0,
            wait_time_ms: 0.0,
        }
    }

    #[test]
    fn utilization_fires_at_a_sample_or_with_waiters() {
        let t = AlertThresholds::default();
        // A sample whose peak reached 90% fires, even if it is calm now.
        assert!(utilization(10, 2, 0, Some(&sample(2, 8, 0)), &t).is_none());
        let o = utilization(10, 2, 0, Some(&sample(2, 9, 0)), &t).unwrap();
        assert_eq!(o.key, "utilization");
        assert!(
            o.message.contains("pool at 90% at the last sample (9 of 10"),
            "{}",
            o.message
        );
        // Between samples only with waiters.
        assert!(utilization(10, 10, 0, None, &t).is_none());
        assert!(utilization(10, 8, 3, None, &t).is_none());
        let o = utilization(10, 10, 3, None, &t).unwrap();
        assert!(o.message.contains("3 checkouts waiting"), "{}", o.message);
        assert!(utilization(0, 0, 3, None, &t).is_none());
    }

    #[test]
    fn held_idle_fires_while_checkouts_queue_behind_idle_holders_and_names_the_most() {
        let t = AlertThresholds::default();
        let held = |route: &str, site: &str, idle: bool| HeldConnection {
            route: Some(route.to_owned()),
            site: Some(site.to_owned()),
            running: !idle,
            idle_for: Duration::from_secs(1),
        };
        let pool = vec![
            held("GET /report", "src/report.rs:42", true),
            held("GET /report", "src/report.rs:42", true),
            held("POST /pay", "src/pay.rs:7", true),
            held("GET /items", "src/items.rs:3", false),
        ];
        let fired = held_idle(2, &pool, &t).expect("3 of 4 idle, 2 queued");
        assert_eq!(
            (fired.alert_type, fired.key.as_str()),
            (AlertType::PoolExhaustion, "held_idle")
        );
        assert!(
            fired.message.contains("2 checkouts wait while 3 of the 4"),
            "{}",
            fired.message
        );
        assert!(
            fired
                .message
                .ends_with("2 held idle by GET /report at src/report.rs:42"),
            "{}",
            fired.message
        );
        assert!(held_idle(0, &pool, &t).is_none(), "nothing queues");
        let busy = vec![
            held("GET /items", "src/items.rs:3", false),
            held("GET /items", "src/items.rs:3", false),
            held("GET /report", "src/report.rs:42", true),
        ];
        assert!(held_idle(5, &busy, &t).is_none(), "the database is what they wait on");
        assert!(held_idle(5, &[], &t).is_none());
        assert!(
            held_idle(5, &busy, &t.clone().held_idle_share(0.3)).is_some(),
            "its threshold"
        );
        // Just checked out, or just past a statement: not idle yet.
        let fresh: Vec<HeldConnection> = (0..2)
            .map(|_| HeldConnection {
                idle_for: HELD_IDLE_MIN / 2,
                ..held("GET /items", "src/items.rs:3", true)
            })
            .collect();
        assert!(held_idle(5, &fresh, &t).is_none(), "not idle long enough");
    }

    #[test]
    fn the_connection_streak_fires_at_its_threshold() {
        let t = AlertThresholds::default();
        assert!(connection_streak(4, None, &t).is_none());
        let o = connection_streak(5, Some("connection refused"), &t).unwrap();
        assert_eq!(
            (o.alert_type, o.severity),
            (AlertType::ConnectionFailure, AlertSeverity::High)
        );
        assert!(
            o.message.ends_with("last connect error: connection refused"),
            "{}",
            o.message
        );
        assert!(connection_streak(6, None, &t).is_some());
    }

    fn record(kind: ErrorKind, sqlstate: Option<&str>, statement: Option<&str>) -> ErrorRecord {
        ErrorRecord {
            at_unix_ms: 0,
            error_type: kind,
            sqlstate: sqlstate.map(str::to_owned),
            source: ErrorSource::Statement,
            fingerprint: statement.map(|_| "00000000000000aa".to_owned()),
            statement: statement.map(str::to_owned),
            message: "ERROR: deadlock detected (40P01)".to_owned(),
            route: None,
        }
    }

    #[test]
    fn error_records_map_to_their_alert_types() {
        let update = Some("UPDATE accounts SET balance = balance + ? WHERE id = ?");
        let o = from_error(&record(ErrorKind::Deadlock, Some("40P01"), update)).unwrap();
        assert_eq!(
            (o.alert_type, o.key.as_str()),
            (AlertType::Deadlock, "00000000000000aa")
        );
        assert!(
            o.message.starts_with("deadlock detected (40P01) on `UPDATE accounts"),
            "{}",
            o.message
        );
        let o = from_error(&record(ErrorKind::LockTimeout, Some("55P03"), update)).unwrap();
        assert_eq!(
            (o.alert_type, o.key.as_str()),
            (AlertType::TransactionTimeout, "lock_timeout")
        );
        let o = from_error(&record(ErrorKind::AdminShutdown, Some("57P01"), None)).unwrap();
        assert_eq!(
            (o.alert_type, o.key.as_str(), o.severity),
            (AlertType::ConnectionFailure, "admin_shutdown", AlertSeverity::Critical)
        );
        let o = from_error(&record(ErrorKind::PoolExhausted, None, None)).unwrap();
        assert_eq!(
            (o.alert_type, o.severity),
            (AlertType::PoolExhaustion, AlertSeverity::Critical)
        );
        assert!(from_error(&record(ErrorKind::ConstraintViolation, Some("23505"), update)).is_none());
        assert!(from_error(&record(ErrorKind::ConnectionFailure, None, None)).is_none());
    }

    #[test]
    fn each_degraded_statement_is_its_own_condition() {
        let d = Degradation {
            fingerprint: "00000000000000cc".into(),
            statement: "SELECT * FROM orders WHERE id = ?".into(),
            recent_p95_ms: 812.0,
            baseline_p95_ms: 120.0,
            factor: 812.0 / 120.0,
            recent_samples: 40,
            baseline_samples: 900,
        };
        let o = degradations(std::slice::from_ref(&d));
        assert_eq!(o.len(), 1);
        assert_eq!(
            (o[0].alert_type, o[0].key.as_str(), o[0].lifetime),
            (
                AlertType::PerformanceDegradation,
                "00000000000000cc",
                Lifetime::Condition
            )
        );
        assert_eq!(
            o[0].message,
            "`SELECT * FROM orders WHERE id = ?` p95 812.0 ms over the last 5 min against 120.0 ms the hour before \
             (6.8x; 40 and 900 runs)"
        );
        assert!(degradations(&[]).is_empty());
    }

    #[test]
    fn a_batch_folds_into_one_observation_per_key() {
        let update = Some("UPDATE t SET v = ? WHERE id = ?");
        let records = [
            record(ErrorKind::Deadlock, Some("40P01"), update),
            record(ErrorKind::StatementTimeout, Some("57014"), update),
            record(ErrorKind::Deadlock, Some("40P01"), update),
            record(ErrorKind::Deadlock, Some("40P01"), update),
        ];
        let folded = fold(records.iter().filter_map(from_error));
        assert_eq!(folded.len(), 2);
        assert_eq!((folded[0].alert_type, folded[0].count), (AlertType::Deadlock, 3));
        assert_eq!(
            (folded[1].alert_type, folded[1].count),
            (AlertType::TransactionTimeout, 1)
        );
    }

    fn burning(route: &str, rates: [Option<f64>; 4]) -> ObjectiveStatus {
        let statuses = crate::stats::objectives::ObjectiveBook::new(&[
            crate::config::Objective::route(route).latency(Duration::from_millis(50), 0.99)
        ])
        .statuses(std::time::SystemTime::now());
        let mut status = statuses.into_iter().next().unwrap();
        status.burn_rates.five_minutes = rates[0];
        status.burn_rates.thirty_minutes = rates[1];
        status.burn_rates.one_hour = rates[2];
        status.burn_rates.six_hours = rates[3];
        status
    }

    #[test]
    fn objectives_page_on_both_short_windows_and_ticket_on_both_long_ones() {
        let page = objectives(&[burning("GET /a", [Some(20.0), Some(15.0), Some(14.4), Some(3.0)])]);
        assert_eq!(page.len(), 1);
        assert_eq!(
            (page[0].severity, page[0].key.as_str()),
            (AlertSeverity::Critical, "GET /a latency")
        );
        assert!(page[0].message.contains("14.4x"), "{}", page[0].message);
        // The hour burns, the last 5 minutes do not (it is over): nothing.
        assert!(objectives(&[burning("GET /a", [Some(1.0), Some(2.0), Some(20.0), Some(5.0)])]).is_empty());
        let ticket = objectives(&[burning("GET /b", [Some(1.0), Some(7.0), Some(8.0), Some(6.5)])]);
        assert_eq!(ticket[0].severity, AlertSeverity::Medium);
        assert!(objectives(&[burning("GET /b", [None, None, None, None])]).is_empty());
    }

    #[test]
    fn an_objective_with_a_low_target_pages_when_every_request_is_bad() {
        // 80 %: every request bad burns its budget 5x, never 14.4x.
        let mut status = burning("GET /low", [Some(5.0), Some(5.0), Some(5.0), Some(5.0)]);
        status.target = 0.8;
        let fired = objectives(&[status]);
        assert_eq!(fired.len(), 1, "an outage of a low-target route alerts");
        assert_eq!(fired[0].severity, AlertSeverity::Critical);
    }
}
