//! What a checkout records, whichever pool it came from: the wait, the
//! holder, the trace shown to the server, the use time, and the settling of
//! a connection with abandoned work before it goes back.

use std::future::Future;
use std::ops::Deref;
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;

use super::client::MonitoredClient;
use super::handle::PoolMonitor;
use super::shared::{self, PoolShared, SessionCounts};
use crate::classify::{ConnectError, ErrorKind, GetError};
use crate::funnel::Event;
use crate::units::{nanos, now};

/// How `pg_stat_statements` shows the statement that sets a checkout's
/// trace context, `SELECT set_config('application_name', '<traceparent>',
/// false)`: a `SELECT`, so the server keeps its constants out of the entry
/// (one entry for every trace; a `SET` would make one per value).
pub(crate) const SHOW_TRACE: &str = "SELECT set_config($1, $2, $3)";

/// Keeps the connection's own `application_name` on the server, in a
/// setting of the monitor's, when a checkout first shows a trace: the name
/// whatever set it (the startup parameter, a setup statement, the
/// application's `connection_customizer`, or the application itself).
/// (Its `'false'` is quoted so that the lexer masks it as the server's
/// normalization does: the server view then knows the statement.)
pub(crate) const SAVE_NAME: &str =
    "SELECT set_config('db_monitor.application_name', current_setting('application_name'), 'false')";

/// Gives the connection its own `application_name` back after a trace.
pub(crate) const RESTORE_NAME: &str =
    "SELECT set_config('application_name', current_setting('db_monitor.application_name'), 'false')";

/// What one checkout has run so far ([`MonitoredConnection::session`](crate::MonitoredConnection::session)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// Statements run.
    pub statements: u64,
    /// Statements that failed.
    pub errors: u64,
    /// Statements abandoned.
    pub cancelled: u64,
    /// Time spent in statements.
    pub database_time: Duration,
    /// Time since checkout.
    pub held: Duration,
}

pin_project! {
    /// A checkout: the pool's `get` future, timed from its first poll, and
    /// what to make of its result. A named future rather than an `async`
    /// block, so that the pool's (large) future is not moved once more into
    /// a wrapper. While it waits (its first poll found no connection), the
    /// pool's load counts it.
    ///
    /// A checkout that [watches](Checkout::watching) its pool ends at once,
    /// with `down`'s answer, when the pool is [known
    /// down](PoolShared::known_down) as it starts or while it waits.
    pub(crate) struct Checkout<'a, F, G, D> {
        #[pin]
        inner: F,
        pool: &'a PoolShared,
        start: Option<quanta::Instant>,
        finish: Option<G>,
        fail_fast: bool,
        waiting: bool,
        down: Option<D>,
        // Set while waiting on a watched pool.
        #[pin]
        notified: Option<tokio::sync::futures::Notified<'a>>,
    }

    impl<'a, F, G, D> PinnedDrop for Checkout<'a, F, G, D> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.waiting {
                this.pool.record(Event::Waiting(None));
            }
        }
    }
}

// Only deadpool's checkouts do not watch for the pool going down (it
// fails fast by itself).
#[cfg(feature = "deadpool")]
impl<'a, F, G, O> Checkout<'a, F, G, fn(Wait) -> O> {
    pub(crate) fn new(inner: F, pool: &'a PoolShared, finish: G) -> Self {
        Checkout::watching(inner, pool, false, finish, |_| {
            unreachable!("a checkout that does not watch never gives up")
        })
    }
}

impl<'a, F, G, D> Checkout<'a, F, G, D> {
    /// A checkout that gives up as soon as `pool` is known down, with
    /// `down`'s answer, if `fail_fast`.
    pub(crate) fn watching(inner: F, pool: &'a PoolShared, fail_fast: bool, finish: G, down: D) -> Self {
        Checkout {
            inner,
            pool,
            start: None,
            finish: Some(finish),
            fail_fast,
            waiting: false,
            down: Some(down),
            notified: None,
        }
    }
}

/// How a checkout's wait went: when it began, and whether the pool had a
/// connection at the first ask.
#[derive(Clone, Copy)]
pub(crate) struct Wait {
    pub(crate) start: quanta::Instant,
    // Counted by sources that do not count it themselves (bb8 does).
    #[cfg_attr(not(feature = "deadpool"), allow(dead_code))]
    pub(crate) direct: bool,
}

