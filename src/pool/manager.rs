//! [`MonitoredManager`] (bb8 `ManageConnection`) and [`MonitorErrorSink`]
//! (bb8 `ErrorSink`).

use std::fmt;
use std::sync::atomic::Ordering::Acquire;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::future::Future;
use std::sync::Weak;
use std::task::{ready, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::{AsyncMessage, CancelToken, Error, Notification};

use super::client::MonitoredClient;
use super::shared::{Backend, Canceller, ConnStats, PoolShared, SideConnect};
use super::MakeTls;
use crate::classify::{error_chain, ErrorKind};
use crate::funnel::{Event, Sink};

/// A bb8 connection manager for PostgreSQL that times every connect, keeps
/// the error that ends each connection, and hands out [`MonitoredClient`]s.
///
/// It opens connections itself, like bb8-postgres's
/// `PostgresConnectionManager` (generic over the TLS connector in the same
/// way), because bb8-postgres drops the error of the connection's
/// background task, and that error is how a server shutdown (`57P01`) or a
/// lost network reaches the monitor with its SQLSTATE.
///
/// Created by [`DbMonitor::manager`](crate::DbMonitor::manager).
pub struct MonitoredManager<Tls> {
    config: tokio_postgres::Config,
    tls: Tls,
    shared: Arc<PoolShared>,
    setup: Vec<String>,
    notifications: Option<Listener>,
}

/// Hears the notifications (`NOTIFY`) of the pool's connections.
type Listener = Arc<dyn Fn(Notification) + Send + Sync>;

impl<Tls> fmt::Debug for MonitoredManager<Tls> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredManager")
            .field("pool", self.shared.name())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Cancel requests (each a connection of its own) in progress at once per
/// pool; past it, an abandoned statement's connection is retired without one.
const MAX_CANCEL_REQUESTS: usize = 4;

/// How long a cancel request may take, connecting included.
const CANCEL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The [`CANCEL_REQUESTS`](crate::names::CANCEL_REQUESTS) counters of a pool.
#[derive(Clone)]
struct CancelCounters {
    sent: metrics::Counter,
    failed: metrics::Counter,
    timed_out: metrics::Counter,
    skipped: metrics::Counter,
}

impl CancelCounters {
    fn new(sink: &Sink) -> Self {
        let counter = |outcome| sink.cancel_requests(outcome);
        CancelCounters {
            sent: counter("sent"),
            failed: counter("failed"),
            timed_out: counter("timed_out"),
            skipped: counter("skipped"),
        }
    }
}

impl<Tls: MakeTls> MonitoredManager<Tls> {
    pub(crate) fn new(sink: Sink, config: tokio_postgres::Config, tls: Tls) -> Self {
        let cancel_tls = tls.clone();
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CANCEL_REQUESTS));
        let counted = CancelCounters::new(&sink);
        let canceller: Canceller = Arc::new(move |token: CancelToken| {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                // The connection is retired anyway; under a partition the
                // requests would only pile up.
                counted.skipped.increment(1);
                return;
            };
            let tls = cancel_tls.clone();
            let counted = counted.clone();
            runtime.spawn(async move {
                let _slot = slot;
                match tokio::time::timeout(CANCEL_TIMEOUT, token.cancel_query(tls)).await {
                    Ok(Ok(())) => counted.sent.increment(1),
                    Ok(Err(e)) => {
                        counted.failed.increment(1);
                        tracing::debug!(
                            "cancel request for an abandoned statement failed: {}",
                            error_chain(&e, false)
                        );
                    }
                    Err(_) => counted.timed_out.increment(1),
                }
            });
        });
        let shared = Arc::new(PoolShared::new(sink, canceller));
        let side_config = config.clone();
        let side_tls = tls.clone();
        let side: SideConnect = Arc::new(move |view: crate::config::ServerView| {
            let mut config = side_config.clone();
            config.application_name(&view.application_name);
            let mut options = config.get_options().unwrap_or("").to_owned();
            options.push_str(&format!(
                " -c statement_timeout={} -c lock_timeout={}",
                view.statement_timeout.as_millis().max(1),
                view.lock_timeout.as_millis().max(1)
            ));
            config.options(options.trim_start());
            let tls = side_tls.clone();
            Box::pin(async move {
                let (client, connection) = config.connect(tls).await?;
                tokio::spawn(async move {
                    // Its end shows as the next cycle's failure.
                    let _ = connection.await;
                });
                Ok(client)
            })
        });
        let _ = shared.side_connect.set(side);
        MonitoredManager {
            shared,
            config,
            tls,
            setup: Vec::new(),
            notifications: None,
        }
    }
}

