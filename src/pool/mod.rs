//! The instrumented pool: [`MonitoredPool`], its checkout guard
//! [`MonitoredConnection`], and the snapshots it reports.
//!
//! # When things are recorded
//!
//! | event | where | what |
//! |---|---|---|
//! | connect | [`MonitoredManager`] | create time, or the classified failure |
//! | new connection | [`MonitorCustomizer`] | setup statements run (bb8 calls it once per connection) |
//! | checkout | [`MonitoredPool::get`] | wait time; on timeout `pool_exhausted` or `connect_timeout` |
//! | statement | [`MonitoredClient`] methods | duration by summary, errors by kind and SQLSTATE, slow, rows |
//! | abandoned statement | drop of its future | counted as cancelled; the connection is retired and a cancel request sent |
//! | transaction end | [`MonitoredTransaction`] | duration by outcome (committed, rolled back, abandoned, failed) |
//! | return | drop of [`MonitoredConnection`] | use time; leak warning past the threshold |
//! | connection end | its background task | a SQLSTATE or I/O error, e.g. `57P01` on server shutdown |

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

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
/// let monitor = DbMonitor::new(MonitorConfig::default());
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

mod alerting;
mod client;
mod manager;
pub(crate) mod shared;

pub(crate) use client::{statement_ended, QueryRef, TxOutcome};
pub use client::{
    MonitoredClient, MonitoredStatement, MonitoredStream, MonitoredTransaction, MonitoredTransactionBuilder,
    ToMonitoredStatement,
};
pub use manager::{MonitorCustomizer, MonitorErrorSink, MonitoredManager};

use crate::classify::ErrorKind;
use crate::monitor::Event;
use crate::report::{ComprehensiveReport, PerformanceScore};
use crate::sql::Operation;
use crate::stats::{ErrorReport, PoolTrendReport, QueryPerformanceReport, RecentStatement, SlowQueryReport};
use shared::{nanos, ConnStats, PoolShared, SessionCounts};

/// A bb8 pool of [`MonitoredClient`]s: every checkout, statement and
/// connection is recorded. Cheap to clone.
///
/// Built by [`DbMonitor::pool`](crate::DbMonitor::pool).
pub struct MonitoredPool<Tls: MakeTls> {
    inner: bb8::Pool<MonitoredManager<Tls>>,
    shared: Arc<PoolShared>,
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
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
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
        &self.shared.name
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
    pub fn get(&self) -> impl std::future::Future<Output = Result<MonitoredConnection<'_, Tls>, GetError>> + Send + '_ {
        let location = Location::caller();
        async move {
            let start = Instant::now();
            let result = self.inner.get().await;
            self.checked_out(result, start, location)
        }
    }

    /// Like [`get`](Self::get), but the guard owns a handle to the pool
    /// (`'static`), for moving into a spawned task.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    #[track_caller]
    pub fn get_owned(
        &self,
    ) -> impl std::future::Future<Output = Result<MonitoredConnection<'static, Tls>, GetError>> + Send + '_ {
        let location = Location::caller();
        async move {
            let start = Instant::now();
            let result = self.inner.get_owned().await;
            self.checked_out(result, start, location)
        }
    }

