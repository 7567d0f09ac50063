//! The instrumented pool: [`MonitoredPool`], its checkout guard
//! [`MonitoredConnection`], and the snapshots it reports.
//!
//! # When things are recorded
//!
//! | event | where | what |
//! |---|---|---|
//! | connect | [`MonitoredManager`] | create time, or the classified failure |
//! | new connection | [`MonitoredManager`] | setup statements run, then bb8 runs your `connection_customizer`, if any |
//! | checkout | [`MonitoredPool::get`] | wait time; on timeout `pool_exhausted` or `connect_timeout` |
//! | statement | [`MonitoredClient`] methods | duration by summary, errors by kind and SQLSTATE, slow, rows |
//! | abandoned statement | drop of its future | counted as cancelled; at the checkout's return the connection is pinged: kept if the server finished within [`abandoned_grace`](crate::MonitorConfig::abandoned_grace), else the statement is cancelled on the server and the connection retired |
//! | stream ended early | drop of a [`MonitoredStream`] before its end | a finished statement with the rows read, counted as ended early; its connection settled as above |
//! | transaction end | [`MonitoredTransaction`] | duration by outcome (committed, rolled back, abandoned, failed) |
//! | return | drop of [`MonitoredConnection`] | use time; leak warning past the threshold |
//! | connection end | its background task | a SQLSTATE, an I/O error or a bare end of stream (`57P01` on server shutdown; a crash or a proxy says nothing), unless a statement already reported it |

/// What a new connection asks for its backend: pid and start, in
/// milliseconds since the Unix epoch.
/// How `pg_stat_statements` shows the statement that sets a checkout's
/// trace context, `SELECT set_config('application_name', '<traceparent>',
/// false)`: a `SELECT`, so the server keeps its constants out of the entry
/// (one entry for every trace; a `SET` would make one per value).
pub(crate) const SHOW_TRACE: &str = "SELECT set_config($1, $2, $3)";

/// Reads the connection's `application_name` once its setup has run.
pub(crate) const OWN_NAME: &str = "SELECT current_setting('application_name')";

pub(crate) const BACKEND_QUERY: &str = "SELECT pg_backend_pid(), (date_part('epoch', backend_start) * 1000)::int8 \
     FROM pg_stat_activity WHERE pid = pg_backend_pid()";

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime};

use pin_project_lite::pin_project;

use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::Socket;

/// The TLS connectors a monitored pool accepts: exactly those bb8-postgres
/// accepts (`NoTls`, `tokio-postgres-rustls`, `postgres-native-tls`, …).
///
/// Implemented for every type with the required bounds; there is nothing
/// to implement by hand. (bb8's `Pool` needs its manager's bounds on the
/// struct itself, so the monitored types name them through this trait.)
///
/// # Example: rustls
///
/// ```no_run
/// use std::sync::Arc;
/// use db_monitor::{DbMonitor, MonitorConfig};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let mut roots = rustls::RootCertStore::empty();
/// # let ca_der: rustls::pki_types::CertificateDer<'static> = unimplemented!();
/// roots.add(ca_der)?; // your server's CA
/// let tls_config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
///     .with_safe_default_protocol_versions()?
///     .with_root_certificates(roots)
///     .with_no_client_auth();
/// let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config);
///
/// let monitor = DbMonitor::new(MonitorConfig::default())?;
/// let pg = "host=db.internal user=app dbname=app sslmode=require".parse()?;
/// let pool = monitor.pool(monitor.manager("primary", pg, tls), monitor.config().pool_builder()).await?;
/// let conn = pool.get().await?;
/// # Ok(()) }
/// ```
pub trait MakeTls:
    MakeTlsConnect<Socket, Stream: Send + Sync + 'static, TlsConnect: Send + TlsConnect<Socket, Future: Send>>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> MakeTls for T where
    T: MakeTlsConnect<Socket, Stream: Send + Sync + 'static, TlsConnect: Send + TlsConnect<Socket, Future: Send>>
        + Clone
        + Send
        + Sync
        + 'static
{
}

