//! [`MonitoredClient`]: tokio-postgres's client methods under their own
//! names, each one timed and classified.

use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use quanta::Instant;
use tokio_postgres::types::{BorrowToSql, FromSqlOwned, ToSql, Type};
use tokio_postgres::{
    CancelToken, Client, CopyInSink, CopyOutStream, Error, Row, RowStream, SimpleQueryMessage, SimpleQueryStream,
};

use super::cache::StatementCache;
use super::flight::{unknown, ConnCtx, QueryRef, Via};
use super::shared::{ConnStats, PoolShared};
use super::statement::{MonitoredStatement, ToMonitoredStatement};
use super::stream::MonitoredStream;
use super::transaction::{MonitoredTransaction, MonitoredTransactionBuilder};

/// A pooled connection's client: the `tokio_postgres::Client` methods under
/// the same names, each statement timed, classified and counted.
///
/// This is bb8's connection type for a [`MonitoredPool`](crate::MonitoredPool);
/// a [`MonitoredConnection`](crate::MonitoredConnection) derefs to it.
/// [`raw`](Self::raw) gives the plain client, whose statements are not
/// recorded.
pub struct MonitoredClient {
    // Boxed: bb8 moves its connections between its idle list, the guard
    // and back on every checkout, and a bare client with its context is
    // over 300 bytes.
    inner: Box<ClientParts>,
    /// This connection's [`prepare_cached`](Self::prepare_cached)
    /// statements, under deadpool-postgres's name and methods
    /// (`statement_cache.size()`, `.clear()`, `.remove(query, types)`).
    pub statement_cache: StatementCache,
}

struct ClientParts {
    client: Client,
    ctx: ConnCtx,
}

impl ClientParts {
    fn via(&self) -> Via<'_> {
        Via {
            client: &self.client,
            parent: None,
        }
    }
}

impl Drop for ClientParts {
    /// The connection is retired: an abandoned statement's cancel request,
    /// if one is still due, is sent now, unless a stream still runs on it.
    fn drop(&mut self) {
        self.ctx.release(true);
    }
}

impl fmt::Debug for MonitoredClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredClient")
            .field("pool", self.inner.ctx.pool.name())
            .field("connection", &self.stats().id)
            .field("closed", &self.inner.client.is_closed())
            .finish()
    }
}

impl MonitoredClient {
    pub(crate) fn new(client: Client, stats: Arc<ConnStats>, pool: Arc<PoolShared>) -> Self {
        let token = client.cancel_token();
        let ctx = ConnCtx::new(stats, pool, token);
        MonitoredClient {
            statement_cache: StatementCache(ctx.cache().clone()),
            inner: Box::new(ClientParts { client, ctx }),
        }
    }

    pub(crate) fn stats(&self) -> &ConnStats {
        &self.inner.ctx.stats
    }

    pub(crate) fn pool(&self) -> &PoolShared {
        &self.inner.ctx.pool
    }

    /// Marks the connection broken: bb8 closes it when it comes back
    /// rather than handing it out again.
    pub(crate) fn retire(&self) {
        self.stats().broken.store(true, Relaxed);
    }

    pub(crate) fn is_broken(&self) -> bool {
        let stats = &self.inner.ctx.stats;
        self.inner.client.is_closed()
            || stats.broken.load(Relaxed)
            || stats.unsettled()
            || stats.streams_open.load(Relaxed) > 0
    }

    /// Whether the checkout returning this connection should settle it
    /// first: a statement was abandoned on it, and nothing else keeps it
    /// from the pool (no stream open, not closed or broken).
    pub(crate) fn needs_settling(&self) -> bool {
        let stats = &self.inner.ctx.stats;
        stats.unsettled()
            && stats.streams_open.load(Relaxed) == 0
            && !stats.broken.load(Relaxed)
            && !self.inner.client.is_closed()
    }

    /// Whether the settling ping answered less than
    /// [`PING_BYPASS`](Self::PING_BYPASS) ago (then true once): bb8's
    /// validity check on the next checkout need not ping again, as
    /// HikariCP skips the check for a connection used within its
    /// `aliveBypassWindowMs`.
    pub(crate) fn pinged_just_now(&self) -> bool {
        let ctx = &self.inner.ctx;
        let at = ctx.stats.pinged_at.swap(0, Relaxed);
        if at == 0 {
            return false;
        }
        let now = crate::units::saturating_nanos(crate::units::now().saturating_duration_since(ctx.pool.epoch));
        now.saturating_sub(at - 1) < crate::units::saturating_nanos(Self::PING_BYPASS)
    }

    /// How recent a settling ping stands in for the validity check.
    pub(crate) const PING_BYPASS: std::time::Duration = std::time::Duration::from_millis(500);

