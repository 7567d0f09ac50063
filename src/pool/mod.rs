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
pub(crate) const BACKEND_QUERY: &str = "SELECT pg_backend_pid(), (date_part('epoch', backend_start) * 1000)::int8 \
     FROM pg_stat_activity WHERE pid = pg_backend_pid()";

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

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
pub use cache::{StatementCache, StatementCaches};
mod checkout;
mod client;
#[cfg(feature = "deadpool")]
mod deadpool;
mod flight;
mod generic;
mod handle;
mod manager;
mod replicas;
pub(crate) mod shared;
mod statement;
mod stream;
mod transaction;

pub use client::MonitoredClient;
#[cfg(feature = "deadpool")]
pub use deadpool::{DeadpoolManager, MonitoredDeadpool, MonitoredObject};
pub(crate) use flight::{statement_ended, QueryRef, Times};
pub use generic::GenericClient;
pub(crate) use manager::attach;
pub use manager::{MonitorErrorSink, MonitoredManager};
pub use replicas::{ReplicaConnection, ReplicaReport, ReplicaSet, ReplicaStatus};
pub use statement::{MonitoredStatement, ToMonitoredStatement};
pub use stream::MonitoredStream;
pub use transaction::{MonitoredPortal, MonitoredTransaction, MonitoredTransactionBuilder};

use crate::classify::{ErrorKind, GetError};
use crate::units::{nanos, now};
pub use checkout::SessionStats;
use checkout::{Checkout, GiveBack, Held};
pub(crate) use checkout::{RESTORE_NAME, SAVE_NAME, SHOW_TRACE};
use shared::{ConnStats, PoolShared};

pub use handle::PoolMonitor;
pub(crate) use handle::{Ping, PoolSource};

/// A bb8 pool of [`MonitoredClient`]s: every checkout, statement and
/// connection is recorded. Cheap to clone.
///
/// Built by [`DbMonitor::pool`](crate::DbMonitor::pool).
pub struct MonitoredPool<Tls: MakeTls> {
    // One `Arc`, so that a clone per request (axum's `State`) costs one
    // count, as bb8's own `Pool` does, not one per part.
    parts: Arc<Parts<Tls>>,
}

/// What a [`MonitoredPool`] and its clones share.
struct Parts<Tls: MakeTls> {
    inner: bb8::Pool<MonitoredManager<Tls>>,
    shared: Arc<PoolShared>,
    monitor: PoolMonitor,
    // Held while the application holds a handle: the probe for a database
    // out of reach stops once the last one is gone.
    handles: Arc<()>,
}

/// The bb8 pool as the monitor's source.
struct Bb8Source<Tls: MakeTls> {
    pool: bb8::Pool<MonitoredManager<Tls>>,
    shared: Arc<PoolShared>,
    handles: Weak<()>,
}

impl<Tls: MakeTls> PoolSource for Bb8Source<Tls> {
    fn status(&self) -> handle::SourceStatus {
        handle::bb8_status(&self.pool)
    }

    fn probe(&self) {
        probe(&self.pool, &self.shared, self.handles.clone());
    }

    fn ping(&self, timeout: Duration) -> Pin<Box<dyn Future<Output = Result<Ping, String>> + Send + '_>> {
        let shared = &self.shared;
        let state = self.pool.state();
        let full = state.idle_connections == 0 && state.connections >= shared.max_size.load(Relaxed);
        let describe = |e: tokio_postgres::Error| Some(format!("connect failed: {}", shared.sink.describe(&e)));
        Box::pin(handle::ping(shared, timeout, async move {
            if full {
                return self
                    .pool
                    .dedicated_connection()
                    .await
                    .map(|conn| handle::PingConn::Own(Box::new(conn)))
                    .map_err(describe);
            }
            self.pool
                .get()
                .await
                .map(handle::PingConn::Pooled)
                .map_err(|error| match error {
                    bb8::RunError::User(e) => describe(e),
                    bb8::RunError::TimedOut => None,
                })
        }))
    }
}

impl<Tls: MakeTls> From<&MonitoredPool<Tls>> for PoolMonitor {
    fn from(pool: &MonitoredPool<Tls>) -> Self {
        pool.parts.monitor.clone()
    }
}

impl<Tls: MakeTls> From<MonitoredPool<Tls>> for PoolMonitor {
    fn from(pool: MonitoredPool<Tls>) -> Self {
        pool.parts.monitor.clone()
    }
}

impl<Tls: MakeTls> Clone for MonitoredPool<Tls> {
    fn clone(&self) -> Self {
        MonitoredPool {
            parts: self.parts.clone(),
        }
    }
}