mod cache;
mod client;
mod flight;
mod generic;
mod manager;
pub(crate) mod shared;
mod statement;
mod stream;
mod transaction;

pub use client::MonitoredClient;
pub(crate) use flight::{statement_ended, QueryRef};
pub use generic::GenericClient;
pub(crate) use manager::attach;
pub use manager::{MonitorErrorSink, MonitoredManager};
pub use statement::{MonitoredStatement, ToMonitoredStatement};
pub use stream::MonitoredStream;
pub use transaction::{MonitoredTransaction, MonitoredTransactionBuilder};

use crate::classify::{ConnectError, ErrorKind, GetError};
use crate::funnel::{Event, PoolCounters};
use crate::stats::PoolReading;
use crate::units::{nanos, now};
use shared::{ConnStats, PoolShared, SessionCounts};

/// A bb8 pool of [`MonitoredClient`]s: every checkout, statement and
/// connection is recorded. Cheap to clone.
///
/// Built by [`DbMonitor::pool`](crate::DbMonitor::pool).
pub struct MonitoredPool<Tls: MakeTls> {
    pub(crate) inner: bb8::Pool<MonitoredManager<Tls>>,
    pub(crate) shared: Arc<PoolShared>,
}

impl<Tls: MakeTls> Clone for MonitoredPool<Tls> {
    fn clone(&self) -> Self {
        MonitoredPool {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<Tls: MakeTls> fmt::Debug for MonitoredPool<Tls> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredPool")
            .field("name", self.shared.name())
            .finish_non_exhaustive()
    }
}

/// Shows the checkout's trace to the server in `application_name` (or gives
/// the connection its own back), without a round trip of its own: the
/// `set_config` is written to the connection now, ahead of the checkout's first
/// statement, and its reply is read and dropped by the driver (a request
/// whose receiver is gone is still read to its end).
#[cold]
fn show_trace(client: &MonitoredClient, current: &crate::config::TraceContext) {
    let Some(own_name) = client.own_name() else { return };
    let stats = client.stats();
    let sql = match (current.0)() {
        Some(parent) => {
            stats.traced.store(true, Relaxed);
            // Hex digits and dashes only: nothing to quote.
            format!("SELECT set_config('application_name', '{parent}', false)")
        }
        None if stats.traced.swap(false, Relaxed) => {
            format!(
                "SELECT set_config('application_name', {}, false)",
                quote_literal(own_name)
            )
        }
        None => return,
    };
    let mut send = std::pin::pin!(client.raw().batch_execute(&sql));
    // The first poll sends the request; its reply is not waited for.
    let _ = send.as_mut().poll(&mut Context::from_waker(std::task::Waker::noop()));
}

/// `text` as an SQL string literal that reads the same whatever
/// `standard_conforming_strings` says: an escape string (`E'…'`) with its
/// quotes doubled and its backslashes escaped.
fn quote_literal(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 3);
    quoted.push_str("E'");
    for c in text.chars() {
        match c {
            '\'' => quoted.push_str("''"),
            '\\' => quoted.push_str("\\\\"),
            c => quoted.push(c),
        }
    }
    quoted.push('\'');
    quoted
}

impl<Tls: MakeTls> MonitoredPool<Tls> {
    pub(crate) fn new(inner: bb8::Pool<MonitoredManager<Tls>>, shared: Arc<PoolShared>) -> Self {
        let config = inner.config();
        shared.max_size.store(config.max_size, Relaxed);
        shared.min_idle.store(config.min_idle.unwrap_or(0), Relaxed);
        MonitoredPool { inner, shared }
    }

    pub(crate) fn shared(&self) -> &Arc<PoolShared> {
        &self.shared
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        self.shared.name()
    }
}