    /// Settles a connection on which a statement was abandoned, before it
    /// goes back to the pool: an empty query queued behind that work
    /// answers once the server has finished it (tokio-postgres reads and
    /// drops the rest of the abandoned answer in order).
    ///
    /// An answer within `grace` keeps the connection: no cancel request,
    /// nothing retired. Past `grace` the server is still running the
    /// abandoned statement (a request that timed out during a long query):
    /// the cancel request goes out now, while nobody else can run anything
    /// on the connection, and the connection is retired.
    pub(crate) async fn settle(&self, grace: std::time::Duration) {
        let ClientParts { client, ctx, .. } = &*self.inner;
        let metrics = &ctx.pool.sink.metrics;
        let ping = if grace.is_zero() {
            None
        } else {
            tokio::time::timeout(grace, client.simple_query("")).await.ok()
        };
        match ping {
            Some(Ok(_)) => {
                ctx.stats.settled();
                let since = crate::units::now().saturating_duration_since(ctx.pool.epoch);
                let since = crate::units::saturating_nanos(since).saturating_add(1);
                ctx.stats.pinged_at.store(since, Relaxed);
                metrics.abandoned[0].increment(1);
            }
            // The connection failed: its background task reports how.
            Some(Err(_)) => ctx.stats.broken.store(true, Relaxed),
            None => {
                ctx.stats.broken.store(true, Relaxed);
                if ctx.stats.take_cancel() {
                    (ctx.pool.canceller)(ctx.token().clone());
                }
                metrics.abandoned[1].increment(1);
            }
        }
    }

    /// The plain `tokio_postgres::Client`: the escape hatch.
    ///
    /// What goes through it is invisible to the monitor: its statements are
    /// not timed, counted, classified or kept (no error record, no slow
    /// query, no span, no per-request statistics), and a future or stream
    /// of it dropped early is not settled. The checkout itself is still
    /// recorded. For code that must take tokio-postgres's types, prefer a
    /// function generic over [`GenericClient`](crate::GenericClient), which
    /// keeps the monitored types recorded.
    pub fn raw(&self) -> &Client {
        &self.inner.client
    }

