//! The alerts of one pool: active ones by (type, key), the history of
//! resolved ones, and the flag the event path raises.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::Mutex;
use std::time::SystemTime;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::ring::Ring;
use crate::alert_kind::{AlertSeverity, AlertType};
use crate::config::AlertThresholds;
use crate::units::unix_ms;
use serde::Serialize;

/// Whether an alert is still active.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertStatus {
    /// Firing.
    Active,
    /// Resolved (see [`Alert::resolved_by`]).
    Resolved,
}

/// One alert: what fired, how often, and its state.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Alert {
    /// Its id: 16 lowercase hexadecimal digits, unique within the process,
    /// fixed for the alert's life, safe in a URL path.
    pub id: String,
    /// The pool it is about.
    pub pool: String,
    /// Its type.
    pub alert_type: AlertType,
    /// Its severity (the highest seen while active).
    pub severity: AlertSeverity,
    /// What it is about within its type: a fingerprint (16 hex digits), an
    /// error type, a window (`5m`) or a fixed word (see the rules table).
    pub key: String,
    /// What happened, with its evidence (SQL only normalized, never a
    /// literal or parameter). The latest occurrence's.
    pub message: String,
    /// When it first fired, in milliseconds since the Unix epoch.
    pub first_seen_unix_ms: u64,
    /// When it last fired.
    pub last_seen_unix_ms: u64,
    /// How many times its rule fired while it was active.
    pub occurrences: u64,
    /// Active or resolved.
    pub status: AlertStatus,
    /// When it was resolved.
    pub resolved_unix_ms: Option<u64>,
    /// Who or what resolved it: `rule` (a condition alert whose condition
    /// cleared), `expiry` (an event alert not seen for `expire_after`), or
    /// the name given to [`resolve_alert`](crate::PoolMonitor::resolve_alert).
    pub resolved_by: Option<String>,
}

/// The active alerts of a pool and its history ([`PoolMonitor::alerts`](crate::PoolMonitor::alerts)).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct AlertReport {
    /// The pool's name.
    pub pool: String,
    /// Active alerts, most severe first, then the most recently seen.
    pub active: Vec<Alert>,
    /// Active alerts by severity name.
    pub active_by_severity: std::collections::BTreeMap<String, u64>,
    /// Notifications the notifiers were given since the pool was created.
    pub notifications: u64,
    /// New alerts not kept because 1024 were active already.
    pub suppressed: u64,
}

/// Resolved alerts, newest first ([`PoolMonitor::alert_history`](crate::PoolMonitor::alert_history)).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct AlertHistory {
    /// The pool's name.
    pub pool: String,
    /// Resolved alerts, newest first.
    pub resolved: Vec<Alert>,
    /// Resolved alerts no longer kept (past `alert_history`).
    pub evicted: u64,
}

/// A change in an alert's life, as the notifiers hear it.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum AlertEvent<'a> {
    /// The alert became active.
    Fired(&'a Alert),
    /// The alert fired again after its cooldown and is still active.
    Repeated(&'a Alert),
    /// The alert was resolved (by its rule, by expiry or by hand).
    Resolved(&'a Alert),
}

impl<'a> AlertEvent<'a> {
    /// The alert, whatever happened to it.
    pub fn alert(&self) -> &'a Alert {
        match *self {
            AlertEvent::Fired(a) | AlertEvent::Repeated(a) | AlertEvent::Resolved(a) => a,
        }
    }
}

/// At most this many alerts are active per pool; past it, new (type, key)
/// pairs are counted in `suppressed` and not kept.
pub(crate) const MAX_ACTIVE: usize = 1024;

/// How an alert ends on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lifetime {
    /// Resolves once its rule has not fired for `clear_after`.
    Condition,
    /// Stays until resolved by hand or `expire_after` after it was last seen.
    Event,
}

/// A rule that fired.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Observation {
    pub(crate) alert_type: AlertType,
    pub(crate) key: String,
    pub(crate) severity: AlertSeverity,
    pub(crate) message: String,
    pub(crate) lifetime: Lifetime,
    /// How many occurrences this observation stands for (a batch of
    /// deadlocks read at once is one observation).
    pub(crate) count: u64,
}

/// What the notifiers are to hear.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Notice {
    Fired(Alert),
    Repeated(Alert),
    Resolved(Alert),
}

struct Entry {
    alert: Alert,
    lifetime: Lifetime,
    last_seen: Instant,
    last_notified: Instant,
}

