//! The monitor's background work for a pool, started explicitly with
//! [`DbMonitor::start`] and stopped with [`MonitorHandle::shutdown`] or by
//! dropping the handle.
//!
//! # When it runs
//!
//! - Every second it reads the pool's own counts (connections checked
//!   out, the most at once, checkouts pending and queued), kept by the
//!   checkout path with atomics, into the next trend sample.
//! - Every minute, or every
//!   [`health_check_interval`](crate::MonitorConfig::health_check_interval)
//!   if shorter (and once right away), it samples the pool into its trend
//!   ([`PoolMonitor::sample`]: the seconds read since the last sample,
//!   with bb8's `State` and `Statistics`), publishes the pool's gauges,
//!   and sets the performance score gauge over the last hour
//!   ([`PoolMonitor::publish_score`]).
//! - Every minute (a history [`slot`](crate::MonitorConfig::slot)) it
//!   snapshots the pool's statement totals, from which the error rates of
//!   [`PoolMonitor::error_report`] are computed, observes each
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
//!   ([`PoolMonitor::reset_stores`]); the metrics recorder is never reset.
//! - Every 5 s (or every `health_check_interval`, if shorter) it publishes
//!   the pool's gauges ([`PoolMonitor::publish_state`]), so that a
//!   scrape sees the pool as it is when no checkout has published it.
//! - Every second it logs, once each, the statements running past their
//!   slow threshold ([`PoolMonitor::running_statements`]), while they run.
//! - The server view's poller, when it is on, runs as a task of its own.
//!
//! # When a part fails
//!
//! Each part above runs on its own: a panic in one (a bug, or something
//! the server sent that the monitor did not expect) is logged, counted in
//! `db_monitor_background_failures_total{part}`, and that part runs again
//! at its next tick (the poller after 5 s); the other parts keep their
//! pace.
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

use crate::layer::{DbMonitorLayer, Deferred};
use crate::monitor::DbMonitor;
use crate::pool::PoolMonitor;

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

/// How often the pool's gauges are published at least (or every
/// `health_check_interval`, if shorter).
const GAUGE_PERIOD: Duration = Duration::from_secs(5);

/// How long a poller that panicked waits before it starts again.
const POLLER_RESTART: Duration = Duration::from_secs(5);

/// How often statements running past their threshold are looked for.
const RUNNING_EVERY: Duration = Duration::from_secs(1);
/// How often the pool's own counts are read into the trend.
const SECOND: Duration = Duration::from_secs(1);
use crate::units::TREND_EVERY;

/// A task aborted when its handle is dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How the poller's task ended, or never while there is none.
async fn finished(poller: &mut Option<AbortOnDrop>) -> Result<(), tokio::task::JoinError> {
    match poller {
        Some(task) => (&mut task.0).await,
        None => std::future::pending().await,
    }
}

