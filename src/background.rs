//! The monitor's background work for a pool, started explicitly with
//! [`DbMonitor::start`] and stopped with [`MonitorHandle::shutdown`] or by
//! dropping the handle.
//!
//! # When it runs
//!
//! Every [`health_check_interval`](crate::MonitorConfig::health_check_interval)
//! (and once right away) the task samples the pool: it publishes bb8's
//! `State` and `Statistics` (see [`MonitoredPool::publish_state`]), so that
//! the connection gauges of a pool nobody is using stay current. Every
//! minute it snapshots the pool's statement totals, from which the error
//! rates of [`MonitoredPool::error_report`] are computed.
//!
//! # Example
//!
//! ```no_run
//! # async fn run(monitor: db_monitor::DbMonitor, pool: db_monitor::MonitoredPool<db_monitor::tokio_postgres::NoTls>) {
//! let background = monitor.start(&pool);
//! // … serve …
//! background.shutdown().await;
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::pool::{MakeTls, MonitoredPool};
use crate::DbMonitor;

/// The running background task of one pool. Dropping it stops the task
/// (at its next wake-up); [`shutdown`](Self::shutdown) stops it and waits.
#[must_use = "dropping the handle stops the background task"]
pub struct MonitorHandle {
    pool: Arc<str>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for MonitorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorHandle")
            .field("pool", &self.pool)
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl MonitorHandle {
    /// Stops the task and waits until it has stopped.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            // The task never panics on its own; a cancelled runtime is
            // nothing to report here.
            let _ = task.await;
        }
    }

    /// Whether the task has stopped.
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for MonitorHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl DbMonitor {
    /// Starts the background work for `pool` (see the [module
    /// docs](crate::background)) and returns its handle.
    ///
    /// # Panics
    ///
    /// If called outside a Tokio runtime.
    pub fn start<Tls: MakeTls>(&self, pool: &MonitoredPool<Tls>) -> MonitorHandle {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let period = self.config().health_check_interval;
        let pool = pool.clone();
        let name: Arc<str> = Arc::from(pool.name());
        let task = tokio::spawn(async move {
            let mut sample = tokio::time::interval(period);
            sample.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut minute = tokio::time::interval(Duration::from_secs(60));
            minute.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = sample.tick() => pool.publish_state(),
                    _ = minute.tick() => {
                        pool.observe_totals(std::time::Instant::now());
                    }
                }
            }
        });
        MonitorHandle {
            pool: name,
            stop: Some(stop),
            task: Some(task),
        }
    }
}
