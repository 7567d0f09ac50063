//! [`ReplicaSet`]: a primary and read replicas, each a monitored pool, with
//! a checkout for reads that picks a replica by what the monitor sees.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::{MakeTls, MonitoredClient, MonitoredConnection, MonitoredPool};
use crate::classify::GetError;
use crate::funnel::Event;

/// How fast a replica's load forgets: the decay time of its peak-EWMA
/// (tower's balancer uses the same order).
const DECAY: Duration = Duration::from_secs(10);

/// A primary and its read replicas, each a [`MonitoredPool`]: writes go to
/// the primary; [`read`](Self::read) picks a replica by the power of two
/// choices over each replica's load, as tower's balancer does for
/// services, and skips a replica that fails its health check.
///
/// A replica's load is a peak-EWMA of what its reads cost (the checkout's
/// wait plus the mean time of the statements run on it; a slower sample
/// counts at once, a faster one decays in over about 10 s), times one
/// more than its pool's busy connections: checked out (by these reads or
/// by any other work on that pool) or waited for. A replica with no read
/// measured yet (new, or back from a failed health check) is not taken
/// for free: it costs what the costliest measured replica does, or 10 ms
/// when none is measured (as tower's peak-EWMA starts an endpoint at a
/// default round trip), so that a cold or busy replica is not flooded.
/// Two healthy replicas are drawn at random and the lighter one serves. A health task pings every replica
/// each second (the health check's own checkout and `SELECT 1`, bounded by
/// half a second); one that fails, or whose database is out of reach, is
/// skipped until a ping answers again, and then starts with a fresh load.
/// With no healthy replica, reads go to the primary.
///
/// Each choice is counted (`db_monitor_replica_reads_total` on the chosen
/// pool); [`report`](Self::report), the layer's `{prefix}/replicas`
/// ([`DbMonitorLayer::replicas`](crate::DbMonitorLayer::replicas)) and the
/// dashboard show every replica's health, load and reads.
///
/// ```no_run
/// # use db_monitor::{DbMonitor, MonitoredPool, ReplicaSet, tokio_postgres::NoTls};
/// # async fn run(monitor: DbMonitor, primary: MonitoredPool<NoTls>, a: MonitoredPool<NoTls>, b: MonitoredPool<NoTls>)
/// # -> Result<(), Box<dyn std::error::Error>> {
/// let replicas = ReplicaSet::new(primary, [a, b]);
/// let conn = replicas.read().await?; // the lighter of two healthy replicas
/// let rows = conn.query("SELECT id FROM orders WHERE customer = $1", &[&7_i64]).await?;
/// drop(conn); // its cost updates the replica's load
/// let conn = replicas.primary().get().await?; // writes
/// # let _ = (rows, conn); Ok(()) }
/// ```
pub struct ReplicaSet<Tls: MakeTls> {
    inner: Arc<Inner<Tls>>,
}

impl<Tls: MakeTls> Clone for ReplicaSet<Tls> {
    fn clone(&self) -> Self {
        ReplicaSet {
            inner: self.inner.clone(),
        }
    }
}

