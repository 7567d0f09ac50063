//! The pool's own bookkeeping, shared by its manager, connections and
//! checkouts: connection ids and counts, checkouts in use
//! and their peak, the connect streak, the canceller; and the funnel's
//! sink that its events go to.

use std::fmt;
use std::panic::Location;
use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release, SeqCst},
};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use tokio_postgres::CancelToken;

use crate::classify::{ErrorKind, SqlStateCode};
use crate::funnel::{record, Event, Outcome, Sink};

/// Sends a cancel request for a connection's running statement.
pub(crate) type Canceller = Arc<dyn Fn(CancelToken) + Send + Sync>;

/// Opens the server view's connection: the pool's server, settings and
/// TLS, with the view's `application_name` and timeouts; its connection
/// task already spawned.
pub(crate) type SideConnect = Arc<
    dyn Fn(
            crate::config::ServerView,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<tokio_postgres::Client, tokio_postgres::Error>> + Send>,
        > + Send
        + Sync,
>;

/// How long a failed connect is evidence that the database is out of
/// reach ([`PoolShared::known_down`]). The probe for the server's return
/// connects at least every 2 s, so that a database still down stays
/// known down.
pub(crate) const DOWN_EVIDENCE: Duration = Duration::from_secs(5);

pub(crate) struct PoolShared {
    /// Where this pool's events go.
    pub(crate) sink: Sink,
    pub(crate) canceller: Canceller,
    /// Connections that passed the customizer (connected and set up).
    pub(crate) ready: AtomicU64,
    /// `max_size` of the bb8 pool, known once it is built.
    pub(crate) max_size: AtomicU32,
    /// `min_idle` of the bb8 pool, known once it is built.
    pub(crate) min_idle: AtomicU32,
    /// Connections checked out through the monitored pool now.
    pub(crate) in_use: AtomicU32,
    /// The most checked out at once since the last trend sample.
    pub(crate) peak_in_use: AtomicU32,
    /// The time checkouts were held, in nanoseconds, summed at each return
    /// (Little's law in the exhaustion forecast).
    pub(crate) held_nanos: AtomicU64,
    /// When the pool state was last published by a checkout (nanoseconds
    /// since `epoch`, plus one; zero: never).
    last_publish: AtomicU64,
    next_connection_id: AtomicU64,
    connections: Mutex<Vec<Weak<ConnStats>>>,
    pub(crate) consecutive_connect_failures: AtomicU32,
    /// When the last connect failed (milliseconds since `epoch`, plus one;
    /// zero: never): a streak this old is no evidence of now.
    last_connect_failure: AtomicU64,
    last_connect_error: Mutex<Option<String>>,
    /// Connections whose link to the server is open (connected, their
    /// background task not ended), whoever holds them.
    open: AtomicU32,
    /// Woken when the pool becomes known down (see
    /// [`known_down`](Self::known_down)): checkouts waiting then fail.
    pub(crate) down: tokio::sync::Notify,
    /// A task probes for the server's return (see `pool::probe`).
    pub(crate) probing: AtomicBool,
    /// When the pool was made, on the statement clock.
    pub(crate) epoch: quanta::Instant,
    /// How the server view connects (set by the manager).
    pub(crate) side_connect: OnceLock<SideConnect>,
}

impl fmt::Debug for PoolShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolShared")
            .field("name", &self.sink.name)
            .finish_non_exhaustive()
    }
}

impl PoolShared {
    pub(crate) fn new(sink: Sink, canceller: Canceller) -> Self {
        PoolShared {
            sink,
            canceller,
            ready: AtomicU64::new(0),
            max_size: AtomicU32::new(0),
            min_idle: AtomicU32::new(0),
            last_publish: AtomicU64::new(0),
            in_use: AtomicU32::new(0),
            peak_in_use: AtomicU32::new(0),
            held_nanos: AtomicU64::new(0),
            next_connection_id: AtomicU64::new(1),
            connections: Mutex::new(Vec::new()),
            consecutive_connect_failures: AtomicU32::new(0),
            last_connect_failure: AtomicU64::new(0),
            last_connect_error: Mutex::new(None),
            open: AtomicU32::new(0),
            down: tokio::sync::Notify::new(),
            probing: AtomicBool::new(false),
            epoch: crate::units::now(),
            side_connect: OnceLock::new(),
        }
    }

