//! The error store: recent errors, recurring patterns, error rates.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::error_counts::ErrorCounts;
use super::ring::Ring;
use super::Totals;
use crate::classify::{ErrorKind, SqlStateCode};
use crate::units::{hex, unix_ms};

/// Where an error happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorSource {
    /// A statement failed.
    Statement,
    /// Opening a connection failed.
    Connect,
    /// An open connection was lost or failed its validity check.
    Connection,
    /// A checkout timed out.
    Checkout,
}

/// One error, as kept by the store.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ErrorRecord {
    /// When it happened, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// Its class ([`ErrorKind::as_str`]).
    pub error_type: ErrorKind,
    /// The SQLSTATE, when the server sent one.
    pub sqlstate: Option<String>,
    /// Where it happened.
    pub source: ErrorSource,
    /// The statement's fingerprint, for statement errors.
    pub fingerprint: Option<String>,
    /// The statement, normalized (no literal values), for statement errors.
    pub statement: Option<String>,
    /// The server's message with its values masked (quoted runs, numbers,
    /// non-ASCII text; no text at all for the application's own messages
    /// or a server in another language), or the client's description.
    /// Never the server's `DETAIL`, which can carry row values.
    pub message: String,
    /// The route of the request it happened in, for statement and
    /// checkout errors inside a request through
    /// [`DbMonitorLayer`](crate::DbMonitorLayer).
    pub route: Option<String>,
}

/// A (class, statement) pair that keeps failing.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ErrorPattern {
    /// The class of the errors.
    pub error_type: ErrorKind,
    /// The statement's fingerprint (absent for errors outside statements).
    pub fingerprint: Option<String>,
    /// The statement, normalized.
    pub statement: Option<String>,
    /// The SQLSTATE of the latest occurrence.
    pub sqlstate: Option<String>,
    /// Occurrences since the store was created or reset.
    pub count: u64,
    /// First occurrence, milliseconds since the Unix epoch.
    pub first_seen_unix_ms: u64,
    /// Latest occurrence, milliseconds since the Unix epoch.
    pub last_seen_unix_ms: u64,
}

/// Failed statements over statements run, over one window.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ErrorRate {
    /// The window asked for, in minutes.
    pub window_minutes: u32,
    /// The time the figures actually cover, in seconds: less than the
    /// window while the pool is younger than it.
    pub covered_seconds: f64,
    /// Statements run in that time.
    pub statements: u64,
    /// Statements that failed in that time.
    pub errors: u64,
    /// `errors / statements`; absent when no statement ran.
    pub rate: Option<f64>,
}

/// What the error store holds for one pool ([`PoolMonitor::error_report`](crate::PoolMonitor::error_report)).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ErrorReport {
    /// The pool's name.
    pub pool: String,
    /// The window of `errors`, `by_type`, `by_sqlstate` and `recent`, in
    /// minutes (absent: since the stores were last reset).
    pub window_minutes: Option<u32>,
    /// Errors in that window, every one counted (a window past the last
    /// hour counts whole minutes).
    pub errors: u64,
    /// Those errors by class.
    pub by_type: BTreeMap<String, u64>,
    /// Those errors by SQLSTATE.
    pub by_sqlstate: BTreeMap<String, u64>,
    /// Of those errors, how many the store still keeps in `recent` (at
    /// most `error_history`; the others are counted, not kept).
    pub kept: u64,
    /// Statement error rates over 5 minutes, 15 minutes and 1 hour.
    pub rates: Vec<ErrorRate>,
    /// Those errors, newest first.
    pub recent: Vec<ErrorRecord>,
    /// Recurring (class, statement) pairs, most frequent first.
    pub patterns: Vec<ErrorPattern>,
    /// Errors dropped from the store because it was full (they still
    /// count in `patterns`, rates and metrics).
    pub evicted: u64,
}

/// One error as the ring keeps it. It owns no string: the statement's
/// text is the statement table's, and the message is shared by the
/// repeats of a pattern. Copying one out is two reference counts.
#[derive(Clone)]
struct Kept {
    at_unix_ms: u64,
    kind: ErrorKind,
    sqlstate: Option<SqlStateCode>,
    source: ErrorSource,
    statement: Option<(u64, Arc<str>)>,
    message: Arc<str>,
    route: Option<Arc<str>>,
}