impl<Tls: MakeTls> fmt::Debug for ReplicaSet<Tls> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicaSet")
            .field("primary", &self.inner.primary.name())
            .field(
                "replicas",
                &self.inner.replicas.iter().map(|r| r.pool.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

struct Inner<Tls: MakeTls> {
    primary: MonitoredPool<Tls>,
    replicas: Vec<Replica<Tls>>,
    /// A cheap random stream for the two choices.
    seed: AtomicU64,
    primary_reads: AtomicU64,
    health: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl<Tls: MakeTls> Drop for Inner<Tls> {
    fn drop(&mut self) {
        if let Some(task) = self.health.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

struct Replica<Tls: MakeTls> {
    pool: MonitoredPool<Tls>,
    load: Load,
    healthy: AtomicBool,
    reads: AtomicU64,
    last_failure: Mutex<Option<String>>,
}

/// A replica's peak-EWMA of its reads' cost, and its reads in flight.
struct Load {
    /// The EWMA in nanoseconds, as `f64` bits.
    ewma: AtomicU64,
    /// When it was last updated, in nanoseconds since `epoch`.
    at: AtomicU64,
    epoch: quanta::Instant,
    pending: AtomicU64,
    /// Whether a read has been measured since it was made or reset.
    sampled: AtomicBool,
}

/// What a replica with no read measured costs when no other replica has
/// one either, in nanoseconds.
const UNMEASURED: f64 = 10e6;

impl Load {
    fn new() -> Self {
        Load {
            ewma: AtomicU64::new(0f64.to_bits()),
            at: AtomicU64::new(0),
            epoch: crate::units::now(),
            pending: AtomicU64::new(0),
            sampled: AtomicBool::new(false),
        }
    }

    /// The EWMA decayed to now (a replica unused for a while drifts back
    /// toward zero, so that it is tried again).
    fn ewma(&self, now: u64) -> f64 {
        let ewma = f64::from_bits(self.ewma.load(Relaxed));
        let elapsed = now.saturating_sub(self.at.load(Relaxed)) as f64;
        ewma * (-elapsed / DECAY.as_nanos() as f64).exp()
    }

    /// The EWMA decayed to now, if a read was measured.
    fn measured(&self, now: u64) -> Option<f64> {
        self.sampled.load(Relaxed).then(|| self.ewma(now))
    }

    /// The cost of sending one more read here, with `busy` connections of
    /// its pool checked out or waited for, and `unmeasured` its read's
    /// cost if none was measured.
    fn cost(&self, now: u64, busy: u64, unmeasured: f64) -> f64 {
        let read = self.measured(now).unwrap_or(unmeasured);
        (read + 1.0) * (self.pending.load(Relaxed).max(busy) + 1) as f64
    }

    /// A read that cost `sample`: a higher one is taken at once (the
    /// peak), a lower one decays in.
    fn observe(&self, now: u64, sample: Duration) {
        let sample = sample.as_nanos() as f64;
        let elapsed = now.saturating_sub(self.at.load(Relaxed)) as f64;
        let w = (-elapsed / DECAY.as_nanos() as f64).exp();
        let stored = f64::from_bits(self.ewma.load(Relaxed));
        // Above the load as it reads now: the new peak. Otherwise the
        // sample weighs in by the time since the last one.
        let next = if sample > stored * w {
            sample
        } else {
            stored * w + sample * (1.0 - w)
        };
        self.ewma.store(next.to_bits(), Relaxed);
        self.at.store(now, Relaxed);
        self.sampled.store(true, Relaxed);
    }

    fn reset(&self) {
        self.ewma.store(0f64.to_bits(), Relaxed);
        self.at.store(self.now(), Relaxed);
        self.sampled.store(false, Relaxed);
    }

    fn now(&self) -> u64 {
        crate::units::saturating_nanos(crate::units::now().saturating_duration_since(self.epoch))
    }
}

impl<Tls: MakeTls> ReplicaSet<Tls> {
    /// A set of `primary` and `replicas`, all healthy until the first
    /// health check says otherwise. Starts the health task on the current
    /// tokio runtime (none outside one: every replica then stays
    /// healthy); it ends with the last clone of the set.
    pub fn new(primary: MonitoredPool<Tls>, replicas: impl IntoIterator<Item = MonitoredPool<Tls>>) -> Self {
        let inner = Arc::new(Inner {
            primary,
            replicas: replicas
                .into_iter()
                .map(|pool| Replica {
                    pool,
                    load: Load::new(),
                    healthy: AtomicBool::new(true),
                    reads: AtomicU64::new(0),
                    last_failure: Mutex::new(None),
                })
                .collect(),
            seed: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
            primary_reads: AtomicU64::new(0),
            health: Mutex::new(None),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&inner);
            let task = runtime.spawn(async move {
                let mut tick = crate::units::ticks(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    // Each replica checked on a task of its own, so that a
                    // frozen one does not hold up the others' verdicts.
                    let mut checks = tokio::task::JoinSet::new();
                    for index in 0..inner.replicas.len() {
                        let inner = inner.clone();
                        checks.spawn(async move { inner.check(index).await });
                    }
                    drop(inner);
                    while checks.join_next().await.is_some() {}
                }
            });
            *inner.health.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        }
        ReplicaSet { inner }
    }

    /// The primary, for writes.
    pub fn primary(&self) -> &MonitoredPool<Tls> {
        &self.inner.primary
    }

    /// The replicas, in the order given.
    pub fn replicas(&self) -> impl Iterator<Item = &MonitoredPool<Tls>> {
        self.inner.replicas.iter().map(|r| &r.pool)
    }

    /// Checks out a connection for reads: from the lighter of two healthy
    /// replicas drawn at random (the only healthy one if there is one; the
    /// primary if there is none).
    ///
    /// # Errors
    ///
    /// The chosen pool's [`GetError`]; the read is not retried elsewhere
    /// (a statement may not be safe to run twice).
    pub async fn read(&self) -> Result<ReplicaConnection<'_, Tls>, GetError> {
        let Some(index) = self.choose() else {
            self.inner.primary_reads.fetch_add(1, Relaxed);
            let conn = self.inner.primary.get().await?;
            return Ok(ReplicaConnection {
                conn: Some(conn),
                replica: None,
                waited: Duration::ZERO,
            });
        };
        let replica = &self.inner.replicas[index];
        replica.reads.fetch_add(1, Relaxed);
        replica.pool.shared().record(Event::ReplicaChosen);
        replica.load.pending.fetch_add(1, Relaxed);
        let pending = Pending(&replica.load);
        let start = crate::units::now();
        let conn = replica.pool.get().await?;
        std::mem::forget(pending);
        Ok(ReplicaConnection {
            conn: Some(conn),
            replica: Some(replica),
            waited: crate::units::now().saturating_duration_since(start),
        })
    }

    /// The replica a read goes to: power of two choices among the healthy.
    fn choose(&self) -> Option<usize> {
        let replicas = &self.inner.replicas;
        let healthy: usize = replicas.iter().filter(|r| r.healthy.load(Relaxed)).count();
        if healthy == 0 {
            return None;
        }
        let nth_healthy = |n: usize| {
            replicas
                .iter()
                .enumerate()
                .filter(|(_, r)| r.healthy.load(Relaxed))
                .nth(n)
                .map(|(i, _)| i)
        };
        if healthy == 1 {
            return nth_healthy(0);
        }
        let random = self.random();
        let a = (random % healthy as u64) as usize;
        let mut b = ((random >> 32) % (healthy as u64 - 1)) as usize;
        if b >= a {
            b += 1;
        }
        let (a, b) = (nth_healthy(a)?, nth_healthy(b)?);
        let now = replicas[a].load.now();
        let unmeasured = replicas
            .iter()
            .filter(|r| r.healthy.load(Relaxed))
            .filter_map(|r| r.load.measured(now))
            .reduce(f64::max)
            .unwrap_or(UNMEASURED);
        let cost = |r: &Replica<Tls>| r.load.cost(now, r.pool.shared().busy(), unmeasured);
        let (ca, cb) = (cost(&replicas[a]), cost(&replicas[b]));
        Some(if cb < ca { b } else { a })
    }

    /// splitmix64 over a shared counter.
    fn random(&self) -> u64 {
        let mut z = self.inner.seed.fetch_add(0x9E37_79B9_7F4A_7C15, Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Every replica's health, load and reads, and the reads that went to
    /// the primary.
    pub fn report(&self) -> ReplicaReport {
        ReplicaReport {
            primary: self.inner.primary.name().to_owned(),
            primary_reads: self.inner.primary_reads.load(Relaxed),
            replicas: self
                .inner
                .replicas
                .iter()
                .map(|r| {
                    let now = r.load.now();
                    ReplicaStatus {
                        pool: r.pool.name().to_owned(),
                        healthy: r.healthy.load(Relaxed),
                        load_ms: r.load.ewma(now) / 1e6,
                        measured: r.load.sampled.load(Relaxed),
                        in_flight: r.load.pending.load(Relaxed),
                        reads: r.reads.load(Relaxed),
                        last_failure: r.last_failure.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                    }
                })
                .collect(),
        }
    }
}

impl<Tls: MakeTls> Inner<Tls> {
    /// Pings replica `index` and records whether it is healthy.
    async fn check(&self, index: usize) {
        let Some(r) = self.replicas.get(index) else { return };
        let monitor = r.pool.monitor();
        let result = monitor.source.ping(Duration::from_millis(500)).await;
        let healthy = result.is_ok() && !monitor.out_of_reach();
        if healthy && !r.healthy.swap(true, Relaxed) {
            // Back: its load starts afresh, so that it is tried again
            // rather than judged by the reads that hung before it failed.
            r.load.reset();
        }
        r.healthy.store(healthy, Relaxed);
        if let Err(failure) = result {
            *r.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(failure);
        }
    }
}

/// Undoes a read's pending count if its checkout is dropped or fails.
struct Pending<'a>(&'a Load);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Relaxed);
    }
}

/// A connection checked out by [`ReplicaSet::read`]: derefs to
/// [`MonitoredClient`]; once dropped, what its reads cost (the wait and
/// the mean statement time) updates the replica's load.
pub struct ReplicaConnection<'a, Tls: MakeTls> {
    conn: Option<MonitoredConnection<'a, Tls>>,
    replica: Option<&'a Replica<Tls>>,
    waited: Duration,
}

impl<Tls: MakeTls> ReplicaConnection<'_, Tls> {
    /// The pool it came from.
    pub fn pool_name(&self) -> &str {
        self.conn.as_ref().map_or("", |c| &**c.pool().name())
    }
}