    /// The pool's name.
    pub(crate) fn name(&self) -> &Arc<str> {
        &self.sink.name
    }

    /// Hands `event` to the funnel.
    #[inline]
    pub(crate) fn record(&self, event: Event<'_>) {
        record(&self.sink, event);
    }

    pub(crate) fn new_connection(&self) -> Arc<ConnStats> {
        let stats = Arc::new(ConnStats::new(self.next_connection_id.fetch_add(1, Relaxed)));
        let mut list = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|c| c.strong_count() > 0);
        list.push(Arc::downgrade(&stats));
        stats
    }

    pub(crate) fn live_connections(&self) -> Vec<Arc<ConnStats>> {
        let list = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        list.iter().filter_map(Weak::upgrade).collect()
    }

    /// Whether a checkout at `now` (nanoseconds since `epoch`) should
    /// publish the pool state: the first one does, then at most one per
    /// `PUBLISH_EVERY`.
    pub(crate) fn publish_due(&self, now: u64) -> bool {
        const PUBLISH_EVERY: u64 = 250_000_000;
        let last = self.last_publish.load(Relaxed);
        (last == 0 || now.saturating_sub(last) >= PUBLISH_EVERY)
            && self
                .last_publish
                .compare_exchange(last, now.max(1), Relaxed, Relaxed)
                .is_ok()
    }

    pub(crate) fn connection_ready(&self) {
        self.ready.fetch_add(1, Relaxed);
    }

    /// Counts a connect: a success ends the streak of failures, a failure
    /// extends it and is remembered as the last connect error (and wakes
    /// the waiting checkouts if that leaves the pool known down).
    pub(crate) fn connect_ended(&self, error: Option<&tokio_postgres::Error>) {
        match error {
            None => self.consecutive_connect_failures.store(0, Relaxed),
            Some(error) => {
                {
                    let mut last = self.last_connect_error.lock().unwrap_or_else(|e| e.into_inner());
                    *last = Some(self.sink.describe(error));
                }
                self.last_connect_failure.store(self.millis_since_epoch() + 1, Relaxed);
                self.consecutive_connect_failures.fetch_add(1, Relaxed);
                if self.known_down() {
                    self.down.notify_waiters();
                }
            }
        }
    }

    /// The last connect error, as text.
    pub(crate) fn last_connect_error(&self) -> Option<String> {
        self.last_connect_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A connection's link to the server opened.
    pub(crate) fn link_opened(&self) {
        self.open.fetch_add(1, Relaxed);
    }

    /// A connection's link to the server ended (its background task did).
    pub(crate) fn link_closed(&self) {
        let _ = self.open.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
        if self.known_down() {
            self.down.notify_waiters();
        }
    }

    /// The pool's room for a pending checkout, and its connections checked
    /// out, now.
    #[inline]
    pub(crate) fn room(&self) -> crate::stats::Room {
        let in_use = self.in_use.load(Relaxed);
        crate::stats::Room {
            free: self.max_size.load(Relaxed).saturating_sub(in_use),
            in_use,
        }
    }

    /// Connections checked out now, and checkouts pending for one.
    pub(crate) fn busy(&self) -> u64 {
        u64::from(self.in_use.load(Relaxed)) + u64::from(self.sink.stores.load.pending())
    }

    /// Whether a checkout that did not get a connection at once waits for
    /// the pool: every connection is checked out, or connects are failing.
    /// (Otherwise it is in bb8's validity ping, or opening a connection
    /// for a pool with room.)
    pub(crate) fn must_wait(&self) -> bool {
        self.in_use.load(Relaxed) >= self.max_size.load(Relaxed)
            || self.consecutive_connect_failures.load(Relaxed) > 0
            || self.open.load(Relaxed) == 0
    }

    /// Whether the database is known to be out of reach: no connection of
    /// the pool is open, connects have failed since the last success, and
    /// the last of them failed within [`DOWN_EVIDENCE`]. A checkout then
    /// can only wait for a connect that is failing, so it fails at once
    /// instead (when [`fail_fast`](crate::MonitorConfig::fail_fast) is on).
    /// A pool with an open connection, even a busy one, is not down: that
    /// connection may come back. Nor is a pool whose failures are older
    /// (one connect refused in a spike, long before its last connection
    /// closed): its next checkout connects, and that is the evidence.
    #[inline]
    pub(crate) fn known_down(&self) -> bool {
        self.down_streak() && {
            let last = self.last_connect_failure.load(Relaxed);
            last > 0 && self.millis_since_epoch() < last - 1 + DOWN_EVIDENCE.as_millis() as u64
        }
    }

    /// No connection is open and the connects since the last success
    /// failed, however long ago: what the probe looks for an end to.
    pub(crate) fn down_streak(&self) -> bool {
        self.open.load(Relaxed) == 0 && self.consecutive_connect_failures.load(Relaxed) > 0
    }

    fn millis_since_epoch(&self) -> u64 {
        let since = crate::units::now().saturating_duration_since(self.epoch);
        since.as_secs().saturating_mul(1000) + u64::from(since.subsec_millis())
    }
}

