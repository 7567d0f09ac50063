//! deadpool-postgres as the pool (feature `deadpool`):
//! [`MonitoredDeadpool`], its manager [`DeadpoolManager`] and its checkout
//! guard [`MonitoredObject`].
//!
//! The connections are the same [`MonitoredClient`]s as on bb8, opened by
//! the same [`MonitoredManager`], so statements, errors, connection ends,
//! spans, the server view, reports, alerts and the layer's routes work
//! alike. What differs is deadpool's: it keeps no idle minimum and no
//! connection lifetime of its own (the manager retires a connection older
//! than [`pool_recycle`](crate::MonitorConfig::pool_recycle) when it is
//! recycled), it checks a connection when it is handed out (by the
//! [`RecyclingMethod`] of its [`ManagerConfig`]), and a checkout that
//! cannot connect fails at once rather than at the end of its wait.

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, HookError, Metrics, Object, PoolError, RecycleError, RecycleResult, TimeoutType};
use deadpool_postgres::{ManagerConfig, RecyclingMethod};
use tokio_postgres::Error;

use super::cache::StatementCaches;
use super::checkout::{self, Checkout, GiveBack, Held, SessionStats};
use super::client::MonitoredClient;
use super::handle::{self, Ping, PoolMonitor, PoolSource, SourceStatus};
use super::manager::MonitoredManager;
use super::shared::PoolShared;
use super::MakeTls;
use crate::classify::{ErrorKind, GetError};
use crate::funnel::PoolCounters;
use crate::units::now;

/// A deadpool manager of [`MonitoredClient`]s: the [`MonitoredManager`]'s
/// connections, recycled as deadpool-postgres's manager recycles them.
///
/// Made by [`MonitoredManager::deadpool_builder`].
pub struct DeadpoolManager<Tls: MakeTls> {
    manager: MonitoredManager<Tls>,
    recycling: RecyclingMethod,
    counts: Arc<Counts>,
    /// Every live connection's statement cache, under deadpool-postgres's
    /// name: `pool.manager().statement_caches.clear()` after a schema
    /// change.
    pub statement_caches: StatementCaches,
}

/// What deadpool does not count itself.
#[derive(Default)]
struct Counts {
    created: AtomicU64,
    closed_broken: AtomicU64,
    closed_invalid: AtomicU64,
    closed_max_lifetime: AtomicU64,
    gets_direct: AtomicU64,
    gets_waited: AtomicU64,
    gets_timed_out: AtomicU64,
    wait_nanos: AtomicU64,
}

impl<Tls: MakeTls> fmt::Debug for DeadpoolManager<Tls> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadpoolManager")
            .field("pool", &self.manager.name())
            .field("recycling", &self.recycling)
            .finish_non_exhaustive()
    }
}

impl<Tls: MakeTls> MonitoredManager<Tls> {
    /// A deadpool builder for this manager's pool, sized and timed by the
    /// monitor's configuration: its
    /// [`max_size`](crate::MonitorConfig::max_size), and both the
    /// wait for a free slot and a connect time out after
    /// [`pool_timeout`](crate::MonitorConfig::pool_timeout) (deadpool's own
    /// default waits forever). Connections are recycled by `config`'s
    /// [`RecyclingMethod`], as by deadpool-postgres's `Manager`.
    ///
    /// Anything set on the builder afterwards wins, hooks included (a
    /// `post_create` hook runs after the manager's
    /// [`setup`](Self::setup) statements; its statements are recorded).
    /// Build it with [`DbMonitor::deadpool`](crate::DbMonitor::deadpool).
    pub fn deadpool_builder(self, config: ManagerConfig) -> managed::PoolBuilder<DeadpoolManager<Tls>> {
        let monitor = &self.shared().sink.config;
        let max_size = monitor.max_size.max(1);
        let timeout = Some(monitor.pool_timeout);
        let manager = DeadpoolManager {
            manager: self,
            recycling: config.recycling_method,
            counts: Arc::default(),
            statement_caches: StatementCaches::default(),
        };
        managed::Pool::builder(manager)
            .max_size(usize::try_from(max_size).unwrap_or(usize::MAX))
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .runtime(deadpool::Runtime::Tokio1)
    }
}

impl<Tls: MakeTls> managed::Manager for DeadpoolManager<Tls> {
    type Type = MonitoredClient;
    type Error = Error;

    async fn create(&self) -> Result<MonitoredClient, Error> {
        // Boxed: deadpool's `get` future holds this one inline, and every
        // checkout moves `get` by value; unboxed, the connect's state made
        // it 8.7 KB (plain deadpool-postgres: 1.6 KB). A connect is rare
        // enough to pay for the box.
        let client = Box::pin(self.manager.open()).await?;
        self.statement_caches.attach(&client.statement_cache.0);
        self.counts.created.fetch_add(1, Relaxed);
        Ok(client)
    }