impl<Tls: MakeTls> fmt::Debug for ReplicaConnection<'_, Tls> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicaConnection")
            .field("pool", &self.pool_name())
            .finish()
    }
}

impl<Tls: MakeTls> Deref for ReplicaConnection<'_, Tls> {
    type Target = MonitoredClient;

    fn deref(&self) -> &MonitoredClient {
        self.conn.as_deref().expect("connection present until drop")
    }
}

impl<Tls: MakeTls> DerefMut for ReplicaConnection<'_, Tls> {
    fn deref_mut(&mut self) -> &mut MonitoredClient {
        self.conn.as_deref_mut().expect("connection present until drop")
    }
}

impl<Tls: MakeTls> Drop for ReplicaConnection<'_, Tls> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if let Some(replica) = self.replica {
            let session = conn.session();
            let per_statement = session
                .database_time
                .checked_div(u32::try_from(session.statements.max(1)).unwrap_or(u32::MAX))
                .unwrap_or_default();
            let load = &replica.load;
            load.observe(load.now(), self.waited + per_statement);
            load.pending.fetch_sub(1, Relaxed);
        }
    }
}

/// The replicas of a [`ReplicaSet`] as [`ReplicaSet::report`] and the
/// layer's `{prefix}/replicas` give them.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ReplicaReport {
    /// The primary's pool name.
    pub primary: String,
    /// Reads sent to the primary because no replica was healthy.
    pub primary_reads: u64,
    /// Each replica.
    pub replicas: Vec<ReplicaStatus>,
}

