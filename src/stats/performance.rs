//! Statement performance over any window from one minute to 24 hours:
//! counts, success rate, mean, min, max, p50/p95/p99 and rows, per
//! statement, per operation and per table; and degradation (the p95 of the
//! last 5 minutes against the hour before).
//!
//! Each statement keeps cumulative counters and a cumulative histogram
//! (the hot path increments them, per thread). Once a minute they are
//! snapshotted and the difference from the previous snapshot becomes a
//! slot; slots older than an hour are merged into 15-minute spans and
//! slots older than 24 hours dropped. A window is the sum of the slots that
//! end inside it plus what happened since the last snapshot, so its edges
//! have the granularity of the slots (1 minute within the last hour, 15
//! minutes before); each report says the time it actually covers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::forecast::StatementAnomaly;
use super::histogram::{Histogram, BUCKETS};
use crate::sql::Operation;
use crate::units::hex;

/// The parts of a statement's runs' time that the latency split shows
/// ([`LatencySplit`]), summed over runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SplitSums {
    /// Checkout waits charged to the statement (each checkout's wait to
    /// the first statement run after it).
    pub(crate) wait_ns: u64,
    /// Time spent behind the connection's earlier statements.
    pub(crate) queued_ns: u64,
    /// Time to the first row, over the streamed runs that had one.
    pub(crate) first_row_ns: u64,
    /// The streamed runs behind `first_row_ns`.
    pub(crate) first_rows: u64,
}

impl SplitSums {
    pub(crate) fn add(&mut self, other: &SplitSums) {
        self.wait_ns = self.wait_ns.saturating_add(other.wait_ns);
        self.queued_ns = self.queued_ns.saturating_add(other.queued_ns);
        self.first_row_ns = self.first_row_ns.saturating_add(other.first_row_ns);
        self.first_rows = self.first_rows.saturating_add(other.first_rows);
    }

    /// What was added since `earlier`.
    fn since(&self, earlier: &SplitSums) -> SplitSums {
        SplitSums {
            wait_ns: self.wait_ns.saturating_sub(earlier.wait_ns),
            queued_ns: self.queued_ns.saturating_sub(earlier.queued_ns),
            first_row_ns: self.first_row_ns.saturating_sub(earlier.first_row_ns),
            first_rows: self.first_rows.saturating_sub(earlier.first_rows),
        }
    }
}

/// Where a statement's time went, as its callers saw it: means over the
/// runs that finished in the window.
///
/// A caller first waits for a connection (`checkout_wait_ms`), then sends
/// the statement; if the connection's earlier statements have not been
/// answered and read yet (pipelined statements, or a stream of rows not
/// read to its end), it waits behind them (`queued_ms`); then its rows
/// come, the first after `first_row_ms` and the last after `last_row_ms`
/// from the send. `last_row_ms` is the run's whole time (the report's
/// `mean_ms`), which includes `queued_ms` and not `checkout_wait_ms`;
/// beside the server's own mean (the server view's
/// [`server_mean_ms`](crate::stats::ServerStatement::server_mean_ms)), the
/// difference is the network, the connection's queue and the client.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LatencySplit {
    /// The wait for a connection, per run, in milliseconds: each checkout's
    /// wait is charged to the first statement run on its connection (so
    /// the later statements of one checkout add none).
    pub checkout_wait_ms: f64,
    /// The time spent behind the connection's earlier statements, per run,
    /// in milliseconds: counted for a statement sent while another one ran
    /// on its connection, until that one ended.
    pub queued_ms: f64,
    /// From the send to the first row, in milliseconds, over the runs whose
    /// rows came as a stream (`query_raw` and the other stream methods)
    /// and had at least one; absent without such runs (the collecting
    /// methods, `query` and `query_one`, see their rows at the end only).
    pub first_row_ms: Option<f64>,
    /// The runs behind `first_row_ms`.
    pub first_row_runs: u64,
    /// From the send to the last row (the run's end), per run, in
    /// milliseconds.
    pub last_row_ms: f64,
}

