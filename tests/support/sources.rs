//! The two pools a monitor can watch, behind one trait, so that a test of
//! shared behaviour runs on both: [`on_both_pools!`] makes a `bb8` and a
//! `deadpool` test of one generic body.

use std::future::Future;
use std::ops::DerefMut;
use std::time::Duration;

use db_monitor::tokio_postgres::{Config, NoTls};
use db_monitor::{DbMonitor, GetError, MonitoredClient, MonitoredConnection, MonitoredPool, PoolMonitor, SessionStats};

/// A checked-out connection, as the tests use it.
pub trait TestConn: DerefMut<Target = MonitoredClient> + Send + std::fmt::Debug {
    /// What the checkout has run so far.
    fn session(&self) -> SessionStats;
}

impl TestConn for MonitoredConnection<'_, NoTls> {
    fn session(&self) -> SessionStats {
        MonitoredConnection::session(self)
    }
}

#[cfg(feature = "deadpool")]
impl TestConn for db_monitor::MonitoredObject<NoTls> {
    fn session(&self) -> SessionStats {
        db_monitor::MonitoredObject::session(self)
    }
}

/// A monitored pool, as the tests use it.
pub trait TestPool: Clone + Send + Sync + 'static {
    /// Its checkout guard.
    type Conn<'a>: TestConn + 'a;

    /// A pool named `name` on the server at `config`: at most `max_size`
    /// connections, opened on demand, checkouts waiting at most `timeout`.
    fn make(
        monitor: &DbMonitor,
        name: &str,
        config: Config,
        max_size: u32,
        timeout: Duration,
    ) -> impl Future<Output = Self> + Send;

    /// Checks out a connection (the caller's location is the checkout's).
    #[track_caller]
    fn get(&self) -> impl Future<Output = Result<Self::Conn<'_>, GetError>> + Send + '_;

    /// The monitor's handle on the pool.
    fn monitor(&self) -> &PoolMonitor;
}

impl TestPool for MonitoredPool<NoTls> {
    type Conn<'a> = MonitoredConnection<'a, NoTls>;

    async fn make(monitor: &DbMonitor, name: &str, config: Config, max_size: u32, timeout: Duration) -> Self {
        super::pool_with(monitor, name, config, max_size, 0, timeout).await
    }

    #[track_caller]
    fn get(&self) -> impl Future<Output = Result<Self::Conn<'_>, GetError>> + Send + '_ {
        MonitoredPool::get(self)
    }

    fn monitor(&self) -> &PoolMonitor {
        MonitoredPool::monitor(self)
    }
}

#[cfg(feature = "deadpool")]
impl TestPool for db_monitor::MonitoredDeadpool<NoTls> {
    type Conn<'a> = db_monitor::MonitoredObject<NoTls>;

    async fn make(monitor: &DbMonitor, name: &str, config: Config, max_size: u32, timeout: Duration) -> Self {
        let manager = monitor.manager(name, config, NoTls);
        let builder = manager
            .deadpool_builder(db_monitor::deadpool_postgres::ManagerConfig::default())
            .max_size(max_size as usize)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout));
        monitor.deadpool(builder).expect("pool")
    }

    #[track_caller]
    fn get(&self) -> impl Future<Output = Result<Self::Conn<'_>, GetError>> + Send + '_ {
        db_monitor::MonitoredDeadpool::get(self)
    }

    fn monitor(&self) -> &PoolMonitor {
        db_monitor::MonitoredDeadpool::monitor(self)
    }
}

/// A pool of `P`'s kind named `name` of up to `size` connections on the
/// shared server, with a 5 s checkout timeout.
pub async fn pool_of<P: TestPool>(monitor: &DbMonitor, name: &str, size: u32) -> P {
    P::make(monitor, name, super::pg::shared_config(), size, Duration::from_secs(5)).await
}

/// For each generic test body `name::<P: TestPool>()`, a module `name` with
/// a test `bb8` and (with the feature) a test `deadpool`, on tokio's
/// multi-threaded runtime (or, after `current_thread:`, its default one).
#[macro_export]
macro_rules! on_both_pools {
    (current_thread: $($name:ident),* $(,)?) => {
        on_both_pools!(@test [tokio::test] $($name),*);
    };
    (@test [$test:meta] $($name:ident),*) => {$(
        mod $name {
            #[$test]
            async fn bb8() {
                super::$name::<db_monitor::MonitoredPool<db_monitor::tokio_postgres::NoTls>>().await
            }

            #[cfg(feature = "deadpool")]
            #[$test]
            async fn deadpool() {
                super::$name::<db_monitor::MonitoredDeadpool<db_monitor::tokio_postgres::NoTls>>().await
            }
        }
    )*};
    ($($name:ident),* $(,)?) => {
        on_both_pools!(@test [tokio::test(flavor = "multi_thread", worker_threads = 2)] $($name),*);
    };
}