impl<Tls: MakeTls> MonitoredPool<Tls> {
    /// Checks out a connection, waiting up to the pool's
    /// `connection_timeout`.
    ///
    /// The wait is recorded; the returned guard records the use time when
    /// dropped and remembers where it was checked out (for leak warnings).
    ///
    /// # Errors
    ///
    /// A [`GetError`] when no connection came within the timeout: of kind
    /// [`ErrorKind::PoolExhausted`] if every connection was checked out,
    /// [`ErrorKind::ConnectTimeout`] otherwise (the database is down,
    /// refusing, or rejecting the login: the last connect error is its
    /// source).
    #[track_caller]
    pub fn get(&self) -> impl Future<Output = Result<MonitoredConnection<'_, Tls>, GetError>> + Send + '_ {
        let location = Location::caller();
        // bb8's owned guard either way, so that a return with abandoned
        // work can hand it to the task that settles it.
        Checkout {
            inner: self.inner.get_owned(),
            start: None,
            finish: Some(move |result, start| self.checked_out(result, start, location)),
        }
    }

    /// Like [`get`](Self::get), but the guard owns a handle to the pool
    /// (`'static`), for moving into a spawned task.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    #[track_caller]
    pub fn get_owned(&self) -> impl Future<Output = Result<MonitoredConnection<'static, Tls>, GetError>> + Send + '_ {
        let location = Location::caller();
        Checkout {
            inner: self.inner.get_owned(),
            start: None,
            finish: Some(move |result, start| self.checked_out(result, start, location)),
        }
    }