impl LatencySplit {
    /// The split of `finished` runs that took `total_ns`; none without runs.
    pub(crate) fn of(finished: u64, total_ns: u64, sums: &SplitSums) -> Option<Self> {
        let per = |ns: u64, n: u64| ns as f64 / 1e6 / n as f64;
        (finished > 0).then(|| LatencySplit {
            checkout_wait_ms: per(sums.wait_ns, finished),
            queued_ms: per(sums.queued_ns, finished),
            first_row_ms: (sums.first_rows > 0).then(|| per(sums.first_row_ns, sums.first_rows)),
            first_row_runs: sums.first_rows,
            last_row_ms: per(total_ns, finished),
        })
    }
}

/// Cumulative counters of one statement at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cumulative {
    pub(crate) finished: u64,
    pub(crate) errors: u64,
    pub(crate) total_ns: u64,
    pub(crate) rows: u64,
    pub(crate) split: SplitSums,
    /// Shortest and longest run since the previous snapshot.
    pub(crate) min_ns: u64,
    pub(crate) max_ns: u64,
    pub(crate) buckets: Box<[u64; BUCKETS]>,
}

impl Default for Cumulative {
    fn default() -> Self {
        Cumulative {
            finished: 0,
            errors: 0,
            total_ns: 0,
            rows: 0,
            split: SplitSums::default(),
            min_ns: u64::MAX,
            max_ns: 0,
            buckets: Box::new([0; BUCKETS]),
        }
    }
}

/// What happened to one statement between two instants.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Slot {
    start: Instant,
    end: Instant,
    finished: u64,
    errors: u64,
    total_ns: u64,
    rows: u64,
    split: SplitSums,
    min_ns: u64,
    max_ns: u64,
    buckets: Vec<(u8, u32)>,
}

/// One slot of a statement's history, as the anomaly detector sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlotSummary {
    pub(crate) end: Instant,
    pub(crate) finished: u64,
    pub(crate) errors: u64,
    /// The p95 of the slot's runs (absent without any in the histogram).
    pub(crate) p95_ns: Option<u64>,
}

/// A statement's figures over a window.
#[derive(Clone, Debug, Default)]
pub(crate) struct Window {
    pub(crate) finished: u64,
    pub(crate) errors: u64,
    pub(crate) total_ns: u64,
    pub(crate) rows: u64,
    pub(crate) split: SplitSums,
    pub(crate) min_ns: Option<u64>,
    pub(crate) max_ns: Option<u64>,
    pub(crate) histogram: Histogram,
    /// The start of the oldest data included.
    pub(crate) since: Option<Instant>,
}

impl Window {
    /// Adds a slot's counts (its histogram is added separately).
    fn add(&mut self, slot: &Slot) {
        if slot.finished == 0 {
            return;
        }
        self.finished += slot.finished;
        self.errors += slot.errors;
        self.total_ns += slot.total_ns;
        self.rows += slot.rows;
        self.split.add(&slot.split);
        if slot.min_ns != u64::MAX {
            self.min_ns = Some(self.min_ns.map_or(slot.min_ns, |m| m.min(slot.min_ns)));
        }
        if slot.max_ns > 0 {
            self.max_ns = Some(self.max_ns.map_or(slot.max_ns, |m| m.max(slot.max_ns)));
        }
        self.since = Some(self.since.map_or(slot.start, |s| s.min(slot.start)));
    }

