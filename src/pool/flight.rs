//! Timing one statement: [`Timed`] (a statement's future) and [`InFlight`]
//! (a stream's statement) report its outcome when it finishes or a
//! cancellation when it is dropped first, and [`ConnCtx`] runs each client
//! method through them. The client and transaction wrappers call the
//! methods here with their `tokio_postgres::Client`.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use quanta::Instant;
use tokio_postgres::binary_copy::BinaryCopyOutStream;
use tokio_postgres::types::{BorrowToSql, FromSqlOwned, ToSql, Type};
use tokio_postgres::{CancelToken, Client, CopyInSink, CopyOutStream, Error, Row, RowStream, SimpleQueryMessage};
use tracing::Span;

use super::cache::PreparedCache;
use super::shared::{bump, ConnStats, PoolShared};
use super::statement::{MonitoredStatement, ToMonitoredStatement};
use super::stream::{Counting, MonitoredStream};
use crate::funnel::{span, Event, Outcome, QueryEntry, QueryTable, Rows, StatementEnd};
use crate::stats::counters::RunSplit;
use crate::units::now;

/// What a connection's statements need to report: the connection, its pool,
/// and how to cancel its running statement.
#[derive(Clone)]
pub(crate) struct ConnCtx {
    pub(crate) stats: Arc<ConnStats>,
    pub(crate) pool: Arc<PoolShared>,
    token: CancelToken,
    /// The connection's `prepare_cached` statements.
    cache: Arc<PreparedCache>,
}

/// Records one finished (or abandoned) statement: the per-statement hot
/// path, shared by [`Timed`], [`InFlight`] and the overhead benchmark. The
/// connection's own counts (and whether a failure ended it) are this
/// source's bookkeeping; the rest goes to the funnel, and to the
/// statement's span (none when no subscriber wants it).
///
/// `times`: when it was sent (and whether behind another statement), when
/// its first row came (streams), when it ended.
#[inline]
pub(crate) fn statement_ended(
    pool: &PoolShared,
    conn: &ConnStats,
    query: &QueryRef<'_>,
    span: Option<&Span>,
    times: Times,
    outcome: Outcome<'_>,
) {
    let Times {
        sent: start,
        behind,
        first_row,
        end,
    } = times;
    let elapsed = end.saturating_duration_since(start);
    let nanos = crate::units::saturating_nanos(elapsed);
    conn.record(nanos, &outcome);
    let since_epoch = |at: Instant| crate::units::saturating_nanos(at.saturating_duration_since(pool.epoch));
    let split = if matches!(outcome, Outcome::Cancelled) {
        RunSplit::default()
    } else {
        RunSplit {
            wait_ns: conn.claim_wait(),
            queued_ns: if behind {
                queued(conn.last_end.load(Relaxed), since_epoch(start), nanos)
            } else {
                0
            },
            first_row_ns: first_row.map(|at| crate::units::saturating_nanos(at.saturating_duration_since(start))),
        }
    };
    conn.last_end.store(since_epoch(end), Relaxed);
    let peers = match &outcome {
        Outcome::Failed(error) => deadlock_peers(pool, conn, error),
        _ => None,
    };
    if let Some(span) = span {
        span::statement_done(span, &outcome, conn.take_warning());
    }
    query.with_entry(&pool.sink.queries, |entry| {
        pool.record(Event::Statement(StatementEnd {
            entry,
            end,
            elapsed,
            nanos,
            outcome,
            split,
            deadlock_peers: peers.as_deref(),
        }))
    })
}

/// The time a statement sent at `sent` (nanoseconds since the pool's
/// epoch) behind a running one spent queued, of its `nanos`: until the end
/// of the last statement recorded on its connection. Zero if that ended
/// before it was sent: the statement ahead is still running, overtaken
/// (statements given as text take two round trips, and a later one's
/// second may go first).
#[inline]
fn queued(last_end: u64, sent: u64, nanos: u64) -> u64 {
    last_end.saturating_sub(sent).min(nanos)
}

/// For a deadlock, the other backends the server names in its `DETAIL`
/// (`Process 123 waits for ShareLock …; blocked by process 456.`) that are
/// this pool's connections, as "connection 3 (PUT /accounts/{id} at
/// src/accounts.rs:42)". Only the pids are read from the `DETAIL`; none of
/// its text is kept.
///
/// Carried in the statement's event.
#[cold]
#[inline(never)]
fn deadlock_peers(pool: &PoolShared, conn: &ConnStats, error: &Error) -> Option<String> {
    let db = error.as_db_error()?;
    if db.code() != &tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED {
        return None;
    }
    let detail = db.detail()?;
    let own = conn.backend.get().map(|b| b.pid);
    let pids = deadlock_pids(detail);
    let peers: Vec<String> = pool
        .live_connections()
        .iter()
        .filter(|c| {
            c.backend
                .get()
                .is_some_and(|b| Some(b.pid) != own && pids.contains(&b.pid))
        })
        .map(|c| {
            let holder = c.holder();
            match (holder.route, holder.site) {
                (Some(route), Some(site)) => format!("connection {} ({route} at {site})", c.id),
                (None, Some(site)) => format!("connection {} (at {site})", c.id),
                _ => format!("connection {}", c.id),
            }
        })
        .collect();
    (!peers.is_empty()).then(|| peers.join(", "))
}