/// One pooled connection's identity and counts.
pub(crate) struct ConnStats {
    pub(crate) id: u64,
    pub(crate) created: SystemTime,
    pub(crate) created_at: Instant,
    pub(crate) statements: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) busy_ns: AtomicU64,
    pub(crate) checkouts: AtomicU64,
    /// `prepare_cached` calls served from the connection's cache, and not.
    pub(crate) prepared_hits: AtomicU64,
    pub(crate) prepared_misses: AtomicU64,
    /// Set when the connection must not be reused (a connection-ending
    /// error, or abandoned work the server was still running at the end of
    /// the grace).
    pub(crate) broken: AtomicBool,
    /// Statements abandoned on this connection (a future dropped before
    /// its answer, or a stream before its end), which the server may still
    /// be running; and how many of them are known to be over. The
    /// connection is unsettled while the first is ahead: a statement that
    /// began after an abandonment and then answered shows the server is
    /// past it (it answers in order), or the checkout's return settles the
    /// connection with a ping (see
    /// [`MonitoredClient::settle`](crate::MonitoredClient::settle)). One
    /// that bb8 gets back unsettled is retired.
    pub(crate) abandons: AtomicU64,
    settled_upto: AtomicU64,
    /// When the settling ping answered (nanoseconds since the pool's epoch,
    /// plus one; zero: not since the last checkout): the next validity
    /// check need not ping again.
    pub(crate) pinged_at: AtomicU64,
    /// The SQLSTATE of the last warning the server sent on this connection
    /// (its five bytes; zero: none since it was last taken), for the span
    /// of the statement it came with.
    warning: AtomicU64,
    /// Set when a statement reported the end of this connection (a
    /// connection-ending error): its background task's error, if any, is the
    /// same incident seen again.
    pub(crate) end_reported: AtomicBool,
    /// Nanoseconds since the pool's epoch at which the current checkout
    /// began, plus one; zero when idle.
    pub(crate) checked_out: AtomicU64,
    /// Row streams open on this connection. A stream owns what it needs
    /// and can outlive its checkout; the connection is then not handed out
    /// again, since the stream's cancel request would fall on the next
    /// holder's statement.
    pub(crate) streams_open: AtomicU32,
    /// A statement was abandoned: its cancel request waits until the
    /// connection has no user left (see [`ConnStats::last_user_gone`]).
    cancel_wanted: AtomicBool,
    /// The client was dropped (bb8 retired the connection).
    client_gone: AtomicBool,
    /// The server process behind the connection, learnt when it was made.
    pub(crate) backend: OnceLock<Backend>,
    /// The route id of the request that checked the connection out last
    /// (0: none); meaningful while `checked_out` is set.
    holder_route: AtomicU32,
    /// The `get()` call site that checked it out last, and its address:
    /// the lock is taken only when the site changes, so that a checkout
    /// costs two relaxed stores and a compare.
    holder_site: Mutex<Option<&'static Location<'static>>>,
    holder_site_addr: AtomicUsize,
    /// How long the current (or last) checkout waited for this
    /// connection, in nanoseconds: an attribute of its statements' spans.
    pub(crate) waited_nanos: AtomicU64,
    /// The same wait, until the checkout's first statement to finish
    /// claims it for its latency split (see [`LatencySplit`](crate::stats::LatencySplit)).
    pub(crate) unclaimed_wait: AtomicU64,
    /// The connection's `application_name` holds a checkout's trace
    /// context (see [`MonitorConfig::trace_context`](crate::MonitorConfig::trace_context)).
    pub(crate) traced: AtomicBool,
    /// The statement running on the connection (the first one sent, when
    /// several are pipelined), for the running statements' list: when it
    /// began (nanoseconds since the pool's epoch, plus one; zero: none)
    /// and its fingerprint.
    running_since: AtomicU64,
    running_fingerprint: AtomicU64,
    /// When the connection's last statement ended (nanoseconds since the
    /// pool's epoch): with the checkout's start, how long a holder has
    /// kept it without a statement.
    pub(crate) last_end: AtomicU64,
}