    pub(crate) fn merge(&mut self, other: &Window) {
        self.finished += other.finished;
        self.errors += other.errors;
        self.total_ns += other.total_ns;
        self.rows += other.rows;
        self.split.add(&other.split);
        self.min_ns = match (self.min_ns, other.min_ns) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max_ns = self.max_ns.max(other.max_ns);
        self.histogram.merge(&other.histogram);
        self.since = match (self.since, other.since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    fn histogram_count(&self) -> u64 {
        self.histogram.count_at_most(Duration::MAX)
    }

    pub(crate) fn p95(&self) -> Option<Duration> {
        self.quantile(0.95)
    }

    fn quantile(&self, q: f64) -> Option<Duration> {
        self.histogram.quantile(
            q,
            self.min_ns.map(Duration::from_nanos),
            self.max_ns.map(Duration::from_nanos),
        )
    }
}

struct Inner {
    /// The last snapshot: when, and the cumulative counters then.
    last: (Instant, Cumulative),
    slots: VecDeque<Slot>,
}

/// One statement's slots.
pub(crate) struct StatementHistory {
    inner: Mutex<Inner>,
}

impl Default for StatementHistory {
    fn default() -> Self {
        StatementHistory::starting_at(Instant::now())
    }
}

const FINE: Duration = Duration::from_secs(3600);
const COARSE_SPAN: Duration = Duration::from_secs(15 * 60);
const KEEP: Duration = Duration::from_secs(24 * 3600);

impl StatementHistory {
    pub(crate) fn starting_at(at: Instant) -> Self {
        StatementHistory {
            inner: Mutex::new(Inner {
                last: (at, Cumulative::default()),
                slots: VecDeque::new(),
            }),
        }
    }

    /// If a slot's length (a minute) has passed since the last snapshot, takes one with
    /// `take` (which also restarts the min/max since the last snapshot)
    /// and keeps the difference as a slot.
    pub(crate) fn snapshot(&self, now: Instant, slot: Duration, take: impl FnOnce() -> Cumulative) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if now.saturating_duration_since(inner.last.0) < slot {
            return;
        }
        let current = take();
        let (start, last) = &inner.last;
        let finished = current.finished.saturating_sub(last.finished);
        if finished > 0 {
            let mut histogram = Histogram::default();
            for (i, (c, l)) in current.buckets.iter().zip(last.buckets.iter()).enumerate() {
                let d = c.saturating_sub(*l);
                if d > 0 {
                    histogram.add(i, d);
                }
            }
            let slot = Slot {
                start: *start,
                end: now,
                finished,
                errors: current.errors.saturating_sub(last.errors),
                total_ns: current.total_ns.saturating_sub(last.total_ns),
                rows: current.rows.saturating_sub(last.rows),
                split: current.split.since(&last.split),
                min_ns: current.min_ns,
                max_ns: current.max_ns,
                buckets: histogram.sparse(),
            };
            inner.slots.push_back(slot);
        }
        inner.last = (now, current);
        Self::compact(&mut inner.slots, now);
    }

    /// Merges slots older than an hour into 15-minute spans and drops those
    /// older than a day.
    fn compact(slots: &mut VecDeque<Slot>, now: Instant) {
        while slots
            .front()
            .is_some_and(|s| now.saturating_duration_since(s.end) > KEEP)
        {
            slots.pop_front();
        }
        let mut i = 0;
        while i + 1 < slots.len() {
            let (a, b) = (&slots[i], &slots[i + 1]);
            let old = now.saturating_duration_since(b.end) > FINE;
            if old && b.end.saturating_duration_since(a.start) <= COARSE_SPAN {
                let b = slots.remove(i + 1).expect("checked index");
                let a = &mut slots[i];
                let mut histogram = Histogram::default();
                histogram.add_sparse(&a.buckets);
                histogram.add_sparse(&b.buckets);
                a.end = b.end;
                a.finished += b.finished;
                a.errors += b.errors;
                a.total_ns += b.total_ns;
                a.rows += b.rows;
                a.split.add(&b.split);
                a.min_ns = a.min_ns.min(b.min_ns);
                a.max_ns = a.max_ns.max(b.max_ns);
                a.buckets = histogram.sparse();
            } else {
                i += 1;
            }
        }
    }

    /// The figures of the slots ending in `(from, to]` (`from` absent: no
    /// lower bound), plus, with `live`, what happened since the last
    /// snapshot (given its current cumulative counters).
    pub(crate) fn window(&self, from: Option<Instant>, to: Instant, live: Option<&Cumulative>) -> Window {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut w = Window::default();
        for s in inner
            .slots
            .iter()
            .filter(|s| from.is_none_or(|f| s.end > f) && s.end <= to)
        {
            w.add(s);
            w.histogram.add_sparse(&s.buckets);
        }
        if let Some(current) = live {
            let (start, last) = &inner.last;
            w.add(&Slot {
                start: *start,
                end: to,
                finished: current.finished.saturating_sub(last.finished),
                errors: current.errors.saturating_sub(last.errors),
                total_ns: current.total_ns.saturating_sub(last.total_ns),
                rows: current.rows.saturating_sub(last.rows),
                split: current.split.since(&last.split),
                min_ns: current.min_ns,
                max_ns: current.max_ns,
                buckets: Vec::new(),
            });
            for (i, (c, l)) in current.buckets.iter().zip(last.buckets.iter()).enumerate() {
                let d = c.saturating_sub(*l);
                if d > 0 {
                    w.histogram.add(i, d);
                }
            }
        }
        w
    }

    /// Each slot that ended in `(after, until]`, with its end: the
    /// per-minute series.
    pub(crate) fn slot_windows(&self, after: Instant, until: Instant) -> Vec<(Instant, Window)> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .slots
            .iter()
            .filter(|s| s.end > after && s.end <= until)
            .map(|s| {
                let mut w = Window::default();
                w.add(s);
                w.histogram.add_sparse(&s.buckets);
                (s.end, w)
            })
            .collect()
    }

