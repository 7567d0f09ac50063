//! [`MonitoredTransaction`] and its builder: the transaction's statements
//! recorded like any other, and its own end and duration.

use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;

use quanta::Instant;
use tokio_postgres::types::{BorrowToSql, ToSql, Type};
use tokio_postgres::{
    CancelToken, CopyInSink, CopyOutStream, Error, IsolationLevel, Portal, Row, RowStream, SimpleQueryMessage,
    Transaction, TransactionBuilder,
};

use tracing::Span;

use super::flight::{row_count, unknown, ConnCtx, QueryRef, Via};
use super::statement::{MonitoredStatement, ToMonitoredStatement};
use super::stream::{Counting, MonitoredStream};
use crate::funnel::{span, Event, TxOutcome};

/// Configures and starts a [`MonitoredTransaction`]; see
/// `tokio_postgres::TransactionBuilder`.
pub struct MonitoredTransactionBuilder<'a> {
    pub(crate) builder: TransactionBuilder<'a>,
    pub(crate) ctx: &'a ConnCtx,
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
        let span = self.ctx.transaction_span();
        let begun = self
            .ctx
            .run(Some(&span), QueryRef::Known("BEGIN"), self.builder.start(), unknown)
            .await;
        MonitoredTransaction::begun(begun, self.ctx, start, span)
    }
}

/// Records how a transaction ended when it is dropped without `commit` or
/// `rollback`; holds the transaction's span (its statements' parent),
/// which closes with it.
struct TxGuard<'a> {
    ctx: &'a ConnCtx,
    start: Instant,
    span: Span,
    /// The connection's failed statements when the transaction began: a
    /// transaction dropped after one of its own failed is `failed`, not
    /// `abandoned`.
    errors_before: u64,
    done: bool,
}

impl TxGuard<'_> {
    fn end(&mut self, outcome: TxOutcome) {
        if !self.done {
            self.done = true;
            span::transaction_done(&self.span, outcome);
            self.ctx.pool.record(Event::Transaction {
                outcome,
                elapsed: self.start.elapsed(),
            });
        }
    }
}

impl Drop for TxGuard<'_> {
    fn drop(&mut self) {
        let failed = self.ctx.stats.errors.load(Relaxed) != self.errors_before;
        self.end(if failed {
            TxOutcome::Failed
        } else {
            TxOutcome::Abandoned
        });
    }
}

/// A transaction on a [`MonitoredClient`](super::MonitoredClient): the `tokio_postgres::Transaction`
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
            .field("pool", self.ctx.pool.name())
            .field("connection", &self.ctx.stats.id)
            .finish_non_exhaustive()
    }
}

impl<'a> MonitoredTransaction<'a> {
    /// The transaction whose `BEGIN` (or `SAVEPOINT`) came to `begun`;
    /// `span` is its span, closed at once if it did not begin.
    pub(crate) fn begun(
        begun: Result<Transaction<'a>, Error>,
        ctx: &'a ConnCtx,
        start: Instant,
        span: Span,
    ) -> Result<Self, Error> {
        match begun {
            Ok(tx) => Ok(MonitoredTransaction {
                tx,
                ctx,
                guard: TxGuard {
                    ctx,
                    start,
                    span,
                    errors_before: ctx.stats.errors.load(Relaxed),
                    done: false,
                },
            }),
            Err(e) => {
                span::transaction_done(&span, TxOutcome::Failed);
                Err(e)
            }
        }
    }

