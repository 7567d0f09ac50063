//! [`RequestDbStats`]: the database statistics of one request, current on
//! the thread while the request's future is polled. The layer opens and
//! reads the scope; the funnel adds each statement to it.

use std::cell::RefCell;
use std::fmt;
use std::panic::Location;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Serialize;

use crate::stats::routes::intern_route;

thread_local! {
    /// The scope of the request whose future is being polled on this
    /// thread. A request's scope is moved in for each poll and back out
    /// after it (as tokio's `task_local!` does, without the wrapping future
    /// and the clone it needs): statements on the request's task see it,
    /// statements on tasks it spawned do not.
    static CURRENT: RefCell<Option<Arc<Scope>>> = const { RefCell::new(None) };
}

/// Runs `f` with the scope in `slot` current on this thread: the scope is
/// moved in and, with whatever was current before (an outer layer's
/// request), moved back when `f` returns or unwinds.
pub(crate) fn within<R>(slot: &mut Option<Arc<Scope>>, f: impl FnOnce() -> R) -> R {
    struct Back<'a>(&'a mut Option<Arc<Scope>>);
    impl Drop for Back<'_> {
        fn drop(&mut self) {
            let _ = CURRENT.try_with(|current| std::mem::swap(&mut *current.borrow_mut(), self.0));
        }
    }
    if CURRENT
        .try_with(|current| std::mem::swap(&mut *current.borrow_mut(), slot))
        .is_err()
    {
        // The thread is being torn down: run without a scope.
        return f();
    }
    let _back = Back(slot);
    f()
}

/// `f` of the current scope, if there is one.
#[inline]
fn with_current<R>(f: impl FnOnce(&Arc<Scope>) -> R) -> Option<R> {
    CURRENT
        .try_with(|current| current.try_borrow().ok().and_then(|scope| scope.as_ref().map(f)))
        .ok()
        .flatten()
}

/// Set once a layer has been made: until then statements skip the
/// scope lookup altogether.
static LAYER_IN_USE: AtomicBool = AtomicBool::new(false);

pub(crate) fn layer_created() {
    LAYER_IN_USE.store(true, Relaxed);
}

/// Set once a layer looks for redundant statements: until then statements
/// skip hashing their parameters altogether.
static PARAMS_WANTED: AtomicBool = AtomicBool::new(false);

pub(crate) fn params_wanted_somewhere() {
    PARAMS_WANTED.store(true, Relaxed);
}

/// Whether a statement should note its parameters' hash (one load when no
/// layer looks for redundant statements).
#[inline(always)]
pub(crate) fn params_wanted() -> bool {
    PARAMS_WANTED.load(Relaxed)
}

/// Set once a layer tags statements with their route: until then
/// statements skip the scope lookup for it.
static COMMENTS_WANTED: AtomicBool = AtomicBool::new(false);

pub(crate) fn comments_wanted_somewhere() {
    COMMENTS_WANTED.store(true, Relaxed);
}

/// The sqlcommenter pair that tags the statements of the request running
/// on this task (`route='GET%20%2Fusers%2F%7Bid%7D'`), made once per request;
/// none outside a request, without a route, or where its layer does not
/// tag (one load when no layer does).
#[inline(always)]
pub(crate) fn sql_comment() -> Option<Arc<str>> {
    if !COMMENTS_WANTED.load(Relaxed) {
        return None;
    }
    current_comment()
}

#[cold]
#[inline(never)]
fn current_comment() -> Option<Arc<str>> {
    with_current(|scope| {
        if !scope.comments_wanted {
            return None;
        }
        let route = scope.route.as_deref()?;
        Some(
            scope
                .comment
                .get_or_init(|| crate::sql::comment_pair("route", route).into())
                .clone(),
        )
    })
    .flatten()
}

/// Distinct (statement, parameters) pairs noted per request; more are not.
const PARAM_PAIRS: usize = 64;

/// Notes that the statement `fingerprint` was sent with parameters whose
/// hash `hash` makes (only in a request whose layer looks for redundant
/// statements). The hash is compared within the request, never kept past
/// it and never shown.
#[cold]
#[inline(never)]
pub(crate) fn note_params(fingerprint: impl FnOnce() -> u64, hash: impl FnOnce() -> u64) {
    with_current(|scope| {
        if scope.repeats_wanted {
            scope.note_params(fingerprint(), hash());
        }
    });
}