/// The pids in a deadlock's `DETAIL`: each number after the word
/// `process` (PostgreSQL's English text; another language gives none).
fn deadlock_pids(detail: &str) -> Vec<i32> {
    let words: Vec<&str> = detail.split_whitespace().collect();
    let mut pids: Vec<i32> = words
        .windows(2)
        .filter(|w| w[0].eq_ignore_ascii_case("process"))
        .filter_map(|w| w[1].trim_end_matches(['.', ';', ',', ':']).parse().ok())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// A statement's times, as [`statement_ended`] records them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Times {
    /// When it was sent (its first poll).
    pub(crate) sent: Instant,
    /// Whether another statement was running on its connection then
    /// (pipelined, or a stream not read to its end): it waited behind it.
    pub(crate) behind: bool,
    /// When a stream's first row (or message, or copy data) came.
    pub(crate) first_row: Option<Instant>,
    pub(crate) end: Instant,
}

impl Times {
    /// Sent at `sent` with the connection's running-statement mark
    /// `running` (zero: another statement was running), ended now.
    #[inline]
    fn ended_now(sent: Instant, running: u64, first_row: Option<Instant>) -> Self {
        Times {
            sent,
            behind: running == 0,
            first_row,
            end: now(),
        }
    }
}

/// The statement a [`Timed`] or an [`InFlight`] reports on.
pub(crate) enum QueryRef<'a> {
    /// SQL text, looked up when the statement ends.
    Text(&'a str),
    /// A known entry (prepared statements).
    Entry(&'a QueryEntry),
    /// A known entry owned by a stream that outlives the call.
    Owned(Arc<QueryEntry>),
    /// A statement the crate itself sends (`BEGIN`, `COMMIT`, …), whose
    /// text is its operation.
    Known(&'static str),
}

impl QueryRef<'_> {
    /// The statement's fingerprint (a text is looked up in `table`).
    #[inline]
    fn fingerprint(&self, table: &QueryTable) -> u64 {
        match self {
            QueryRef::Entry(entry) => entry.fingerprint,
            QueryRef::Owned(entry) => entry.fingerprint,
            QueryRef::Text(_) | QueryRef::Known(_) => self.with_entry(table, |entry| entry.fingerprint),
        }
    }

    /// The operation, where it is known without parsing the text.
    fn operation(&self) -> Option<&'static str> {
        match self {
            QueryRef::Known(operation) => Some(operation),
            _ => None,
        }
    }

    /// Runs `f` with the statement's entry in `table`.
    #[inline]
    fn with_entry<R>(&self, table: &QueryTable, f: impl FnOnce(&QueryEntry) -> R) -> R {
        match self {
            QueryRef::Text(sql) | QueryRef::Known(sql) => table.with_entry(sql, f),
            QueryRef::Entry(entry) => f(entry),
            QueryRef::Owned(entry) => f(entry),
        }
    }
}

/// The client a statement runs on, and the span its span is a child of
/// (a transaction's; else the current span).
#[derive(Clone, Copy)]
pub(crate) struct Via<'a> {
    pub(crate) client: &'a Client,
    pub(crate) parent: Option<&'a Span>,
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

pin_project! {
    /// One statement's future, timed from its first poll to its end; if it
    /// is dropped in between, reported as cancelled, and its connection is
    /// settled when its checkout returns (see [`InFlight`]).
    ///
    /// A named future rather than an `async` block, so that the driver's
    /// future is not moved once more into a wrapper's state: the caller
    /// awaits this struct with the driver's future in it.
    pub(crate) struct Timed<'a, F, T> {
        #[pin]
        inner: F,
        ctx: &'a ConnCtx,
        parent: Option<&'a Span>,
        query: QueryRef<'a>,
        // Set at the first poll, taken when the outcome is reported.
        start: Option<Instant>,
        // Opened at the first poll.
        span: Option<Span>,
        // The connection's abandoned statements at the first poll: an
        // answer shows the server is past them.
        seen: u64,
        // The connection's running-statement mark (zero: another one is).
        running: u64,
        // Its answer, held for one poll while the statement ahead of it,
        // answered in the same instant, is recorded first (see `poll`).
        // Boxed: rare, and the future stays as small as it was (every
        // statement's future is moved into its caller's).
        parked: Option<Box<Result<T, Error>>>,
        rows: fn(&T) -> Rows,
    }

    impl<'a, F, T> PinnedDrop for Timed<'a, F, T> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(start) = this.start.take() {
                let ctx = *this.ctx;
                ctx.stats.statement_done(*this.running);
                let times = Times::ended_now(start, *this.running, None);
                // Dropped while its answer was held: it finished.
                let outcome = match this.parked.as_deref() {
                    Some(Ok(value)) => Outcome::Ok((this.rows)(value)),
                    Some(Err(e)) => Outcome::Failed(e),
                    None => Outcome::Cancelled,
                };
                statement_ended(&ctx.pool, &ctx.stats, this.query, this.span.as_ref(), times, outcome);
            }
        }
    }
}

