//! The monitor's background work for a pool, started explicitly with
//! [`DbMonitor::start`] and stopped with [`MonitorHandle::shutdown`] or by
//! dropping the handle.
//!
//! # When it runs
//!
//! - Every [`health_check_interval`](crate::MonitorConfig::health_check_interval)
//!   (and once right away) it samples the pool into its trend
//!   ([`MonitoredPool::sample`]), publishes bb8's `State` and
//!   `Statistics`, so that the gauges of a pool nobody uses stay current,
//!   and sets the performance score gauge over the last hour
//!   ([`MonitoredPool::publish_score`]).
//! - Every minute (a history [`slot`](crate::MonitorConfig::slot)) it
//!   snapshots the pool's statement totals, from which the error rates of
//!   [`MonitoredPool::error_report`] are computed, observes each
//!   statement's minute against its baseline (the anomaly detector), and
//!   applies the alert engine's degradation rule.
//! - Every [`forecast interval`](crate::ForecastThresholds::interval) it
//!   samples the pool's demand into the exhaustion forecast.
//! - As errors and slow statements are recorded, it applies the alert
//!   engine's event rules; every
//!   [`evaluation_interval`](crate::AlertThresholds::evaluation_interval)
//!   and at each sample, its condition rules and expiries (see
//!   [`crate::alerts`]).
//! - Every [`metrics_reset_interval`](crate::MonitorConfig::metrics_reset_interval)
//!   (first one interval after the start; never when it is zero) it empties the pool's stores
//!   ([`MonitoredPool::reset_stores`]); the metrics recorder is never reset.
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

use crate::layer::DbMonitorLayer;
use crate::monitor::DbMonitor;
use crate::pool::{MakeTls, MonitoredPool};

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

/// The longest period the task keeps (longer ones are this long).
const YEAR: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The next tick of `interval`, or never without one.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl DbMonitor {
    /// The layer for `pool` with the pool's background task started and
    /// kept in it: one value to give the router.
    ///
    /// The task runs for as long as the layer or any service made from it
    /// lives (the router), and stops at its next wake-up once the last is
    /// dropped. To stop it at a moment of your choosing and wait for it,
    /// use [`start`](Self::start) and [`DbMonitorLayer::new`] instead.
    ///
    /// ```no_run
    /// # async fn run(monitor: db_monitor::DbMonitor, pool: db_monitor::MonitoredPool<db_monitor::tokio_postgres::NoTls>,
    /// #              prometheus: metrics_exporter_prometheus::PrometheusHandle) {
    /// let app: axum::Router = axum::Router::new()
    ///     // .route(…).with_state(pool.clone())
    ///     .layer(monitor.layer(&pool).prometheus(prometheus));
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If called outside a Tokio runtime.
    pub fn layer<Tls: MakeTls>(&self, pool: &MonitoredPool<Tls>) -> DbMonitorLayer {
        let handle: Arc<dyn std::any::Any + Send + Sync> = Arc::new(self.start(pool));
        DbMonitorLayer::new(pool.clone()).keeping(handle)
    }

    /// Starts the background work for `pool` (see the [module
    /// docs](crate::background)) and returns its handle.
    ///
    /// # Panics
    ///
    /// If called outside a Tokio runtime.
    pub fn start<Tls: MakeTls>(&self, pool: &MonitoredPool<Tls>) -> MonitorHandle {
        let (stop, mut stopped) = oneshot::channel::<()>();
        // Whatever the fields hold (they are public, and `validate` may not
        // have run): no zero period (tokio's interval panics on it), no
        // period past a year (its deadline could overflow `Instant`).
        let bounded = |d: Duration, least: Duration| d.clamp(least, YEAR);
        let period = bounded(self.config().health_check_interval, Duration::from_secs(1));
        let evaluate_every = bounded(self.config().alerts.evaluation_interval, Duration::from_millis(1));
        // Zero: the stores are never emptied on a timer.
        let reset_every = self.config().metrics_reset_interval;
        let reset_every = (!reset_every.is_zero()).then(|| bounded(reset_every, Duration::from_secs(1)));
        let pool = pool.clone();
        let name: Arc<str> = Arc::from(pool.name());
        let view = self.config().server_view.clone();
        let slot = bounded(self.config().slot, Duration::from_millis(100));
        let forecast_every = bounded(self.config().alerts.forecast.interval, Duration::from_millis(10));
        let task = tokio::spawn(async move {
            // The server view's poller, when it is on: a branch of this
            // task, so that it stops with it.
            let poller = async {
                if let Some(view) = view {
                    crate::server::run(Arc::downgrade(&pool.shared), view).await;
                }
                std::future::pending::<()>().await;
            };
            tokio::pin!(poller);
            let mut sample = tokio::time::interval(period);
            sample.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut minute = tokio::time::interval(slot);
            minute.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut forecast = tokio::time::interval(forecast_every);
            forecast.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut forecaster = crate::forecast::Forecaster::new(std::time::Instant::now());
            // The first reset is one interval from now, not at once.
            let mut reset = reset_every.map(|every| {
                let mut reset = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                reset.set_missed_tick_behavior(MissedTickBehavior::Delay);
                reset
            });
            let mut evaluate = tokio::time::interval(evaluate_every);
            evaluate.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    () = &mut poller => {}
                    _ = pool.shared.sink.stores.alerts.signalled() => pool.alert_events(),
                    _ = sample.tick() => {
                        pool.sample();
                        pool.alert_conditions(false);
                        // Keeps the score gauge current (reading a report
                        // writes no metric).
                        pool.publish_score();
                    }
                    _ = evaluate.tick() => pool.alert_conditions(false),
                    _ = minute.tick() => {
                        let now = std::time::Instant::now();
                        pool.observe_totals(now);
                        crate::forecast::observe_minutes(&pool.shared.sink, &mut forecaster, now);
                        pool.alert_conditions(true);
                    }
                    _ = forecast.tick() => pool.forecast_tick(&mut forecaster),
                    // The baselines and the forecast are the engines' own
                    // state, not a store: a reset keeps them.
                    _ = tick(&mut reset) => pool.reset_stores(),
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