/// One replica of a [`ReplicaReport`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ReplicaStatus {
    /// Its pool's name.
    pub pool: String,
    /// Whether its last health check answered (and its database is in
    /// reach).
    pub healthy: bool,
    /// Its peak-EWMA of a read's cost (wait and mean statement time), in
    /// milliseconds, decayed to now.
    pub load_ms: f64,
    /// Whether a read has been measured since it was added or came back
    /// healthy (until then it is costed as the costliest measured one).
    pub measured: bool,
    /// Reads checked out from it and not yet returned.
    pub in_flight: u64,
    /// Reads sent to it.
    pub reads: u64,
    /// What its last failed health check met.
    pub last_failure: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_taken_at_once_and_decays_back() {
        let load = Load::new();
        load.observe(0, Duration::from_millis(10));
        assert!((load.ewma(0) - 10e6).abs() < 1.0);
        // A faster read 10 s later pulls it most of the way down.
        let later = DECAY.as_nanos() as u64;
        load.observe(later, Duration::from_millis(1));
        let ewma = load.ewma(later);
        assert!(ewma > 1e6 && ewma < 5e6, "{ewma}");
        // A slower one is the new value at once.
        load.observe(later, Duration::from_millis(50));
        assert!((load.ewma(later) - 50e6).abs() < 1.0);
        // Unused, it decays toward zero.
        assert!(load.ewma(later + 10 * DECAY.as_nanos() as u64) < 50e6 * 1e-4);
    }

    #[test]
    fn the_cost_grows_with_the_reads_in_flight_and_the_pools_busy_connections() {
        let load = Load::new();
        load.observe(0, Duration::from_millis(2));
        let one = load.cost(0, 0, UNMEASURED);
        load.pending.store(3, Relaxed);
        assert!((load.cost(0, 0, UNMEASURED) / one - 4.0).abs() < 1e-9);
        // Its pool busy with other work as well: the larger count counts.
        assert!((load.cost(0, 7, UNMEASURED) / one - 8.0).abs() < 1e-9);
    }

    #[test]
    fn a_replica_with_no_read_measured_is_not_free() {
        let cold = Load::new();
        let warm = Load::new();
        warm.observe(0, Duration::from_millis(1));
        // Costed as the costliest measured replica, not as zero: with its
        // connections held by other work it loses to an idle warm one.
        assert!(cold.cost(0, 2, 1e6) > warm.cost(0, 0, 1e6));
        // Idle, it ties with the warm one and is tried.
        assert!((cold.cost(0, 0, 1e6) - warm.cost(0, 0, 1e6)).abs() < 1.0);
        // Back from a failure: unmeasured again.
        warm.reset();
        assert!(warm.measured(0).is_none());
    }
}