/// Distinct fingerprints counted per request; more are counted together.
const SLOTS: usize = 32;

/// The statistics of one request, filled while its future runs.
pub(crate) struct Scope {
    statements: AtomicU64,
    busy_ns: AtomicU64,
    /// The union of the statements' intervals, kept as the time covered
    /// before the current block of overlapping statements, and that block
    /// (nanoseconds on [`since_start`](crate::units::since_start)'s
    /// scale); with the first statement's start, which caps the union at
    /// the span from it to the last end. Statements end in order on one
    /// task, so plain loads and stores do.
    covered_before: AtomicU64,
    block_start: AtomicU64,
    block_end: AtomicU64,
    first_start: AtomicU64,
    errors: AtomicU64,
    slow: AtomicU64,
    /// Fingerprint (0: free) and how often it ran, open addressing.
    fingerprints: [(AtomicU64, AtomicU32); SLOTS],
    /// Runs of fingerprints that found no free slot.
    other: AtomicU64,
    /// The most runs of one fingerprint so far, so that a request with no
    /// repeat past the N+1 threshold skips the table at its end.
    most_runs: AtomicU32,
    route: Option<Arc<str>>,
    route_id: u32,
    /// Reads this long or longer (nanoseconds) are looked at for runs of
    /// serial reads; `u64::MAX`: none.
    serial_each: u64,
    /// Whether a run of serial reads is open: a write then closes it (and
    /// takes the lock only then).
    serial_open: AtomicBool,
    /// Whether any read was over the floor: the request's end takes the
    /// lock only then.
    serial_seen: AtomicBool,
    serial: Mutex<SerialRuns>,
    /// Whether statements note their parameters' hash, to find the same
    /// statement sent twice with the same parameters.
    repeats_wanted: bool,
    /// (fingerprint, parameters' hash, runs); at most [`PARAM_PAIRS`].
    params: Mutex<Vec<(u64, u64, u32)>>,
    /// Whether statements carry the request's route as a SQL comment, and
    /// its pair (`route='…'`), made at the first statement.
    comments_wanted: bool,
    comment: OnceLock<Arc<str>>,
    /// The `get()` call site of the request's first checkout: where its
    /// patterns (N+1, redundant, serial reads) are said to come from.
    site: OnceLock<&'static Location<'static>>,
}

/// Reads of one request that ran one after another, none overlapping the
/// one before: the current run and the one that could have saved most.
#[derive(Default)]
struct SerialRuns {
    current: SerialRun,
    best: SerialRun,
}

/// Consecutive reads of one request, each over the floor, that did not
/// overlap: run together they would have taken as long as the longest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SerialRun {
    /// The reads in the run.
    pub(crate) reads: u32,
    /// Their durations summed, and the longest (nanoseconds).
    pub(crate) summed_ns: u64,
    pub(crate) longest_ns: u64,
    /// When the last one ended (nanoseconds on `since_start`'s scale).
    end: u64,
    /// The first four distinct statements (0: none).
    pub(crate) fingerprints: [u64; 4],
}

impl SerialRun {
    /// What running the reads together would have saved.
    pub(crate) fn saving_ns(&self) -> u64 {
        self.summed_ns - self.longest_ns
    }

    fn push(&mut self, fingerprint: u64, nanos: u64, end: u64) {
        self.reads += 1;
        self.summed_ns = self.summed_ns.saturating_add(nanos);
        self.longest_ns = self.longest_ns.max(nanos);
        self.end = end;
        if !self.fingerprints.contains(&fingerprint) {
            if let Some(free) = self.fingerprints.iter_mut().find(|f| **f == 0) {
                *free = fingerprint;
            }
        }
    }
}

impl Scope {
    pub(crate) fn new(route: Option<Arc<str>>) -> Self {
        let route_id = route.as_deref().map_or(0, intern_route);
        Scope::interned(route, route_id)
    }