impl<F, T> Future for Timed<'_, F, T>
where
    F: Future<Output = Result<T, Error>>,
{
    type Output = Result<T, Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let start = match *this.start {
            Some(start) => start,
            None => {
                let start = now();
                *this.start = Some(start);
                *this.seen = this.ctx.stats.abandons.load(Relaxed);
                *this.span = this.ctx.open_span(*this.parent, this.query);
                *this.running = this.ctx.began(start, this.query);
                start
            }
        };
        let result = match this.parked.take() {
            Some(result) => *result,
            None => {
                let result = ready!(this.inner.poll(cx));
                // Sent behind a statement that is not recorded yet: both
                // answers came before either future was polled again
                // (`join!` polls in turns, and may poll this one first).
                // Held for one poll, so that the one ahead, polled in the
                // meantime, is recorded first and this one's queue ends
                // at its end.
                if *this.running == 0 && this.ctx.ahead_unrecorded(start) {
                    *this.parked = Some(Box::new(result));
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                result
            }
        };
        *this.start = None;
        this.ctx.stats.statement_done(*this.running);
        let outcome = match &result {
            Ok(value) => Outcome::Ok((this.rows)(value)),
            Err(e) => Outcome::Failed(e),
        };
        if server_answered(&outcome) {
            this.ctx.stats.answered_after(*this.seen);
        }
        statement_ended(
            &this.ctx.pool,
            &this.ctx.stats,
            this.query,
            this.span.as_ref(),
            Times::ended_now(start, *this.running, None),
            outcome,
        );
        Poll::Ready(result)
    }
}

