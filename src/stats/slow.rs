//! The slow-query store: occurrences over the slow threshold, and their
//! analysis by statement.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::ring::Ring;
use crate::classify::ErrorKind;
use crate::sql::Operation;
use crate::units::{hex, unix_ms};

/// One run of a statement at or over the slow threshold.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SlowQuery {
    /// When it ended, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// The statement's fingerprint.
    pub fingerprint: String,
    /// The statement, normalized (no literal values).
    pub statement: String,
    /// Its operation.
    pub operation: Operation,
    /// Its main table.
    pub table: Option<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// Its error class, if it failed (a `statement_timeout` is also slow).
    pub error_type: Option<ErrorKind>,
    /// The slow threshold it was held to, in milliseconds: its own if one
    /// is set ([`MonitorConfig::slow_statement`](crate::MonitorConfig::slow_statement)),
    /// else the pool's.
    pub threshold_ms: f64,
}

/// The slow runs of one statement within the report's window.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SlowQueryGroup {
    /// The statement's fingerprint.
    pub fingerprint: String,
    /// The statement, normalized.
    pub statement: String,
    /// Its operation.
    pub operation: Operation,
    /// Its main table.
    pub table: Option<String>,
    /// Slow runs.
    pub count: u64,
    /// Their mean duration, in milliseconds.
    pub mean_ms: f64,
    /// The longest, in milliseconds.
    pub max_ms: f64,
    /// The first, in milliseconds since the Unix epoch.
    pub first_seen_unix_ms: u64,
    /// The latest, in milliseconds since the Unix epoch.
    pub last_seen_unix_ms: u64,
    /// Their time as a share of all the pool's database time in the window
    /// (0 to 1).
    pub share_of_database_time: f64,
    /// Mean of the newer half of the runs over the mean of the older half
    /// (at least 4 runs).
    pub trend: Option<f64>,
    /// Whether `trend` is at least [`GETTING_SLOWER`].
    pub getting_slower: bool,
    /// Its generic plan, when the server view has read one (see
    /// [`ServerView::plans`](crate::ServerView::plans)).
    pub plan: Option<super::StatementPlan>,
    /// The rows the client saw per run of the statement (every run, slow
    /// or not), beside the plan's estimate.
    pub client_rows_per_call: Option<f64>,
}

/// The `trend` from which a statement counts as getting slower.
pub const GETTING_SLOWER: f64 = 1.2;

/// What the slow-query store holds for one pool
/// ([`PoolMonitor::slow_query_report`](crate::PoolMonitor::slow_query_report)).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SlowQueryReport {
    /// The pool's name.
    pub pool: String,
    /// The slow threshold, in milliseconds.
    pub threshold_ms: f64,
    /// The window, in minutes (absent: everything retained).
    pub window_minutes: Option<u32>,
    /// Slow runs retained in the window.
    pub occurrences: u64,
    /// All the pool's database time in the window (every statement), in
    /// milliseconds; windows over an hour use the last hour.
    pub database_time_ms: f64,
    /// Slow runs grouped by statement, most total time first, at most `limit`.
    pub groups: Vec<SlowQueryGroup>,
    /// The latest slow runs, newest first, at most `limit`.
    pub recent: Vec<SlowQuery>,
    /// Slow runs dropped because the store was full.
    pub evicted: u64,
    /// Why the groups have no plans, when none can be read (the server
    /// view is off, plans are off, or the server is older than 16).
    pub plans_unavailable: Option<String>,
}

/// The bounded slow-query store of one pool: occurrences with their
/// One slow run, as the store takes it.
#[derive(Debug)]
pub(crate) struct NewSlow<'a> {
    /// When it ended.
    pub(crate) at: SystemTime,
    /// The statement's fingerprint.
    pub(crate) fingerprint: u64,
    /// Its normalized text.
    pub(crate) statement: &'a str,
    /// Its operation.
    pub(crate) operation: Operation,
    /// Its main table.
    pub(crate) table: Option<&'a str>,
    /// How long it ran.
    pub(crate) duration: Duration,
    /// Its failure class, if it failed.
    pub(crate) error_type: Option<ErrorKind>,
    /// The threshold it was held to.
    pub(crate) threshold: Duration,
}

/// fingerprint as a number, for grouping.
pub(crate) struct SlowLog {
    ring: Mutex<Ring<(u64, SlowQuery)>>,
}

impl SlowLog {
    pub(crate) fn new(capacity: usize) -> Self {
        SlowLog {
            ring: Mutex::new(Ring::new(capacity)),
        }
    }

    /// Keeps one slow run.
    pub(crate) fn record(&self, run: NewSlow<'_>) {
        let NewSlow {
            at,
            fingerprint,
            statement,
            operation,
            table,
            duration,
            error_type,
            threshold,
        } = run;
        let occurrence = SlowQuery {
            at_unix_ms: unix_ms(at),
            fingerprint: hex(fingerprint),
            statement: statement.to_owned(),
            operation,
            table: table.map(str::to_owned),
            duration_ms: duration.as_secs_f64() * 1e3,
            error_type,
            threshold_ms: threshold.as_secs_f64() * 1e3,
        };
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.push((fingerprint, occurrence));
    }

    pub(crate) fn clear(&self) {
        self.ring.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The occurrences recorded since sequence number `seq` that are still
    /// held, how many are not, and the sequence number to read from next.
    pub(crate) fn since(&self, seq: u64) -> super::Since<SlowQuery> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let (missed, items) = ring.since(seq);
        super::Since {
            missed,
            items: items.map(|(_, q)| q.clone()).collect(),
            next: ring.next_seq(),
        }
    }