/// Who holds a connection: the request's route and the `get()` call site.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Holder {
    pub(crate) route: Option<String>,
    pub(crate) site: Option<String>,
}

/// A backend process: its pid and start, which together name it (a pid
/// alone is reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backend {
    pub(crate) pid: i32,
    /// Milliseconds since the Unix epoch.
    pub(crate) started_unix_ms: i64,
}

impl ConnStats {
    /// The server sent a warning with SQLSTATE `code` on this connection.
    pub(crate) fn warned(&self, code: &str) {
        let mut bytes = [0u8; 8];
        let n = code.len().min(5);
        bytes[..n].copy_from_slice(&code.as_bytes()[..n]);
        self.warning.store(u64::from_le_bytes(bytes), Relaxed);
    }

    /// The SQLSTATE of the warning sent since the last call, if any.
    pub(crate) fn take_warning(&self) -> Option<SqlStateCode> {
        let bits = self.warning.swap(0, Relaxed);
        (bits != 0).then(|| {
            let bytes = bits.to_le_bytes();
            std::str::from_utf8(&bytes[..5]).ok().and_then(SqlStateCode::new)
        })?
    }

    pub(crate) fn new(id: u64) -> Self {
        ConnStats {
            id,
            created: SystemTime::now(),
            created_at: Instant::now(),
            statements: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            checkouts: AtomicU64::new(0),
            prepared_hits: AtomicU64::new(0),
            prepared_misses: AtomicU64::new(0),
            broken: AtomicBool::new(false),
            abandons: AtomicU64::new(0),
            settled_upto: AtomicU64::new(0),
            pinged_at: AtomicU64::new(0),
            warning: AtomicU64::new(0),
            end_reported: AtomicBool::new(false),
            checked_out: AtomicU64::new(0),
            streams_open: AtomicU32::new(0),
            cancel_wanted: AtomicBool::new(false),
            client_gone: AtomicBool::new(false),
            backend: OnceLock::new(),
            holder_route: AtomicU32::new(0),
            holder_site: Mutex::new(None),
            holder_site_addr: AtomicUsize::new(0),
            waited_nanos: AtomicU64::new(0),
            unclaimed_wait: AtomicU64::new(0),
            traced: AtomicBool::new(false),
            running_since: AtomicU64::new(0),
            running_fingerprint: AtomicU64::new(0),
            last_end: AtomicU64::new(0),
        }
    }