pin_project! {
    /// The driver's future for a prepared statement or for text: one type
    /// for both, so that a method returns one future.
    #[project = EitherProj]
    pub(crate) enum Either<P, S, G> {
        Prepared { #[pin] future: P },
        Text { #[pin] future: S },
        // Text tagged with its request's route: a boxed future that owns
        // the tagged text (opt-in, and it allocates the text anyway).
        Tagged { #[pin] future: G },
    }
}

impl<P, S, G> Future for Either<P, S, G>
where
    P: Future,
    S: Future<Output = P::Output>,
    G: Future<Output = P::Output>,
{
    type Output = P::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<P::Output> {
        match self.project() {
            EitherProj::Prepared { future } => future.poll(cx),
            EitherProj::Text { future } => future.poll(cx),
            EitherProj::Tagged { future } => future.poll(cx),
        }
    }
}

/// A future boxed as the tagged text's variant of [`Either`].
pub(crate) type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// `future` boxed, out of line: the statement methods that build it are
/// inlined into their callers (so that their future is built in place, not
/// moved), which the allocation's code would prevent.
#[cold]
#[inline(never)]
fn boxed<'a, F: Future + Send + 'a>(future: F) -> Boxed<'a, F::Output> {
    Box::pin(future)
}

/// A statement on the wire: reports its outcome when finished, that its
/// reader stopped early ([`ended_early`](Self::ended_early)), or a
/// cancellation when dropped before its stream came.
///
/// tokio-postgres reads and drops the rest of an abandoned statement's
/// answer itself, in order, so the connection stays in step; but the
/// server may still be running the statement. So the connection is marked
/// unsettled: when its checkout returns, a ping tells whether the server
/// finished within the grace (the connection is kept) or not (a cancel
/// request is sent and the connection retired; see
/// [`MonitoredClient::settle`](super::MonitoredClient::settle)). A stream
/// that outlives its checkout keeps its connection from the pool, and its
/// cancel request waits until the connection has no user left (see
/// [`ConnStats::last_user_gone`](super::shared::ConnStats::last_user_gone)).
pub(crate) struct InFlight<'a> {
    ctx: CtxRef<'a>,
    query: QueryRef<'a>,
    span: Option<Span>,
    start: Instant,
    /// As [`Timed`]'s: the connection's abandoned statements at the start.
    seen: u64,
    /// As [`Timed`]'s: the connection's running-statement mark.
    running: u64,
    /// When the first row (or message, or copy data) came.
    first_row: Option<Instant>,
    done: bool,
}

/// Whether the server answered the statement (rows, or an error of its
/// own), which it does only once it is past every statement sent before.
/// A client-side failure (a parameter that would not encode) may never
/// have reached it.
#[inline]
fn server_answered(outcome: &Outcome<'_>) -> bool {
    match outcome {
        Outcome::Ok(_) => true,
        Outcome::Failed(e) => e.as_db_error().is_some(),
        Outcome::Cancelled => false,
    }
}

impl<'a> InFlight<'a> {
    fn start(ctx: CtxRef<'a>, query: QueryRef<'a>, span: Option<Span>) -> Self {
        ctx.stats.streams_open.fetch_add(1, SeqCst);
        let seen = ctx.stats.abandons.load(Relaxed);
        let start = now();
        let running = ctx.began(start, &query);
        InFlight {
            ctx,
            query,
            span,
            start,
            seen,
            running,
            first_row: None,
            done: false,
        }
    }

    /// The stream's first item came (later calls change nothing).
    #[inline]
    pub(crate) fn first_item(&mut self) {
        if self.first_row.is_none() {
            self.first_row = Some(now());
        }
    }

    pub(crate) fn finish(&mut self, outcome: Outcome<'_>) {
        if self.done {
            return;
        }
        self.done = true;
        if server_answered(&outcome) {
            self.ctx.stats.answered_after(self.seen);
        }
        self.report(outcome);
        self.let_go();
    }

    /// The reader dropped the stream before its end: the statement ran and
    /// answered, and is recorded as finished with the rows read (and counted
    /// as ended early); the rest of its answer is left to the settling of
    /// its connection.
    pub(crate) fn ended_early(&mut self, rows: Rows) {
        if self.done {
            return;
        }
        self.done = true;
        self.report(Outcome::Ok(rows));
        self.ctx.pool.sink.metrics.ended_early.increment(1);
        self.ctx.stats.abandoned();
        self.let_go();
    }

    /// The stream is no longer a user of its connection.
    fn let_go(&self) {
        self.ctx.stats.streams_open.fetch_sub(1, SeqCst);
        self.ctx.release(false);
    }

    fn report(&self, outcome: Outcome<'_>) {
        self.ctx.stats.statement_done(self.running);
        statement_ended(
            &self.ctx.pool,
            &self.ctx.stats,
            &self.query,
            self.span.as_ref(),
            Times::ended_now(self.start, self.running, self.first_row),
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
        self.let_go();
    }
}

impl ConnCtx {
    pub(crate) fn new(stats: Arc<ConnStats>, pool: Arc<PoolShared>, token: CancelToken) -> Self {
        let cache = Arc::new(PreparedCache::new(pool.sink.config.prepared_cache_size));
        ConnCtx {
            stats,
            pool,
            token,
            cache,
        }
    }

    /// Marks the statement `query` that began at `start` as the
    /// connection's running one (if no other is); the mark.
    #[inline]
    fn began(&self, start: Instant, query: &QueryRef<'_>) -> u64 {
        let since = crate::units::saturating_nanos(start.saturating_duration_since(self.pool.epoch));
        self.stats
            .statement_began(since, || query.fingerprint(&self.pool.sink.queries))
    }

    /// Whether no statement has ended on the connection since `sent`: the
    /// one running then (a statement sent behind it asks) is not recorded.
    #[inline]
    fn ahead_unrecorded(&self, sent: Instant) -> bool {
        let since = crate::units::saturating_nanos(sent.saturating_duration_since(self.pool.epoch));
        self.stats.last_end.load(Relaxed) < since
    }

    /// The text of `sql` tagged with the current request's route, when its
    /// layer tags statements ([`DbMonitorLayer::sql_comments`](crate::DbMonitorLayer::sql_comments));
    /// with `trace` (a statement sent once, not prepared to be kept) and
    /// a [`trace_context`](crate::MonitorConfig::trace_context) configured,
    /// with its `traceparent` too.
    #[inline]
    fn tagged_text(&self, sql: &str, trace: bool) -> Option<String> {
        let route = crate::funnel::scope::sql_comment()?;
        self.tag_with(sql, &route, trace)
    }

    #[cold]
    #[inline(never)]
    fn tag_with(&self, sql: &str, route: &str, trace: bool) -> Option<String> {
        let parent = trace
            .then(|| self.pool.sink.config.trace_context.as_ref())
            .flatten()
            .and_then(|current| (current.0)());
        match parent {
            Some(parent) => {
                let trace = crate::sql::comment_pair("traceparent", &parent.to_string());
                crate::sql::tagged(sql, &[route, &trace])
            }
            None => crate::sql::tagged(sql, &[route]),
        }
    }

    /// The connection's cache of prepared statements.
    pub(crate) fn cache(&self) -> &Arc<PreparedCache> {
        &self.cache
    }

    /// The token that cancels this connection's running statement.
    pub(crate) fn token(&self) -> &CancelToken {
        &self.token
    }

    /// A user of the connection let go (its client when `client`, else a
    /// stream): sends the cancel request of an abandoned statement once the
    /// last one has.
    pub(crate) fn release(&self, client: bool) {
        if self.stats.last_user_gone(client) {
            (self.pool.canceller)(self.token.clone());
        }
    }

    /// A statement's span, opened as it starts (see [`span::statement`]);
    /// none when no subscriber wants it (one cached check).
    #[inline]
    fn open_span(&self, parent: Option<&Span>, query: &QueryRef<'_>) -> Option<Span> {
        span::wanted(&self.pool.sink.span_target).map(|level| self.new_span(level, parent, query, query.operation()))
    }

    #[inline(never)]
    fn new_span(
        &self,
        level: span::SpanLevel,
        parent: Option<&Span>,
        query: &QueryRef<'_>,
        operation: Option<&'static str>,
    ) -> Span {
        let sink = &self.pool.sink;
        let waited = self.stats.waited_nanos.load(Relaxed);
        // A warning sent before this statement is not its own.
        self.stats.take_warning();
        query.with_entry(&sink.queries, |entry| {
            span::statement(level, &sink.name, &sink.span_target, parent, waited, entry, operation)
        })
    }

    /// A transaction's span, opened as it begins (see [`span::transaction`]).
    pub(crate) fn transaction_span(&self) -> Span {
        span::transaction(&self.pool.sink.name, &self.pool.sink.span_target)
    }

    /// `fut` timed as one statement (with its span a child of `parent`, or
    /// of the current span): from its first poll to its end, or reported as
    /// cancelled if it is dropped in between.
    #[inline]
    pub(crate) fn run<'a, T, F>(
        &'a self,
        parent: Option<&'a Span>,
        query: QueryRef<'a>,
        fut: F,
        rows: fn(&T) -> Rows,
    ) -> Timed<'a, F, T>
    where
        F: Future<Output = Result<T, Error>>,
    {
        Timed {
            inner: fut,
            ctx: self,
            parent,
            query,
            start: None,
            span: None,
            seen: 0,
            running: 0,
            parked: None,
            rows,
        }
    }

    /// Starts a stream-returning statement: the clock runs until the stream
    /// ends.
    pub(crate) async fn run_stream<S, F>(
        &self,
        parent: Option<&Span>,
        statement: &(impl ToMonitoredStatement + ?Sized),
        fut: F,
        counting: Counting,
    ) -> Result<MonitoredStream<S>, Error>
    where
        F: Future<Output = Result<S, Error>>,
    {
        let entry = match statement.__prepared() {
            Some(p) => p.entry.clone(),
            None => self.pool.sink.queries.entry(statement.__sql()),
        };
        let query = QueryRef::Owned(entry);
        let span = self.open_span(parent, &query);
        let mut flight = InFlight::start(CtxRef::Owned(self.clone()), query, span);
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

    /// Records a statement that failed before it could run (a prepare,
    /// whose span is its own).
    fn failed(&self, query: &str, start: Instant, error: &Error) {
        let mut flight = InFlight::start(CtxRef::Borrowed(self), QueryRef::Text(query), None);
        flight.start = start;
        flight.finish(Outcome::Failed(error));
    }
}

// The row counters are `fn(&T) -> Option<u64>` for the method's output
// type `T`, which is a `Vec` here.
#[allow(clippy::ptr_arg)]
pub(crate) fn row_count<T>(rows: &Vec<T>) -> Rows {
    Rows::Returned(rows.len() as u64)
}

fn one_row<T>(_: &T) -> Rows {
    Rows::Returned(1)
}

fn opt_row<T>(row: &Option<T>) -> Rows {
    Rows::Returned(u64::from(row.is_some()))
}

fn affected(n: &u64) -> Rows {
    Rows::Affected(*n)
}

pub(crate) fn unknown<T>(_: &T) -> Rows {
    Rows::Unknown
}

#[allow(clippy::ptr_arg)]
fn simple_rows(messages: &Vec<SimpleQueryMessage>) -> Rows {
    Rows::Returned(
        messages
            .iter()
            .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
            .count() as u64,
    )
}

/// A hash of `params` as their `Debug` forms give them, compared within one
/// request and never kept or shown (a hash of a low-entropy value could be
/// reversed by trying values).
fn params_hash(params: &[&(dyn ToSql + Sync)]) -> u64 {
    use std::fmt::Write as _;
    use std::hash::{BuildHasher, Hasher};
    struct Feed<'a, H>(&'a mut H);
    impl<H: Hasher> std::fmt::Write for Feed<'_, H> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.write(s.as_bytes());
            Ok(())
        }
    }
    let mut hasher = foldhash::fast::FixedState::with_seed(0x6462_6d6f_6e69_746f).build_hasher();
    hasher.write_usize(params.len());
    for param in params {
        let _ = write!(Feed(&mut hasher), "{param:?}");
        hasher.write_u8(0xff);
    }
    hasher.finish()
}