    /// A scope for `route`, whose interned id is `route_id` (0: none).
    pub(crate) fn interned(route: Option<Arc<str>>, route_id: u32) -> Self {
        Scope {
            statements: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            covered_before: AtomicU64::new(0),
            block_start: AtomicU64::new(0),
            block_end: AtomicU64::new(0),
            first_start: AtomicU64::new(u64::MAX),
            errors: AtomicU64::new(0),
            slow: AtomicU64::new(0),
            fingerprints: std::array::from_fn(|_| (AtomicU64::new(0), AtomicU32::new(0))),
            other: AtomicU64::new(0),
            most_runs: AtomicU32::new(0),
            route,
            route_id,
            serial_each: u64::MAX,
            serial_open: AtomicBool::new(false),
            serial_seen: AtomicBool::new(false),
            serial: Mutex::default(),
            repeats_wanted: false,
            params: Mutex::default(),
            comments_wanted: false,
            comment: OnceLock::new(),
            site: OnceLock::new(),
        }
    }

    /// Looks for the same statement sent twice with the same parameters.
    pub(crate) fn redundant_statements(mut self, on: bool) -> Self {
        self.repeats_wanted = on;
        self
    }

    /// Tags the request's statements with its route, as a SQL comment.
    pub(crate) fn sql_comments(mut self, on: bool) -> Self {
        self.comments_wanted = on;
        self
    }