    fn checked_out<'a>(
        &self,
        result: Result<bb8::PooledConnection<'static, MonitoredManager<Tls>>, bb8::RunError<tokio_postgres::Error>>,
        start: quanta::Instant,
        location: &'static Location<'static>,
    ) -> Result<MonitoredConnection<'a, Tls>, GetError> {
        let now = now();
        let waited = now.saturating_duration_since(start);
        match result {
            Ok(conn) => {
                // One read-modify-write on a pool-wide counter (and a second
                // only for a new peak), so that the trend can show the
                // highest use between two samples.
                let in_use = self.shared.in_use.fetch_add(1, Relaxed) + 1;
                if in_use > self.shared.peak_in_use.load(Relaxed) {
                    self.shared.peak_in_use.fetch_max(in_use, Relaxed);
                }
                self.shared.record(Event::Checkout { waited, timeout: None });
                let stats = conn.stats();
                shared::bump(&stats.checkouts, 1);
                let since =
                    u64::try_from(now.saturating_duration_since(self.shared.epoch).as_nanos()).unwrap_or(u64::MAX - 1);
                stats.checked_out.store(since.saturating_add(1), Relaxed);
                stats.held_by(crate::funnel::current_route_id(), location);
                stats
                    .waited_nanos
                    .store(crate::units::saturating_nanos(waited), Relaxed);
                if let Some(current) = &self.shared.sink.config.trace_context {
                    show_trace(&conn, current);
                }
                let start_counts = stats.counts();
                if self.shared.publish_due(since) {
                    self.publish_state();
                }
                Ok(MonitoredConnection {
                    conn: Some(conn),
                    start_counts,
                    checked_out: now,
                    location,
                    _pool: std::marker::PhantomData,
                })
            }
            Err(error) => {
                // Decided here, on the rare path, from bb8's state: a pool
                // whose every connection is taken is exhausted, unless its
                // connects have been failing since the last success (a
                // database that is down or refusing fills the pool with
                // connection attempts, not with users).
                let state = self.inner.state();
                let max_size = self.shared.max_size.load(Relaxed);
                let in_use = state.connections.saturating_sub(state.idle_connections);
                let connects_failing = self.shared.consecutive_connect_failures.load(Relaxed) > 0;
                let full = state.connections >= max_size && state.idle_connections == 0;
                let (kind, source) = match error {
                    bb8::RunError::TimedOut if full && !connects_failing => (ErrorKind::PoolExhausted, None),
                    bb8::RunError::TimedOut => (ErrorKind::ConnectTimeout, self.shared.last_connect_error()),
                    bb8::RunError::User(e) => (ErrorKind::of_connect(&e), Some(self.shared.sink.describe(&e))),
                };
                self.shared.record(Event::Checkout {
                    waited,
                    timeout: Some(kind),
                });
                let sink = &self.shared.sink;
                crate::funnel::span::checkout_failed(
                    &sink.name,
                    &sink.span_target,
                    kind,
                    crate::units::saturating_nanos(waited),
                );
                self.publish_state();
                Err(GetError {
                    kind,
                    pool: self.shared.name().clone(),
                    waited,
                    in_use,
                    max_size,
                    source: source.map(ConnectError),
                })
            }
        }
    }

    /// Publishes bb8's `State` and `Statistics`: connection counts as
    /// gauges, bb8's cumulative counters as absolute counters.
    ///
    /// Checkouts call it at most every 250 ms (it takes bb8's internal
    /// lock), timeouts always. Call it yourself to refresh an idle pool.
    pub fn publish_state(&self) {
        self.read_state(false);
    }

    /// Reads bb8's state into the funnel: the gauges always, the trend
    /// when `sample` (which also restarts the peak).
    fn read_state(&self, sample: bool) {
        let state = self.inner.state();
        let s = &state.statistics;
        let in_use = self.shared.in_use.load(Relaxed);
        let peak_in_use = if sample {
            self.shared.peak_in_use.swap(in_use, Relaxed)
        } else {
            self.shared.peak_in_use.load(Relaxed)
        };
        let reading = PoolReading {
            at: SystemTime::now(),
            max_size: self.shared.max_size.load(Relaxed),
            size: state.connections,
            idle: state.idle_connections,
            in_use,
            waiters: s.pending_gets(),
            peak_in_use,
            timed_out_total: s.get_timed_out,
            wait_total: s.get_wait_time,
        };
        let counters = PoolCounters {
            idle_min: self.shared.min_idle.load(Relaxed),
            created: s.connections_created,
            closed_broken: s.connections_closed_broken,
            closed_invalid: s.connections_closed_invalid,
            closed_max_lifetime: s.connections_closed_max_lifetime,
            closed_idle_timeout: s.connections_closed_idle_timeout,
            gets_direct: s.get_direct,
            gets_waited: s.get_waited,
            gets_timed_out: s.get_timed_out,
        };
        self.shared.record(Event::PoolState {
            reading: &reading,
            counters: &counters,
            sample,
        });
    }

    /// bb8's own state and statistics.
    pub fn state(&self) -> bb8::State {
        self.inner.state()
    }

    /// The underlying bb8 pool: the escape hatch. Checkouts through it
    /// bypass the checkout metrics (statements on its connections are
    /// still recorded).
    pub fn inner(&self) -> &bb8::Pool<MonitoredManager<Tls>> {
        &self.inner
    }

    /// A snapshot of the pool: its state and every live connection.
    pub fn snapshot(&self) -> PoolSnapshot {
        let state = self.inner.state();
        let mut connections: Vec<ConnectionInfo> = self
            .shared
            .live_connections()
            .iter()
            .map(|c| ConnectionInfo::of(c, &self.shared))
            .collect();
        connections.sort_by_key(|c| c.id);
        PoolSnapshot {
            name: self.shared.name().to_string(),
            max_size: self.shared.max_size.load(Relaxed),
            connections: state.connections,
            idle: state.idle_connections,
            in_use: self.shared.in_use.load(Relaxed),
            pending: state.statistics.pending_gets(),
            consecutive_connect_failures: self.shared.consecutive_connect_failures.load(Relaxed),
            connections_set_up: self.shared.ready.load(Relaxed),
            open_connections: connections,
        }
    }

    /// Takes a trend sample now (the background task does so every
    /// health-check interval) and publishes the pool's state.
    pub fn sample(&self) {
        self.read_state(true);
    }
}