/// `$call` (an expression using `$s`, bound to either the SQL text or the
/// prepared `Statement`) as one timed statement: one future type for both.
macro_rules! dispatch {
    // Parameters as an iterator (not `Send`): the text is sent untagged.
    (untagged $self:ident, $via:ident, $stmt:ident, |$c:ident, $s:ident| $call:expr, $rows:expr) => {
        dispatch!(@either $self, $via, $stmt, |$c, $s| $call, $rows, |sql| {
            let $s = sql;
            let untagged: Either<_, _, Boxed<'_, _>> = Either::Text { future: $call };
            $self.run($via.parent, QueryRef::Text(sql), untagged, $rows)
        })
    };
    ($self:ident, $via:ident, $stmt:ident, |$c:ident, $s:ident| $call:expr, $rows:expr) => {
        dispatch!(@either $self, $via, $stmt, |$c, $s| $call, $rows, |sql| {
            match $self.tagged_text(sql, true) {
                None => {
                    let $s = sql;
                    $self.run($via.parent, QueryRef::Text(sql), Either::Text { future: $call }, $rows)
                }
                Some(tagged) => {
                    // Recorded under the text as written; sent tagged.
                    let future = boxed(async move {
                        let $s = tagged.as_str();
                        $call.await
                    });
                    $self.run($via.parent, QueryRef::Text(sql), Either::Tagged { future }, $rows)
                }
            }
        })
    };
    // The prepared statement's arm, shared; `$text` runs the text `$sql`.
    (@either $self:ident, $via:ident, $stmt:ident, |$c:ident, $s:ident| $call:expr, $rows:expr, |$sql:ident| $text:block) => {{
        let $c = $via.client;
        match $stmt.__prepared() {
            Some(prepared) => {
                let $s = &prepared.statement;
                $self.run(
                    $via.parent,
                    QueryRef::Entry(&prepared.entry),
                    Either::Prepared { future: $call },
                    $rows,
                )
            }
            None => {
                let $sql = $stmt.__sql();
                $text
            }
        }
    }};
}