    /// The slots that ended in `(after, until]`, oldest first, each with
    /// its counts and p95: what the anomaly detector observes.
    pub(crate) fn slots_between(&self, after: Instant, until: Instant) -> Vec<SlotSummary> {
        self.slot_windows(after, until)
            .into_iter()
            .map(|(end, w)| SlotSummary {
                end,
                finished: w.finished,
                errors: w.errors,
                p95_ns: w.p95().map(crate::units::saturating_nanos),
            })
            .collect()
    }

    /// Forgets every slot (a store reset), starting again from zero at `now`.
    pub(crate) fn reset(&self, now: Instant) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.slots.clear();
        inner.last = (now, Cumulative::default());
    }
}

/// Latency and counts over a window.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LatencyStats {
    /// Runs that finished (successfully or not).
    pub count: u64,
    /// Runs that failed.
    pub errors: u64,
    /// `(count - errors) / count`; absent without runs.
    pub success_rate: Option<f64>,
    /// Total time, in milliseconds.
    pub total_ms: f64,
    /// Mean time, in milliseconds.
    pub mean_ms: Option<f64>,
    /// Shortest run, in milliseconds.
    pub min_ms: Option<f64>,
    /// Longest run, in milliseconds.
    pub max_ms: Option<f64>,
    /// Median, in milliseconds (within 6.25%, see [`crate::stats`]).
    pub p50_ms: Option<f64>,
    /// 95th percentile, in milliseconds.
    pub p95_ms: Option<f64>,
    /// 99th percentile, in milliseconds.
    pub p99_ms: Option<f64>,
    /// Rows returned or affected, where known.
    pub rows: u64,
}

impl LatencyStats {
    pub(crate) fn of(w: &Window) -> Self {
        // One conversion for every figure, so that a percentile clamped to
        // the maximum compares equal to it.
        let ns_ms = |n: u64| n as f64 / 1e6;
        let ms = |d: Duration| ns_ms(crate::units::saturating_nanos(d));
        LatencyStats {
            count: w.finished,
            errors: w.errors,
            success_rate: (w.finished > 0).then(|| (w.finished - w.errors.min(w.finished)) as f64 / w.finished as f64),
            total_ms: ns_ms(w.total_ns),
            mean_ms: (w.finished > 0).then(|| ns_ms(w.total_ns) / w.finished as f64),
            min_ms: w.min_ns.map(ns_ms),
            max_ms: w.max_ns.map(ns_ms),
            p50_ms: w.quantile(0.5).map(ms),
            p95_ms: w.quantile(0.95).map(ms),
            p99_ms: w.quantile(0.99).map(ms),
            rows: w.rows,
        }
    }
}

