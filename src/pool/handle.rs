//! [`PoolMonitor`]: what the monitor knows of one pool, on a handle that
//! does not name the pool's type. Reports, alerts, forecasts, the layer's
//! routes and the background task work on it; a source (the bb8 pool
//! today) gives it the pool's state through [`PoolSource`].

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::client::MonitoredClient;
use super::shared::PoolShared;
use super::{ConnectionInfo, PoolSnapshot};
use crate::funnel::{Event, PoolCounters, Sink};
use crate::stats::{PoolReading, PoolStores};

/// What the monitor reads of the pool itself: its connections, and the
/// pool's own cumulative counts where it keeps them (zero where not).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SourceStatus {
    /// Connections open, idle or checked out.
    pub(crate) connections: u32,
    /// Connections idle.
    pub(crate) idle: u32,
    /// Checkouts waiting for a connection.
    pub(crate) pending: u64,
    /// The time checkouts have waited, in all.
    pub(crate) wait_total: Duration,
    /// The pool's cumulative counts (its `idle_min` is the monitor's to
    /// fill in).
    pub(crate) counters: PoolCounters,
}

/// How long a health check's checkout took, and the database's answer to
/// its `SELECT 1` alone.
pub(crate) struct Ping {
    pub(crate) checkout: Duration,
    pub(crate) answer: Duration,
}

/// A pool, as the monitor reads it: its state, and a health check that is
/// the monitor's own work.
pub(crate) trait PoolSource: Send + Sync + 'static {
    /// The pool's state now.
    fn status(&self) -> SourceStatus;
    /// A checkout and `SELECT 1` within `timeout`, neither counted among
    /// the application's.
    fn ping(&self, timeout: Duration) -> Pin<Box<dyn Future<Output = Result<Ping, String>> + Send + '_>>;
    /// Starts a probe for the server's return while no connection is open
    /// and connects fail, if the source has one (deadpool's next checkout
    /// connects by itself).
    fn probe(&self) {}
}

/// A health check on a connection that `get` checks out from the pool
/// directly, run on the raw client, so that neither the checkout nor
/// `SELECT 1` is counted among the application's (nor feeds the forecast).
/// Bounded as a whole by `timeout`; a connection whose `SELECT 1` got no
/// answer in time is retired rather than handed to the application with
/// the statement still in flight. `get` fails with what to say, or with
/// `None` when it timed out.
pub(crate) async fn ping<G>(
    shared: &PoolShared,
    timeout: Duration,
    get: impl Future<Output = Result<G, Option<String>>>,
) -> Result<Ping, String>
where
    G: Deref<Target = MonitoredClient>,
{
    let start = std::time::Instant::now();
    let conn = match tokio::time::timeout(timeout, get).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(Some(failure))) => return Err(failure),
        Ok(Err(None)) | Err(_) => {
            return Err(match shared.last_connect_error() {
                Some(e) if shared.consecutive_connect_failures.load(Relaxed) > 0 => {
                    format!("no connection within {timeout:?}: connect failed: {e}")
                }
                _ => format!("no connection within {timeout:?}"),
            })
        }
    };
    let checked_out = std::time::Instant::now();
    let left = timeout.saturating_sub(checked_out - start);
    match tokio::time::timeout(left, conn.raw().simple_query("SELECT 1")).await {
        Ok(Ok(_)) => Ok(Ping {
            checkout: checked_out - start,
            answer: checked_out.elapsed(),
        }),
        Ok(Err(e)) => {
            Err(crate::classify::error_message(&e, shared.sink.config.expose_application_messages).into_owned())
        }
        Err(_) => {
            conn.retire();
            Err(format!("no answer to SELECT 1 within {timeout:?}"))
        }
    }
}

/// The connection a health check pings: the pool's, or, when the pool
/// has none idle and is at its maximum, one of the check's own (closed
/// once dropped), so that a saturated pool does not read as a database
/// out of reach.
pub(crate) enum PingConn<P> {
    Pooled(P),
    Own(Box<MonitoredClient>),
}

impl<P: Deref<Target = MonitoredClient>> Deref for PingConn<P> {
    type Target = MonitoredClient;

    fn deref(&self) -> &MonitoredClient {
        match self {
            PingConn::Pooled(conn) => conn,
            PingConn::Own(conn) => conn,
        }
    }
}

/// The bb8 pool's state, as its `State` and `Statistics` give it.
pub(crate) fn bb8_status<M: bb8::ManageConnection>(pool: &bb8::Pool<M>) -> SourceStatus {
    let state = pool.state();
    let s = &state.statistics;
    SourceStatus {
        connections: state.connections,
        idle: state.idle_connections,
        pending: s.pending_gets(),
        wait_total: s.get_wait_time,
        counters: PoolCounters {
            idle_min: 0,
            created: s.connections_created,
            closed_broken: s.connections_closed_broken,
            closed_invalid: s.connections_closed_invalid,
            closed_max_lifetime: s.connections_closed_max_lifetime,
            closed_idle_timeout: s.connections_closed_idle_timeout,
            gets_direct: s.get_direct,
            gets_waited: s.get_waited,
            gets_timed_out: s.get_timed_out,
        },
    }
}

/// The monitor's handle on one pool: its reports, alerts, forecast and
/// stores, whatever the pool's type. Cheap to clone; every clone is the same
/// pool's. Get it with [`MonitoredPool::monitor`](crate::MonitoredPool::monitor).
#[derive(Clone)]
pub struct PoolMonitor {
    pub(crate) shared: Arc<PoolShared>,
    pub(crate) source: Arc<dyn PoolSource>,
}