    /// The checkout's wait, for the first statement that finishes after
    /// it (zero for the others).
    #[inline]
    pub(crate) fn claim_wait(&self) -> u64 {
        let wait = self.unclaimed_wait.load(Relaxed);
        if wait != 0 {
            self.unclaimed_wait.store(0, Relaxed);
        }
        wait
    }

    /// Counts one statement of this connection.
    ///
    /// A connection is used by one checkout, hence by one task, at a time,
    /// so its counters are written with plain loads and stores rather than
    /// read-modify-write operations (which cost about 5 ns each). Only
    /// statements pipelined on one client from several threads at the same
    /// instant could lose an increment here; the per-fingerprint counts,
    /// which use atomic increments, stay exact regardless.
    pub(crate) fn record(&self, nanos: u64, outcome: &Outcome<'_>) {
        bump(&self.statements, 1);
        bump(&self.busy_ns, nanos);
        match outcome {
            Outcome::Ok(_) => {}
            Outcome::Failed(error) => self.failed(error),
            Outcome::Cancelled => {
                bump(&self.cancelled, 1);
                self.abandoned();
            }
        }
    }

    /// A statement was abandoned: the connection is to be settled before
    /// it is reused, and a cancel request is due if it is retired with
    /// that work still running.
    pub(crate) fn abandoned(&self) {
        bump(&self.abandons, 1);
        self.cancel_wanted.store(true, SeqCst);
    }

    /// Whether abandoned work may still run on the connection.
    #[inline]
    pub(crate) fn unsettled(&self) -> bool {
        self.abandons.load(Relaxed) > self.settled_upto.load(Relaxed)
    }

    /// A statement that began when `seen` statements had been abandoned
    /// has answered: those are over on the server. (Cheap when nothing was
    /// abandoned: one load and a compare.)
    #[inline]
    pub(crate) fn answered_after(&self, seen: u64) {
        if seen > self.settled_upto.load(Relaxed) {
            self.settled_through(seen);
        }
    }

    /// Every abandoned statement is over (a ping answered after them, no
    /// one else using the connection): no cancel request is due.
    pub(crate) fn settled(&self) {
        self.settled_through(self.abandons.load(Relaxed));
    }

    #[cold]
    fn settled_through(&self, seen: u64) {
        self.settled_upto.fetch_max(seen, Relaxed);
        if seen >= self.abandons.load(Relaxed) {
            self.cancel_wanted.store(false, SeqCst);
        }
    }

    /// Takes the due cancel request, if any: true once.
    pub(crate) fn take_cancel(&self) -> bool {
        self.cancel_wanted.swap(false, SeqCst)
    }

    /// A statement failed. If the failure ends the connection, the
    /// connection is not handed out again (its background task may not have
    /// seen the end of the stream yet), and its end counts as reported.
    #[cold]
    #[inline(never)]
    fn failed(&self, error: &tokio_postgres::Error) {
        bump(&self.errors, 1);
        if ErrorKind::of(error).ends_connection() {
            self.broken.store(true, Relaxed);
            self.end_reported.store(true, Release);
        }
    }

    /// One user of the connection let go: its client (`client` set) or an
    /// open stream. Whether that was the last one and a cancel request is
    /// now due, which is then true once.
    ///
    /// PostgreSQL cancels whatever the backend runs when the request
    /// arrives, and the request is not acknowledged. Sent while someone can
    /// still run a statement on the connection (the same checkout's next
    /// statement, or a next holder's while a stream lives on), it could
    /// cancel that statement instead of the abandoned one. Once the
    /// connection is retired and its last stream gone, nothing but
    /// abandoned work can be running on it.
    pub(crate) fn last_user_gone(&self, client: bool) -> bool {
        if client {
            self.client_gone.store(true, SeqCst);
        }
        self.client_gone.load(SeqCst) && self.streams_open.load(SeqCst) == 0 && self.take_cancel()
    }