impl<'a, F, G, D, R, O> Future for Checkout<'a, F, G, D>
where
    F: Future<Output = R>,
    G: FnOnce(R, Wait) -> O,
    D: FnOnce(Wait) -> O,
{
    type Output = O;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<O> {
        let mut this = self.project();
        let direct = this.start.is_none();
        let start = *this.start.get_or_insert_with(now);
        let wait = Wait { start, direct };
        let pool: &PoolShared = this.pool;
        if direct && *this.fail_fast && pool.known_down() {
            return Poll::Ready(gave_up(this.down, wait));
        }
        if let Poll::Ready(result) = this.inner.poll(cx) {
            stop_waiting(pool, this.waiting);
            // Polled again after it finished: a caller's bug, as for any future.
            let finish = this.finish.take().expect("a checkout is polled after it finished");
            return Poll::Ready(finish(result, wait));
        }
        if !*this.waiting {
            *this.waiting = true;
            pool.record(Event::Waiting(Some(start)));
        }
        // Word that the pool is down matters to a checkout waiting for the
        // pool (every connection taken, or connects failing), not to one
        // in bb8's validity ping or opening a connection for a pool with
        // room: only the first registers, so that the common pending poll
        // takes no lock.
        if !*this.fail_fast || (this.notified.is_none() && !pool.must_wait()) {
            return Poll::Pending;
        }
        // Waiting: also for word that the pool is down. Registered before
        // the state is read, so that no word is missed in between.
        loop {
            if this.notified.is_none() {
                this.notified.set(Some(pool.down.notified()));
            }
            let mut notified = this.notified.as_mut().as_pin_mut().expect("set above");
            notified.as_mut().enable();
            if pool.known_down() {
                stop_waiting(pool, this.waiting);
                return Poll::Ready(gave_up(this.down, wait));
            }
            ready!(notified.poll(cx));
            // Woken: look again, with a fresh registration.
            this.notified.set(None);
        }
    }
}

/// A checkout that waited stops waiting.
fn stop_waiting(pool: &PoolShared, waiting: &mut bool) {
    if std::mem::take(waiting) {
        pool.record(Event::Waiting(None));
    }
}

#[cold]
fn gave_up<O>(down: &mut Option<impl FnOnce(Wait) -> O>, wait: Wait) -> O {
    let down = down.take().expect("a checkout is polled after it finished");
    down(wait)
}

/// A pool's guard on a connection, as a checkout gives it back.
pub(crate) trait GiveBack: Deref<Target = MonitoredClient> + Send + 'static {
    /// Gives the connection back to its pool, or closes it if it must not
    /// be handed out again ([`MonitoredClient::is_broken`]).
    fn give_back(self);
}

/// A connection held by a checkout: when and where it was checked out,
/// and its counts then (for [`session`](Held::session)).
#[derive(Clone, Copy)]
pub(crate) struct Held {
    start_counts: SessionCounts,
    /// The route id of the request that checked the connection out (0:
    /// none).
    route: u32,
    pub(crate) checked_out: quanta::Instant,
    pub(crate) location: &'static Location<'static>,
}

impl Held {
    /// Records a checkout that got `conn` after `waited`.
    pub(crate) fn begin(
        monitor: &PoolMonitor,
        conn: &MonitoredClient,
        waited: Duration,
        now: quanta::Instant,
        location: &'static Location<'static>,
    ) -> Held {
        let pool = &monitor.shared;
        // One read-modify-write on a pool-wide counter (and a second only
        // for a new peak), so that the trend can show the highest use
        // between two samples.
        let in_use = pool.in_use.fetch_add(1, Relaxed) + 1;
        if in_use > pool.peak_in_use.load(Relaxed) {
            pool.peak_in_use.fetch_max(in_use, Relaxed);
        }
        pool.record(Event::Checkout {
            at: now,
            waited,
            timeout: None,
            failed_fast: false,
        });
        let stats = conn.stats();
        shared::bump(&stats.checkouts, 1);
        let since = u64::try_from(now.saturating_duration_since(pool.epoch).as_nanos()).unwrap_or(u64::MAX - 1);
        stats.checked_out.store(since.saturating_add(1), Relaxed);
        let route = crate::funnel::checkout_began(location);
        stats.held_by(route, location);
        let waited = crate::units::saturating_nanos(waited);
        stats.waited_nanos.store(waited, Relaxed);
        stats.unclaimed_wait.store(waited, Relaxed);
        if let Some(current) = &pool.sink.config.trace_context {
            show_trace(conn, current);
        }
        let start_counts = stats.counts();
        if pool.publish_due(since) {
            monitor.publish_state();
        }
        Held {
            start_counts,
            route,
            checked_out: now,
            location,
        }
    }

    /// What the checkout holding `conn` has run so far.
    pub(crate) fn session(&self, conn: &MonitoredClient) -> SessionStats {
        let now = conn.stats().counts();
        SessionStats {
            statements: now.statements - self.start_counts.statements,
            errors: now.errors - self.start_counts.errors,
            cancelled: now.cancelled - self.start_counts.cancelled,
            database_time: nanos(now.busy_ns - self.start_counts.busy_ns),
            held: crate::units::now().saturating_duration_since(self.checked_out),
        }
    }