impl fmt::Debug for PoolMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolMonitor")
            .field("pool", self.shared.name())
            .finish_non_exhaustive()
    }
}

impl PoolMonitor {
    pub(crate) fn new(shared: Arc<PoolShared>, source: Arc<dyn PoolSource>) -> Self {
        PoolMonitor { shared, source }
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        self.shared.name()
    }

    /// Where the pool's events go: its settings, metric handles and stores.
    pub(crate) fn sink(&self) -> &Sink {
        &self.shared.sink
    }

    /// The pool's stores.
    pub(crate) fn stores(&self) -> &PoolStores {
        &self.shared.sink.stores
    }

    /// Publishes the pool's state: connection counts as gauges, the
    /// pool's cumulative counters as absolute counters.
    ///
    /// Checkouts call it at most every 250 ms (it takes the pool's internal
    /// lock), timeouts always, the layer's `/metrics` at each scrape and
    /// the background task every 5 s. Call it yourself to refresh an idle
    /// pool.
    pub fn publish_state(&self) {
        self.read_state(false);
    }

    /// Takes a trend sample now (the background task does so every
    /// health-check interval) and publishes the pool's state.
    pub fn sample(&self) {
        self.read_state(true);
    }

    /// Reads the pool's own counts (connections checked out, the most at
    /// once since the last reading, checkouts pending and queued) into the
    /// next trend sample: the background task does, each second.
    pub(crate) fn read_second(&self) {
        let in_use = self.shared.in_use.load(Relaxed);
        let peak_in_use = self.shared.peak_in_use.swap(in_use, Relaxed);
        let load = &self.shared.sink.stores.load;
        let pending = load.pending();
        let queued = pending.saturating_sub(self.shared.room().free);
        self.shared.record(Event::PoolSecond(crate::stats::PoolSecond {
            in_use,
            peak_in_use,
            pending: u64::from(pending),
            queued: u64::from(queued),
        }));
    }

    /// Reads the pool's state into the funnel: the gauges always, the
    /// trend when `sample` (which also restarts the peak).
    fn read_state(&self, sample: bool) {
        let s = self.source.status();
        let in_use = self.shared.in_use.load(Relaxed);
        let peak_in_use = if sample {
            self.shared.peak_in_use.swap(in_use, Relaxed)
        } else {
            self.shared.peak_in_use.load(Relaxed)
        };
        let reading = PoolReading {
            at: SystemTime::now(),
            max_size: self.shared.max_size.load(Relaxed),
            size: s.connections,
            idle: s.idle,
            in_use,
            waiters: s.pending,
            peak_in_use,
            timed_out_total: s.counters.gets_timed_out,
            wait_total: s.wait_total,
        };
        let counters = PoolCounters {
            idle_min: self.shared.min_idle.load(Relaxed),
            ..s.counters
        };
        self.shared.record(Event::PoolState {
            reading: &reading,
            counters: &counters,
            sample,
        });
    }

    /// The pool's load over the last seconds: checkouts waiting now and
    /// since when, and the last ten seconds' checkouts and their waits.
    pub fn load(&self) -> crate::stats::PoolLoad {
        self.shared
            .sink
            .stores
            .load
            .read(crate::units::now(), self.shared.room())
    }

    /// The wait a checkout starting now can expect, as a
    /// [`ShedLayer`](crate::ShedLayer) judges it: zero while no checkout is
    /// queued for a connection (pending checkouts the pool's free room can
    /// serve, such as a burst pinging idle connections, are not); otherwise
    /// the longer of its place in the queue over the pool's capacity (its
    /// checked-out connections over their mean hold time, or its rate of
    /// service if higher;
    /// [`PoolLoad::expected_wait`](crate::stats::PoolLoad::expected_wait))
    /// and the time the queue has not moved (since a checkout was last
    /// served, or since checkouts began to pend if later). `None` when
    /// checkouts are queued and nothing was served or given back in the
    /// last ten seconds.
    #[inline]
    pub fn expected_wait(&self) -> Option<Duration> {
        self.shared
            .sink
            .stores
            .load
            .expected_wait(crate::units::now(), self.shared.room())
    }

    /// Counts a request shed before its handler ran.
    pub(crate) fn shed(&self) {
        self.shared.record(Event::Shed);
    }

    /// Whether the database is out of reach as the pool knows it: no
    /// connection open, and connects failing since the last success, the
    /// last of them within 5 s. Asking starts the pool's probe for the
    /// server's return when no connection is open and connects have been
    /// failing, so that a pool nobody checks out from (an instance taken
    /// out of service) does not stay out of reach on old evidence.
    pub fn out_of_reach(&self) -> bool {
        if self.shared.down_streak() {
            self.source.probe();
        }
        self.shared.known_down()
    }

    /// A snapshot of the pool: its state and every live connection.
    pub fn snapshot(&self) -> PoolSnapshot {
        let s = self.source.status();
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
            connections: s.connections,
            idle: s.idle,
            in_use: self.shared.in_use.load(Relaxed),
            pending: s.pending,
            consecutive_connect_failures: self.shared.consecutive_connect_failures.load(Relaxed),
            out_of_reach: self.shared.known_down(),
            connections_set_up: self.shared.ready.load(Relaxed),
            open_connections: connections,
        }
    }
}
