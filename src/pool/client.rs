//! [`MonitoredClient`], [`MonitoredTransaction`], [`MonitoredStatement`]
//! and [`MonitoredStream`]: tokio-postgres's methods under their own names,
//! each one timed and classified.

use quanta::Instant;
use std::any::Any;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures_core::Stream;
use pin_project_lite::pin_project;
use tokio_postgres::types::{BorrowToSql, FromSqlOwned, ToSql, Type};
use tokio_postgres::{
    CancelToken, Client, CopyInSink, CopyOutStream, Error, IsolationLevel, Row, RowStream, SimpleQueryMessage,
    SimpleQueryStream, Statement, Transaction, TransactionBuilder,
};

use super::shared::{ConnStats, PoolShared, QueryEntry};
use crate::monitor::{Event, Outcome};
use crate::sql::Operation;

mod sealed {
    pub trait Sealed {}
}

/// A statement given to a [`MonitoredClient`] method: SQL text (`&str`,
/// `String`) or a [`MonitoredStatement`].
///
/// Sealed: it is implemented for exactly those types. A bare
/// `tokio_postgres::Statement` cannot tell its SQL back, so prepare through
/// [`MonitoredClient::prepare`] instead.
pub trait ToMonitoredStatement: sealed::Sealed + Sync {
    #[doc(hidden)]
    fn __sql(&self) -> &str;
    #[doc(hidden)]
    fn __prepared(&self) -> Option<&MonitoredStatement>;
}

impl sealed::Sealed for str {}
impl ToMonitoredStatement for str {
    fn __sql(&self) -> &str {
        self
    }
    fn __prepared(&self) -> Option<&MonitoredStatement> {
        None
    }
}

impl sealed::Sealed for String {}
impl ToMonitoredStatement for String {
    fn __sql(&self) -> &str {
        self
    }
    fn __prepared(&self) -> Option<&MonitoredStatement> {
        None
    }
}

impl sealed::Sealed for MonitoredStatement {}
impl ToMonitoredStatement for MonitoredStatement {
    fn __sql(&self) -> &str {
        &self.sql
    }
    fn __prepared(&self) -> Option<&MonitoredStatement> {
        Some(self)
    }
}

/// A prepared statement that remembers its SQL text and fingerprint
/// (`tokio_postgres::Statement` cannot give them back).
///
/// Cheap to clone. Running it skips the statement-text lookup entirely.
#[derive(Clone)]
pub struct MonitoredStatement {
    statement: Statement,
    sql: Arc<str>,
    entry: Arc<QueryEntry>,
}

impl fmt::Debug for MonitoredStatement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The normalized text only: the raw text may hold literals.
        f.debug_struct("MonitoredStatement")
            .field("normalized", &self.entry.normalized)
            .field("fingerprint", &format_args!("{:016x}", self.entry.fingerprint))
            .finish()
    }
}

impl MonitoredStatement {
    /// The underlying prepared statement.
    pub fn statement(&self) -> &Statement {
        &self.statement
    }

    /// The SQL text it was prepared from, as written (it may contain
    /// literals: do not log it; see [`normalized`](Self::normalized)).
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The normalized text, with literals replaced by `?`.
    pub fn normalized(&self) -> &str {
        &self.entry.normalized
    }

    /// The statement's fingerprint (see [`crate::sql::fingerprint`]).
    pub fn fingerprint(&self) -> u64 {
        self.entry.fingerprint
    }

    /// The operation of the statement.
    pub fn operation(&self) -> Operation {
        self.entry.operation
    }

    /// The main table of the statement, if any.
    pub fn table(&self) -> Option<&str> {
        self.entry.table.as_deref()
    }

    /// The types of the statement's parameters.
    pub fn params(&self) -> &[Type] {
        self.statement.params()
    }

    /// The columns the statement returns.
    pub fn columns(&self) -> &[tokio_postgres::Column] {
        self.statement.columns()
    }
}

/// What a connection's statements need to report: the connection, its pool,
/// and how to cancel its running statement.
#[derive(Clone)]
pub(crate) struct ConnCtx {
    pub(crate) stats: Arc<ConnStats>,
    pub(crate) pool: Arc<PoolShared>,
    token: CancelToken,
}