struct Inner {
    active: HashMap<(AlertType, String), Entry>,
    history: Ring<Alert>,
    /// Where the evaluator reads the error and slow-query stores from next.
    errors_seq: u64,
    slow_seq: u64,
}

/// The alerts of one pool.
pub(crate) struct AlertBook {
    inner: Mutex<Inner>,
    /// Held through one evaluation, so that two never read the same
    /// records.
    evaluation: Mutex<()>,
    notifications: AtomicU64,
    suppressed: AtomicU64,
    /// Set by the event path when there is something to read.
    dirty: AtomicBool,
    wake: Notify,
    /// Failed connects and lost connections since the last successful
    /// connect, and the most of those since the last evaluation.
    streak: AtomicU32,
    streak_peak: AtomicU32,
}

impl AlertBook {
    pub(crate) fn new(history: usize) -> Self {
        AlertBook {
            inner: Mutex::new(Inner {
                active: HashMap::new(),
                history: Ring::new(history),
                errors_seq: 0,
                slow_seq: 0,
            }),
            evaluation: Mutex::new(()),
            notifications: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            dirty: AtomicBool::new(false),
            wake: Notify::new(),
            streak: AtomicU32::new(0),
            streak_peak: AtomicU32::new(0),
        }
    }

    /// Tells the evaluator that a store has something new. One atomic load
    /// when it was told already.
    #[inline]
    pub(crate) fn signal(&self) {
        if !self.dirty.load(Relaxed) && !self.dirty.swap(true, AcqRel) {
            self.wake.notify_one();
        }
    }

    /// Waits until [`signal`](Self::signal) was called, then clears the
    /// flag (so later signals wake the evaluator again).
    pub(crate) async fn signalled(&self) {
        self.wake.notified().await;
        self.dirty.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Held while one evaluation reads the stores and applies the rules.
    pub(crate) fn evaluating(&self) -> std::sync::MutexGuard<'_, ()> {
        self.evaluation.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connect failed or a connection was lost.
    pub(crate) fn connection_failed(&self) {
        let streak = self.streak.fetch_add(1, Relaxed).saturating_add(1);
        self.streak_peak.fetch_max(streak, Relaxed);
        self.signal();
    }

    /// A connect succeeded: the failure streak ends.
    #[inline]
    pub(crate) fn connected(&self) {
        if self.streak.load(Relaxed) != 0 {
            self.streak.store(0, Relaxed);
        }
    }

    /// The longest failure streak since the last call (or the current one).
    pub(crate) fn take_streak_peak(&self) -> u32 {
        self.streak_peak.swap(self.streak.load(Relaxed), Relaxed)
    }

    /// Where the evaluator reads the error and slow-query stores from next.
    pub(crate) fn cursors(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.errors_seq, inner.slow_seq)
    }