impl<Tls: MakeTls> fmt::Debug for MonitoredPool<Tls> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredPool")
            .field("name", self.parts.shared.name())
            .finish_non_exhaustive()
    }
}

impl<Tls: MakeTls> MonitoredPool<Tls> {
    pub(crate) fn new(inner: bb8::Pool<MonitoredManager<Tls>>, shared: Arc<PoolShared>) -> Self {
        let config = inner.config();
        shared.max_size.store(config.max_size, Relaxed);
        shared.min_idle.store(config.min_idle.unwrap_or(0), Relaxed);
        let handles = Arc::new(());
        let monitor = PoolMonitor::new(
            shared.clone(),
            Arc::new(Bb8Source {
                pool: inner.clone(),
                shared: shared.clone(),
                handles: Arc::downgrade(&handles),
            }),
        );
        MonitoredPool {
            parts: Arc::new(Parts {
                inner,
                shared,
                monitor,
                handles,
            }),
        }
    }

    /// The monitor's handle on this pool: its reports, alerts, forecast and
    /// stores.
    pub fn monitor(&self) -> &PoolMonitor {
        &self.parts.monitor
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        self.parts.shared.name()
    }
}

impl<Tls: MakeTls> MonitoredPool<Tls> {
    /// The pool's shared state (for the replica set's cost).
    pub(crate) fn shared(&self) -> &Arc<PoolShared> {
        &self.parts.shared
    }

    /// Checks out a connection, waiting up to the pool's
    /// `connection_timeout`.
    ///
    /// The wait is recorded; the returned guard records the use time when
    /// dropped and remembers where it was checked out (for leak warnings).
    ///
    /// While the database is known to be out of reach (no connection of the
    /// pool open, connects failing since the last success), the checkout
    /// fails at once instead of waiting for connects that keep failing, and
    /// a waiting one fails as soon as that is known; a task probes for the
    /// server's return meanwhile. See
    /// [`MonitorConfig::fail_fast`](crate::MonitorConfig::fail_fast).
    ///
    /// # Errors
    ///
    /// A [`GetError`] when no connection came within the timeout: of kind
    /// [`ErrorKind::PoolExhausted`] if every connection was checked out,
    /// [`ErrorKind::ConnectTimeout`] otherwise (the database is down,
    /// refusing, or rejecting the login: the last connect error is its
    /// source), also when it [failed fast](GetError::failed_fast).
    #[track_caller]
    pub fn get(&self) -> impl Future<Output = Result<MonitoredConnection<'_, Tls>, GetError>> + Send + '_ {
        self.checkout(Location::caller())
    }

    /// Like [`get`](Self::get), but the guard owns a handle to the pool
    /// (`'static`), for moving into a spawned task.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    #[track_caller]
    pub fn get_owned(&self) -> impl Future<Output = Result<MonitoredConnection<'static, Tls>, GetError>> + Send + '_ {
        self.checkout(Location::caller())
    }

    /// The checkout behind [`get`](Self::get) and
    /// [`get_owned`](Self::get_owned): bb8's owned guard either way, so that
    /// a return with abandoned work can hand it to the task that settles it.
    fn checkout<'c>(
        &self,
        location: &'static Location<'static>,
    ) -> impl Future<Output = Result<MonitoredConnection<'c, Tls>, GetError>> + Send + '_ {
        Checkout::watching(
            self.parts.inner.get_owned(),
            &self.parts.shared,
            self.parts.shared.sink.config.fail_fast,
            move |result, wait| self.checked_out(result, wait, location),
            move |wait| Err(self.failed_fast(wait)),
        )
    }

    /// Records a checkout that gave up because the database is out of
    /// reach, and makes sure a probe is looking for its return.
    #[cold]
    fn failed_fast(&self, wait: checkout::Wait) -> GetError {
        let waited = now().saturating_duration_since(wait.start);
        self.probe();
        let source = self.parts.shared.last_connect_error();
        let in_use = self.parts.shared.in_use.load(Relaxed);
        checkout::failed(
            &self.parts.monitor,
            ErrorKind::ConnectTimeout,
            source,
            waited,
            in_use,
            true,
        )
    }

    /// Starts the probe for the server's return, unless one runs.
    fn probe(&self) {
        probe(
            &self.parts.inner,
            &self.parts.shared,
            Arc::downgrade(&self.parts.handles),
        );
    }

    fn checked_out<'a>(
        &self,
        result: Result<bb8::PooledConnection<'static, MonitoredManager<Tls>>, bb8::RunError<tokio_postgres::Error>>,
        wait: checkout::Wait,
        location: &'static Location<'static>,
    ) -> Result<MonitoredConnection<'a, Tls>, GetError> {
        let now = now();
        let waited = now.saturating_duration_since(wait.start);
        match result {
            Ok(conn) => Ok(MonitoredConnection {
                held: Held::begin(&self.parts.monitor, &conn, waited, now, location),
                conn: Some(conn),
                _pool: std::marker::PhantomData,
            }),
            Err(error) => {
                // Decided here, on the rare path, from bb8's state.
                let state = self.parts.inner.state();
                let (kind, source) = match error {
                    bb8::RunError::TimedOut => {
                        checkout::timed_out(&self.parts.shared, state.connections, state.idle_connections)
                    }
                    bb8::RunError::User(e) => (ErrorKind::of_connect(&e), Some(self.parts.shared.sink.describe(&e))),
                };
                let in_use = state.connections.saturating_sub(state.idle_connections);
                Err(checkout::failed(
                    &self.parts.monitor,
                    kind,
                    source,
                    waited,
                    in_use,
                    false,
                ))
            }
        }
    }

    /// bb8's own state and statistics.
    pub fn state(&self) -> bb8::State {
        self.parts.inner.state()
    }

    /// The underlying bb8 pool: the escape hatch. Checkouts through it
    /// bypass the checkout metrics (statements on its connections are
    /// still recorded).
    pub fn inner(&self) -> &bb8::Pool<MonitoredManager<Tls>> {
        &self.parts.inner
    }
}