pin_project! {
    /// A checkout: bb8's `get` future, timed from its first poll, and what
    /// to make of its result. A named future rather than an `async` block,
    /// so that bb8's (large) future is not moved once more into a wrapper.
    struct Checkout<F, G> {
        #[pin]
        inner: F,
        start: Option<quanta::Instant>,
        finish: Option<G>,
    }
}

impl<F, G, R, O> Future for Checkout<F, G>
where
    F: Future<Output = R>,
    G: FnOnce(R, quanta::Instant) -> O,
{
    type Output = O;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<O> {
        let this = self.project();
        let start = *this.start.get_or_insert_with(now);
        let result = ready!(this.inner.poll(cx));
        // Polled again after it finished: a caller's bug, as for any future.
        let finish = this.finish.take().expect("a checkout is polled after it finished");
        Poll::Ready(finish(result, start))
    }
}

/// One checked-out connection. Derefs to [`MonitoredClient`]; dropping it
/// returns the connection to the pool and records how long it was held.
///
/// If a statement was abandoned during the checkout (its future dropped, or
/// a row stream dropped before its end), the connection goes back to the
/// pool once a ping shows the server has finished that work, within
/// [`abandoned_grace`](crate::MonitorConfig::abandoned_grace); otherwise
/// the statement is cancelled on the server and the connection retired.
pub struct MonitoredConnection<'a, Tls: MakeTls> {
    conn: Option<bb8::PooledConnection<'static, MonitoredManager<Tls>>>,
    start_counts: SessionCounts,
    checked_out: quanta::Instant,
    location: &'static Location<'static>,
    _pool: std::marker::PhantomData<&'a MonitoredPool<Tls>>,
}

impl<Tls: MakeTls> fmt::Debug for MonitoredConnection<'_, Tls> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredConnection")
            .field("client", &self.conn.as_deref())
            .field("checked_out_at", &format_args!("{}", self.location))
            .finish()
    }
}

impl<Tls: MakeTls> MonitoredConnection<'_, Tls> {
    /// What this checkout (the "session") has run so far.
    pub fn session(&self) -> SessionStats {
        let now = self.stats().counts();
        SessionStats {
            statements: now.statements - self.start_counts.statements,
            errors: now.errors - self.start_counts.errors,
            cancelled: now.cancelled - self.start_counts.cancelled,
            database_time: nanos(now.busy_ns - self.start_counts.busy_ns),
            held: crate::units::now().saturating_duration_since(self.checked_out),
        }
    }

    /// Where this connection was checked out (the caller of `get()`).
    pub fn checked_out_at(&self) -> &'static Location<'static> {
        self.location
    }
}

impl<Tls: MakeTls> Deref for MonitoredConnection<'_, Tls> {
    type Target = MonitoredClient;

    fn deref(&self) -> &MonitoredClient {
        // `conn` is only taken in `drop`.
        self.conn.as_deref().expect("connection present until drop")
    }
}

impl<Tls: MakeTls> DerefMut for MonitoredConnection<'_, Tls> {
    fn deref_mut(&mut self) -> &mut MonitoredClient {
        self.conn.as_deref_mut().expect("connection present until drop")
    }
}

impl<Tls: MakeTls> Drop for MonitoredConnection<'_, Tls> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let held = now().saturating_duration_since(self.checked_out);
        conn.stats().checked_out.store(0, Relaxed);
        conn.pool().in_use.fetch_sub(1, Relaxed);
        conn.pool()
            .held_nanos
            .fetch_add(crate::units::saturating_nanos(held), Relaxed);
        conn.pool().record(Event::Return {
            held,
            location: self.location,
        });
        if conn.needs_settling() {
            settle_then_return(conn);
            return;
        }
        // Dropping the bb8 guard returns the connection to the pool.
        drop(conn);
    }
}

/// Settles a connection with abandoned work in a task of its own, which
/// then drops the guard: back to the pool, or retired (see
/// [`MonitoredClient::settle`]). Outside a runtime, the guard is dropped
/// at once and the unsettled connection retired (its cancel request, which
/// needs a runtime too, is skipped).
#[cold]
#[inline(never)]
fn settle_then_return<Tls: MakeTls>(conn: bb8::PooledConnection<'static, MonitoredManager<Tls>>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let grace = conn.pool().sink.config.abandoned_grace;
    runtime.spawn(async move {
        conn.settle(grace).await;
        drop(conn);
    });
}