    /// Moves the read positions on.
    pub(crate) fn advance(&self, errors_seq: u64, slow_seq: u64) {
        let mut inner = self.lock();
        inner.errors_seq = errors_seq;
        inner.slow_seq = slow_seq;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a rule that fired at `now` (`wall` on the wall clock).
    pub(crate) fn observe(
        &self,
        pool: &str,
        obs: Observation,
        now: Instant,
        wall: SystemTime,
        thresholds: &AlertThresholds,
    ) -> Option<Notice> {
        let at = unix_ms(wall);
        let mut inner = self.lock();
        let key = (obs.alert_type, obs.key);
        if let Some(entry) = inner.active.get_mut(&key) {
            let alert = &mut entry.alert;
            alert.occurrences = alert.occurrences.saturating_add(obs.count.max(1));
            alert.last_seen_unix_ms = at;
            alert.severity = alert.severity.max(obs.severity);
            alert.message = obs.message;
            entry.last_seen = now;
            if now.saturating_duration_since(entry.last_notified) < thresholds.cooldown(obs.alert_type) {
                return None;
            }
            entry.last_notified = now;
            self.notifications.fetch_add(1, Relaxed);
            return Some(Notice::Repeated(entry.alert.clone()));
        }
        if inner.active.len() >= MAX_ACTIVE {
            self.suppressed.fetch_add(1, Relaxed);
            return None;
        }
        let alert = Alert {
            id: next_id(),
            pool: pool.to_owned(),
            alert_type: obs.alert_type,
            severity: obs.severity,
            key: key.1.clone(),
            message: obs.message,
            first_seen_unix_ms: at,
            last_seen_unix_ms: at,
            occurrences: obs.count.max(1),
            status: AlertStatus::Active,
            resolved_unix_ms: None,
            resolved_by: None,
        };
        inner.active.insert(
            key,
            Entry {
                alert: alert.clone(),
                lifetime: obs.lifetime,
                last_seen: now,
                last_notified: now,
            },
        );
        self.notifications.fetch_add(1, Relaxed);
        Some(Notice::Fired(alert))
    }

    /// Resolves the condition alerts not seen for `clear_after` and the
    /// event alerts not seen for `expire_after`.
    pub(crate) fn sweep(&self, now: Instant, wall: SystemTime, thresholds: &AlertThresholds) -> Vec<Notice> {
        let mut inner = self.lock();
        let done: Vec<_> = inner
            .active
            .iter()
            .filter_map(|(key, entry)| {
                let quiet = now.saturating_duration_since(entry.last_seen);
                let by = match entry.lifetime {
                    Lifetime::Condition if quiet >= thresholds.clear_after => "rule",
                    Lifetime::Event if quiet >= thresholds.expire_after => "expiry",
                    _ => return None,
                };
                Some((key.clone(), by))
            })
            .collect();
        done.into_iter()
            .filter_map(|(key, by)| {
                let entry = inner.active.remove(&key)?;
                Some(self.close(&mut inner, entry.alert, by, wall))
            })
            .collect()
    }

    /// Resolves the active alert `id` by hand; `None` if no active alert
    /// has that id.
    pub(crate) fn resolve(&self, id: &str, by: &str, wall: SystemTime) -> Option<Notice> {
        let mut inner = self.lock();
        let key = inner
            .active
            .iter()
            .find(|(_, entry)| entry.alert.id == id)
            .map(|(key, _)| key.clone())?;
        let entry = inner.active.remove(&key)?;
        Some(self.close(&mut inner, entry.alert, by, wall))
    }

    fn close(&self, inner: &mut Inner, mut alert: Alert, by: &str, wall: SystemTime) -> Notice {
        alert.status = AlertStatus::Resolved;
        alert.resolved_unix_ms = Some(unix_ms(wall));
        alert.resolved_by = Some(by.to_owned());
        inner.history.push(alert.clone());
        self.notifications.fetch_add(1, Relaxed);
        Notice::Resolved(alert)
    }

    /// The active alerts, most severe first, then most recently seen.
    pub(crate) fn active(&self) -> Vec<Alert> {
        let inner = self.lock();
        let mut active: Vec<Alert> = inner.active.values().map(|e| e.alert.clone()).collect();
        active.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(b.last_seen_unix_ms.cmp(&a.last_seen_unix_ms))
                .then(a.id.cmp(&b.id))
        });
        active
    }

    /// Hands `publish` how many alerts are active, by type and severity,
    /// while the book is locked: two callers racing (the background task's
    /// evaluation and a resolution by hand) publish in the order they read,
    /// so a count read before a change is never published after it.
    pub(crate) fn publish_counts(
        &self,
        publish: impl FnOnce(&[[u32; AlertSeverity::ALL.len()]; AlertType::ALL.len()]),
    ) {
        let inner = self.lock();
        let mut counts = [[0; AlertSeverity::ALL.len()]; AlertType::ALL.len()];
        for entry in inner.active.values() {
            counts[entry.alert.alert_type.index()][entry.alert.severity.index()] += 1;
        }
        publish(&counts);
    }

    pub(crate) fn report(&self, pool: &str) -> AlertReport {
        let active = self.active();
        let mut active_by_severity = BTreeMap::new();
        for alert in &active {
            *active_by_severity
                .entry(alert.severity.as_str().to_owned())
                .or_insert(0) += 1;
        }
        AlertReport {
            pool: pool.to_owned(),
            active,
            active_by_severity,
            notifications: self.notifications.load(Relaxed),
            suppressed: self.suppressed.load(Relaxed),
        }
    }

    pub(crate) fn history(&self, pool: &str, limit: usize) -> AlertHistory {
        let inner = self.lock();
        AlertHistory {
            pool: pool.to_owned(),
            resolved: inner.history.iter().rev().take(limit).cloned().collect(),
            evicted: inner.history.evicted(),
        }
    }
}