impl<Tls> MonitoredManager<Tls> {
    /// Adds SQL that runs on every new connection as part of its connect,
    /// before bb8 hands it out (for example
    /// `SET statement_timeout = '5s'`), and before a `connection_customizer`
    /// of your own on the bb8 builder. A failure is recorded and the
    /// connection discarded.
    ///
    /// Prefer connection parameters where they exist (`application_name`,
    /// `options`): they cost no round trip.
    #[must_use]
    pub fn setup(mut self, sql: impl Into<String>) -> Self {
        self.setup.push(sql.into());
        self
    }

    /// Hands every notification that a connection of the pool receives
    /// (`LISTEN channel` on it, then a `NOTIFY channel, 'payload'`
    /// anywhere) to `listener`, from the connection's background task.
    /// Without one they are dropped, as tokio-postgres's `Connection`
    /// future drops them.
    ///
    /// A `LISTEN` belongs to its connection and stays when the checkout
    /// returns: listen on a connection you keep checked out (for example
    /// with [`get_owned`](crate::MonitoredPool::get_owned) on a task of its
    /// own), or `UNLISTEN` before returning it. `listener` must not block:
    /// hand the notification on, as to a channel. The monitor keeps nothing
    /// of a notification (its payload is the application's data).
    ///
    /// ```no_run
    /// # async fn run(monitor: db_monitor::DbMonitor) -> Result<(), Box<dyn std::error::Error>> {
    /// use db_monitor::tokio_postgres::NoTls;
    ///
    /// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    /// let pg = "host=127.0.0.1 user=app dbname=app".parse()?;
    /// let manager = monitor.manager("primary", pg, NoTls).notifications(move |n| {
    ///     let _ = tx.send(n);
    /// });
    /// let pool = monitor.pool(manager, monitor.config().pool_builder()).await?;
    /// let listening = pool.get_owned().await?;
    /// listening.batch_execute("LISTEN orders").await?;
    /// while let Some(n) = rx.recv().await {
    ///     println!("{}: {}", n.channel(), n.payload());
    /// }
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn notifications(mut self, listener: impl Fn(Notification) + Send + Sync + 'static) -> Self {
        self.notifications = Some(Arc::new(listener));
        self
    }

    /// The pool's name (the `db_client_connection_pool_name` label).
    pub fn name(&self) -> &str {
        self.shared.name()
    }

    pub(crate) fn shared(&self) -> &Arc<PoolShared> {
        &self.shared
    }
}

/// How long a connection's end waits for its holder to report it.
const HOLDER_GRACE: Duration = Duration::from_secs(1);