impl Kept {
    fn to_record(&self) -> ErrorRecord {
        ErrorRecord {
            at_unix_ms: self.at_unix_ms,
            error_type: self.kind,
            sqlstate: self.sqlstate.map(|c| c.as_str().to_owned()),
            source: self.source,
            fingerprint: self.statement.as_ref().map(|(fp, _)| hex(*fp)),
            statement: self.statement.as_ref().map(|(_, sql)| sql.to_string()),
            message: self.message.to_string(),
            route: self.route.as_deref().map(str::to_owned),
        }
    }
}

/// A recurring (class, statement) pair, as the store keeps it.
#[derive(Clone)]
struct Pattern {
    kind: ErrorKind,
    statement: Option<(u64, Arc<str>)>,
    sqlstate: Option<SqlStateCode>,
    count: u64,
    first_seen_unix_ms: u64,
    last_seen_unix_ms: u64,
    /// The latest message, which the next occurrence shares when it says
    /// the same.
    message: Arc<str>,
}

impl Pattern {
    fn to_report(&self) -> ErrorPattern {
        ErrorPattern {
            error_type: self.kind,
            fingerprint: self.statement.as_ref().map(|(fp, _)| hex(*fp)),
            statement: self.statement.as_ref().map(|(_, sql)| sql.to_string()),
            sqlstate: self.sqlstate.map(|c| c.as_str().to_owned()),
            count: self.count,
            first_seen_unix_ms: self.first_seen_unix_ms,
            last_seen_unix_ms: self.last_seen_unix_ms,
        }
    }
}

struct Inner {
    ring: Ring<Kept>,
    patterns: HashMap<(ErrorKind, Option<u64>), Pattern>,
    /// Every error counted, kept or not.
    counts: ErrorCounts,
}

/// One error, as the store takes it.
#[derive(Debug)]
pub(crate) struct NewError<'a> {
    /// When it happened.
    pub(crate) at: SystemTime,
    /// Its class.
    pub(crate) kind: ErrorKind,
    /// Its SQLSTATE, if the server sent one.
    pub(crate) sqlstate: Option<&'a str>,
    /// Where it happened.
    pub(crate) source: ErrorSource,
    /// The statement's fingerprint and normalized text, for a statement.
    pub(crate) statement: Option<(u64, &'a Arc<str>)>,
    /// The message, already masked.
    pub(crate) message: Cow<'a, str>,
    /// The route of the request it happened in.
    pub(crate) route: Option<Arc<str>>,
}

/// The bounded error store of one pool.
///
/// Writers and readers share one lock, held briefly by both: a writer
/// allocates nothing under it when its pattern is known and says the same
/// message as last time, and a reader copies what it needs (two reference
/// counts per error) and builds its report after letting go.
pub(crate) struct ErrorLog {
    inner: Mutex<Inner>,
    capacity: usize,
}

impl ErrorLog {
    pub(crate) fn new(capacity: usize) -> Self {
        ErrorLog {
            inner: Mutex::new(Inner {
                ring: Ring::new(capacity),
                patterns: HashMap::new(),
                counts: ErrorCounts::default(),
            }),
            capacity,
        }
    }