/// Starts the probe for the server's return, unless one runs: a connect
/// (with the pool's setup and customizer, as bb8 opens any) every 0.5 s,
/// backing off to 2 s, while no connection is open and connects keep
/// failing; until one succeeds and its connection joins the pool, a
/// connection opens otherwise, or the application's last handle on the pool
/// (`handles`) is gone. Started by a checkout that failed fast and by a
/// readiness check that finds the pool down, so that a pool taken out of
/// service (no checkouts) still learns of the server's return. Outside a
/// runtime, nothing.
fn probe<Tls: MakeTls>(pool: &bb8::Pool<MonitoredManager<Tls>>, shared: &Arc<PoolShared>, handles: Weak<()>) {
    const FIRST: Duration = Duration::from_millis(500);
    const MOST: Duration = Duration::from_secs(2);
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if shared.probing.swap(true, std::sync::atomic::Ordering::AcqRel) {
        return;
    }
    let pool = pool.clone();
    let shared = shared.clone();
    let connect_timeout = pool.config().connection_timeout;
    runtime.spawn(async move {
        let mut pause = FIRST;
        loop {
            tokio::time::sleep(pause).await;
            if handles.strong_count() == 0 || !shared.down_streak() {
                break;
            }
            match tokio::time::timeout(connect_timeout, pool.dedicated_connection()).await {
                Ok(Ok(conn)) => {
                    // Full (another connect won the race): dropped.
                    let _ = pool.add(conn);
                    break;
                }
                // Recorded as connect failures by the manager.
                Ok(Err(_)) | Err(_) => pause = (pause * 2).min(MOST),
            }
        }
        shared.probing.store(false, std::sync::atomic::Ordering::Release);
    });
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
    held: Held,
    _pool: std::marker::PhantomData<&'a MonitoredPool<Tls>>,
}

impl<Tls: MakeTls> fmt::Debug for MonitoredConnection<'_, Tls> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredConnection")
            .field("client", &self.conn.as_deref())
            .field("checked_out_at", &format_args!("{}", self.held.location))
            .finish()
    }
}

impl<Tls: MakeTls> MonitoredConnection<'_, Tls> {
    /// What this checkout (the "session") has run so far.
    pub fn session(&self) -> SessionStats {
        self.held.session(self)
    }

    /// Where this connection was checked out (the caller of `get()`).
    pub fn checked_out_at(&self) -> &'static Location<'static> {
        self.held.location
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

impl<Tls: MakeTls> GiveBack for bb8::PooledConnection<'static, MonitoredManager<Tls>> {
    fn give_back(self) {
        // bb8 asks `has_broken` as the guard drops.
        drop(self);
    }
}

impl<Tls: MakeTls> Drop for MonitoredConnection<'_, Tls> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Dropping the bb8 guard returns the connection to the pool.
            self.held.end(conn);
        }
    }
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
    /// Whether the database is out of reach as the pool knows it: no
    /// connection open and connects failing since the last success (a bb8
    /// checkout then [fails fast](crate::MonitorConfig::fail_fast)).
    pub out_of_reach: bool,
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