    /// Remembers who checks the connection out: the request's route id
    /// and the `get()` call site.
    #[inline]
    pub(crate) fn held_by(&self, route: u32, site: &'static Location<'static>) {
        self.holder_route.store(route, Relaxed);
        let addr = std::ptr::from_ref(site) as usize;
        if self.holder_site_addr.load(Relaxed) != addr {
            self.new_site(site, addr);
        }
    }

    #[cold]
    #[inline(never)]
    fn new_site(&self, site: &'static Location<'static>, addr: usize) {
        *self.holder_site.lock().unwrap_or_else(|e| e.into_inner()) = Some(site);
        self.holder_site_addr.store(addr, Relaxed);
    }

    /// Whether a checkout holds the connection or a stream of it is open:
    /// a statement in flight then gets the connection's end as its own
    /// error (seen with `Acquire`, after what the holder recorded).
    pub(crate) fn in_use(&self) -> bool {
        self.checked_out.load(Acquire) != 0 || self.streams_open.load(Acquire) != 0
    }

    /// A statement began at `since` (nanoseconds since the pool's epoch):
    /// it is the connection's running statement unless another one is
    /// (then its `fingerprint` is not looked up). The mark to hand to
    /// [`statement_done`](Self::statement_done) (zero: not the running one).
    #[inline]
    pub(crate) fn statement_began(&self, since: u64, fingerprint: impl FnOnce() -> u64) -> u64 {
        let mark = since.saturating_add(1);
        if self.running_since.compare_exchange(0, mark, Relaxed, Relaxed).is_ok() {
            self.running_fingerprint.store(fingerprint(), Relaxed);
            mark
        } else {
            0
        }
    }

    /// The statement marked `mark` by [`statement_began`](Self::statement_began)
    /// ended.
    #[inline]
    pub(crate) fn statement_done(&self, mark: u64) {
        if mark != 0 {
            let _ = self.running_since.compare_exchange(mark, 0, Relaxed, Relaxed);
        }
    }

    /// The running statement: when it began (nanoseconds since the pool's
    /// epoch) and its fingerprint. A statement that began while this was
    /// read is not shown.
    pub(crate) fn running(&self) -> Option<(u64, u64)> {
        let mark = self.running_since.load(Acquire);
        let fingerprint = self.running_fingerprint.load(Acquire);
        (mark != 0 && self.running_since.load(Acquire) == mark).then(|| (mark - 1, fingerprint))
    }

    /// The route of the request holding the connection, if any (no lock
    /// of the connection's, and no call site: the load sampler's join).
    pub(crate) fn holder_route(&self) -> Option<Arc<str>> {
        if self.checked_out.load(Relaxed) == 0 {
            return None;
        }
        crate::stats::routes::route_name(self.holder_route.load(Relaxed))
    }

    /// Who holds the connection now, in words (nobody when idle).
    pub(crate) fn holder(&self) -> Holder {
        if self.checked_out.load(Relaxed) == 0 {
            return Holder::default();
        }
        let site = *self.holder_site.lock().unwrap_or_else(|e| e.into_inner());
        Holder {
            route: crate::stats::routes::route_name(self.holder_route.load(Relaxed)).map(|r| r.to_string()),
            site: site.map(|s| format!("{}:{}", s.file(), s.line())),
        }
    }

    pub(crate) fn counts(&self) -> SessionCounts {
        SessionCounts {
            statements: self.statements.load(Relaxed),
            errors: self.errors.load(Relaxed),
            cancelled: self.cancelled.load(Relaxed),
            busy_ns: self.busy_ns.load(Relaxed),
        }
    }
}

/// Adds to a counter that has a single writer at a time.
#[inline]
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

/// A connection's counters at one instant, to subtract for a session.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SessionCounts {
    pub(crate) statements: u64,
    pub(crate) errors: u64,
    pub(crate) cancelled: u64,
    pub(crate) busy_ns: u64,
}