/// Records one finished (or abandoned) statement: the per-statement hot
/// path, shared by [`InFlight`] and the overhead benchmark.
#[inline]
pub(crate) fn statement_ended(
    pool: &PoolShared,
    conn: &ConnStats,
    query: &QueryRef<'_>,
    start: Instant,
    end: Instant,
    outcome: Outcome<'_>,
) {
    let record = |entry: &QueryEntry| {
        pool.record(Event::Statement {
            entry,
            conn,
            end,
            elapsed: end.saturating_duration_since(start),
            outcome,
        })
    };
    match query {
        QueryRef::Text(sql) => pool.queries.with_entry(sql, record),
        QueryRef::Entry(entry) => record(entry),
        QueryRef::Owned(entry) => record(entry),
    }
}

/// The statement an [`InFlight`] reports on.
pub(crate) enum QueryRef<'a> {
    /// SQL text, looked up when the statement ends.
    Text(&'a str),
    /// A known entry (prepared statements).
    Entry(&'a QueryEntry),
    /// A known entry owned by a stream that outlives the call.
    Owned(Arc<QueryEntry>),
}

enum CtxRef<'a> {
    Borrowed(&'a ConnCtx),
    Owned(ConnCtx),
}

impl Deref for CtxRef<'_> {
    type Target = ConnCtx;
    fn deref(&self) -> &ConnCtx {
        match self {
            CtxRef::Borrowed(c) => c,
            CtxRef::Owned(c) => c,
        }
    }
}

/// A statement on the wire: reports its outcome when finished, or a
/// cancellation when dropped first.
///
/// A dropped statement still runs on the server, and its results would
/// still arrive on this connection ahead of the next statement's. So
/// cancellation marks the connection broken (bb8 closes it instead of
/// handing it to the next caller) and sends a cancel request so that the
/// server stops the work.
struct InFlight<'a> {
    ctx: CtxRef<'a>,
    query: QueryRef<'a>,
    start: Instant,
    done: bool,
}

impl<'a> InFlight<'a> {
    fn start(ctx: CtxRef<'a>, query: QueryRef<'a>) -> Self {
        InFlight {
            ctx,
            query,
            start: Instant::now(),
            done: false,
        }
    }

    fn finish(&mut self, outcome: Outcome<'_>) {
        if self.done {
            return;
        }
        self.done = true;
        self.report(outcome);
    }

    fn report(&self, outcome: Outcome<'_>) {
        statement_ended(
            &self.ctx.pool,
            &self.ctx.stats,
            &self.query,
            self.start,
            Instant::now(),
            outcome,
        );
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        self.report(Outcome::Cancelled);
        (self.ctx.pool.canceller)(self.ctx.token.clone());
    }
}

impl ConnCtx {
    pub(crate) fn new(stats: Arc<ConnStats>, pool: Arc<PoolShared>, token: CancelToken) -> Self {
        ConnCtx { stats, pool, token }
    }