    fn checked_out<'a>(
        &self,
        result: Result<bb8::PooledConnection<'a, MonitoredManager<Tls>>, bb8::RunError<tokio_postgres::Error>>,
        start: Instant,
        location: &'static Location<'static>,
    ) -> Result<MonitoredConnection<'a, Tls>, GetError> {
        let waited = start.elapsed();
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
                let now = Instant::now();
                let since = u64::try_from(now.duration_since(self.shared.epoch).as_nanos()).unwrap_or(u64::MAX - 1);
                stats.checked_out.store(since.saturating_add(1), Relaxed);
                let start_counts = stats.counts();
                if self.shared.publish_due(since) {
                    self.publish_state();
                }
                Ok(MonitoredConnection {
                    conn: Some(conn),
                    start_counts,
                    checked_out: now,
                    location,
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
                    bb8::RunError::User(e) => (ErrorKind::of_connect(&e), Some(error_chain(&e))),
                };
                self.shared.record(Event::Checkout {
                    waited,
                    timeout: Some(kind),
                });
                self.publish_state();
                Err(GetError {
                    kind,
                    pool: self.shared.name.clone(),
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
        let state = self.inner.state();
        let s = &state.statistics;
        let m = &self.shared.metrics;
        m.idle.set(f64::from(state.idle_connections));
        m.used
            .set(f64::from(state.connections.saturating_sub(state.idle_connections)));
        m.max.set(f64::from(self.shared.max_size.load(Relaxed)));
        m.idle_min.set(f64::from(self.shared.min_idle.load(Relaxed)));
        m.pending.set(s.pending_gets() as f64);
        m.created.absolute(s.connections_created);
        m.closed_broken.absolute(s.connections_closed_broken);
        m.closed_invalid.absolute(s.connections_closed_invalid);
        m.closed_max_lifetime.absolute(s.connections_closed_max_lifetime);
        m.closed_idle_timeout.absolute(s.connections_closed_idle_timeout);
        m.gets_direct.absolute(s.get_direct);
        m.gets_waited.absolute(s.get_waited);
        m.gets_timed_out.absolute(s.get_timed_out);
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
            name: self.shared.name.to_string(),
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

    /// The error store: errors in the last `minutes` (everything retained
    /// when `None`; at most 24 hours), their classes and SQLSTATEs,
    /// recurring patterns, and statement error rates over 5 minutes,
    /// 15 minutes and 1 hour.
    pub fn error_report(&self, minutes: Option<u32>) -> ErrorReport {
        let rates = self.error_rates();
        let minutes = minutes.map(crate::stats::clamp_minutes);
        self.shared
            .stores
            .errors
            .report(&self.shared.name, SystemTime::now(), minutes, rates)
    }

    /// Statement error rates over 5 minutes, 15 minutes and 1 hour.
    pub(crate) fn error_rates(&self) -> Vec<crate::stats::ErrorRate> {
        let now = std::time::Instant::now();
        let current = self.observe_totals(now);
        let history = &self.shared.stores.totals;
        [5u32, 15, 60]
            .into_iter()
            .map(|m| crate::stats::rate(m, history.over(now, current, Duration::from_secs(60 * u64::from(m)))))
            .collect()
    }

    /// The slow-query store: runs at or over the slow threshold in the last
    /// `minutes` (everything retained when `None`; at most 24 hours),
    /// grouped by statement; at most `limit` groups and `limit` recent runs.
    pub fn slow_query_report(&self, minutes: Option<u32>, limit: usize) -> SlowQueryReport {
        let now = std::time::Instant::now();
        let current = self.observe_totals(now);
        let minutes = minutes.map(crate::stats::clamp_minutes);
        // Database time is kept per minute for the last hour.
        let window = Duration::from_secs(60 * u64::from(minutes.unwrap_or(60).min(60)));
        let (delta, _) = self.shared.stores.totals.over(now, current, window);
        self.shared.stores.slow.report(
            &self.shared.name,
            self.shared.monitor.config.alerts.slow_query_threshold,
            SystemTime::now(),
            minutes,
            limit,
            nanos(delta.busy_ns),
        )
    }

    /// The pool trend: the samples of the last `minutes` (every sample
    /// retained when `None`), with peak and average utilization, waiters,
    /// timeouts and waiting. Samples are taken by the background task
    /// ([`DbMonitor::start`](crate::DbMonitor::start)) or [`sample`](Self::sample).
    pub fn trend_report(&self, minutes: Option<u32>) -> PoolTrendReport {
        let minutes = minutes.map(crate::stats::clamp_minutes);
        self.shared
            .stores
            .trend
            .report(&self.shared.name, SystemTime::now(), minutes)
    }

    /// Takes a trend sample now (the background task does so every
    /// health-check interval) and publishes the pool's state.
    pub fn sample(&self) {
        let state = self.inner.state();
        let s = &state.statistics;
        let in_use = self.shared.in_use.load(Relaxed);
        let peak = self.shared.peak_in_use.swap(in_use, Relaxed);
        self.shared.stores.trend.sample(
            SystemTime::now(),
            self.shared.max_size.load(Relaxed),
            state.connections,
            state.idle_connections,
            in_use,
            s.pending_gets(),
            peak,
            s.get_timed_out,
            s.get_wait_time,
        );
        self.publish_state();
    }

    /// Empties this pool's stores: errors, slow queries, the trend, the
    /// per-statement counts and the error-rate history. The metrics
    /// recorder's counters are never reset. The background task does this
    /// every [`metrics_reset_interval`](crate::MonitorConfig::metrics_reset_interval).
    pub fn reset_stores(&self) {
        let stores = &self.shared.stores;
        stores.errors.clear();
        stores.slow.clear();
        stores.trend.clear();
        stores.recent.clear();
        stores.n_plus_one.clear();
        self.shared.queries.reset_counts();
        stores
            .totals
            .reset(std::time::Instant::now(), self.shared.queries.totals());
    }

    /// Empties the error store only (errors and patterns; the error rates,
    /// which come from the statement counters, stay).
    pub fn reset_errors(&self) {
        self.shared.stores.errors.clear();
    }

    /// The last statements the pool ran (at most `limit`, and at most
    /// [`query_history`](crate::MonitorConfig::query_history) are kept),
    /// newest first, normalized.
    pub fn recent_statements(&self, limit: usize) -> Vec<RecentStatement> {
        let entries = self.shared.queries.entries();
        let by_fingerprint: std::collections::HashMap<u64, &shared::QueryEntry> =
            entries.iter().map(|e| (e.fingerprint, &**e)).collect();
        self.shared
            .stores
            .recent
            .read(limit)
            .iter()
            .map(|raw| {
                let entry = by_fingerprint.get(&raw.fingerprint);
                crate::stats::describe_recent(
                    raw,
                    self.shared.epoch_wall,
                    entry.map(|e| (&*e.normalized, e.operation, e.table.as_deref())),
                )
            })
            .collect()
    }

    /// The performance score over the last `minutes` (1 to 1440): its
    /// parts and recommendations (see [`crate::report`] for the formula).
    /// Also sets the `db_monitor_performance_score` gauge.
    pub fn performance(&self, minutes: u32) -> PerformanceScore {
        self.comprehensive(minutes, 10).performance
    }

    /// Everything about the pool in one document, over the last `minutes`
    /// (1 to 1440; the error and slow-query lists at most `limit` long).
    pub fn comprehensive(&self, minutes: u32, limit: usize) -> ComprehensiveReport {
        let minutes = crate::stats::clamp_minutes(minutes);
        let queries = self.query_performance(minutes, limit);
        let slow = self.slow_query_report(Some(minutes), limit);
        let mut errors = self.error_report(Some(minutes));
        errors.recent.truncate(limit);
        let trend = self.trend_report(Some(minutes));
        let max_size = self.shared.max_size.load(Relaxed);
        let alerts = self.alerts();
        let performance = crate::report::score(&crate::report::Inputs {
            config: &self.shared.monitor.config,
            max_size,
            queries: &queries,
            slow: &slow,
            errors: &errors,
            trend: &trend,
            alerts: &alerts.active,
        });
        self.shared.metrics.score.set(performance.score);
        ComprehensiveReport {
            pool: self.snapshot(),
            recent_statements: self.recent_statements(limit),
            performance,
            queries,
            slow_queries: slow,
            errors,
            pool_trend: trend,
            n_plus_one: self.shared.stores.n_plus_one.report(),
            alerts,
        }
    }

    /// Takes this minute's snapshot of the pool's totals if none was taken
    /// yet (the background task does it every minute), and returns them.
    pub(crate) fn observe_totals(&self, now: std::time::Instant) -> crate::stats::Totals {
        self.shared.queries.snapshot_minute(now);
        let current = self.shared.queries.totals();
        self.shared.stores.totals.observe(now, current);
        current
    }

    /// Statement performance over the last `minutes` (1 to 1440): counts,
    /// success rate, mean, min, max, p50/p95/p99 and rows overall, by
    /// operation, by table and by statement (at most `limit` statements,
    /// most total time first), and the statements whose p95 has degraded.
    ///
    /// See [`crate::stats`] for how windows are kept and how precise the
    /// percentiles are.
    pub fn query_performance(&self, minutes: u32, limit: usize) -> QueryPerformanceReport {
        let minutes = crate::stats::clamp_minutes(minutes);
        let now = std::time::Instant::now();
        self.observe_totals(now);
        let config = &self.shared.monitor.config;
        let from = now.checked_sub(Duration::from_secs(60 * u64::from(minutes)));
        let recent_from = now.checked_sub(Duration::from_secs(5 * 60));
        let baseline_from = now.checked_sub(Duration::from_secs(65 * 60));
        let entries = self.shared.queries.entries();
        let mut statements = Vec::with_capacity(entries.len());
        let mut degraded = Vec::new();
        for e in &entries {
            let live = e.stats.cumulative(false);
            let window = e.history.window(from, now, Some(&live));
            if let Some(recent_from) = recent_from {
                let recent = e.history.window(Some(recent_from), now, Some(&live));
                let baseline = e.history.window(baseline_from, recent_from, None);
                degraded.extend(crate::stats::degradation(
                    e.fingerprint,
                    &e.normalized,
                    &recent,
                    &baseline,
                    config.degradation_factor,
                    config.degradation_min_samples,
                ));
            }
            statements.push(crate::stats::StatementWindow {
                fingerprint: e.fingerprint,
                statement: &e.normalized,
                operation: e.operation,
                table: e.table.as_deref(),
                window,
            });
        }
        crate::stats::performance_report(
            &self.shared.name,
            minutes,
            config.alerts.slow_query_threshold,
            now,
            statements,
            limit,
            degraded,
        )
    }

    /// Per-fingerprint statement counts since the pool was created, most
    /// total time first.
    pub fn query_stats(&self) -> Vec<QueryStats> {
        let mut all: Vec<QueryStats> = self
            .shared
            .queries
            .entries()
            .iter()
            .map(|e| {
                let s = e.stats.totals();
                QueryStats {
                    fingerprint: e.fingerprint,
                    normalized: e.normalized.to_string(),
                    operation: e.operation,
                    table: e.table.as_deref().map(str::to_owned),
                    calls: s.calls,
                    errors: s.errors,
                    cancelled: s.cancelled,
                    slow: s.slow,
                    rows: s.rows,
                    total_time: nanos(s.total_ns),
                    max_time: nanos(s.max_ns),
                }
            })
            .collect();
        all.sort_by(|a, b| b.total_time.cmp(&a.total_time).then(a.fingerprint.cmp(&b.fingerprint)));
        all
    }
}

/// One checked-out connection. Derefs to [`MonitoredClient`]; dropping it
/// returns the connection to the pool and records how long it was held.
pub struct MonitoredConnection<'a, Tls: MakeTls> {
    conn: Option<bb8::PooledConnection<'a, MonitoredManager<Tls>>>,
    start_counts: SessionCounts,
    checked_out: Instant,
    location: &'static Location<'static>,
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
            held: self.checked_out.elapsed(),
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
        let held = self.checked_out.elapsed();
        conn.stats().checked_out.store(0, Relaxed);
        conn.pool().in_use.fetch_sub(1, Relaxed);
        conn.pool().record(Event::Return {
            held,
            location: self.location,
        });
        // Dropping the bb8 guard returns the connection to the pool.
        drop(conn);
    }
}