/// An alert's id: a counter from a random start of this process, through a
/// bijective mix (so ids are not consecutive), as 16 hexadecimal digits.
/// Unique within the process; two processes' ids meet by chance only
/// (the first alert of every process had the same id).
fn next_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        // std's hasher keys are random per process.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    });
    let mut x = start.wrapping_add(NEXT.fetch_add(1, Relaxed));
    // splitmix64's finalizer: a bijection on u64.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    format!("{x:016x}")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn thresholds() -> AlertThresholds {
        AlertThresholds::default()
            .default_cooldown(Duration::from_secs(60))
            .cooldown_of(AlertType::SlowQuery, Duration::from_secs(600))
            .clear_after(Duration::from_secs(120))
            .expire_after(Duration::from_secs(3600))
    }

    fn obs(alert_type: AlertType, key: &str, severity: AlertSeverity, lifetime: Lifetime) -> Observation {
        Observation {
            alert_type,
            key: key.to_owned(),
            severity,
            message: format!("{alert_type} on {key}"),
            lifetime,
            count: 1,
        }
    }

    fn deadlock() -> Observation {
        obs(
            AlertType::Deadlock,
            "00000000000000aa",
            AlertSeverity::High,
            Lifetime::Event,
        )
    }

    fn kind(notice: &Option<Notice>) -> &'static str {
        match notice {
            Some(Notice::Fired(_)) => "fired",
            Some(Notice::Repeated(_)) => "repeated",
            Some(Notice::Resolved(_)) => "resolved",
            None => "nothing",
        }
    }

    #[tokio::test(start_paused = true)]
    async fn repeats_within_the_cooldown_only_count_and_after_it_notify_again() {
        let book = AlertBook::new(10);
        let t = thresholds();
        let wall = SystemTime::now();
        let observe = |o| book.observe("p", o, Instant::now(), wall, &t);
        assert_eq!(kind(&observe(deadlock())), "fired");
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(kind(&observe(deadlock())), "nothing");
        assert_eq!(kind(&observe(deadlock())), "nothing");
        tokio::time::advance(Duration::from_secs(1)).await;
        let repeated = observe(deadlock());
        assert_eq!(kind(&repeated), "repeated");
        let Some(Notice::Repeated(alert)) = repeated else {
            unreachable!()
        };
        assert_eq!(alert.occurrences, 4);
        // The cooldown counts from the last notification.
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(kind(&observe(deadlock())), "nothing");
        // Another key of the same type is another alert, with its own cooldown.
        let other = obs(
            AlertType::Deadlock,
            "00000000000000bb",
            AlertSeverity::High,
            Lifetime::Event,
        );
        assert_eq!(kind(&observe(other)), "fired");
        // A type's own cooldown wins over the default.
        let slow = || {
            obs(
                AlertType::SlowQuery,
                "00000000000000cc",
                AlertSeverity::Medium,
                Lifetime::Event,
            )
        };
        assert_eq!(kind(&observe(slow())), "fired");
        tokio::time::advance(Duration::from_secs(599)).await;
        assert_eq!(kind(&observe(slow())), "nothing");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(kind(&observe(slow())), "repeated");
        assert_eq!(book.report("p").active.len(), 3);
        assert_eq!(book.report("p").notifications, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_repeat_raises_the_severity_and_takes_the_latest_message() {
        let book = AlertBook::new(10);
        let t = thresholds();
        let wall = SystemTime::now();
        let mut first = obs(
            AlertType::PoolExhaustion,
            "utilization",
            AlertSeverity::High,
            Lifetime::Condition,
        );
        first.message = "pool at 90%".into();
        book.observe("p", first, Instant::now(), wall, &t);
        let mut worse = obs(
            AlertType::PoolExhaustion,
            "utilization",
            AlertSeverity::Critical,
            Lifetime::Condition,
        );
        worse.message = "pool at 100%".into();
        worse.count = 3;
        book.observe("p", worse, Instant::now(), wall, &t);
        let mut milder = obs(
            AlertType::PoolExhaustion,
            "utilization",
            AlertSeverity::Low,
            Lifetime::Condition,
        );
        milder.message = "pool at 95%".into();
        book.observe("p", milder, Instant::now(), wall, &t);
        let active = book.active();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].severity, AlertSeverity::Critical);
        assert_eq!(active[0].message, "pool at 95%");
        assert_eq!(active[0].occurrences, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn conditions_clear_on_their_own_and_events_expire() {
        let book = AlertBook::new(10);
        let t = thresholds();
        let wall = SystemTime::now();
        let rate = || obs(AlertType::HighErrorRate, "5m", AlertSeverity::High, Lifetime::Condition);
        book.observe("p", rate(), Instant::now(), wall, &t);
        book.observe("p", deadlock(), Instant::now(), wall, &t);
        tokio::time::advance(Duration::from_secs(100)).await;
        // Still firing: the condition is seen again, so its clock restarts.
        book.observe("p", rate(), Instant::now(), wall, &t);
        tokio::time::advance(Duration::from_secs(119)).await;
        assert!(book.sweep(Instant::now(), wall, &t).is_empty());
        tokio::time::advance(Duration::from_secs(1)).await;
        let swept = book.sweep(Instant::now(), wall, &t);
        assert_eq!(swept.len(), 1);
        let Notice::Resolved(resolved) = &swept[0] else {
            panic!("{swept:?}")
        };
        assert_eq!(resolved.alert_type, AlertType::HighErrorRate);
        assert_eq!(resolved.resolved_by.as_deref(), Some("rule"));
        assert_eq!(resolved.status, AlertStatus::Resolved);
        // The deadlock (an event) is still active after 220 s and expires
        // one hour after it was last seen.
        assert_eq!(book.active().len(), 1);
        tokio::time::advance(Duration::from_secs(3600 - 220 - 1)).await;
        assert!(book.sweep(Instant::now(), wall, &t).is_empty());
        tokio::time::advance(Duration::from_secs(1)).await;
        let swept = book.sweep(Instant::now(), wall, &t);
        let Notice::Resolved(expired) = &swept[0] else {
            panic!("{swept:?}")
        };
        assert_eq!(expired.resolved_by.as_deref(), Some("expiry"));
        assert!(book.active().is_empty());
        let history = book.history("p", 10);
        assert_eq!(history.resolved.len(), 2);
        assert_eq!(history.resolved[0].alert_type, AlertType::Deadlock, "newest first");
    }

    #[tokio::test(start_paused = true)]
    async fn resolving_by_id_records_who_and_a_new_occurrence_is_a_new_alert() {
        let book = AlertBook::new(10);
        let t = thresholds();
        let wall = SystemTime::now();
        let Some(Notice::Fired(alert)) = book.observe("p", deadlock(), Instant::now(), wall, &t) else {
            panic!("not fired")
        };
        assert_eq!(alert.id.len(), 16);
        assert!(alert
            .id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert!(book.resolve("0123456789abcdef", "ops", wall).is_none());
        let Some(Notice::Resolved(resolved)) = book.resolve(&alert.id, "ops on call", wall) else {
            panic!("not resolved")
        };
        assert_eq!(resolved.resolved_by.as_deref(), Some("ops on call"));
        assert!(book.resolve(&alert.id, "ops", wall).is_none(), "already resolved");
        let again = book.observe("p", deadlock(), Instant::now(), wall, &t);
        let Some(Notice::Fired(again)) = again else {
            panic!("{again:?}")
        };
        assert_ne!(again.id, alert.id);
        assert_eq!(again.occurrences, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_history_and_the_active_set_are_bounded() {
        let book = AlertBook::new(500);
        let t = thresholds();
        let wall = SystemTime::now();
        for i in 0..(MAX_ACTIVE + 10) {
            let o = obs(
                AlertType::SlowQuery,
                &format!("{i:016x}"),
                AlertSeverity::Medium,
                Lifetime::Event,
            );
            book.observe("p", o, Instant::now(), wall, &t);
        }
        let report = book.report("p");
        assert_eq!((report.active.len(), report.suppressed), (MAX_ACTIVE, 10));
        assert_eq!(report.active_by_severity.get("medium"), Some(&(MAX_ACTIVE as u64)));
        tokio::time::advance(t.expire_after).await;
        assert_eq!(book.sweep(Instant::now(), wall, &t).len(), MAX_ACTIVE);
        let history = book.history("p", usize::MAX);
        assert_eq!(
            (history.resolved.len(), history.evicted),
            (500, MAX_ACTIVE as u64 - 500)
        );
        assert_eq!(book.history("p", 3).resolved.len(), 3);
        book.publish_counts(|counts| assert_eq!(counts, &[[0; 4]; AlertType::ALL.len()]));
    }

    #[test]
    fn a_burst_of_signals_wakes_the_evaluator_once_and_clears() {
        let book = AlertBook::new(10);
        for _ in 0..10_000 {
            book.signal();
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            book.signalled().await;
            let again = tokio::time::timeout(Duration::from_millis(10), book.signalled()).await;
            assert!(again.is_err(), "one wake for the whole burst");
            book.signal();
            book.signalled().await;
        });
    }

    #[test]
    fn the_failure_streak_keeps_its_peak_until_read() {
        let book = AlertBook::new(10);
        (0..6).for_each(|_| book.connection_failed());
        book.connected();
        book.connection_failed();
        assert_eq!(book.take_streak_peak(), 6);
        assert_eq!(book.take_streak_peak(), 1, "then the current streak");
        book.connected();
        assert_eq!(book.take_streak_peak(), 1);
        assert_eq!(book.take_streak_peak(), 0);
    }
}