    fn note_params(&self, fingerprint: u64, hash: u64) {
        let mut pairs = self.params.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, runs)) = pairs.iter_mut().find(|(fp, h, _)| (*fp, *h) == (fingerprint, hash)) {
            *runs = runs.saturating_add(1);
        } else if pairs.len() < PARAM_PAIRS {
            pairs.push((fingerprint, hash, 1));
        }
    }

    /// The statements sent more than once with the same parameters, with
    /// the most runs of one parameter set.
    pub(crate) fn redundant(&self) -> Vec<(u64, u64)> {
        if !self.repeats_wanted {
            return Vec::new();
        }
        let pairs = self.params.lock().unwrap_or_else(|e| e.into_inner());
        let mut found: Vec<(u64, u64)> = Vec::new();
        for &(fp, _, runs) in pairs.iter().filter(|(_, _, runs)| *runs > 1) {
            match found.iter_mut().find(|(f, _)| *f == fp) {
                Some((_, most)) => *most = (*most).max(u64::from(runs)),
                None => found.push((fp, u64::from(runs))),
            }
        }
        found
    }

    /// Looks at reads of `each` or longer for runs of serial reads.
    pub(crate) fn serial_reads_over(mut self, each: Duration) -> Self {
        self.serial_each = crate::units::saturating_nanos(each);
        self
    }

    /// A read of `nanos` ending at `end`, over the floor: it extends the
    /// current run if it began after the run's last read ended, else (it
    /// ran beside it) it begins a run of its own.
    #[cold]
    fn serial_read(&self, fingerprint: u64, end: u64, nanos: u64) {
        let mut runs = self.serial.lock().unwrap_or_else(|e| e.into_inner());
        let runs = &mut *runs;
        if runs.current.reads > 0 && end.saturating_sub(nanos) < runs.current.end {
            runs.current = SerialRun::default();
        }
        runs.current.push(fingerprint.max(1), nanos, end);
        self.serial_open.store(true, Relaxed);
        self.serial_seen.store(true, Relaxed);
        if runs.current.reads >= 2 && runs.current.saving_ns() > runs.best.saving_ns() {
            runs.best = runs.current;
        }
    }

    /// A write ends the current run: what came before it may be what it
    /// needed.
    #[cold]
    fn serial_break(&self) {
        self.serial.lock().unwrap_or_else(|e| e.into_inner()).current = SerialRun::default();
        self.serial_open.store(false, Relaxed);
    }

    /// The run of serial reads that could have saved most, if two or more
    /// reads ran one after another.
    pub(crate) fn serial_run(&self) -> Option<SerialRun> {
        if !self.serial_seen.load(Relaxed) {
            return None;
        }
        let best = self.serial.lock().unwrap_or_else(|e| e.into_inner()).best;
        (best.reads >= 2).then_some(best)
    }

    fn record(&self, fingerprint: u64, end: u64, nanos: u64, failed: bool, slow: bool, read: bool) {
        if read {
            if nanos >= self.serial_each {
                self.serial_read(fingerprint, end, nanos);
            }
        } else if self.serial_open.load(Relaxed) {
            self.serial_break();
        }
        self.statements.fetch_add(1, Relaxed);
        self.busy_ns.fetch_add(nanos, Relaxed);
        self.cover(end.saturating_sub(nanos), end);
        if failed {
            self.errors.fetch_add(1, Relaxed);
        }
        if slow {
            self.slow.fetch_add(1, Relaxed);
        }
        // 0 marks a free slot; a fingerprint of 0 is stored as 1.
        let fingerprint = fingerprint.max(1);
        let start = (fingerprint as usize) % SLOTS;
        for i in 0..SLOTS {
            let (fp, count) = &self.fingerprints[(start + i) % SLOTS];
            let seen = fp.load(Relaxed);
            if seen == fingerprint
                || (seen == 0
                    && fp
                        .compare_exchange(0, fingerprint, Relaxed, Relaxed)
                        .map_or_else(|now| now == fingerprint, |_| true))
            {
                let runs = count.fetch_add(1, Relaxed) + 1;
                if runs > self.most_runs.load(Relaxed) {
                    self.most_runs.store(runs, Relaxed);
                }
                return;
            }
        }
        self.other.fetch_add(1, Relaxed);
    }

    /// Adds the interval `start..end` to the union. A statement that began
    /// before the current block ended (pipelined behind it, or run
    /// concurrently) joins it; one that began after closes it.
    fn cover(&self, start: u64, end: u64) {
        if start < self.first_start.load(Relaxed) {
            self.first_start.store(start, Relaxed);
        }
        let (block_start, block_end) = (self.block_start.load(Relaxed), self.block_end.load(Relaxed));
        if block_end == 0 || start >= block_end {
            self.covered_before
                .store(self.covered_before.load(Relaxed) + (block_end - block_start), Relaxed);
            self.block_start.store(start, Relaxed);
        } else if start < block_start {
            self.block_start.store(start, Relaxed);
        }
        self.block_end.store(end.max(block_end), Relaxed);
    }

    /// The time in which at least one of the request's statements ran.
    fn database_time(&self) -> Duration {
        let (start, end) = (self.block_start.load(Relaxed), self.block_end.load(Relaxed));
        let union = self.covered_before.load(Relaxed) + end.saturating_sub(start);
        let span = end.saturating_sub(self.first_start.load(Relaxed));
        Duration::from_nanos(union.min(span))
    }

    pub(crate) fn snapshot(&self) -> RequestDbSnapshot {
        let mut repeated: Vec<(u64, u64)> = self
            .fingerprints
            .iter()
            .map(|(fp, count)| (fp.load(Relaxed), u64::from(count.load(Relaxed))))
            .filter(|&(fp, count)| fp != 0 && count > 1)
            .collect();
        repeated.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        RequestDbSnapshot {
            route: self.route.as_deref().map(str::to_owned),
            statements: self.statements.load(Relaxed),
            database_time: self.database_time(),
            summed_statement_time: Duration::from_nanos(self.busy_ns.load(Relaxed)),
            errors: self.errors.load(Relaxed),
            slow: self.slow.load(Relaxed),
            repeated: repeated
                .into_iter()
                .map(|(fingerprint, runs)| RepeatedStatement { fingerprint, runs })
                .collect(),
        }
    }

    /// Whether a statement of the request failed.
    pub(crate) fn failed(&self) -> bool {
        self.errors.load(Relaxed) > 0
    }

    /// Statements so far, and the time in which at least one ran.
    pub(crate) fn totals(&self) -> (u64, Duration) {
        (self.statements.load(Relaxed), self.database_time())
    }

    /// The fingerprints run more than `runs` times, with their runs.
    pub(crate) fn repeated_over(&self, runs: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        // None repeated that often: nothing to look through.
        let none = u64::from(self.most_runs.load(Relaxed)) <= runs;
        self.fingerprints[..if none { 0 } else { SLOTS }]
            .iter()
            .map(|(fp, count)| (fp.load(Relaxed), u64::from(count.load(Relaxed))))
            .filter(move |&(fp, count)| fp != 0 && count > runs)
    }

    pub(crate) fn route(&self) -> Option<&Arc<str>> {
        self.route.as_ref()
    }

    /// Where the request's patterns come from: its route and its first
    /// checkout's call site.
    pub(crate) fn origin(&self) -> crate::stats::Origin<'_> {
        crate::stats::Origin {
            route: self.route.as_ref(),
            site: self.site.get().copied(),
        }
    }
}

/// The id of the route of the request running on this task (0: none).
pub(crate) fn current_route_id() -> u32 {
    if !LAYER_IN_USE.load(Relaxed) {
        return 0;
    }
    with_current(|scope| scope.route_id).unwrap_or(0)
}