/// No connection within the pool's timeout.
#[derive(Debug)]
pub struct GetError {
    kind: ErrorKind,
    pool: Arc<str>,
    waited: Duration,
    in_use: u32,
    max_size: u32,
    source: Option<ConnectError>,
}

impl GetError {
    /// [`ErrorKind::PoolExhausted`] or [`ErrorKind::ConnectTimeout`].
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// How long the checkout waited.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no connection from pool {:?} after {:.1?}: ",
            &*self.pool, self.waited
        )?;
        match self.kind {
            ErrorKind::PoolExhausted => write!(
                f,
                "pool exhausted ({} of {} connections in use)",
                self.in_use, self.max_size
            ),
            _ => match &self.source {
                Some(e) => write!(f, "could not connect ({e})"),
                None => f.write_str("could not connect in time"),
            },
        }
    }
}

impl std::error::Error for GetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// The last connect failure behind a [`GetError`], as text (bb8 keeps no
/// error for a timeout; the monitor remembers the last one it saw).
#[derive(Debug, Clone)]
struct ConnectError(String);

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectError {}

/// What an error store keeps as a statement error's message: the server's
/// message with quoted values masked, or the client's description.
pub(crate) fn error_message(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => crate::classify::mask_message(db.message()).into_owned(),
        None => error_chain(error),
    }
}