    async fn recycle(&self, conn: &mut MonitoredClient, metrics: &Metrics) -> RecycleResult<Error> {
        // What bb8 checks when a connection comes back (closed, retired,
        // with abandoned work or a stream open), checked when it is handed
        // out again.
        if conn.is_broken() {
            self.counts.closed_broken.fetch_add(1, Relaxed);
            return Err(RecycleError::message("connection closed or retired"));
        }
        // Its age at its last recycle, which needs no clock read (deadpool
        // reads one for `recycled` itself): a connection past its lifetime
        // serves at most one more checkout.
        let lifetime = self.manager.shared().sink.config.pool_recycle;
        let age = metrics
            .recycled
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(metrics.created));
        if !lifetime.is_zero() && age >= lifetime {
            self.counts.closed_max_lifetime.fetch_add(1, Relaxed);
            return Err(RecycleError::message("connection past its lifetime"));
        }
        if let Some(sql) = self.recycling.query() {
            // Boxed for the same reason, on the verified and clean methods
            // only.
            if let Err(error) = Box::pin(self.manager.check(conn, sql)).await {
                self.counts.closed_invalid.fetch_add(1, Relaxed);
                return Err(RecycleError::Backend(error));
            }
            if self.recycling == RecyclingMethod::Clean {
                // `RESET ALL` gave the connection its own name back.
                conn.stats().traced.store(false, Relaxed);
            }
        }
        Ok(())
    }
}

/// A deadpool pool of [`MonitoredClient`]s: every checkout, statement and
/// connection is recorded, as on [`MonitoredPool`](crate::MonitoredPool).
/// Cheap to clone.
///
/// Built by [`DbMonitor::deadpool`](crate::DbMonitor::deadpool).
///
/// ```no_run
/// use db_monitor::deadpool_postgres::ManagerConfig;
/// use db_monitor::tokio_postgres::NoTls;
/// use db_monitor::{DbMonitor, MonitorConfig};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let monitor = DbMonitor::new(MonitorConfig::default())?;
/// let pg = "host=127.0.0.1 user=app dbname=app".parse()?;
/// let manager = monitor.manager("primary", pg, NoTls);
/// let pool = monitor.deadpool(manager.deadpool_builder(ManagerConfig::default()).max_size(16))?;
/// let conn = pool.get().await?;
/// let one: i32 = conn.query_one("SELECT 1", &[]).await?.get(0);
/// # Ok(()) }
/// ```
pub struct MonitoredDeadpool<Tls: MakeTls> {
    // One `Arc`, so that a clone per request (axum's `State`) costs one
    // count, as deadpool's own `Pool` does, not one per part.
    parts: Arc<Parts<Tls>>,
}

/// What a [`MonitoredDeadpool`] and its clones share.
struct Parts<Tls: MakeTls> {
    inner: managed::Pool<DeadpoolManager<Tls>>,
    monitor: PoolMonitor,
}

impl<Tls: MakeTls> Clone for MonitoredDeadpool<Tls> {
    fn clone(&self) -> Self {
        MonitoredDeadpool {
            parts: self.parts.clone(),
        }
    }
}

impl<Tls: MakeTls> fmt::Debug for MonitoredDeadpool<Tls> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredDeadpool")
            .field("name", &self.name())
            .field("status", &self.parts.inner.status())
            .finish_non_exhaustive()
    }
}

impl<Tls: MakeTls> From<&MonitoredDeadpool<Tls>> for PoolMonitor {
    fn from(pool: &MonitoredDeadpool<Tls>) -> Self {
        pool.parts.monitor.clone()
    }
}

impl<Tls: MakeTls> From<MonitoredDeadpool<Tls>> for PoolMonitor {
    fn from(pool: MonitoredDeadpool<Tls>) -> Self {
        pool.parts.monitor.clone()
    }
}

impl<Tls: MakeTls> MonitoredDeadpool<Tls> {
    pub(crate) fn new(inner: managed::Pool<DeadpoolManager<Tls>>) -> Self {
        let shared = inner.manager().manager.shared().clone();
        shared.max_size.store(max_size(&inner.status()), Relaxed);
        let source = Arc::new(DeadpoolSource { pool: inner.clone() });
        MonitoredDeadpool {
            parts: Arc::new(Parts {
                monitor: PoolMonitor::new(shared, source),
                inner,
            }),
        }
    }