    /// Keeps one error. Patterns are bounded like the ring: past
    /// `capacity` distinct pairs, new pairs are not tracked (existing ones
    /// keep counting).
    pub(crate) fn record(&self, error: NewError<'_>) {
        let NewError {
            at,
            kind,
            sqlstate,
            source,
            statement,
            message,
            route,
        } = error;
        let at_unix_ms = unix_ms(at);
        let sqlstate = sqlstate.and_then(SqlStateCode::new);
        let statement = statement.map(|(fp, sql)| (fp, Arc::clone(sql)));
        let key = (kind, statement.as_ref().map(|(fp, _)| *fp));
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.counts.add(at_unix_ms, kind, sqlstate);
        let known = inner.patterns.len();
        let message = match inner.patterns.get_mut(&key) {
            Some(p) => {
                p.count += 1;
                p.last_seen_unix_ms = at_unix_ms;
                p.sqlstate = sqlstate;
                if *p.message != *message {
                    p.message = Arc::from(message);
                }
                Arc::clone(&p.message)
            }
            None => {
                let message: Arc<str> = Arc::from(message);
                if known < self.capacity {
                    inner.patterns.insert(
                        key,
                        Pattern {
                            kind,
                            statement: statement.clone(),
                            sqlstate,
                            count: 1,
                            first_seen_unix_ms: at_unix_ms,
                            last_seen_unix_ms: at_unix_ms,
                            message: Arc::clone(&message),
                        },
                    );
                }
                message
            }
        };
        inner.ring.push(Kept {
            at_unix_ms,
            kind,
            sqlstate,
            source,
            statement,
            message,
            route,
        });
    }

    /// The errors since `from_unix_ms` (within the last hour), kept or
    /// not, per second and class: the second's start in Unix
    /// milliseconds, the class, the count.
    pub(crate) fn kinds_since(&self, from_unix_ms: u64) -> Vec<(u64, ErrorKind, u64)> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.counts.by_second(from_unix_ms)
    }

    pub(crate) fn clear(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.ring.clear();
        inner.patterns.clear();
        inner.counts = ErrorCounts::default();
    }

    /// The errors recorded since sequence number `seq` that are still held,
    /// how many are not, and the sequence number to read from next.
    pub(crate) fn since(&self, seq: u64) -> super::Since<ErrorRecord> {
        let (missed, kept, next) = {
            let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let (missed, items) = inner.ring.since(seq);
            (missed, items.cloned().collect::<Vec<Kept>>(), inner.ring.next_seq())
        };
        super::Since {
            missed,
            items: kept.iter().map(Kept::to_record).collect(),
            next,
        }
    }

    /// The report over the last `minutes` (or everything retained).
    pub(crate) fn report(
        &self,
        pool: &str,
        now: SystemTime,
        minutes: Option<u32>,
        rates: Vec<ErrorRate>,
    ) -> ErrorReport {
        let since = super::window_start(now, minutes);
        let (kept, patterns, evicted, counted) = {
            let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let kept: Vec<Kept> = inner
                .ring
                .iter()
                .rev()
                .filter(|r| since.is_none_or(|s| r.at_unix_ms >= s))
                .cloned()
                .collect();
            let patterns: Vec<Pattern> = inner.patterns.values().cloned().collect();
            (kept, patterns, inner.ring.evicted(), inner.counts.over(since))
        };
        let recent: Vec<ErrorRecord> = kept.iter().map(Kept::to_record).collect();
        let mut patterns: Vec<ErrorPattern> = patterns.iter().map(Pattern::to_report).collect();
        patterns.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(b.last_seen_unix_ms.cmp(&a.last_seen_unix_ms))
        });
        ErrorReport {
            pool: pool.to_owned(),
            window_minutes: minutes,
            errors: counted.errors,
            by_type: counted.by_type,
            by_sqlstate: counted.by_sqlstate,
            kept: recent.len() as u64,
            rates,
            recent,
            patterns,
            evicted,
        }
    }
}