    /// The transaction's client, its statements' spans children of its own.
    fn via(&self) -> Via<'_> {
        Via {
            client: self.tx.client(),
            parent: Some(&self.guard.span),
        }
    }

    /// A nested transaction's span, a child of this one's.
    fn nested_span(&self) -> Span {
        let _in_outer = (!self.guard.span.is_disabled()).then(|| self.guard.span.enter());
        self.ctx.transaction_span()
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
        self.ctx.prepare_typed(self.via(), query, types).await
    }

    /// Like [`prepare`](Self::prepare), but from the connection's cache of
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
        self.ctx.prepare_typed_cached(self.via(), query, types).await
    }

    /// Runs a statement and returns its rows. See `tokio_postgres::Client::query`.
    pub fn query<'s, T>(
        &'s self,
        statement: &'s T,
        params: &'s [&'s (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send + 's
    where
        T: ?Sized + ToMonitoredStatement,
    {
        self.ctx.query(self.via(), statement, params)
    }

    /// Runs a statement that returns exactly one row.
    pub fn query_one<'s, T>(
        &'s self,
        statement: &'s T,
        params: &'s [&'s (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, Error>> + Send + 's
    where
        T: ?Sized + ToMonitoredStatement,
    {
        self.ctx.query_one(self.via(), statement, params)
    }

    /// Runs a statement that returns zero or one row.
    pub fn query_opt<'s, T>(
        &'s self,
        statement: &'s T,
        params: &'s [&'s (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 's
    where
        T: ?Sized + ToMonitoredStatement,
    {
        self.ctx.query_opt(self.via(), statement, params)
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
        self.ctx.query_raw(self.via(), statement, params).await
    }

    /// Runs unprepared text with explicitly typed parameters (one round trip).
    pub fn query_typed<'s>(
        &'s self,
        query: &'s str,
        params: &'s [(&'s (dyn ToSql + Sync), Type)],
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send + 's {
        self.ctx.query_typed(self.via(), query, params)
    }

    /// Like [`query_typed`](Self::query_typed), for exactly one row.
    pub fn query_typed_one<'s>(
        &'s self,
        query: &'s str,
        params: &'s [(&'s (dyn ToSql + Sync), Type)],
    ) -> impl Future<Output = Result<Row, Error>> + Send + 's {
        self.ctx.query_typed_one(self.via(), query, params)
    }

    /// Like [`query_typed`](Self::query_typed), for zero or one row.
    pub fn query_typed_opt<'s>(
        &'s self,
        query: &'s str,
        params: &'s [(&'s (dyn ToSql + Sync), Type)],
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 's {
        self.ctx.query_typed_opt(self.via(), query, params)
    }

    /// Like [`query_typed`](Self::query_typed), streaming the rows.
    pub async fn query_typed_raw<P, I>(&self, query: &str, params: I) -> Result<MonitoredStream<RowStream>, Error>
    where
        P: BorrowToSql,
        I: IntoIterator<Item = (P, Type)>,
    {
        self.ctx.query_typed_raw(self.via(), query, params).await
    }

    /// Runs a statement and returns the number of rows it affected.
    pub fn execute<'s, T>(
        &'s self,
        statement: &'s T,
        params: &'s [&'s (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, Error>> + Send + 's
    where
        T: ?Sized + ToMonitoredStatement,
    {
        self.ctx.execute(self.via(), statement, params)
    }

    /// Like [`execute`](Self::execute), with explicitly typed parameters.
    pub fn execute_typed<'s>(
        &'s self,
        query: &'s str,
        params: &'s [(&'s (dyn ToSql + Sync), Type)],
    ) -> impl Future<Output = Result<u64, Error>> + Send + 's {
        self.ctx.execute_typed(self.via(), query, params)
    }

    /// Like [`execute`](Self::execute), with parameters from an iterator.
    pub async fn execute_raw<T, P, I>(&self, statement: &T, params: I) -> Result<u64, Error>
    where
        T: ?Sized + ToMonitoredStatement,
        P: BorrowToSql,
        I: IntoIterator<Item = P>,
        I::IntoIter: ExactSizeIterator,
    {
        self.ctx.execute_raw(self.via(), statement, params).await
    }

    /// Starts a `COPY … FROM STDIN`. The time recorded is the time to
    /// start the copy; the data sent through the sink is not timed.
    pub async fn copy_in<T, U>(&self, statement: &T) -> Result<CopyInSink<U>, Error>
    where
        T: ?Sized + ToMonitoredStatement,
        U: bytes::Buf + 'static + Send,
    {
        self.ctx.copy_in(self.via(), statement).await
    }

    /// Binds `statement` and `params` to a portal, to read its rows a page
    /// at a time with [`query_portal`](Self::query_portal). See
    /// `tokio_postgres::Transaction::bind`.
    ///
    /// The bind is a round trip in which the server plans the statement:
    /// it is recorded as a run of the statement, with no rows; each page
    /// is another, with its rows.
    pub async fn bind<T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<MonitoredPortal, Error>
    where
        T: ?Sized + ToMonitoredStatement,
    {
        self.bind_raw(statement, params.iter().copied()).await
    }

    /// Like [`bind`](Self::bind), with the parameters as an iterator. See
    /// `tokio_postgres::Transaction::bind_raw`.
    pub async fn bind_raw<T, P, I>(&self, statement: &T, params: I) -> Result<MonitoredPortal, Error>
    where
        T: ?Sized + ToMonitoredStatement,
        P: BorrowToSql,
        I: IntoIterator<Item = P>,
        I::IntoIter: ExactSizeIterator,
    {
        let statement = match statement.__prepared() {
            Some(prepared) => prepared.clone(),
            None => self.prepare(statement.__sql()).await?,
        };
        let via = self.via();
        let bound = self.tx.bind_raw(&statement.statement, params);
        let portal = self
            .ctx
            .run(via.parent, QueryRef::Entry(&statement.entry), bound, unknown)
            .await?;
        Ok(MonitoredPortal { portal, statement })
    }

    /// Reads up to `max_rows` more rows of `portal` (0: all that are left),
    /// recorded as a run of its statement with the rows it returned. See
    /// `tokio_postgres::Transaction::query_portal`.
    pub async fn query_portal(&self, portal: &MonitoredPortal, max_rows: i32) -> Result<Vec<Row>, Error> {
        let via = self.via();
        let page = self.tx.query_portal(&portal.portal, max_rows);
        self.ctx
            .run(via.parent, QueryRef::Entry(&portal.statement.entry), page, row_count)
            .await
    }

    /// Like [`query_portal`](Self::query_portal), streaming the page; timed
    /// until the stream ends (see [`MonitoredStream`]).
    pub async fn query_portal_raw(
        &self,
        portal: &MonitoredPortal,
        max_rows: i32,
    ) -> Result<MonitoredStream<RowStream>, Error> {
        let via = self.via();
        let page = self.tx.query_portal_raw(&portal.portal, max_rows);
        self.ctx
            .run_stream(via.parent, &portal.statement, page, Counting::Items)
            .await
    }

    /// Starts a `COPY … TO STDOUT`; timed until the stream ends.
    pub async fn copy_out<T>(&self, statement: &T) -> Result<MonitoredStream<CopyOutStream>, Error>
    where
        T: ?Sized + ToMonitoredStatement,
    {
        self.ctx.copy_out(self.via(), statement).await
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
        self.ctx.copy_out_binary(self.via(), statement, types).await
    }

    /// Runs statements with the simple query protocol (no parameters;
    /// never interpolate values into it).
    pub fn simple_query<'s>(
        &'s self,
        query: &'s str,
    ) -> impl Future<Output = Result<Vec<SimpleQueryMessage>, Error>> + Send + 's {
        self.ctx.simple_query(self.via(), query)
    }

    /// Runs a batch of `;`-separated statements with the simple query
    /// protocol, timed as one statement.
    pub fn batch_execute<'s>(&'s self, query: &'s str) -> impl Future<Output = Result<(), Error>> + Send + 's {
        self.ctx.batch_execute(self.via(), query)
    }

    /// A token to cancel the statement running on this connection.
    pub fn cancel_token(&self) -> CancelToken {
        self.tx.client().cancel_token()
    }

    /// The plain transaction: the escape hatch. Statements run through it
    /// are not recorded.
    pub fn raw(&self) -> &Transaction<'a> {
        &self.tx
    }

    /// Commits (recorded as a `COMMIT` statement and a committed transaction).
    pub async fn commit(self) -> Result<(), Error> {
        let MonitoredTransaction { tx, ctx, mut guard } = self;
        let result = ctx
            .run(Some(&guard.span), QueryRef::Known("COMMIT"), tx.commit(), unknown)
            .await;
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
        let result = ctx
            .run(Some(&guard.span), QueryRef::Known("ROLLBACK"), tx.rollback(), unknown)
            .await;
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
        let span = self.nested_span();
        let begun = ctx
            .run(
                Some(&span),
                QueryRef::Known("SAVEPOINT"),
                self.tx.transaction(),
                unknown,
            )
            .await;
        MonitoredTransaction::begun(begun, ctx, start, span)
    }

    /// Begins a nested transaction with a named savepoint.
    pub async fn savepoint<I>(&mut self, name: I) -> Result<MonitoredTransaction<'_>, Error>
    where
        I: Into<String>,
    {
        let start = Instant::now();
        let ctx = self.ctx;
        let span = self.nested_span();
        let begun = ctx
            .run(
                Some(&span),
                QueryRef::Known("SAVEPOINT"),
                self.tx.savepoint(name),
                unknown,
            )
            .await;
        MonitoredTransaction::begun(begun, ctx, start, span)
    }
}

/// A portal bound by [`MonitoredTransaction::bind`]: tokio-postgres's
/// [`Portal`] and the statement it runs, whose runs its pages are.
#[derive(Clone)]
pub struct MonitoredPortal {
    portal: Portal,
    statement: MonitoredStatement,
}

impl fmt::Debug for MonitoredPortal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredPortal")
            .field("statement", &self.statement)
            .finish_non_exhaustive()
    }
}

impl MonitoredPortal {
    /// tokio-postgres's portal. Pages read through it directly
    /// (`Transaction::query_portal` on [`MonitoredTransaction::raw`]) are
    /// not recorded.
    pub fn portal(&self) -> &Portal {
        &self.portal
    }

    /// The statement the portal runs.
    pub fn statement(&self) -> &MonitoredStatement {
        &self.statement
    }
}