/// Waits, for at most [`HOLDER_GRACE`], until the connection's holder has
/// reported its end or let it go. A statement in flight gets the end as its
/// own error, but records it when its task runs next, which can be after
/// this task saw the end: without the wait the one incident would be
/// counted twice. A holder that runs nothing meanwhile only delays the
/// record.
async fn holder_reports(stats: &ConnStats) {
    let deadline = Instant::now() + HOLDER_GRACE;
    while stats.in_use() && !stats.end_reported.load(Acquire) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

impl<Tls: MakeTls> bb8::ManageConnection for MonitoredManager<Tls> {
    type Connection = MonitoredClient;
    type Error = Error;

    async fn connect(&self) -> Result<MonitoredClient, Error> {
        self.open().await
    }

    async fn is_valid(&self, conn: &mut MonitoredClient) -> Result<(), Error> {
        self.check(conn, "").await
    }

    fn has_broken(&self, conn: &mut MonitoredClient) -> bool {
        conn.is_broken()
    }
}

impl<Tls: MakeTls> MonitoredManager<Tls> {
    /// Opens a connection: timed and recorded, its end watched, its
    /// backend learnt and its setup statements run.
    pub(crate) async fn open(&self) -> Result<MonitoredClient, Error> {
        let start = Instant::now();
        let result = self.config.connect(self.tls.clone()).await;
        let elapsed = start.elapsed();
        let (client, connection) = match result {
            Ok(opened) => opened,
            Err(error) => {
                // Recorded before the streak grows: that may wake checkouts
                // to fail fast, and what they report must already be kept.
                self.shared.record(Event::Connect {
                    elapsed,
                    error: Some(&error),
                });
                self.shared.connect_ended(Some(&error));
                return Err(error);
            }
        };
        let stats = self.shared.new_connection();
        self.watch(connection, stats.clone());
        // Its backend, so that the server's view can be joined to this
        // connection (not a statement of the application: not recorded).
        // An unnamed statement: a named one would send a `Close` once
        // dropped, and a connection idle with that request in flight hands
        // the server's goodbye (`57P01`) to it rather than to its
        // background task.
        let backend = client.query_typed_opt(super::BACKEND_QUERY, &[]).await;
        if let Ok(Some(row)) = backend {
            if let (Ok(pid), Ok(started_unix_ms)) = (row.try_get(0), row.try_get(1)) {
                let _ = stats.backend.set(Backend { pid, started_unix_ms });
            }
        }
        self.shared.connect_ended(None);
        self.shared.record(Event::Connect { elapsed, error: None });
        let client = MonitoredClient::new(client, stats, self.shared.clone());
        for sql in &self.setup {
            // Recorded like any statement, failures included; the pool
            // discards the connection.
            client.batch_execute(sql).await?;
        }
        self.shared.connection_ready();
        Ok(client)
    }

    /// Runs a new connection as a task of its own (a wrapper awaiting it
    /// would be polled for every message, on top of it), and a second task
    /// that records its end.
    fn watch<S, T>(&self, connection: tokio_postgres::Connection<S, T>, stats: Arc<ConnStats>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // The tasks do not keep the pool alive: once the pool is gone, how
        // its connections end is nobody's concern.
        let shared = Arc::downgrade(&self.shared);
        self.shared.link_opened();
        let driver = tokio::spawn(drive(
            connection,
            shared.clone(),
            Arc::downgrade(&stats),
            self.notifications.clone(),
        ));
        tokio::spawn(async move {
            // A join error: the runtime is shutting down.
            let joined = driver.await;
            if let Some(shared) = shared.upgrade() {
                shared.link_closed();
            }
            let Ok(result) = joined else { return };
            if result.is_err() {
                holder_reports(&stats).await;
            }
            if let Some(shared) = shared.upgrade() {
                // A clean close ends with `Ok`. Once a statement has
                // reported the connection's end, any error is that end
                // again (dropping the dead client can meet a reset socket).
                // Otherwise the error is a new failure, even a bare end of
                // stream or a reset: the server's reason may have gone to a
                // request whose caller had left (a statement's `Close` sent
                // on drop), or there was none (a crash, a proxy).
                let news = result.as_ref().err().filter(|_| !stats.end_reported.load(Acquire));
                shared.record(Event::ConnectionClosed {
                    connection: stats.id,
                    error: news,
                });
            }
        });
    }

    /// Whether a pooled connection still works: `sql` (the empty query
    /// for a bare round trip) answers. A failure is recorded once.
    pub(crate) async fn check(&self, conn: &MonitoredClient, sql: &str) -> Result<(), Error> {
        // A connection that is already closed had its end recorded by its
        // background task; only a live-looking one failing the ping is news.
        let was_open = !conn.is_closed();
        // Settled by a ping on its return a moment ago: that was the check.
        if was_open && sql.is_empty() && conn.pinged_just_now() {
            return Ok(());
        }
        let result = conn.raw().simple_query(sql).await.map(|_| ());
        if let (Err(error), true) = (&result, was_open) {
            self.shared.record(Event::Invalid(error));
        }
        result
    }
}

/// bb8's `ErrorSink` for monitored pools: logs the background failures bb8
/// forwards (failed connects while replenishing, failed validity checks).
///
/// Each failure was already recorded where it happened (in
/// [`MonitoredManager`]), so that failures bb8
/// returns directly (from `build`) and those it forwards here are counted
/// once each; the sink only adds the log line.
#[derive(Clone)]
pub struct MonitorErrorSink {
    shared: Arc<PoolShared>,
}

impl fmt::Debug for MonitorErrorSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorErrorSink")
            .field("pool", self.shared.name())
            .finish()
    }
}