/// A pool's state and its connections.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct PoolSnapshot {
    /// The pool's name.
    pub name: String,
    /// bb8's `max_size`.
    pub max_size: u32,
    /// Connections bb8 counts (open or opening).
    pub connections: u32,
    /// Idle connections.
    pub idle: u32,
    /// Connections checked out (bb8's connections less its idle ones).
    pub in_use: u32,
    /// Checkouts waiting for a connection.
    pub pending: u64,
    /// Connect failures since the last successful connect.
    pub consecutive_connect_failures: u32,
    /// Connections that connected and ran their setup statements (counted
    /// by [`MonitoredManager`]).
    pub connections_set_up: u64,
    /// Every live connection, by id.
    pub open_connections: Vec<ConnectionInfo>,
}

/// One pooled connection's identity and counts. Serialized with times as
/// `created_unix_ms` and durations in milliseconds (`age_ms`, …).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// Id within the pool (1, 2, …, never reused).
    pub id: u64,
    /// When it was opened.
    #[serde(rename = "created_unix_ms", serialize_with = "crate::units::ser_unix_ms")]
    pub created: SystemTime,
    /// How long it has been open.
    #[serde(rename = "age_ms", serialize_with = "crate::units::ser_ms")]
    pub age: Duration,
    /// Statements it has run.
    pub statements: u64,
    /// Statements that failed.
    pub errors: u64,
    /// Statements abandoned by their caller.
    pub cancelled: u64,
    /// Time spent in statements.
    #[serde(rename = "busy_time_ms", serialize_with = "crate::units::ser_ms")]
    pub busy_time: Duration,
    /// Times it was checked out.
    pub checkouts: u64,
    /// `prepare_cached` calls its cache served.
    pub prepared_cache_hits: u64,
    /// `prepare_cached` calls that prepared on the server.
    pub prepared_cache_misses: u64,
    /// How long the current checkout has held it, if checked out.
    #[serde(rename = "held_for_ms", serialize_with = "crate::units::ser_opt_ms")]
    pub held_for: Option<Duration>,
    /// The server process behind it (`pg_backend_pid()`), once known.
    pub backend_pid: Option<i32>,
    /// The route of the request holding it, if checked out inside one.
    pub held_by_route: Option<String>,
    /// The `get()` call site holding it (`file:line`), if checked out.
    pub held_at: Option<String>,
}

impl ConnectionInfo {
    fn of(c: &ConnStats, shared: &PoolShared) -> Self {
        let since = c.checked_out.load(Relaxed);
        let holder = c.holder();
        ConnectionInfo {
            id: c.id,
            created: c.created,
            age: c.created_at.elapsed(),
            statements: c.statements.load(Relaxed),
            errors: c.errors.load(Relaxed),
            cancelled: c.cancelled.load(Relaxed),
            busy_time: nanos(c.busy_ns.load(Relaxed)),
            checkouts: c.checkouts.load(Relaxed),
            prepared_cache_hits: c.prepared_hits.load(Relaxed),
            prepared_cache_misses: c.prepared_misses.load(Relaxed),
            held_for: (since > 0).then(|| {
                now()
                    .saturating_duration_since(shared.epoch)
                    .saturating_sub(nanos(since - 1))
            }),
            backend_pid: c.backend.get().map(|b| b.pid),
            held_by_route: holder.route,
            held_at: holder.site,
        }
    }
}

/// What one checkout has run so far ([`MonitoredConnection::session`]).
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_name_is_quoted_for_either_string_setting() {
        assert_eq!(super::quote_literal("orders-api"), "E'orders-api'");
        assert_eq!(super::quote_literal(r"it's a \ name"), r"E'it''s a \\ name'");
    }
}