    /// Runs one statement future, timing it and reporting its outcome.
    #[inline]
    async fn run<T, F>(&self, query: QueryRef<'_>, fut: F, rows: fn(&T) -> Option<u64>) -> Result<T, Error>
    where
        F: Future<Output = Result<T, Error>>,
    {
        let mut flight = InFlight::start(CtxRef::Borrowed(self), query);
        let result = fut.await;
        flight.finish(match &result {
            Ok(v) => Outcome::Ok(rows(v)),
            Err(e) => Outcome::Failed(e),
        });
        result
    }

    /// Starts a stream-returning statement: the clock runs until the stream
    /// ends.
    async fn run_stream<S, F>(
        &self,
        statement: &(impl ToMonitoredStatement + ?Sized),
        fut: F,
        counting: Counting,
    ) -> Result<MonitoredStream<S>, Error>
    where
        F: Future<Output = Result<S, Error>>,
    {
        let entry = match statement.__prepared() {
            Some(p) => p.entry.clone(),
            None => self.pool.queries.entry(statement.__sql()),
        };
        let mut flight = InFlight::start(CtxRef::Owned(self.clone()), QueryRef::Owned(entry));
        match fut.await {
            Ok(inner) => Ok(MonitoredStream {
                inner,
                flight: Some(flight),
                rows: 0,
                counting,
            }),
            Err(e) => {
                flight.finish(Outcome::Failed(&e));
                Err(e)
            }
        }
    }

    /// Records a statement that failed before it could run (a prepare).
    fn failed(&self, query: &str, start: Instant, error: &Error) {
        let mut flight = InFlight::start(CtxRef::Borrowed(self), QueryRef::Text(query));
        flight.start = start;
        flight.finish(Outcome::Failed(error));
    }
}

// The row counters are `fn(&T) -> Option<u64>` for the method's output
// type `T`, which is a `Vec` here.
#[allow(clippy::ptr_arg)]
fn row_count<T>(rows: &Vec<T>) -> Option<u64> {
    Some(rows.len() as u64)
}

fn one_row<T>(_: &T) -> Option<u64> {
    Some(1)
}

fn opt_row<T>(row: &Option<T>) -> Option<u64> {
    Some(u64::from(row.is_some()))
}

fn affected(n: &u64) -> Option<u64> {
    Some(*n)
}

fn unknown<T>(_: &T) -> Option<u64> {
    None
}

#[allow(clippy::ptr_arg)]
fn simple_rows(messages: &Vec<SimpleQueryMessage>) -> Option<u64> {
    Some(
        messages
            .iter()
            .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
            .count() as u64,
    )
}

/// Runs `$call` (an expression using `$s`, bound to either the SQL text or
/// the prepared `Statement`) as one timed statement.
macro_rules! dispatch {
    ($self:ident, $stmt:ident, |$s:ident| $call:expr, $rows:expr) => {
        match $stmt.__prepared() {
            Some(prepared) => {
                let $s = &prepared.statement;
                $self.ctx.run(QueryRef::Entry(&prepared.entry), $call, $rows).await
            }
            None => {
                let $s = $stmt.__sql();
                $self.ctx.run(QueryRef::Text($s), $call, $rows).await
            }
        }
    };
}

macro_rules! stream_dispatch {
    ($self:ident, $stmt:ident, |$s:ident| $call:expr, $rows:expr) => {
        match $stmt.__prepared() {
            Some(prepared) => {
                let $s = &prepared.statement;
                $self.ctx.run_stream(prepared, $call, $rows).await
            }
            None => {
                let $s = $stmt.__sql();
                $self.ctx.run_stream($stmt, $call, $rows).await
            }
        }
    };
}

/// The methods `Client` and `Transaction` share, generated for both
/// wrappers over the field `$inner`.
macro_rules! statement_methods {
    ($inner:ident) => {
        /// Prepares a statement, keeping its text and fingerprint.
        ///
        /// A failed prepare (a syntax error, an unknown table) is recorded
        /// as a failed statement; a successful one is not counted as a run.
        pub async fn prepare(&self, query: &str) -> Result<MonitoredStatement, Error> {
            self.prepare_typed(query, &[]).await
        }

        /// Like [`prepare`](Self::prepare), with parameter types.
        pub async fn prepare_typed(&self, query: &str, types: &[Type]) -> Result<MonitoredStatement, Error> {
            let start = Instant::now();
            match self.$inner.prepare_typed(query, types).await {
                Ok(statement) => Ok(MonitoredStatement {
                    statement,
                    sql: Arc::from(query),
                    entry: self.ctx.pool.queries.entry(query),
                }),
                Err(e) => {
                    self.ctx.failed(query, start, &e);
                    Err(e)
                }
            }
        }

        /// Runs a statement and returns its rows. See `tokio_postgres::Client::query`.
        pub async fn query<T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, Error>
        where
            T: ?Sized + ToMonitoredStatement,
        {
            dispatch!(self, statement, |s| self.$inner.query(s, params), row_count)
        }

        /// Runs a statement that returns exactly one row.
        pub async fn query_one<T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<Row, Error>
        where
            T: ?Sized + ToMonitoredStatement,
        {
            dispatch!(self, statement, |s| self.$inner.query_one(s, params), one_row)
        }

        /// Runs a statement that returns zero or one row.
        pub async fn query_opt<T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, Error>
        where
            T: ?Sized + ToMonitoredStatement,
        {
            dispatch!(self, statement, |s| self.$inner.query_opt(s, params), opt_row)
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
            stream_dispatch!(
                self,
                statement,
                |s| self.$inner.query_raw(s, params),
                Counting::Items
            )
        }

        /// Runs unprepared text with explicitly typed parameters (one round trip).
        pub async fn query_typed(
            &self,
            query: &str,
            params: &[(&(dyn ToSql + Sync), Type)],
        ) -> Result<Vec<Row>, Error> {
            self.ctx
                .run(
                    QueryRef::Text(query),
                    self.$inner.query_typed(query, params),
                    row_count,
                )
                .await
        }

        /// Like [`query_typed`](Self::query_typed), for exactly one row.
        pub async fn query_typed_one(&self, query: &str, params: &[(&(dyn ToSql + Sync), Type)]) -> Result<Row, Error> {
            self.ctx
                .run(
                    QueryRef::Text(query),
                    self.$inner.query_typed_one(query, params),
                    one_row,
                )
                .await
        }

        /// Like [`query_typed`](Self::query_typed), for zero or one row.
        pub async fn query_typed_opt(
            &self,
            query: &str,
            params: &[(&(dyn ToSql + Sync), Type)],
        ) -> Result<Option<Row>, Error> {
            self.ctx
                .run(
                    QueryRef::Text(query),
                    self.$inner.query_typed_opt(query, params),
                    opt_row,
                )
                .await
        }

        /// Like [`query_typed`](Self::query_typed), streaming the rows.
        pub async fn query_typed_raw<P, I>(&self, query: &str, params: I) -> Result<MonitoredStream<RowStream>, Error>
        where
            P: BorrowToSql,
            I: IntoIterator<Item = (P, Type)>,
        {
            self.ctx
                .run_stream(query, self.$inner.query_typed_raw(query, params), Counting::Items)
                .await
        }

        /// Runs a statement and returns the number of rows it affected.
        pub async fn execute<T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<u64, Error>
        where
            T: ?Sized + ToMonitoredStatement,
        {
            dispatch!(self, statement, |s| self.$inner.execute(s, params), affected)
        }

        /// Like [`execute`](Self::execute), with explicitly typed parameters.
        pub async fn execute_typed(&self, query: &str, params: &[(&(dyn ToSql + Sync), Type)]) -> Result<u64, Error> {
            self.ctx
                .run(
                    QueryRef::Text(query),
                    self.$inner.execute_typed(query, params),
                    affected,
                )
                .await
        }

        /// Like [`execute`](Self::execute), with parameters from an iterator.
        pub async fn execute_raw<T, P, I>(&self, statement: &T, params: I) -> Result<u64, Error>
        where
            T: ?Sized + ToMonitoredStatement,
            P: BorrowToSql,
            I: IntoIterator<Item = P>,
            I::IntoIter: ExactSizeIterator,
        {
            dispatch!(self, statement, |s| self.$inner.execute_raw(s, params), affected)
        }

        /// Starts a `COPY … FROM STDIN`. The time recorded is the time to
        /// start the copy; the data sent through the sink is not timed.
        pub async fn copy_in<T, U>(&self, statement: &T) -> Result<CopyInSink<U>, Error>
        where
            T: ?Sized + ToMonitoredStatement,
            U: bytes::Buf + 'static + Send,
        {
            dispatch!(self, statement, |s| self.$inner.copy_in(s), unknown)
        }

        /// Starts a `COPY … TO STDOUT`; timed until the stream ends.
        pub async fn copy_out<T>(&self, statement: &T) -> Result<MonitoredStream<CopyOutStream>, Error>
        where
            T: ?Sized + ToMonitoredStatement,
        {
            stream_dispatch!(self, statement, |s| self.$inner.copy_out(s), Counting::Nothing)
        }

        /// Runs statements with the simple query protocol (no parameters;
        /// never interpolate values into it).
        pub async fn simple_query(&self, query: &str) -> Result<Vec<SimpleQueryMessage>, Error> {
            self.ctx
                .run(
                    QueryRef::Text(query),
                    self.$inner.simple_query(query),
                    simple_rows,
                )
                .await
        }

        /// Runs a batch of `;`-separated statements with the simple query
        /// protocol, timed as one statement.
        pub async fn batch_execute(&self, query: &str) -> Result<(), Error> {
            self.ctx
                .run(QueryRef::Text(query), self.$inner.batch_execute(query), unknown)
                .await
        }

        /// A token to cancel the statement running on this connection.
        pub fn cancel_token(&self) -> CancelToken {
            self.$inner.cancel_token()
        }
    };
}

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
            .field("pool", &self.ctx.pool.name)
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

