//! [`MonitoredClient`]: tokio-postgres's client methods under their own
//! names, each one timed and classified.

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use quanta::Instant;
use tokio_postgres::types::{BorrowToSql, FromSqlOwned, ToSql, Type};
use tokio_postgres::{
    CancelToken, Client, CopyInSink, CopyOutStream, Error, Row, RowStream, SimpleQueryMessage, SimpleQueryStream,
};

use super::flight::{unknown, ConnCtx, QueryRef};
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
    client: Client,
    ctx: ConnCtx,
}

impl fmt::Debug for MonitoredClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredClient")
            .field("pool", self.ctx.pool.name())
            .field("connection", &self.ctx.stats.id)
            .field("closed", &self.client.is_closed())
            .finish()
    }
}

impl MonitoredClient {
    pub(crate) fn new(client: Client, stats: Arc<ConnStats>, pool: Arc<PoolShared>) -> Self {
        let token = client.cancel_token();
        MonitoredClient {
            client,
            ctx: ConnCtx::new(stats, pool, token),
        }
    }

    pub(crate) fn stats(&self) -> &ConnStats {
        &self.ctx.stats
    }

    pub(crate) fn pool(&self) -> &PoolShared {
        &self.ctx.pool
    }

    pub(crate) fn is_broken(&self) -> bool {
        self.client.is_closed() || self.ctx.stats.broken.load(Relaxed)
    }

    /// The plain `tokio_postgres::Client`: the escape hatch. Statements run
    /// through it are not recorded.
    pub fn raw(&self) -> &Client {
        &self.client
    }

    /// This connection's id within its pool (as listed by
    /// [`MonitoredPool::snapshot`](crate::MonitoredPool::snapshot)).
    pub fn connection_id(&self) -> u64 {
        self.ctx.stats.id
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
        self.ctx.prepare_typed(&self.client, query, types).await
    }

    /// Runs a statement and returns its rows. See `tokio_postgres::Client::query`.
    pub async fn query<T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, Error>
    where
        T: ?Sized + ToMonitoredStatement,
    {
        self.ctx.query(&self.client, statement, params).await
    }

    /// Runs a statement that returns exactly one row.
    pub async fn query_one<T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<Row, Error>
    where
        T: ?Sized + ToMonitoredStatement,
    {
        self.ctx.query_one(&self.client, statement, params).await
    }

    /// Runs a statement that returns zero or one row.
    pub async fn query_opt<T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, Error>
    where
        T: ?Sized + ToMonitoredStatement,
    {
        self.ctx.query_opt(&self.client, statement, params).await
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
        self.ctx.query_raw(&self.client, statement, params).await
    }

    /// Runs unprepared text with explicitly typed parameters (one round trip).
    pub async fn query_typed(&self, query: &str, params: &[(&(dyn ToSql + Sync), Type)]) -> Result<Vec<Row>, Error> {
        self.ctx.query_typed(&self.client, query, params).await
    }

    /// Like [`query_typed`](Self::query_typed), for exactly one row.
    pub async fn query_typed_one(&self, query: &str, params: &[(&(dyn ToSql + Sync), Type)]) -> Result<Row, Error> {
        self.ctx.query_typed_one(&self.client, query, params).await
    }