    /// Checks out a connection, waiting up to the pool's wait timeout
    /// (and connecting within its create timeout).
    ///
    /// The wait is recorded; the returned guard records the use time when
    /// dropped and remembers where it was checked out (for leak warnings).
    ///
    /// # Errors
    ///
    /// A [`GetError`], classified as on bb8: [`ErrorKind::PoolExhausted`] if
    /// the wait timed out with every connection checked out,
    /// [`ErrorKind::ConnectTimeout`] if a connection could not be opened
    /// (the connect error is its source), [`ErrorKind::Other`] if the pool
    /// was closed or a `post_create` hook failed.
    #[track_caller]
    pub fn get(&self) -> impl Future<Output = Result<MonitoredObject<Tls>, GetError>> + Send + '_ {
        let location = Location::caller();
        Checkout::new(
            self.parts.inner.get(),
            &self.parts.monitor.shared,
            move |result, wait| self.checked_out(result, wait, location),
        )
    }

    fn checked_out(
        &self,
        result: Result<Object<DeadpoolManager<Tls>>, PoolError<Error>>,
        wait: checkout::Wait,
        location: &'static Location<'static>,
    ) -> Result<MonitoredObject<Tls>, GetError> {
        let now = now();
        let waited = now.saturating_duration_since(wait.start);
        let counts = &self.parts.inner.manager().counts;
        counts
            .wait_nanos
            .fetch_add(crate::units::saturating_nanos(waited), Relaxed);
        match result {
            Ok(conn) => {
                let gets = if wait.direct {
                    &counts.gets_direct
                } else {
                    &counts.gets_waited
                };
                gets.fetch_add(1, Relaxed);
                Ok(MonitoredObject {
                    held: Held::begin(&self.parts.monitor, &conn, waited, now, location),
                    conn: Some(conn),
                })
            }
            Err(error) => {
                let shared = &self.parts.monitor.shared;
                let status = self.parts.inner.status();
                let (connections, idle) = (as_u32(status.size), as_u32(status.available));
                // deadpool connects for the checkout when nothing is idle,
                // and gives that connect's error at once: a fast failure.
                let fast = matches!(error, PoolError::Backend(_));
                let (kind, source) = match failure(error, shared) {
                    Err(TimeoutType::Wait) => {
                        counts.gets_timed_out.fetch_add(1, Relaxed);
                        checkout::timed_out(shared, connections, idle)
                    }
                    Err(_) => (ErrorKind::ConnectTimeout, shared.last_connect_error()),
                    Ok((kind, cause)) => (kind, Some(cause)),
                };
                Err(checkout::failed(
                    &self.parts.monitor,
                    kind,
                    source,
                    waited,
                    connections.saturating_sub(idle),
                    fast,
                ))
            }
        }
    }

    /// The monitor's handle on this pool: its reports, alerts, forecast and
    /// stores.
    pub fn monitor(&self) -> &PoolMonitor {
        &self.parts.monitor
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        self.parts.monitor.name()
    }

    /// deadpool's own status.
    pub fn status(&self) -> deadpool::Status {
        self.parts.inner.status()
    }

    /// The pool's manager, as deadpool's `Pool::manager` gives it: its
    /// [`statement_caches`](DeadpoolManager::statement_caches).
    pub fn manager(&self) -> &DeadpoolManager<Tls> {
        self.parts.inner.manager()
    }

    /// The underlying deadpool pool: the escape hatch (for `resize`,
    /// `retain`, `close`). Checkouts through it bypass the checkout
    /// metrics (statements on its connections are still recorded).
    pub fn inner(&self) -> &managed::Pool<DeadpoolManager<Tls>> {
        &self.parts.inner
    }
}

/// One checked-out connection of a [`MonitoredDeadpool`]. Derefs to
/// [`MonitoredClient`]; dropping it returns the connection to the pool and
/// records how long it was held (abandoned work is settled first, as on
/// bb8: see [`MonitoredConnection`](crate::MonitoredConnection)).
pub struct MonitoredObject<Tls: MakeTls> {
    conn: Option<Object<DeadpoolManager<Tls>>>,
    held: Held,
}

impl<Tls: MakeTls> MonitoredObject<Tls> {
    /// What this checkout (the "session") has run so far.
    pub fn session(&self) -> SessionStats {
        self.held.session(self)
    }

    /// Where this connection was checked out (the caller of `get()`).
    pub fn checked_out_at(&self) -> &'static Location<'static> {
        self.held.location
    }
}

impl<Tls: MakeTls> fmt::Debug for MonitoredObject<Tls> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredObject")
            .field("client", &self.conn.as_deref())
            .field("checked_out_at", &format_args!("{}", self.held.location))
            .finish()
    }
}