    statement_methods!(client);

    /// Runs a statement whose single column is returned for every row.
    pub async fn query_scalar<R, T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<R>, Error>
    where
        R: FromSqlOwned,
        T: ?Sized + ToMonitoredStatement,
    {
        dispatch!(self, statement, |s| self.client.query_scalar(s, params), row_count)
    }

    /// Runs a statement returning exactly one row of one column.
    pub async fn query_one_scalar<R, T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<R, Error>
    where
        R: FromSqlOwned,
        T: ?Sized + ToMonitoredStatement,
    {
        dispatch!(self, statement, |s| self.client.query_one_scalar(s, params), one_row)
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
        dispatch!(self, statement, |s| self.client.query_opt_scalar(s, params), opt_row)
    }

    /// Like [`simple_query`](Self::simple_query), streaming the messages;
    /// timed until the stream ends.
    pub async fn simple_query_raw(&self, query: &str) -> Result<MonitoredStream<SimpleQueryStream>, Error> {
        self.ctx
            .run_stream(query, self.client.simple_query_raw(query), Counting::SimpleRows)
            .await
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

/// Configures and starts a [`MonitoredTransaction`]; see
/// `tokio_postgres::TransactionBuilder`.
pub struct MonitoredTransactionBuilder<'a> {
    builder: TransactionBuilder<'a>,
    ctx: &'a ConnCtx,
}

impl fmt::Debug for MonitoredTransactionBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredTransactionBuilder").finish_non_exhaustive()
    }
}