/// One statement's performance over the window.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StatementPerformance {
    /// Its fingerprint.
    pub fingerprint: String,
    /// The statement, normalized.
    pub statement: String,
    /// Its operation.
    pub operation: Operation,
    /// Its main table.
    pub table: Option<String>,
    /// Its figures.
    #[serde(flatten)]
    pub stats: LatencyStats,
    /// Where its time went: the checkout's wait, the queue behind the
    /// connection's earlier statements, the first and the last row.
    pub split: Option<LatencySplit>,
    /// Its anomalies now (latency, failure rate) against its own baseline,
    /// with their deviations; empty when it is itself.
    pub anomalies: Vec<StatementAnomaly>,
}

/// The performance of a group of statements (an operation or a table).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct GroupPerformance {
    /// The operation (`SELECT`) or table name (empty for none).
    pub name: String,
    /// The group's figures.
    #[serde(flatten)]
    pub stats: LatencyStats,
}

/// A statement whose recent p95 is well above its baseline.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Degradation {
    /// Its fingerprint.
    pub fingerprint: String,
    /// The statement, normalized.
    pub statement: String,
    /// p95 of the last 5 minutes, in milliseconds.
    pub recent_p95_ms: f64,
    /// p95 of the hour before, in milliseconds.
    pub baseline_p95_ms: f64,
    /// `recent_p95_ms / baseline_p95_ms`.
    pub factor: f64,
    /// Runs in the last 5 minutes.
    pub recent_samples: u64,
    /// Runs in the hour before.
    pub baseline_samples: u64,
}

/// Apdex over the window, against the slow threshold `T`: runs up to `T`
/// satisfy, up to `4 T` are tolerated, longer ones frustrate;
/// `score = (satisfied + tolerating / 2) / runs`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Apdex {
    /// `T`, the slow threshold, in milliseconds.
    pub threshold_ms: f64,
    /// Runs up to `T`.
    pub satisfied: u64,
    /// Runs over `T`, up to `4 T`.
    pub tolerating: u64,
    /// Runs over `4 T`.
    pub frustrated: u64,
    /// The Apdex score, 0 to 1; absent without runs.
    pub score: Option<f64>,
}

impl Apdex {
    fn of(w: &Window, threshold: Duration) -> Self {
        let satisfied = w.histogram.count_at_most(threshold);
        let within_4t = w.histogram.count_at_most(threshold.saturating_mul(4)).max(satisfied);
        let runs = w.histogram_count();
        Apdex {
            threshold_ms: threshold.as_secs_f64() * 1e3,
            satisfied,
            tolerating: within_4t - satisfied,
            frustrated: runs - within_4t.min(runs),
            score: (runs > 0).then(|| (satisfied as f64 + (within_4t - satisfied) as f64 / 2.0) / runs as f64),
        }
    }
}

/// Statement performance over a window
/// ([`PoolMonitor::query_performance`](crate::PoolMonitor::query_performance)).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct QueryPerformanceReport {
    /// The pool's name.
    pub pool: String,
    /// The window asked for, in minutes.
    pub window_minutes: u32,
    /// The time the figures actually cover, in seconds (less than the
    /// window while there is less history; edges are whole slots).
    pub covered_seconds: f64,
    /// Every statement together.
    pub overall: LatencyStats,
    /// Every statement together, as an Apdex against the slow threshold.
    pub apdex: Apdex,
    /// By operation, most total time first.
    pub by_operation: Vec<GroupPerformance>,
    /// By main table, most total time first.
    pub by_table: Vec<GroupPerformance>,
    /// By statement, most total time first, at most the limit asked for.
    pub by_statement: Vec<StatementPerformance>,
    /// Statements whose p95 over the last 5 minutes is at least the
    /// degradation factor times their p95 over the hour before.
    pub degraded: Vec<Degradation>,
    /// Statements anomalous now against their own baseline (the anomaly
    /// detector's last minute), most deviations first, whether or not they
    /// are in `by_statement`.
    pub anomalies: Vec<StatementAnomaly>,
}