/// An error and its sources, joined with `": "`, safe to log: a server
/// error is shown as its severity, its message with quoted values masked,
/// and its SQLSTATE, never with its `DETAIL` or `HINT` (which can carry row
/// values, and which `DbError`'s `Display` includes).
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let describe = |e: &(dyn std::error::Error + 'static)| match e.downcast_ref::<tokio_postgres::error::DbError>() {
        Some(db) => format!(
            "{}: {} ({})",
            db.severity(),
            crate::classify::mask_message(db.message()),
            db.code().code()
        ),
        None => e.to_string(),
    };
    let mut text = describe(error);
    let mut next = error.source();
    while let Some(e) = next {
        let part = describe(e);
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = e.source();
    }
    text
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
    /// by [`MonitorCustomizer`]).
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
    #[serde(rename = "created_unix_ms", serialize_with = "crate::stats::ser_unix_ms")]
    pub created: SystemTime,
    /// How long it has been open.
    #[serde(rename = "age_ms", serialize_with = "crate::stats::ser_ms")]
    pub age: Duration,
    /// Statements it has run.
    pub statements: u64,
    /// Statements that failed.
    pub errors: u64,
    /// Statements abandoned by their caller.
    pub cancelled: u64,
    /// Time spent in statements.
    #[serde(rename = "busy_time_ms", serialize_with = "crate::stats::ser_ms")]
    pub busy_time: Duration,
    /// Times it was checked out.
    pub checkouts: u64,
    /// How long the current checkout has held it, if checked out.
    #[serde(rename = "held_for_ms", serialize_with = "crate::stats::ser_opt_ms")]
    pub held_for: Option<Duration>,
}