    /// Like [`query_typed`](Self::query_typed), for zero or one row.
    pub async fn query_typed_opt(
        &self,
        query: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Option<Row>, Error> {
        self.ctx.query_typed_opt(&self.client, query, params).await
    }

    /// Like [`query_typed`](Self::query_typed), streaming the rows.
    pub async fn query_typed_raw<P, I>(&self, query: &str, params: I) -> Result<MonitoredStream<RowStream>, Error>
    where
        P: BorrowToSql,
        I: IntoIterator<Item = (P, Type)>,
    {
        self.ctx.query_typed_raw(&self.client, query, params).await
    }

    /// Runs a statement and returns the number of rows it affected.
    pub async fn execute<T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<u64, Error>
    where
        T: ?Sized + ToMonitoredStatement,
    {
        self.ctx.execute(&self.client, statement, params).await
    }

    /// Like [`execute`](Self::execute), with explicitly typed parameters.
    pub async fn execute_typed(&self, query: &str, params: &[(&(dyn ToSql + Sync), Type)]) -> Result<u64, Error> {
        self.ctx.execute_typed(&self.client, query, params).await
    }

    /// Like [`execute`](Self::execute), with parameters from an iterator.
    pub async fn execute_raw<T, P, I>(&self, statement: &T, params: I) -> Result<u64, Error>
    where
        T: ?Sized + ToMonitoredStatement,
        P: BorrowToSql,
        I: IntoIterator<Item = P>,
        I::IntoIter: ExactSizeIterator,
    {
        self.ctx.execute_raw(&self.client, statement, params).await
    }

    /// Starts a `COPY … FROM STDIN`. The time recorded is the time to
    /// start the copy; the data sent through the sink is not timed.
    pub async fn copy_in<T, U>(&self, statement: &T) -> Result<CopyInSink<U>, Error>
    where
        T: ?Sized + ToMonitoredStatement,
        U: bytes::Buf + 'static + Send,
    {
        self.ctx.copy_in(&self.client, statement).await
    }

    /// Starts a `COPY … TO STDOUT`; timed until the stream ends.
    pub async fn copy_out<T>(&self, statement: &T) -> Result<MonitoredStream<CopyOutStream>, Error>
    where
        T: ?Sized + ToMonitoredStatement,
    {
        self.ctx.copy_out(&self.client, statement).await
    }

    /// Runs statements with the simple query protocol (no parameters;
    /// never interpolate values into it).
    pub async fn simple_query(&self, query: &str) -> Result<Vec<SimpleQueryMessage>, Error> {
        self.ctx.simple_query(&self.client, query).await
    }

    /// Runs a batch of `;`-separated statements with the simple query
    /// protocol, timed as one statement.
    pub async fn batch_execute(&self, query: &str) -> Result<(), Error> {
        self.ctx.batch_execute(&self.client, query).await
    }

    /// A token to cancel the statement running on this connection.
    pub fn cancel_token(&self) -> CancelToken {
        self.client.cancel_token()
    }

    /// Runs a statement whose single column is returned for every row.
    pub async fn query_scalar<R, T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<R>, Error>
    where
        R: FromSqlOwned,
        T: ?Sized + ToMonitoredStatement,
    {
        self.ctx.query_scalar(&self.client, statement, params).await
    }

    /// Runs a statement returning exactly one row of one column.
    pub async fn query_one_scalar<R, T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<R, Error>
    where
        R: FromSqlOwned,
        T: ?Sized + ToMonitoredStatement,
    {
        self.ctx.query_one_scalar(&self.client, statement, params).await
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
        self.ctx.query_opt_scalar(&self.client, statement, params).await
    }

    /// Like [`simple_query`](Self::simple_query), streaming the messages;
    /// timed until the stream ends.
    pub async fn simple_query_raw(&self, query: &str) -> Result<MonitoredStream<SimpleQueryStream>, Error> {
        self.ctx.simple_query_raw(&self.client, query).await
    }

    /// Checks that the connection is alive with an empty query.
    pub async fn check_connection(&self) -> Result<(), Error> {
        self.client.check_connection().await
    }

    /// Whether the connection to the server is closed.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Clears the client's cache of type information.
    pub fn clear_type_cache(&self) {
        self.client.clear_type_cache();
    }

    /// Begins a transaction (`BEGIN`, recorded as a statement). Its end and
    /// duration are recorded too; dropping it rolls back (recorded as
    /// `abandoned`).
    pub async fn transaction(&mut self) -> Result<MonitoredTransaction<'_>, Error> {
        let MonitoredClient { client, ctx } = self;
        let start = Instant::now();
        let tx = ctx.run(QueryRef::Text("BEGIN"), client.transaction(), unknown).await?;
        Ok(MonitoredTransaction::new(tx, ctx, start))
    }

    /// A builder for a transaction with isolation level, read-only or
    /// deferrable settings.
    pub fn build_transaction(&mut self) -> MonitoredTransactionBuilder<'_> {
        let MonitoredClient { client, ctx } = self;
        MonitoredTransactionBuilder {
            builder: client.build_transaction(),
            ctx,
        }
    }
}