/// Like `dispatch!`, for a statement whose rows come as a stream.
macro_rules! stream_dispatch {
    ($self:ident, $via:ident, $stmt:ident, |$c:ident, $s:ident| $call:expr, $rows:expr) => {{
        let $c = $via.client;
        match $stmt.__prepared() {
            Some(prepared) => {
                let $s = &prepared.statement;
                $self.run_stream($via.parent, prepared, $call, $rows).await
            }
            None => {
                let $s = $stmt.__sql();
                $self.run_stream($via.parent, $stmt, $call, $rows).await
            }
        }
    }};
}

/// The client methods, each written once: [`MonitoredClient`](super::MonitoredClient)
/// and [`MonitoredTransaction`](super::MonitoredTransaction) call them with
/// their client (a transaction's statements run on its client, as in
/// tokio-postgres).
impl ConnCtx {
    /// Not an `async fn` itself: the future is [`prepare_sent`](Self::prepare_sent)'s,
    /// one level of state less (the future sizes' test holds it near
    /// tokio-postgres's own).
    pub(crate) fn prepare_typed<'a>(
        &'a self,
        client: Via<'a>,
        query: &'a str,
        types: &'a [Type],
    ) -> impl Future<Output = Result<MonitoredStatement, Error>> + Send + 'a {
        self.prepare_sent(client, query, self.tagged_text(query, false), types)
    }

    /// Prepares `query`, sent as it is or, when given, as `tagged` (with
    /// the request's route).
    async fn prepare_sent(
        &self,
        client: Via<'_>,
        query: &str,
        tagged: Option<String>,
        types: &[Type],
    ) -> Result<MonitoredStatement, Error> {
        let start = now();
        let span = span::wanted(&self.pool.sink.span_target)
            .map(|level| self.new_span(level, client.parent, &QueryRef::Text(query), Some(span::PREPARE)));
        match client
            .client
            .prepare_typed(tagged.as_deref().unwrap_or(query), types)
            .await
        {
            Ok(statement) => {
                let entry = self.pool.sink.queries.entry(query);
                if let Some(span) = &span {
                    span::prepare_done(span, None);
                }
                Ok(MonitoredStatement {
                    statement,
                    sql: Arc::from(query),
                    entry,
                })
            }
            Err(e) => {
                self.failed(query, start, &e);
                if let Some(span) = &span {
                    span::prepare_done(span, Some(&e));
                }
                Err(e)
            }
        }
    }

    /// A statement from the connection's cache, prepared (and kept) on a
    /// miss. Hits and misses are counted for the pool and the connection.
    pub(crate) async fn prepare_typed_cached(
        &self,
        client: Via<'_>,
        query: &str,
        types: &[Type],
    ) -> Result<MonitoredStatement, Error> {
        let metrics = &self.pool.sink.metrics;
        // Tagged, the cache holds one variant per route (keyed by the text
        // as sent).
        let tagged = self.tagged_text(query, false);
        let sent = tagged.as_deref().unwrap_or(query);
        if let Some(statement) = self.cache.get(sent, types) {
            metrics.prepared[0].increment(1);
            bump(&self.stats.prepared_hits, 1);
            return Ok(statement);
        }
        metrics.prepared[1].increment(1);
        bump(&self.stats.prepared_misses, 1);
        let statement = self.prepare_sent(client, query, tagged.clone(), types).await?;
        self.cache.insert(sent, types, statement.clone());
        Ok(statement)
    }

    /// Notes the statement's parameters, hashed, for the request's
    /// redundant-statement check (nothing unless a layer looks for them).
    #[inline(always)]
    fn note_params<T: ?Sized + ToMonitoredStatement>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) {
        if crate::funnel::scope::params_wanted() {
            let fingerprint = || match statement.__prepared() {
                Some(prepared) => prepared.entry.fingerprint,
                None => self.pool.sink.queries.with_entry(statement.__sql(), |e| e.fingerprint),
            };
            crate::funnel::scope::note_params(fingerprint, || params_hash(params));
        }
    }

    #[inline]
    pub(crate) fn query<'a, T>(
        &'a self,
        client: Via<'a>,
        statement: &'a T,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send + 'a
    where
        T: ?Sized + ToMonitoredStatement,
    {
        self.note_params(statement, params);
        dispatch!(self, client, statement, |c, s| c.query(s, params), row_count)
    }

    #[inline]
    pub(crate) fn query_one<'a, T>(
        &'a self,
        client: Via<'a>,
        statement: &'a T,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, Error>> + Send + 'a
    where
        T: ?Sized + ToMonitoredStatement,
    {
        self.note_params(statement, params);
        dispatch!(self, client, statement, |c, s| c.query_one(s, params), one_row)
    }

    #[inline]
    pub(crate) fn query_opt<'a, T>(
        &'a self,
        client: Via<'a>,
        statement: &'a T,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'a
    where
        T: ?Sized + ToMonitoredStatement,
    {
        self.note_params(statement, params);
        dispatch!(self, client, statement, |c, s| c.query_opt(s, params), opt_row)
    }

    pub(crate) async fn query_raw<T, P, I>(
        &self,
        client: Via<'_>,
        statement: &T,
        params: I,
    ) -> Result<MonitoredStream<RowStream>, Error>
    where
        T: ?Sized + ToMonitoredStatement,
        P: BorrowToSql,
        I: IntoIterator<Item = P>,
        I::IntoIter: ExactSizeIterator,
    {
        stream_dispatch!(self, client, statement, |c, s| c.query_raw(s, params), Counting::Items)
    }

    pub(crate) fn query_typed<'a>(
        &'a self,
        client: Via<'a>,
        query: &'a str,
        params: &'a [(&'a (dyn ToSql + Sync), Type)],
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send + 'a {
        self.run(
            client.parent,
            QueryRef::Text(query),
            client.client.query_typed(query, params),
            row_count,
        )
    }

    pub(crate) fn query_typed_one<'a>(
        &'a self,
        client: Via<'a>,
        query: &'a str,
        params: &'a [(&'a (dyn ToSql + Sync), Type)],
    ) -> impl Future<Output = Result<Row, Error>> + Send + 'a {
        self.run(
            client.parent,
            QueryRef::Text(query),
            client.client.query_typed_one(query, params),
            one_row,
        )
    }

    pub(crate) fn query_typed_opt<'a>(
        &'a self,
        client: Via<'a>,
        query: &'a str,
        params: &'a [(&'a (dyn ToSql + Sync), Type)],
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'a {
        self.run(
            client.parent,
            QueryRef::Text(query),
            client.client.query_typed_opt(query, params),
            opt_row,
        )
    }

    pub(crate) async fn query_typed_raw<P, I>(
        &self,
        client: Via<'_>,
        query: &str,
        params: I,
    ) -> Result<MonitoredStream<RowStream>, Error>
    where
        P: BorrowToSql,
        I: IntoIterator<Item = (P, Type)>,
    {
        self.run_stream(
            client.parent,
            query,
            client.client.query_typed_raw(query, params),
            Counting::Items,
        )
        .await
    }

    #[inline]
    pub(crate) fn execute<'a, T>(
        &'a self,
        client: Via<'a>,
        statement: &'a T,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'a
    where
        T: ?Sized + ToMonitoredStatement,
    {
        self.note_params(statement, params);
        dispatch!(self, client, statement, |c, s| c.execute(s, params), affected)
    }

    pub(crate) fn execute_typed<'a>(
        &'a self,
        client: Via<'a>,
        query: &'a str,
        params: &'a [(&'a (dyn ToSql + Sync), Type)],
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'a {
        self.run(
            client.parent,
            QueryRef::Text(query),
            client.client.execute_typed(query, params),
            affected,
        )
    }

    pub(crate) async fn execute_raw<T, P, I>(&self, client: Via<'_>, statement: &T, params: I) -> Result<u64, Error>
    where
        T: ?Sized + ToMonitoredStatement,
        P: BorrowToSql,
        I: IntoIterator<Item = P>,
        I::IntoIter: ExactSizeIterator,
    {
        dispatch!(untagged self, client, statement, |c, s| c.execute_raw(s, params), affected).await
    }

    pub(crate) async fn copy_in<T, U>(&self, client: Via<'_>, statement: &T) -> Result<CopyInSink<U>, Error>
    where
        T: ?Sized + ToMonitoredStatement,
        U: bytes::Buf + 'static + Send,
    {
        dispatch!(self, client, statement, |c, s| c.copy_in(s), unknown).await
    }

    pub(crate) async fn copy_out<T>(
        &self,
        client: Via<'_>,
        statement: &T,
    ) -> Result<MonitoredStream<CopyOutStream>, Error>
    where
        T: ?Sized + ToMonitoredStatement,
    {
        stream_dispatch!(self, client, statement, |c, s| c.copy_out(s), Counting::Nothing)
    }

    pub(crate) async fn copy_out_binary<T>(
        &self,
        client: Via<'_>,
        statement: &T,
        types: &[Type],
    ) -> Result<MonitoredStream<BinaryCopyOutStream>, Error>
    where
        T: ?Sized + ToMonitoredStatement,
    {
        stream_dispatch!(
            self,
            client,
            statement,
            |c, s| async { Ok(BinaryCopyOutStream::new(c.copy_out(s).await?, types)) },
            Counting::Items
        )
    }

    pub(crate) fn simple_query<'a>(
        &'a self,
        client: Via<'a>,
        query: &'a str,
    ) -> impl Future<Output = Result<Vec<SimpleQueryMessage>, Error>> + Send + 'a {
        self.run(
            client.parent,
            QueryRef::Text(query),
            client.client.simple_query(query),
            simple_rows,
        )
    }

    pub(crate) fn batch_execute<'a>(
        &'a self,
        client: Via<'a>,
        query: &'a str,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'a {
        self.run(
            client.parent,
            QueryRef::Text(query),
            client.client.batch_execute(query),
            unknown,
        )
    }

    pub(crate) async fn query_scalar<R, T>(
        &self,
        client: Via<'_>,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<R>, Error>
    where
        R: FromSqlOwned,
        T: ?Sized + ToMonitoredStatement,
    {
        dispatch!(self, client, statement, |c, s| c.query_scalar(s, params), row_count).await
    }

    pub(crate) async fn query_one_scalar<R, T>(
        &self,
        client: Via<'_>,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<R, Error>
    where
        R: FromSqlOwned,
        T: ?Sized + ToMonitoredStatement,
    {
        dispatch!(self, client, statement, |c, s| c.query_one_scalar(s, params), one_row).await
    }

    pub(crate) async fn query_opt_scalar<R, T>(
        &self,
        client: Via<'_>,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<R>, Error>
    where
        R: FromSqlOwned,
        T: ?Sized + ToMonitoredStatement,
    {
        dispatch!(self, client, statement, |c, s| c.query_opt_scalar(s, params), opt_row).await
    }

    pub(crate) async fn simple_query_raw(
        &self,
        client: Via<'_>,
        query: &str,
    ) -> Result<MonitoredStream<tokio_postgres::SimpleQueryStream>, Error> {
        self.run_stream(
            client.parent,
            query,
            client.client.simple_query_raw(query),
            Counting::SimpleRows,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::{deadlock_pids, queued};

    #[test]
    fn a_statement_is_queued_until_the_one_ahead_ended_and_never_longer_than_it_ran() {
        // Sent at 1,000, ran 500; the one ahead ended at 1,300.
        assert_eq!(queued(1_300, 1_000, 500), 300);
        // The one ahead not recorded: overtaken, still running.
        assert_eq!(queued(900, 1_000, 500), 0);
        // A clock's step past its own end: capped at its time.
        assert_eq!(queued(2_000, 1_000, 500), 500);
    }

    #[test]
    fn the_pids_of_a_deadlock_detail_are_read_and_nothing_else() {
        let detail = "Process 4242 waits for ShareLock on transaction 77123; blocked by process 4343.\n\
                      Process 4343 waits for ShareLock on transaction 77122; blocked by process 4242.";
        assert_eq!(deadlock_pids(detail), vec![4242, 4343]);
        assert!(deadlock_pids("Prozess 4242 wartet auf ShareLock").is_empty());
    }
}