impl ConnectionInfo {
    fn of(c: &ConnStats, shared: &PoolShared) -> Self {
        let since = c.checked_out.load(Relaxed);
        ConnectionInfo {
            id: c.id,
            created: c.created,
            age: c.created_at.elapsed(),
            statements: c.statements.load(Relaxed),
            errors: c.errors.load(Relaxed),
            cancelled: c.cancelled.load(Relaxed),
            busy_time: nanos(c.busy_ns.load(Relaxed)),
            checkouts: c.checkouts.load(Relaxed),
            held_for: (since > 0).then(|| shared.epoch.elapsed().saturating_sub(nanos(since - 1))),
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

/// Counts for one normalized statement ([`MonitoredPool::query_stats`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueryStats {
    /// The fingerprint (`0` for the `other` bucket past the fingerprint cap).
    pub fingerprint: u64,
    /// The normalized text.
    pub normalized: String,
    /// The operation.
    pub operation: Operation,
    /// The main table.
    pub table: Option<String>,
    /// Runs (successes, failures and cancellations).
    pub calls: u64,
    /// Failed runs.
    pub errors: u64,
    /// Runs abandoned by their caller.
    pub cancelled: u64,
    /// Runs at or over the slow threshold.
    pub slow: u64,
    /// Rows returned or affected, where known.
    pub rows: u64,
    /// Total time of the runs that finished (cancelled runs add none).
    pub total_time: Duration,
    /// Longest run.
    pub max_time: Duration,
}

impl QueryStats {
    /// Mean time of the runs that finished (successfully or not).
    pub fn mean_time(&self) -> Duration {
        let finished = self.calls - self.cancelled;
        if finished == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos((self.total_time.as_nanos() / u128::from(finished)) as u64)
        }
    }
}