    /// The report over the last `minutes` (or everything retained), given
    /// the pool's database time in that window.
    pub(crate) fn report(
        &self,
        pool: &str,
        threshold: Duration,
        now: SystemTime,
        minutes: Option<u32>,
        limit: usize,
        database_time: Duration,
    ) -> SlowQueryReport {
        let since = super::window_start(now, minutes);
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let in_window: Vec<&(u64, SlowQuery)> = ring
            .iter()
            .filter(|(_, q)| since.is_none_or(|s| q.at_unix_ms >= s))
            .collect();
        let database_ms = database_time.as_secs_f64() * 1e3;
        // Oldest first within each group, as the ring is.
        let mut by_statement: HashMap<u64, Vec<&SlowQuery>> = HashMap::new();
        for (fp, q) in &in_window {
            by_statement.entry(*fp).or_default().push(q);
        }
        let mut groups: Vec<(f64, SlowQueryGroup)> = by_statement
            .into_values()
            .map(|runs| {
                let total: f64 = runs.iter().map(|q| q.duration_ms).sum();
                let count = runs.len();
                let trend = (count >= 4).then(|| {
                    let (older, newer) = runs.split_at(count / 2);
                    let mean = |r: &[&SlowQuery]| r.iter().map(|q| q.duration_ms).sum::<f64>() / r.len() as f64;
                    mean(newer) / mean(older)
                });
                let first = runs[0];
                let group = SlowQueryGroup {
                    fingerprint: first.fingerprint.clone(),
                    statement: first.statement.clone(),
                    operation: first.operation,
                    table: first.table.clone(),
                    count: count as u64,
                    mean_ms: total / count as f64,
                    max_ms: runs.iter().map(|q| q.duration_ms).fold(0.0, f64::max),
                    first_seen_unix_ms: first.at_unix_ms,
                    last_seen_unix_ms: runs[count - 1].at_unix_ms,
                    share_of_database_time: if database_ms > 0.0 {
                        (total / database_ms).min(1.0)
                    } else {
                        0.0
                    },
                    trend,
                    getting_slower: trend.is_some_and(|t| t >= GETTING_SLOWER),
                    plan: None,
                    client_rows_per_call: None,
                };
                (total, group)
            })
            .collect();
        groups.sort_by(|a, b| b.0.total_cmp(&a.0));
        SlowQueryReport {
            pool: pool.to_owned(),
            threshold_ms: threshold.as_secs_f64() * 1e3,
            window_minutes: minutes,
            occurrences: in_window.len() as u64,
            database_time_ms: database_ms,
            groups: groups.into_iter().take(limit).map(|(_, g)| g).collect(),
            recent: in_window.iter().rev().take(limit).map(|(_, q)| q.clone()).collect(),
            evicted: ring.evicted(),
            plans_unavailable: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 2_000_000;

    fn at(second: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + second)
    }

    #[test]
    fn groups_report_count_mean_max_share_and_trend() {
        let log = SlowLog::new(100);
        // Statement 1 gets slower: 2, 2, 4, 4 seconds. Statement 2: one run of 3 s.
        for (i, secs) in [2, 2, 4, 4].into_iter().enumerate() {
            log.record(NewSlow {
                threshold: Duration::from_millis(100),
                at: at(i as u64 * 10),
                fingerprint: 1,
                statement: "SELECT ? FROM t",
                operation: Operation::Select,
                table: Some("t"),
                duration: Duration::from_secs(secs),
                error_type: None,
            });
        }
        log.record(NewSlow {
            threshold: Duration::from_millis(100),
            at: at(50),
            fingerprint: 2,
            statement: "UPDATE u SET a = ?",
            operation: Operation::Update,
            table: Some("u"),
            duration: Duration::from_secs(3),
            error_type: Some(ErrorKind::StatementTimeout),
        });
        let report = log.report("p", Duration::from_secs(2), at(60), None, 10, Duration::from_secs(30));
        assert_eq!(report.occurrences, 5);
        assert_eq!(report.threshold_ms, 2000.0);
        let g = &report.groups[0];
        assert_eq!((g.count, g.mean_ms, g.max_ms), (4, 3000.0, 4000.0));
        assert_eq!(
            (g.first_seen_unix_ms, g.last_seen_unix_ms),
            (T0 * 1000, (T0 + 30) * 1000)
        );
        assert!((g.share_of_database_time - 12.0 / 30.0).abs() < 1e-9);
        assert_eq!(g.trend, Some(2.0));
        assert!(g.getting_slower);
        let h = &report.groups[1];
        assert_eq!((h.count, h.trend, h.getting_slower), (1, None, false));
        assert_eq!(report.recent[0].error_type, Some(ErrorKind::StatementTimeout));
    }

    #[test]
    fn the_store_is_bounded_and_windows_and_limits_apply() {
        let log = SlowLog::new(3);
        for i in 0..5u64 {
            log.record(NewSlow {
                threshold: Duration::from_millis(100),
                at: at(i * 60),
                fingerprint: i,
                statement: "SELECT ?",
                operation: Operation::Select,
                table: None,
                duration: Duration::from_secs(2),
                error_type: None,
            });
        }
        let all = log.report("p", Duration::from_secs(2), at(4 * 60), None, 10, Duration::ZERO);
        assert_eq!((all.occurrences, all.evicted), (3, 2));
        let last_minute = log.report("p", Duration::from_secs(2), at(4 * 60), Some(1), 10, Duration::ZERO);
        assert_eq!(last_minute.occurrences, 2);
        let limited = log.report("p", Duration::from_secs(2), at(4 * 60), None, 1, Duration::ZERO);
        assert_eq!((limited.groups.len(), limited.recent.len()), (1, 1));
        assert_eq!(limited.groups[0].share_of_database_time, 0.0);
    }
}