impl<'a> MonitoredTransactionBuilder<'a> {
    fn map(self, f: impl FnOnce(TransactionBuilder<'a>) -> TransactionBuilder<'a>) -> Self {
        MonitoredTransactionBuilder {
            builder: f(self.builder),
            ctx: self.ctx,
        }
    }

    /// Sets the isolation level. Defaults to the server's.
    #[must_use]
    pub fn isolation_level(self, level: IsolationLevel) -> Self {
        self.map(|b| b.isolation_level(level))
    }

    /// Sets the access mode. Defaults to the server's.
    #[must_use]
    pub fn read_only(self, read_only: bool) -> Self {
        self.map(|b| b.read_only(read_only))
    }

    /// Sets deferrability. Defaults to the server's.
    #[must_use]
    pub fn deferrable(self, deferrable: bool) -> Self {
        self.map(|b| b.deferrable(deferrable))
    }

    /// Begins the transaction (recorded as a `BEGIN` statement).
    pub async fn start(self) -> Result<MonitoredTransaction<'a>, Error> {
        let start = Instant::now();
        let tx = self
            .ctx
            .run(QueryRef::Text("BEGIN"), self.builder.start(), unknown)
            .await?;
        Ok(MonitoredTransaction::new(tx, self.ctx, start))
    }
}

/// Records how a transaction ended when it is dropped without `commit` or
/// `rollback`.
struct TxGuard<'a> {
    ctx: &'a ConnCtx,
    start: Instant,
    done: bool,
}

impl TxGuard<'_> {
    fn end(&mut self, outcome: TxOutcome) {
        if !self.done {
            self.done = true;
            self.ctx.pool.record(Event::Transaction {
                outcome,
                elapsed: self.start.elapsed(),
            });
        }
    }
}

impl Drop for TxGuard<'_> {
    fn drop(&mut self) {
        self.end(TxOutcome::Abandoned);
    }
}

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TxOutcome {
    Committed,
    RolledBack,
    /// Dropped without commit or rollback: tokio-postgres rolls it back.
    Abandoned,
    /// `COMMIT` or `ROLLBACK` itself failed.
    Failed,
}

impl TxOutcome {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            TxOutcome::Committed => "committed",
            TxOutcome::RolledBack => "rolled_back",
            TxOutcome::Abandoned => "abandoned",
            TxOutcome::Failed => "failed",
        }
    }
}

/// A transaction on a [`MonitoredClient`]: the `tokio_postgres::Transaction`
/// methods, each statement recorded, and the transaction's own end and
/// duration.
pub struct MonitoredTransaction<'a> {
    tx: Transaction<'a>,
    ctx: &'a ConnCtx,
    guard: TxGuard<'a>,
}

impl fmt::Debug for MonitoredTransaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredTransaction")
            .field("pool", &self.ctx.pool.name)
            .field("connection", &self.ctx.stats.id)
            .finish_non_exhaustive()
    }
}

impl<'a> MonitoredTransaction<'a> {
    fn new(tx: Transaction<'a>, ctx: &'a ConnCtx, start: Instant) -> Self {
        MonitoredTransaction {
            tx,
            ctx,
            guard: TxGuard {
                ctx,
                start,
                done: false,
            },
        }
    }