/// What one statement contributes to a report.
pub(crate) struct StatementWindow<'a> {
    pub(crate) fingerprint: u64,
    pub(crate) statement: &'a str,
    pub(crate) operation: Operation,
    pub(crate) table: Option<&'a str>,
    pub(crate) window: Window,
}

/// What a performance report is made from: every statement's window and
/// the report's settings.
pub(crate) struct Windows<'a> {
    pub(crate) pool: &'a str,
    pub(crate) window_minutes: u32,
    pub(crate) slow_threshold: Duration,
    pub(crate) now: Instant,
    pub(crate) statements: Vec<StatementWindow<'a>>,
    /// At most this many statements are listed.
    pub(crate) limit: usize,
    pub(crate) degraded: Vec<Degradation>,
    pub(crate) anomalies: Vec<StatementAnomaly>,
}

/// Groups statement windows into a report.
pub(crate) fn report(windows: Windows<'_>) -> QueryPerformanceReport {
    let Windows {
        pool,
        window_minutes,
        slow_threshold,
        now,
        statements,
        limit,
        degraded,
        anomalies,
    } = windows;
    let mut overall = Window::default();
    let mut by_operation: BTreeMap<&'static str, Window> = BTreeMap::new();
    let mut by_table: BTreeMap<String, Window> = BTreeMap::new();
    let mut rows: Vec<(u64, StatementPerformance)> = Vec::new();
    for s in statements.iter().filter(|s| s.window.finished > 0) {
        overall.merge(&s.window);
        by_operation.entry(s.operation.as_str()).or_default().merge(&s.window);
        by_table
            .entry(s.table.unwrap_or("").to_owned())
            .or_default()
            .merge(&s.window);
        let fingerprint = hex(s.fingerprint);
        let marks = anomalies
            .iter()
            .filter(|a| a.fingerprint == fingerprint)
            .cloned()
            .collect();
        rows.push((
            s.window.total_ns,
            StatementPerformance {
                fingerprint,
                statement: s.statement.to_owned(),
                operation: s.operation,
                table: s.table.map(str::to_owned),
                stats: LatencyStats::of(&s.window),
                split: LatencySplit::of(s.window.finished, s.window.total_ns, &s.window.split),
                anomalies: marks,
            },
        ));
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let groups = |map: Vec<(String, Window)>| {
        let mut g: Vec<(u64, GroupPerformance)> = map
            .into_iter()
            .map(|(name, w)| {
                (
                    w.total_ns,
                    GroupPerformance {
                        name,
                        stats: LatencyStats::of(&w),
                    },
                )
            })
            .collect();
        g.sort_by_key(|r| std::cmp::Reverse(r.0));
        g.into_iter().map(|(_, g)| g).collect()
    };
    QueryPerformanceReport {
        pool: pool.to_owned(),
        window_minutes,
        covered_seconds: overall
            .since
            .map_or(0.0, |s| now.saturating_duration_since(s).as_secs_f64()),
        overall: LatencyStats::of(&overall),
        apdex: Apdex::of(&overall, slow_threshold),
        by_operation: groups(by_operation.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
        by_table: groups(by_table.into_iter().collect()),
        by_statement: rows.into_iter().take(limit).map(|(_, r)| r).collect(),
        degraded,
        anomalies,
    }
}

/// The degradation of one statement, if any: p95 of the last 5 minutes
/// against p95 of the hour before, each with at least `min_samples` runs.
pub(crate) fn degradation(
    fingerprint: u64,
    statement: &str,
    recent: &Window,
    baseline: &Window,
    factor: f64,
    min_samples: u64,
) -> Option<Degradation> {
    if recent.finished < min_samples || baseline.finished < min_samples {
        return None;
    }
    let (r, b) = (recent.p95()?, baseline.p95()?);
    let ratio = r.as_secs_f64() / b.as_secs_f64().max(1e-9);
    (ratio >= factor).then(|| Degradation {
        fingerprint: hex(fingerprint),
        statement: statement.to_owned(),
        recent_p95_ms: r.as_secs_f64() * 1e3,
        baseline_p95_ms: b.as_secs_f64() * 1e3,
        factor: ratio,
        recent_samples: recent.finished,
        baseline_samples: baseline.finished,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::histogram::bucket_of;

    #[test]
    fn apdex_counts_against_the_threshold() {
        let mut w = Window::default();
        for ms in [10u64, 20, 150, 300, 900] {
            w.histogram.add(bucket_of(ms * 1_000_000), 1);
        }
        let a = Apdex::of(&w, Duration::from_millis(100));
        assert_eq!((a.satisfied, a.tolerating, a.frustrated), (2, 2, 1));
        assert_eq!(a.score, Some(0.6));
        assert_eq!(Apdex::of(&Window::default(), Duration::from_millis(100)).score, None);
    }

    #[test]
    fn apdex_takes_any_threshold_even_the_largest() {
        let mut w = Window::default();
        w.histogram.add(bucket_of(u64::MAX), 3);
        let a = Apdex::of(&w, Duration::MAX);
        assert_eq!((a.satisfied, a.tolerating, a.frustrated), (3, 0, 0));
        let a = Apdex::of(&w, Duration::ZERO);
        assert_eq!((a.satisfied, a.frustrated), (0, 3));
    }

    /// Cumulative counters after `runs` more runs of `ms` each.
    fn after(mut c: Cumulative, runs: u64, ms: u64) -> Cumulative {
        let ns = ms * 1_000_000;
        c.finished += runs;
        c.total_ns += runs * ns;
        c.buckets[bucket_of(ns)] += runs;
        c.min_ns = c.min_ns.min(ns);
        c.max_ns = c.max_ns.max(ns);
        c
    }

    fn minutes(t0: Instant, m: u64) -> Instant {
        t0 + Duration::from_secs(60 * m)
    }

    #[test]
    fn windows_sum_the_slots_inside_them_plus_the_live_part() {
        let t0 = Instant::now();
        let h = StatementHistory::starting_at(t0);
        let mut c = Cumulative::default();
        for m in 1..=10u64 {
            c = after(c, 10, m); // minute m: 10 runs of m ms
            let extremes = Cumulative {
                min_ns: m * 1_000_000,
                max_ns: m * 1_000_000,
                ..c.clone()
            };
            h.snapshot(minutes(t0, m), Duration::from_secs(60), || extremes);
        }
        let live = after(
            Cumulative {
                min_ns: u64::MAX,
                max_ns: 0,
                ..c.clone()
            },
            5,
            50,
        );
        let now = minutes(t0, 10) + Duration::from_secs(30);
        let last3 = h.window(Some(now - Duration::from_secs(180)), now, Some(&live));
        // Slots ending at minutes 8, 9, 10 (runs of 8, 9, 10 ms) and the live 5 runs of 50 ms.
        assert_eq!(last3.finished, 35);
        assert_eq!(last3.total_ns, (80 + 90 + 100 + 250) * 1_000_000);
        assert_eq!((last3.min_ns, last3.max_ns), (Some(8_000_000), Some(50_000_000)));
        assert_eq!(last3.since, Some(minutes(t0, 7)));
        let stats = LatencyStats::of(&last3);
        assert!((stats.p50_ms.unwrap() - 9.0).abs() <= 9.0 * 0.0625, "{stats:?}");
        assert_eq!(stats.p99_ms, Some(50.0), "clamped to the exact maximum");
        // A day's window holds everything.
        assert_eq!(h.window(Some(now - KEEP), now, Some(&live)).finished, 105);
        assert_eq!(h.window(None, now, Some(&live)).finished, 105);
    }

    #[test]
    fn snapshots_closer_than_a_minute_are_skipped() {
        let t0 = Instant::now();
        let h = StatementHistory::starting_at(t0);
        let mut taken = 0;
        h.snapshot(t0 + Duration::from_secs(30), Duration::from_secs(60), || {
            taken += 1;
            Cumulative::default()
        });
        assert_eq!(taken, 0, "extremes are only taken when a slot is made");
    }

    #[test]
    fn old_slots_are_merged_into_quarter_hours_and_dropped_after_a_day() {
        let t0 = Instant::now();
        let h = StatementHistory::starting_at(t0);
        let mut c = Cumulative::default();
        for m in 1..=(26 * 60u64) {
            c = after(c, 1, 1);
            h.snapshot(minutes(t0, m), Duration::from_secs(60), || c.clone());
        }
        let inner = h.inner.lock().unwrap();
        let n = inner.slots.len();
        assert!(n <= 60 + 24 * 4 + 2, "{n} slots");
        let now = minutes(t0, 26 * 60);
        assert!(inner.slots.iter().all(|s| now.saturating_duration_since(s.end) <= KEEP));
        drop(inner);
        let day = h.window(Some(now - KEEP), now, None);
        assert!((1430..=1440).contains(&day.finished), "{}", day.finished);
        let hour = h.window(Some(now - FINE), now, None);
        assert_eq!(hour.finished, 60);
    }

    #[test]
    fn degradation_needs_samples_and_the_factor() {
        let mut recent = Window::default();
        let mut baseline = Window::default();
        let t = Instant::now();
        let slot = |finished: u64, ns: u64| Slot {
            start: t,
            end: t,
            finished,
            errors: 0,
            total_ns: finished * ns,
            rows: 0,
            split: SplitSums::default(),
            min_ns: ns,
            max_ns: ns,
            buckets: Vec::new(),
        };
        recent.add(&slot(30, 400_000_000));
        recent.histogram.add(bucket_of(400_000_000), 30);
        baseline.add(&slot(300, 100_000_000));
        baseline.histogram.add(bucket_of(100_000_000), 300);
        let d = degradation(1, "SELECT ?", &recent, &baseline, 2.0, 20).unwrap();
        assert!((d.factor - 4.0).abs() < 0.5, "{}", d.factor);
        assert!(degradation(1, "SELECT ?", &recent, &baseline, 5.0, 20).is_none());
        assert!(degradation(1, "SELECT ?", &recent, &baseline, 2.0, 31).is_none());
    }

    #[test]
    fn the_split_of_a_window_is_its_slots_and_live_part_added_and_a_mean_per_run() {
        let t = Instant::now();
        let history = StatementHistory::starting_at(t);
        let mut first = Cumulative {
            finished: 4,
            total_ns: 40_000_000,
            ..Cumulative::default()
        };
        first.split = SplitSums {
            wait_ns: 8_000_000,
            queued_ns: 2_000_000,
            first_row_ns: 0,
            first_rows: 0,
        };
        history.snapshot(t + Duration::from_secs(60), Duration::from_secs(60), || first.clone());
        let mut live = first.clone();
        live.finished += 1;
        live.total_ns += 10_000_000;
        live.split.first_row_ns += 3_000_000;
        live.split.first_rows += 1;
        let w = history.window(None, t + Duration::from_secs(90), Some(&live));
        let split = LatencySplit::of(w.finished, w.total_ns, &w.split).expect("runs");
        assert_eq!(split.checkout_wait_ms, 8.0 / 5.0);
        assert_eq!(split.queued_ms, 2.0 / 5.0);
        assert_eq!((split.first_row_ms, split.first_row_runs), (Some(3.0), 1));
        assert_eq!(split.last_row_ms, 10.0);
        assert!(LatencySplit::of(0, 0, &SplitSums::default()).is_none());
    }
}