    /// The plain client, mutably, for tools that take
    /// `&mut tokio_postgres::Client`, such as refinery's migrations
    /// (`AsyncMigrate` is implemented for `tokio_postgres::Client`).
    ///
    /// As with [`raw`](Self::raw), nothing run through it is recorded;
    /// wrap the whole run in [`DbMonitor::track`](crate::DbMonitor::track)
    /// to time it as one operation and classify its error. Do not replace
    /// the client: the connection's bookkeeping (its cancel token, its
    /// backend) belongs to the one it came with.
    ///
    /// ```no_run
    /// # async fn run(monitor: db_monitor::DbMonitor, pool: db_monitor::MonitoredPool<db_monitor::tokio_postgres::NoTls>) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let mut conn = pool.get().await?;
    /// monitor
    ///     .track("migrations", async {
    ///         // e.g. `embedded::migrations::runner().run_async(conn.raw_mut()).await`
    ///         conn.raw_mut().batch_execute("CREATE TABLE IF NOT EXISTS t (id int)").await?;
    ///         Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn raw_mut(&mut self) -> &mut Client {
        &mut self.inner.client
    }

    /// This connection's id within its pool (as listed by
    /// [`PoolMonitor::snapshot`](crate::PoolMonitor::snapshot)).
    pub fn connection_id(&self) -> u64 {
        self.stats().id
    }

    /// Prepares a statement, keeping its text and fingerprint.
    ///
    /// A failed prepare (a syntax error, an unknown table) is recorded
    /// as a failed statement; a successful one is not counted as a run.
    pub async fn prepare(&self, query: &str) -> Result<MonitoredStatement, Error> {
        self.prepare_typed(query, &[]).await
    }

    /// Like [`prepare`](Self::prepare), with parameter types.
    pub async fn prepare_typed(&self, query: &str, types: &[Type]) -> Result<MonitoredStatement, Error> {
        self.inner.ctx.prepare_typed(self.inner.via(), query, types).await
    }

    /// Like [`prepare`](Self::prepare), but from this connection's cache of
    /// prepared statements (as deadpool-postgres's `prepare_cached`): the
    /// first call for a text prepares it on the server, later calls on the
    /// same connection reuse it without a round trip.
    ///
    /// The cache holds at most
    /// [`prepared_cache_size`](crate::MonitorConfig::prepared_cache_size)
    /// statements per connection (the least recently used is closed past
    /// it). Hits and misses are counted
    /// ([`PREPARED_CACHE`](crate::names::PREPARED_CACHE), and per
    /// connection in [`ConnectionInfo`](crate::ConnectionInfo)).
    pub async fn prepare_cached(&self, query: &str) -> Result<MonitoredStatement, Error> {
        self.prepare_typed_cached(query, &[]).await
    }

    /// Like [`prepare_cached`](Self::prepare_cached), with parameter types
    /// (part of the cache's key).
    pub async fn prepare_typed_cached(&self, query: &str, types: &[Type]) -> Result<MonitoredStatement, Error> {
        self.inner
            .ctx
            .prepare_typed_cached(self.inner.via(), query, types)
            .await
    }

    /// Runs a statement and returns its rows. See `tokio_postgres::Client::query`.
    pub fn query<'a, T>(
        &'a self,
        statement: &'a T,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send + 'a
    where
        T: ?Sized + ToMonitoredStatement,
    {
        self.inner.ctx.query(self.inner.via(), statement, params)
    }

    /// Runs a statement that returns exactly one row.
    pub fn query_one<'a, T>(
        &'a self,
        statement: &'a T,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, Error>> + Send + 'a
    where
        T: ?Sized + ToMonitoredStatement,
    {
        self.inner.ctx.query_one(self.inner.via(), statement, params)
    }

    /// Runs a statement that returns zero or one row.
    pub fn query_opt<'a, T>(
        &'a self,
        statement: &'a T,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'a
    where
        T: ?Sized + ToMonitoredStatement,
    {
        self.inner.ctx.query_opt(self.inner.via(), statement, params)
    }

    /// Runs a statement and streams its rows; the statement is timed
    /// until the stream ends (see [`MonitoredStream`]).
    pub async fn query_raw<T, P, I>(&self, statement: &T, params: I) -> Result<MonitoredStream<RowStream>, Error>
    where
        T: ?Sized + ToMonitoredStatement,
        P: BorrowToSql,
        I: IntoIterator<Item = P>,
        I::IntoIter: ExactSizeIterator,
    {
        self.inner.ctx.query_raw(self.inner.via(), statement, params).await
    }

    /// Runs unprepared text with explicitly typed parameters (one round trip).
    pub fn query_typed<'a>(
        &'a self,
        query: &'a str,
        params: &'a [(&'a (dyn ToSql + Sync), Type)],
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send + 'a {
        self.inner.ctx.query_typed(self.inner.via(), query, params)
    }

    /// Like [`query_typed`](Self::query_typed), for exactly one row.
    pub fn query_typed_one<'a>(
        &'a self,
        query: &'a str,
        params: &'a [(&'a (dyn ToSql + Sync), Type)],
    ) -> impl Future<Output = Result<Row, Error>> + Send + 'a {
        self.inner.ctx.query_typed_one(self.inner.via(), query, params)
    }

    /// Like [`query_typed`](Self::query_typed), for zero or one row.
    pub fn query_typed_opt<'a>(
        &'a self,
        query: &'a str,
        params: &'a [(&'a (dyn ToSql + Sync), Type)],
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'a {
        self.inner.ctx.query_typed_opt(self.inner.via(), query, params)
    }

    /// Like [`query_typed`](Self::query_typed), streaming the rows.
    pub async fn query_typed_raw<P, I>(&self, query: &str, params: I) -> Result<MonitoredStream<RowStream>, Error>
    where
        P: BorrowToSql,
        I: IntoIterator<Item = (P, Type)>,
    {
        self.inner.ctx.query_typed_raw(self.inner.via(), query, params).await
    }

    /// Runs a statement and returns the number of rows it affected.
    pub fn execute<'a, T>(
        &'a self,
        statement: &'a T,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'a
    where
        T: ?Sized + ToMonitoredStatement,
    {
        self.inner.ctx.execute(self.inner.via(), statement, params)
    }

    /// Like [`execute`](Self::execute), with explicitly typed parameters.
    pub fn execute_typed<'a>(
        &'a self,
        query: &'a str,
        params: &'a [(&'a (dyn ToSql + Sync), Type)],
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'a {
        self.inner.ctx.execute_typed(self.inner.via(), query, params)
    }

    /// Like [`execute`](Self::execute), with parameters from an iterator.
    pub async fn execute_raw<T, P, I>(&self, statement: &T, params: I) -> Result<u64, Error>
    where
        T: ?Sized + ToMonitoredStatement,
        P: BorrowToSql,
        I: IntoIterator<Item = P>,
        I::IntoIter: ExactSizeIterator,
    {
        self.inner.ctx.execute_raw(self.inner.via(), statement, params).await
    }

    /// Starts a `COPY … FROM STDIN`. The time recorded is the time to
    /// start the copy; the data sent through the sink is not timed.
    pub async fn copy_in<T, U>(&self, statement: &T) -> Result<CopyInSink<U>, Error>
    where
        T: ?Sized + ToMonitoredStatement,
        U: bytes::Buf + 'static + Send,
    {
        self.inner.ctx.copy_in(self.inner.via(), statement).await
    }

    /// Starts a `COPY … TO STDOUT`; timed until the stream ends.
    pub async fn copy_out<T>(&self, statement: &T) -> Result<MonitoredStream<CopyOutStream>, Error>
    where
        T: ?Sized + ToMonitoredStatement,
    {
        self.inner.ctx.copy_out(self.inner.via(), statement).await
    }

    /// Starts a binary `COPY … TO STDOUT` read as rows of `types`
    /// (tokio-postgres's `BinaryCopyOutStream` over [`copy_out`](Self::copy_out)'s
    /// stream); timed until the stream ends, each row counted.
    pub async fn copy_out_binary<T>(
        &self,
        statement: &T,
        types: &[Type],
    ) -> Result<MonitoredStream<tokio_postgres::binary_copy::BinaryCopyOutStream>, Error>
    where
        T: ?Sized + ToMonitoredStatement,
    {
        self.inner.ctx.copy_out_binary(self.inner.via(), statement, types).await
    }

    /// Runs statements with the simple query protocol (no parameters;
    /// never interpolate values into it).
    pub fn simple_query<'a>(
        &'a self,
        query: &'a str,
    ) -> impl Future<Output = Result<Vec<SimpleQueryMessage>, Error>> + Send + 'a {
        self.inner.ctx.simple_query(self.inner.via(), query)
    }

    /// Runs a batch of `;`-separated statements with the simple query
    /// protocol, timed as one statement.
    pub fn batch_execute<'a>(&'a self, query: &'a str) -> impl Future<Output = Result<(), Error>> + Send + 'a {
        self.inner.ctx.batch_execute(self.inner.via(), query)
    }

    /// A token to cancel the statement running on this connection.
    pub fn cancel_token(&self) -> CancelToken {
        self.inner.client.cancel_token()
    }

    /// Runs a statement whose single column is returned for every row.
    pub async fn query_scalar<R, T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<R>, Error>
    where
        R: FromSqlOwned,
        T: ?Sized + ToMonitoredStatement,
    {
        self.inner.ctx.query_scalar(self.inner.via(), statement, params).await
    }

    /// Runs a statement returning exactly one row of one column.
    pub async fn query_one_scalar<R, T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<R, Error>
    where
        R: FromSqlOwned,
        T: ?Sized + ToMonitoredStatement,
    {
        self.inner
            .ctx
            .query_one_scalar(self.inner.via(), statement, params)
            .await
    }

    /// Runs a statement returning zero or one row of one column.
    pub async fn query_opt_scalar<R, T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<R>, Error>
    where
        R: FromSqlOwned,
        T: ?Sized + ToMonitoredStatement,
    {
        self.inner
            .ctx
            .query_opt_scalar(self.inner.via(), statement, params)
            .await
    }

    /// Like [`simple_query`](Self::simple_query), streaming the messages;
    /// timed until the stream ends.
    pub async fn simple_query_raw(&self, query: &str) -> Result<MonitoredStream<SimpleQueryStream>, Error> {
        self.inner.ctx.simple_query_raw(self.inner.via(), query).await
    }

    /// Checks that the connection is alive with an empty query.
    pub async fn check_connection(&self) -> Result<(), Error> {
        self.inner.client.check_connection().await
    }

    /// Whether the connection to the server is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.client.is_closed()
    }

    /// Clears the client's cache of type information.
    pub fn clear_type_cache(&self) {
        self.inner.client.clear_type_cache();
    }

    /// Empties this connection's cache of prepared statements (see
    /// [`prepare_cached`](Self::prepare_cached)), after a schema change for
    /// example; the statements are closed once no clone of them is left.
    pub fn clear_prepared_cache(&self) {
        self.inner.ctx.cache().clear();
    }

    /// Statements in this connection's `prepare_cached` cache.
    pub fn prepared_cache_len(&self) -> usize {
        self.inner.ctx.cache().len()
    }

    /// Begins a transaction (`BEGIN`, recorded as a statement). Its end and
    /// duration are recorded too; dropping it rolls back (recorded as
    /// `abandoned`, or `failed` when one of its statements failed).
    pub async fn transaction(&mut self) -> Result<MonitoredTransaction<'_>, Error> {
        let ClientParts { client, ctx, .. } = &mut *self.inner;
        let start = Instant::now();
        let span = ctx.transaction_span();
        let begun = ctx
            .run(Some(&span), QueryRef::Known("BEGIN"), client.transaction(), unknown)
            .await;
        MonitoredTransaction::begun(begun, ctx, start, span)
    }

    /// A builder for a transaction with isolation level, read-only or
    /// deferrable settings.
    pub fn build_transaction(&mut self) -> MonitoredTransactionBuilder<'_> {
        let ClientParts { client, ctx, .. } = &mut *self.inner;
        MonitoredTransactionBuilder {
            builder: client.build_transaction(),
            ctx,
        }
    }
}