impl MonitorErrorSink {
    pub(crate) fn new(shared: Arc<PoolShared>) -> Self {
        MonitorErrorSink { shared }
    }
}

impl bb8::ErrorSink<Error> for MonitorErrorSink {
    fn sink(&self, error: Error) {
        tracing::warn!(
            pool = %self.shared.name(),
            error_type = ErrorKind::of_connect(&error).as_str(),
            sqlstate = error.code().map(|c| c.code()),
            "database pool background error: {}",
            self.shared.sink.describe(&error)
        );
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<Error>> {
        Box::new(self.clone())
    }
}

/// Adds the monitor's error sink to a bb8 builder, unless the builder has
/// one of its own: bb8 holds one sink, and the monitor's only adds a log
/// line to what the manager has already recorded, so a sink the
/// application chose is kept. The builder's `connection_customizer` is
/// never touched (the manager runs its setup statements itself).
pub(crate) fn attach<M>(shared: &Arc<PoolShared>, builder: bb8::Builder<M>) -> bb8::Builder<M>
where
    M: bb8::ManageConnection<Connection = MonitoredClient, Error = Error> + fmt::Debug,
{
    if has_own_error_sink(&builder) {
        return builder;
    }
    builder.error_sink(Box::new(MonitorErrorSink::new(shared.clone())))
}

/// Whether a bb8 builder holds an error sink other than bb8's default.
///
/// bb8 gives no getter; its builder's `Debug` names the sink, and the
/// default is `NopErrorSink` (a unit struct). A test pins this reading to
/// the bb8 in use.
fn has_own_error_sink<M>(builder: &bb8::Builder<M>) -> bool
where
    M: bb8::ManageConnection<Connection: fmt::Debug> + fmt::Debug,
{
    !format!("{builder:?}").contains("error_sink: NopErrorSink")
}

/// Drives a connection as `Connection`'s own future does, but hands each
/// notice to the funnel instead of to tokio-postgres's log line, which
/// would write its whole text (values included) at INFO. Notifications
/// (`LISTEN`) go to the manager's listener, or are dropped as
/// `Connection`'s future drops them. A warning's SQLSTATE is kept on the
/// connection for the span of the statement it came with.
fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    shared: Weak<PoolShared>,
    stats: Weak<ConnStats>,
    notifications: Option<Listener>,
) -> impl Future<Output = Result<(), Error>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    std::future::poll_fn(move |cx| loop {
        match ready!(connection.poll_message(cx)) {
            Some(Ok(AsyncMessage::Notice(notice))) => {
                let Some(stats) = stats.upgrade() else { continue };
                if notice.severity() == "WARNING" {
                    stats.warned(notice.code().code());
                }
                if let Some(shared) = shared.upgrade() {
                    shared.record(Event::Notice {
                        connection: stats.id,
                        notice: &notice,
                    });
                }
            }
            Some(Ok(AsyncMessage::Notification(notification))) => {
                if let Some(listener) = &notifications {
                    listener(notification);
                }
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => return Poll::Ready(Err(error)),
            None => return Poll::Ready(Ok(())),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::has_own_error_sink;
    use crate::testing::Never;

    #[derive(Debug, Clone, Copy)]
    struct Mine;

    impl bb8::ErrorSink<std::io::Error> for Mine {
        fn sink(&self, _: std::io::Error) {}
        fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<std::io::Error>> {
            Box::new(*self)
        }
    }

    #[test]
    fn an_error_sink_of_the_application_is_seen_on_the_builder() {
        assert!(!has_own_error_sink(&bb8::Pool::<Never>::builder()));
        assert!(has_own_error_sink(
            &bb8::Pool::<Never>::builder().error_sink(Box::new(Mine))
        ));
        assert!(!has_own_error_sink(&bb8::Pool::<Never>::builder().max_size(3)));
    }
}