/// A checkout at `site` began: the route id of the request running on this
/// task (0: none), for the checkout to remember who holds its connection;
/// the request keeps its first checkout's site.
#[inline]
pub(crate) fn checkout_began(site: &'static Location<'static>) -> u32 {
    if !LAYER_IN_USE.load(Relaxed) {
        return 0;
    }
    with_current(|scope| {
        if scope.site.get().is_none() {
            let _ = scope.site.set(site);
        }
        scope.route_id
    })
    .unwrap_or(0)
}

/// Adds a statement to the current request's statistics, if a request is
/// running on this task; returns the request's route id (0: none).
#[inline(always)]
pub(crate) fn record_statement(
    fingerprint: u64,
    end: quanta::Instant,
    nanos: u64,
    failed: bool,
    slow: bool,
    read: bool,
) -> u32 {
    if !LAYER_IN_USE.load(Relaxed) {
        return 0;
    }
    record_in_scope(fingerprint, end, nanos, failed, slow, read)
}

#[cold]
#[inline(never)]
fn record_in_scope(fingerprint: u64, end: quanta::Instant, nanos: u64, failed: bool, slow: bool, read: bool) -> u32 {
    with_current(|scope| {
        scope.record(fingerprint, crate::units::since_start(end), nanos, failed, slow, read);
        scope.route_id
    })
    .unwrap_or(0)
}

/// The database statistics of one HTTP request that passed through
/// [`DbMonitorLayer`](crate::DbMonitorLayer).
///
/// Every statement run on a monitored pool inside the request's future
/// (the handler and everything it awaits) adds to it. Statements run on
/// tasks the handler spawns are not counted here (they are in the pool's
/// stores as usual): a task-local scope does not follow `tokio::spawn`.
///
/// Handlers find it with [`RequestDbStats::current`], in axum by taking
/// `RequestDbStats` (or `Option<RequestDbStats>`) as an extractor, and in
/// the request's extensions when the layer's `request_extension(true)`
/// puts it there.
///
/// # Example
///
/// ```no_run
/// use db_monitor::RequestDbStats;
///
/// # async fn handler() {
/// // … run statements …
/// if let Some(stats) = RequestDbStats::current() {
///     let s = stats.snapshot();
///     println!("{} statements, {:?} in the database", s.statements, s.database_time);
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct RequestDbStats(pub(crate) Arc<Scope>);

impl fmt::Debug for RequestDbStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestDbStats").field(&self.snapshot()).finish()
    }
}

impl RequestDbStats {
    /// The statistics of the request whose future is running on this
    /// task, if any.
    pub fn current() -> Option<RequestDbStats> {
        with_current(|scope| RequestDbStats(scope.clone()))
    }

    /// What the request did in the database so far.
    pub fn snapshot(&self) -> RequestDbSnapshot {
        self.0.snapshot()
    }
}

/// A statement run more than once in one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RepeatedStatement {
    /// Its fingerprint.
    #[serde(serialize_with = "crate::units::ser_hex")]
    pub fingerprint: u64,
    /// How many times it ran.
    pub runs: u64,
}