/// The error rate over one window from a totals difference.
pub(crate) fn rate(window_minutes: u32, (delta, covered): (Totals, Duration)) -> ErrorRate {
    ErrorRate {
        window_minutes,
        covered_seconds: covered.as_secs_f64(),
        statements: delta.statements,
        errors: delta.errors,
        rate: (delta.statements > 0).then(|| delta.errors as f64 / delta.statements as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(capacity: usize, n: u64) -> ErrorLog {
        let log = ErrorLog::new(capacity);
        let sql: Arc<str> = Arc::from("UPDATE t SET a = ? WHERE id = ?");
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for i in 0..n {
            let kind = if i % 2 == 0 {
                ErrorKind::Deadlock
            } else {
                ErrorKind::ConstraintViolation
            };
            let code = if i % 2 == 0 { "40P01" } else { "23505" };
            log.record(NewError {
                at: t0 + Duration::from_secs(60 * i),
                kind,
                sqlstate: Some(code),
                source: ErrorSource::Statement,
                statement: Some((i % 2, &sql)),
                message: format!("message {i}").into(),
                route: None,
            });
        }
        log
    }

    #[test]
    fn the_ring_is_bounded_and_patterns_keep_counting() {
        let log = log_with(3, 10);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + 600);
        let report = log.report("p", now, None, Vec::new());
        assert_eq!(report.recent.len(), 3);
        assert_eq!(report.evicted, 7);
        assert_eq!(report.recent[0].message, "message 9", "newest first");
        let counts: Vec<u64> = report.patterns.iter().map(|p| p.count).collect();
        assert_eq!(counts, vec![5, 5]);
        let deadlocks = report
            .patterns
            .iter()
            .find(|p| p.error_type == ErrorKind::Deadlock)
            .unwrap();
        assert_eq!(deadlocks.first_seen_unix_ms, 1_000_000_000);
        assert_eq!(deadlocks.last_seen_unix_ms, 1_000_000_000 + 8 * 60_000);
        assert_eq!(deadlocks.fingerprint.as_deref(), Some("0000000000000000"));
    }

    #[test]
    fn repeats_of_a_pattern_share_their_statement_and_message() {
        let log = ErrorLog::new(10);
        let sql: Arc<str> = Arc::from("SELECT ?");
        for message in ["deadlock detected", "deadlock detected", "other words", "other words"] {
            log.record(NewError {
                at: SystemTime::UNIX_EPOCH,
                kind: ErrorKind::Deadlock,
                sqlstate: Some("40P01"),
                source: ErrorSource::Statement,
                statement: Some((7, &sql)),
                message: Cow::Borrowed(message),
                route: None,
            });
        }
        let inner = log.inner.lock().unwrap();
        let kept: Vec<&Kept> = inner.ring.iter().collect();
        assert!(kept.iter().all(|k| Arc::ptr_eq(&k.statement.as_ref().unwrap().1, &sql)));
        assert!(
            Arc::ptr_eq(&kept[0].message, &kept[1].message),
            "a repeat allocates no message"
        );
        assert!(
            !Arc::ptr_eq(&kept[1].message, &kept[2].message),
            "a new message is kept as said"
        );
        assert!(Arc::ptr_eq(&kept[2].message, &kept[3].message));
        assert_eq!(&*kept[3].message, "other words");
        assert_eq!(
            kept[3].sqlstate.map(|c| c.as_str().to_owned()).as_deref(),
            Some("40P01")
        );
    }

    #[test]
    fn a_window_keeps_only_its_minutes() {
        let log = log_with(100, 10);
        // Errors at minutes 0..9; "now" is minute 9: the last 3 minutes hold minutes 6, 7, 8, 9.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + 9 * 60);
        let report = log.report("p", now, Some(3), Vec::new());
        assert_eq!(report.errors, 4);
        assert_eq!(report.by_type.get("deadlock"), Some(&2));
        assert_eq!(report.by_sqlstate.get("23505"), Some(&2));
    }

    #[test]
    fn a_rate_needs_statements() {
        let none = rate(5, (Totals::default(), Duration::from_secs(300)));
        assert_eq!(none.rate, None);
        let some = rate(
            5,
            (
                Totals {
                    statements: 200,
                    errors: 30,
                    busy_ns: 0,
                },
                Duration::from_secs(120),
            ),
        );
        assert_eq!((some.rate, some.covered_seconds), (Some(0.15), 120.0));
    }

    #[test]
    fn reports_serialize_to_json() {
        let log = log_with(10, 2);
        let report = log.report(
            "p",
            SystemTime::now(),
            None,
            vec![rate(5, (Totals::default(), Duration::ZERO))],
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["recent"][0]["error_type"], "constraint_violation");
        assert_eq!(json["recent"][0]["source"], "statement");
        assert_eq!(json["rates"][0]["rate"], serde_json::Value::Null);
    }
}