    /// Records the return of `guard`'s connection, then releases the
    /// guard, or hands it to a task that settles abandoned work first.
    pub(crate) fn end(&self, guard: impl GiveBack) {
        let conn: &MonitoredClient = &guard;
        let at = now();
        let held = at.saturating_duration_since(self.checked_out);
        let busy = nanos(
            conn.stats()
                .busy_ns
                .load(Relaxed)
                .wrapping_sub(self.start_counts.busy_ns),
        );
        // Release: what its statements recorded (an end reported) is seen
        // by whoever sees the connection returned.
        conn.stats().checked_out.store(0, Release);
        let pool = conn.pool();
        pool.in_use.fetch_sub(1, Relaxed);
        pool.held_nanos.fetch_add(crate::units::saturating_nanos(held), Relaxed);
        pool.record(Event::Return {
            at,
            held,
            busy,
            route: self.route,
            location: self.location,
        });
        if conn.needs_settling() {
            settle_then_return(guard);
        } else {
            guard.give_back();
        }
    }
}

/// Records a checkout that got no connection and makes its error
/// (`failed_fast`: it did not wait, the database being out of reach).
pub(crate) fn failed(
    monitor: &PoolMonitor,
    kind: ErrorKind,
    source: Option<String>,
    waited: Duration,
    in_use: u32,
    failed_fast: bool,
) -> GetError {
    let pool = &monitor.shared;
    pool.record(Event::Checkout {
        at: now(),
        waited,
        timeout: Some(kind),
        failed_fast,
    });
    let sink = &pool.sink;
    crate::funnel::span::checkout_failed(
        &sink.name,
        &sink.span_target,
        kind,
        crate::units::saturating_nanos(waited),
    );
    monitor.publish_state();
    GetError {
        kind,
        pool: pool.name().clone(),
        waited,
        in_use,
        max_size: pool.max_size.load(Relaxed),
        source: source.map(ConnectError),
        failed_fast,
    }
}

/// What a checkout that timed out waiting met: a pool whose every
/// connection is taken is exhausted, unless its connects have been failing
/// since the last success (a database that is down or refusing fills the
/// pool with connection attempts, not with users). Then the last connect
/// error, if any, is the cause.
pub(crate) fn timed_out(pool: &PoolShared, connections: u32, idle: u32) -> (ErrorKind, Option<String>) {
    let connects_failing = pool.consecutive_connect_failures.load(Relaxed) > 0;
    let full = connections >= pool.max_size.load(Relaxed) && idle == 0;
    if full && !connects_failing {
        (ErrorKind::PoolExhausted, None)
    } else {
        (ErrorKind::ConnectTimeout, pool.last_connect_error())
    }
}

/// Settles a connection with abandoned work in a task of its own, which
/// then drops the guard: back to the pool, or retired (see
/// [`MonitoredClient::settle`]). Outside a runtime, the guard is dropped
/// at once and the unsettled connection retired (its cancel request, which
/// needs a runtime too, is skipped).
#[cold]
#[inline(never)]
fn settle_then_return(conn: impl GiveBack) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        conn.retire();
        conn.give_back();
        return;
    };
    let grace = conn.pool().sink.config.abandoned_grace;
    runtime.spawn(async move {
        conn.settle(grace).await;
        conn.give_back();
    });
}

/// Shows the checkout's trace to the server in `application_name` (or gives
/// the connection its own back), without a round trip of its own: the
/// `set_config` is written to the connection now, ahead of the checkout's first
/// statement, and its reply is read and dropped by the driver (a request
/// whose receiver is gone is still read to its end).
#[cold]
fn show_trace(client: &MonitoredClient, current: &crate::config::TraceContext) {
    let stats = client.stats();
    let sql = match (current.0)() {
        Some(parent) => {
            // The first trace after none keeps the connection's name first,
            // on the server (statements of one query run in order).
            let first = !stats.traced.swap(true, Relaxed);
            // Hex digits and dashes only: nothing to quote.
            let show = format!("SELECT set_config('application_name', '{parent}', false)");
            if first {
                format!("{SAVE_NAME}; {show}")
            } else {
                show
            }
        }
        None if stats.traced.swap(false, Relaxed) => RESTORE_NAME.to_owned(),
        None => return,
    };
    let mut send = std::pin::pin!(client.raw().batch_execute(&sql));
    // The first poll sends the request; its reply is not waited for.
    let _ = send.as_mut().poll(&mut Context::from_waker(std::task::Waker::noop()));
}