/// What one request did in the database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RequestDbSnapshot {
    /// The matched route (e.g. axum's `MatchedPath`), never the raw path.
    pub route: Option<String>,
    /// Statements run.
    pub statements: u64,
    /// The time in which at least one of them ran: the union of their
    /// intervals, so that statements pipelined on one connection or run
    /// concurrently count once, and it never exceeds the request's span.
    #[serde(serialize_with = "crate::units::ser_ms", rename = "database_time_ms")]
    pub database_time: Duration,
    /// Their durations summed: over the database time when they overlapped
    /// (each pipelined statement's duration includes its wait behind the
    /// ones before it).
    #[serde(serialize_with = "crate::units::ser_ms", rename = "summed_statement_time_ms")]
    pub summed_statement_time: Duration,
    /// Statements that failed.
    pub errors: u64,
    /// Statements at or over the slow threshold.
    pub slow: u64,
    /// Statements run more than once, most runs first (at most 32 distinct
    /// statements are told apart per request).
    pub repeated: Vec<RepeatedStatement>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The union of `intervals` (start, end in ms), recorded in the order
    /// of their ends, as statements end.
    fn union(mut intervals: Vec<(u64, u64)>) -> Duration {
        intervals.sort_by_key(|&(_, end)| end);
        let scope = Scope::new(None);
        for (start, end) in intervals {
            scope.record(1, end * 1_000_000, (end - start) * 1_000_000, false, false, true);
        }
        scope.totals().1
    }

    #[test]
    fn database_time_is_the_union_of_the_statements_intervals() {
        let ms = Duration::from_millis;
        // One after another: the sum.
        assert_eq!(union(vec![(0, 10), (12, 20), (30, 31)]), ms(19));
        // Pipelined: three sent at once, each answered after the one
        // before; their durations sum to 60 ms, the request waited 30.
        assert_eq!(union(vec![(100, 110), (100, 120), (100, 130)]), ms(30));
        // A short statement inside a long one ending later.
        assert_eq!(union(vec![(5, 6), (0, 10)]), ms(10));
        // A long one spanning two earlier blocks: never over the span.
        assert_eq!(union(vec![(0, 2), (5, 6), (1, 10)]), ms(10));
        assert_eq!(union(vec![]), Duration::ZERO);
    }

    #[test]
    fn serial_reads_are_runs_of_reads_over_the_floor_that_did_not_overlap() {
        let ms = |n: u64| n * 1_000_000;
        let scope = Scope::new(None).serial_reads_over(Duration::from_millis(30));
        // (fingerprint, start, end in ms, read)
        let run = |scope: &Scope, statements: &[(u64, u64, u64, bool)]| {
            for &(fp, start, end, read) in statements {
                scope.record(fp, ms(end), ms(end - start), false, false, read);
            }
        };
        // Three 40 ms reads one after another: 80 ms to save.
        run(&scope, &[(1, 0, 40, true), (2, 41, 81, true), (3, 82, 122, true)]);
        let best = scope.serial_run().expect("a run");
        assert_eq!((best.reads, best.saving_ns()), (3, ms(80)));
        assert_eq!(best.fingerprints, [1, 2, 3, 0]);

        // The same three sent together (pipelined): each overlaps the one
        // before, no run of two.
        let together = Scope::new(None).serial_reads_over(Duration::from_millis(30));
        run(&together, &[(1, 0, 40, true), (2, 0, 80, true), (3, 0, 120, true)]);
        assert_eq!(together.serial_run(), None);

        // Under the floor, or with a write between: none.
        let short = Scope::new(None).serial_reads_over(Duration::from_millis(30));
        run(&short, &[(1, 0, 10, true), (2, 11, 21, true), (3, 22, 32, true)]);
        assert_eq!(short.serial_run(), None);
        let written = Scope::new(None).serial_reads_over(Duration::from_millis(30));
        run(&written, &[(1, 0, 40, true), (9, 41, 42, false), (2, 43, 83, true)]);
        assert_eq!(written.serial_run(), None);
        // Fast reads between do not break a run.
        let mixed = Scope::new(None).serial_reads_over(Duration::from_millis(30));
        run(&mixed, &[(1, 0, 40, true), (7, 41, 42, true), (2, 43, 83, true)]);
        assert_eq!(mixed.serial_run().map(|r| r.reads), Some(2));
        // Off by default.
        let off = Scope::new(None);
        run(&off, &[(1, 0, 40, true), (2, 41, 81, true)]);
        assert_eq!(off.serial_run(), None);
    }

    #[test]
    fn redundant_statements_are_pairs_of_statement_and_parameters_seen_twice() {
        let scope = Scope::new(None).redundant_statements(true);
        scope.note_params(1, 10);
        scope.note_params(1, 11);
        scope.note_params(2, 20);
        assert!(scope.redundant().is_empty(), "other parameters, other statements");
        scope.note_params(1, 11);
        scope.note_params(1, 11);
        scope.note_params(1, 10);
        assert_eq!(scope.redundant(), vec![(1, 3)], "the most runs of one parameter set");
        let off = Scope::new(None);
        off.note_params(1, 10);
        off.note_params(1, 10);
        assert!(off.redundant().is_empty(), "off by default");
    }

    #[test]
    fn the_summed_time_is_kept_and_named_apart() {
        let scope = Scope::new(None);
        for end in [10, 20, 30] {
            scope.record(1, end * 1_000_000, end * 1_000_000, false, false, true);
        }
        let snapshot = scope.snapshot();
        assert_eq!(snapshot.database_time, Duration::from_millis(30));
        assert_eq!(snapshot.summed_statement_time, Duration::from_millis(60));
    }
}