    statement_methods!(tx);

    /// The plain transaction: the escape hatch. Statements run through it
    /// are not recorded.
    pub fn raw(&self) -> &Transaction<'a> {
        &self.tx
    }

    /// Commits (recorded as a `COMMIT` statement and a committed transaction).
    pub async fn commit(self) -> Result<(), Error> {
        let MonitoredTransaction { tx, ctx, mut guard } = self;
        let result = ctx.run(QueryRef::Text("COMMIT"), tx.commit(), unknown).await;
        guard.end(if result.is_ok() {
            TxOutcome::Committed
        } else {
            TxOutcome::Failed
        });
        result
    }

    /// Rolls back (recorded as a `ROLLBACK` statement and a rolled-back
    /// transaction).
    pub async fn rollback(self) -> Result<(), Error> {
        let MonitoredTransaction { tx, ctx, mut guard } = self;
        let result = ctx.run(QueryRef::Text("ROLLBACK"), tx.rollback(), unknown).await;
        guard.end(if result.is_ok() {
            TxOutcome::RolledBack
        } else {
            TxOutcome::Failed
        });
        result
    }

    /// Begins a nested transaction (a savepoint).
    pub async fn transaction(&mut self) -> Result<MonitoredTransaction<'_>, Error> {
        let start = Instant::now();
        let ctx = self.ctx;
        let tx = ctx
            .run(QueryRef::Text("SAVEPOINT"), self.tx.transaction(), unknown)
            .await?;
        Ok(MonitoredTransaction::new(tx, ctx, start))
    }

    /// Begins a nested transaction with a named savepoint.
    pub async fn savepoint<I>(&mut self, name: I) -> Result<MonitoredTransaction<'_>, Error>
    where
        I: Into<String>,
    {
        let start = Instant::now();
        let ctx = self.ctx;
        let tx = ctx
            .run(QueryRef::Text("SAVEPOINT"), self.tx.savepoint(name), unknown)
            .await?;
        Ok(MonitoredTransaction::new(tx, ctx, start))
    }
}

/// What a [`MonitoredStream`] counts as rows.
#[derive(Clone, Copy, Debug)]
enum Counting {
    /// Every item is a row.
    Items,
    /// Only `SimpleQueryMessage::Row` items are rows.
    SimpleRows,
    /// Items are not rows (copy data): the row count is unknown.
    Nothing,
}

pin_project! {
    /// A stream of rows (or messages, or copy data) whose statement is timed
    /// until the stream ends, and reported as cancelled if it is dropped
    /// before the end (which, as for any abandoned statement, retires the
    /// connection and sends a cancel request).
    pub struct MonitoredStream<S> {
        #[pin]
        inner: S,
        flight: Option<InFlight<'static>>,
        rows: u64,
        counting: Counting,
    }
}

impl<S> fmt::Debug for MonitoredStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredStream")
            .field("rows", &self.rows)
            .field("finished", &self.flight.is_none())
            .finish()
    }
}

impl MonitoredStream<RowStream> {
    /// The number of rows affected, once the stream has ended
    /// (see `RowStream::rows_affected`).
    pub fn rows_affected(&self) -> Option<u64> {
        self.inner.rows_affected()
    }
}

impl<S, T> Stream for MonitoredStream<S>
where
    S: Stream<Item = Result<T, Error>>,
    T: 'static,
{
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let item = ready!(this.inner.poll_next(cx));
        match &item {
            Some(Ok(value)) => {
                *this.rows += match this.counting {
                    Counting::Items => 1,
                    Counting::SimpleRows => {
                        let message = (value as &dyn Any).downcast_ref::<SimpleQueryMessage>();
                        u64::from(matches!(message, Some(SimpleQueryMessage::Row(_))))
                    }
                    Counting::Nothing => 0,
                };
            }
            Some(Err(e)) => {
                if let Some(mut flight) = this.flight.take() {
                    flight.finish(Outcome::Failed(e));
                }
            }
            None => {
                if let Some(mut flight) = this.flight.take() {
                    let rows = match this.counting {
                        Counting::Nothing => None,
                        _ => Some(*this.rows),
                    };
                    flight.finish(Outcome::Ok(rows));
                }
            }
        }
        Poll::Ready(item)
    }
}