/// When the poller is due to start again, or never.
async fn restart_due(sleep: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match sleep {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Runs one part of the background work; a panic in it is counted and
/// logged, and the loop goes on.
fn guard(pool: &PoolMonitor, part: &'static str, f: &mut dyn FnMut()) {
    let run = || {
        #[cfg(test)]
        tests::injected(pool.name(), part);
        f();
    };
    if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        failed(pool, part, payload.downcast_ref::<&'static str>().copied());
    }
}

fn failed(pool: &PoolMonitor, part: &'static str, message: Option<&'static str>) {
    pool.shared
        .record(crate::funnel::Event::BackgroundFailed { part, message });
}

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
    /// The task starts at once when this is called inside a Tokio runtime,
    /// else on the layer's first request (a router is often built before
    /// its runtime starts). It runs for as long as the layer or any service
    /// made from it lives (the router), and stops at its next wake-up once
    /// the last is dropped. To stop it at a moment of your choosing and wait for it,
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
    pub fn layer(&self, pool: impl Into<PoolMonitor>) -> DbMonitorLayer {
        let pool: PoolMonitor = pool.into();
        let (monitor, watched) = (self.clone(), pool.clone());
        let background = Deferred::new(move || Box::new(monitor.start(watched.clone())));
        DbMonitorLayer::new(pool).keeping(background)
    }

    /// Starts the background work for `pool` (a
    /// [`MonitoredPool`](crate::MonitoredPool), a reference to one, or its
    /// [`PoolMonitor`]; see the [module docs](crate::background)) and
    /// returns its handle.
    ///
    /// # Panics
    ///
    /// If called outside a Tokio runtime.
    pub fn start(&self, pool: impl Into<PoolMonitor>) -> MonitorHandle {
        let pool: PoolMonitor = pool.into();
        let (stop, stopped) = oneshot::channel::<()>();
        let periods = Periods::of(self.config());
        let name: Arc<str> = Arc::from(pool.name());
        let view = self.config().server_view.clone();
        let task = tokio::spawn(run(pool, periods, view, stopped));
        MonitorHandle {
            pool: name,
            stop: Some(stop),
            task: Some(task),
        }
    }
}

/// The periods of the background work's parts.
struct Periods {
    sample: Duration,
    gauges: Duration,
    evaluate: Duration,
    slot: Duration,
    forecast: Duration,
    /// `None`: the stores are never emptied on a timer.
    reset: Option<Duration>,
}

impl Periods {
    fn of(config: &crate::config::MonitorConfig) -> Self {
        // The configuration was validated when the monitor was built; the
        // bounds stay so that no period can panic tokio's interval.
        let bounded = |d: Duration, least: Duration| d.clamp(least, YEAR);
        let sample = bounded(config.health_check_interval, Duration::from_secs(1)).min(TREND_EVERY);
        let reset = config.metrics_reset_interval;
        Periods {
            sample,
            gauges: sample.min(GAUGE_PERIOD),
            evaluate: bounded(config.alerts.evaluation_interval, Duration::from_millis(1)),
            slot: bounded(config.slot, Duration::from_millis(100)),
            forecast: bounded(config.alerts.forecast.interval, Duration::from_millis(10)),
            reset: (!reset.is_zero()).then(|| bounded(reset, Duration::from_secs(1))),
        }
    }
}

/// The background task of `pool`, until `stopped`.
async fn run(
    pool: PoolMonitor,
    periods: Periods,
    view: Option<crate::config::ServerView>,
    mut stopped: oneshot::Receiver<()>,
) {
    // The server view's poller, when it is on: a task of its own, so that a
    // slow cycle delays nothing here and a panic in it stops only it (it is
    // started again after a pause); aborted when this task ends.
    let start_poller = |view: &crate::config::ServerView| {
        let (shared, view) = (Arc::downgrade(&pool.shared), view.clone());
        #[cfg(test)]
        let name: Arc<str> = Arc::from(pool.name());
        AbortOnDrop(tokio::spawn(async move {
            #[cfg(test)]
            tests::injected(&name, "poller");
            crate::server::run(shared, view).await;
        }))
    };
    let mut poller = view.as_ref().map(start_poller);
    let mut poller_restart: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    let mut sample = crate::units::ticks(periods.sample);
    let mut gauges = crate::units::ticks(periods.gauges);
    let mut minute = crate::units::ticks(periods.slot);
    let mut forecast = crate::units::ticks(periods.forecast);
    let mut evaluate = crate::units::ticks(periods.evaluate);
    // Statements running past their slow threshold, logged once each.
    let mut running = crate::units::ticks(RUNNING_EVERY);
    let mut second = crate::units::ticks(SECOND);
    let mut logged = std::collections::HashSet::new();
    let mut forecaster = crate::forecast::Forecaster::new(std::time::Instant::now());
    // The first reset is one interval from now, not at once.
    let mut reset = periods.reset.map(|every| {
        let mut reset = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        reset.set_missed_tick_behavior(MissedTickBehavior::Delay);
        reset
    });
    // Each part runs guarded: a panic in one is counted and logged, and
    // that part runs again at its next tick.
    let guarded = |part: &'static str, f: &mut dyn FnMut()| guard(&pool, part, f);
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            ended = finished(&mut poller) => {
                poller = None;
                if matches!(ended, Err(ref e) if e.is_panic()) {
                    failed(&pool, "poller", None);
                    poller_restart = Some(Box::pin(tokio::time::sleep(POLLER_RESTART)));
                }
            }
            () = restart_due(&mut poller_restart) => {
                poller_restart = None;
                poller = view.as_ref().map(start_poller);
            }
            _ = pool.stores().alerts.signalled() => guarded("alerts", &mut || pool.alert_events()),
            _ = sample.tick() => guarded("sample", &mut || {
                pool.sample();
                pool.alert_conditions(false);
                // Keeps the score gauge current (reading a report writes
                // no metric).
                pool.publish_score();
            }),
            // The pool's gauges as they are, a few seconds old at most,
            // when no checkout publishes them.
            _ = gauges.tick() => guarded("gauges", &mut || pool.publish_state()),
            _ = evaluate.tick() => guarded("evaluate", &mut || pool.alert_conditions(false)),
            _ = running.tick() => guarded("running", &mut || pool.log_running(&mut logged)),
            _ = second.tick() => guarded("second", &mut || pool.read_second()),
            _ = minute.tick() => guarded("minute", &mut || {
                let now = std::time::Instant::now();
                pool.observe_totals(now);
                crate::forecast::observe_minutes(&pool.shared.sink, &mut forecaster, now);
                pool.alert_conditions(true);
            }),
            _ = forecast.tick() => guarded("forecast", &mut || pool.forecast_tick(&mut forecaster)),
            // The baselines and the forecast are the engines' own state,
            // not a store: a reset keeps them. A sample follows at once, so
            // that the trend is never empty.
            _ = tick(&mut reset) => guarded("reset", &mut || {
                pool.reset_stores();
                pool.sample();
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;
    use crate::config::MonitorConfig;

    /// The parts made to panic, by pool name.
    static FAILING: Mutex<Vec<(String, &'static str)>> = Mutex::new(Vec::new());

    /// Panics if `part` of `pool` is to fail.
    pub(super) fn injected(pool: &str, part: &'static str) {
        let failing = FAILING.lock().unwrap_or_else(|e| e.into_inner());
        if failing.iter().any(|(p, q)| p == pool && *q == part) {
            drop(failing);
            panic!("injected");
        }
    }

    /// The failures counted by part (a snapshot takes the counts).
    fn failures(snapshotter: &metrics_util::debugging::Snapshotter) -> HashMap<String, u64> {
        let mut by_part = HashMap::new();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let (DebugValue::Counter(n), true) = (value, key.key().name() == crate::names::BACKGROUND_FAILURES) else {
                continue;
            };
            for label in key.key().labels().filter(|l| l.key() == "part") {
                *by_part.entry(label.value().to_owned()).or_insert(0) += n;
            }
        }
        by_part
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_part_that_panics_is_counted_and_the_others_keep_their_pace() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let config = MonitorConfig::default()
            .slot(Duration::from_millis(250))
            .server_view(crate::config::ServerView::default())
            .health_check_interval(Duration::from_secs(1));
        let monitor = DbMonitor::with_recorder(config, Arc::new(recorder)).unwrap();
        // A pool that never connects: its background work still runs.
        let pg: tokio_postgres::Config = "host=127.0.0.1 port=9 connect_timeout=1".parse().unwrap();
        let manager = monitor.manager("panicky", pg, tokio_postgres::NoTls);
        let pool = monitor.pool(manager, monitor.config().pool_builder()).await.unwrap();
        FAILING
            .lock()
            .unwrap()
            .extend([("panicky".to_owned(), "minute"), ("panicky".to_owned(), "poller")]);
        let background = monitor.start(&pool);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let failed = failures(&snapshotter);
        let minutes = failed["minute"];
        assert!(
            minutes >= 5,
            "the minute part failed at each of its ticks and ran again: {minutes}"
        );
        assert_eq!(failed["poller"], 1, "the poller failed once and waits to start again");
        assert_eq!(failed.len(), 2, "no other part failed: {failed:?}");
        // Sampling kept its one-second pace: three samples in 2.5 s.
        assert_eq!(pool.monitor().trend_report(None).samples.len(), 3);
        assert!(!background.is_finished());
        FAILING.lock().unwrap().clear();
        background.shutdown().await;
    }
}