impl<Tls: MakeTls> Deref for MonitoredObject<Tls> {
    type Target = MonitoredClient;

    fn deref(&self) -> &MonitoredClient {
        // `conn` is only taken in `drop`.
        self.conn.as_deref().expect("connection present until drop")
    }
}

impl<Tls: MakeTls> DerefMut for MonitoredObject<Tls> {
    fn deref_mut(&mut self) -> &mut MonitoredClient {
        self.conn.as_deref_mut().expect("connection present until drop")
    }
}

impl<Tls: MakeTls> Drop for MonitoredObject<Tls> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Dropping deadpool's object returns the connection to the pool.
            self.held.end(conn);
        }
    }
}

impl<Tls: MakeTls> GiveBack for Object<DeadpoolManager<Tls>> {
    fn give_back(self) {
        // Retired at once, as bb8 does, rather than left idle until the
        // recycling check of a later checkout: its slot is free now.
        if self.is_broken() {
            if let Some(pool) = Object::pool(&self) {
                pool.manager().counts.closed_broken.fetch_add(1, Relaxed);
            }
            drop(Object::take(self));
        }
    }
}

/// The deadpool pool as the monitor's source.
struct DeadpoolSource<Tls: MakeTls> {
    pool: managed::Pool<DeadpoolManager<Tls>>,
}

impl<Tls: MakeTls> PoolSource for DeadpoolSource<Tls> {
    fn status(&self) -> SourceStatus {
        let status = self.pool.status();
        let manager = self.pool.manager();
        // `resize` may have changed it.
        manager.manager.shared().max_size.store(max_size(&status), Relaxed);
        let c = &manager.counts;
        SourceStatus {
            connections: as_u32(status.size),
            idle: as_u32(status.available),
            pending: status.waiting as u64,
            wait_total: Duration::from_nanos(c.wait_nanos.load(Relaxed)),
            counters: PoolCounters {
                idle_min: 0,
                created: c.created.load(Relaxed),
                closed_broken: c.closed_broken.load(Relaxed),
                closed_invalid: c.closed_invalid.load(Relaxed),
                closed_max_lifetime: c.closed_max_lifetime.load(Relaxed),
                closed_idle_timeout: 0,
                gets_direct: c.gets_direct.load(Relaxed),
                gets_waited: c.gets_waited.load(Relaxed),
                gets_timed_out: c.gets_timed_out.load(Relaxed),
            },
        }
    }

    fn ping(&self, timeout: Duration) -> Pin<Box<dyn Future<Output = Result<Ping, String>> + Send + '_>> {
        let manager = &self.pool.manager().manager;
        let shared = manager.shared();
        let status = self.pool.status();
        let full = status.available == 0 && status.size >= status.max_size;
        Box::pin(handle::ping(shared, timeout, async move {
            if full {
                return manager
                    .open()
                    .await
                    .map(|conn| handle::PingConn::Own(Box::new(conn)))
                    .map_err(|e| Some(format!("connect failed: {}", shared.sink.describe(&e))));
            }
            self.pool
                .get()
                .await
                .map(handle::PingConn::Pooled)
                .map_err(|error| match failure(error, shared) {
                    Err(_) => None,
                    Ok((ErrorKind::ConnectTimeout, cause)) => Some(format!("connect failed: {cause}")),
                    Ok((_, cause)) => Some(cause),
                })
        }))
    }
}

/// What a failed deadpool checkout met: its timeout (for the caller to
/// read with the pool's state), or its kind, classified as on bb8, and what
/// may be said of it.
fn failure(error: PoolError<Error>, shared: &PoolShared) -> Result<(ErrorKind, String), TimeoutType> {
    Ok(match error {
        PoolError::Timeout(timeout) => return Err(timeout),
        PoolError::Backend(e) => (ErrorKind::ConnectTimeout, shared.sink.describe(&e)),
        PoolError::PostCreateHook(HookError::Backend(e)) => (ErrorKind::of_connect(&e), shared.sink.describe(&e)),
        // The hook's own words are the application's: not kept.
        PoolError::PostCreateHook(HookError::Message(_)) => (ErrorKind::Other, "a post_create hook failed".to_owned()),
        PoolError::Closed => (ErrorKind::Other, "the pool is closed".to_owned()),
        PoolError::NoRuntimeSpecified => (ErrorKind::Other, "no runtime for timeouts".to_owned()),
    })
}

fn as_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn max_size(status: &deadpool::Status) -> u32 {
    as_u32(status.max_size)
}
