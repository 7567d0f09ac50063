//! Prometheus, set up the way this crate's metrics need (feature
//! `prometheus`).
//!
//! The library never installs a recorder; the application calls
//! [`PrometheusSetup::install`] once, at startup, before the first
//! statement. What it adds to a plain `metrics-exporter-prometheus`
//! builder:
//!
//! - **explicit buckets for every histogram of this crate** — OpenTelemetry's
//!   advice: [`DURATION_BUCKETS`] seconds for the durations,
//!   [`ROW_BUCKETS`](crate::names::ROW_BUCKETS) for the rows returned —
//!   so that they are rendered as Prometheus histograms that aggregate
//!   across instances (`histogram_quantile(0.95, sum by (le) (rate(…)))`),
//!   not as per-process summaries whose quantiles cannot be summed and go
//!   wrong after idle gaps;
//! - **global labels**, e.g. the instance or the service, on every series;
//! - **the upkeep** (draining histogram buckets into their totals), which
//!   the exporter leaves to the caller, on a thread of its own.
//!
//! Hand the returned [`PrometheusHandle`] to
//! [`DbMonitorLayer::prometheus`](crate::DbMonitorLayer::prometheus) to
//! serve `GET /metrics` from the same port as the application, or serve
//! `handle.render()` yourself wherever you like (another port, another
//! router).
//!
//! # Example
//!
//! ```no_run
//! use db_monitor::prometheus::PrometheusSetup;
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let handle = PrometheusSetup::new()
//!     .global_label("service", "orders-api")
//!     .install()?;
//! // … build the monitor and the pool, then:
//! // .layer(DbMonitorLayer::new(pool).prometheus(handle))
//! # let _ = handle; Ok(()) }
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::Matcher;
pub use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::names;

pub use crate::names::DURATION_BUCKETS;

/// A `metrics-exporter-prometheus` recorder set up for this crate.
#[derive(Debug)]
#[must_use]
pub struct PrometheusSetup {
    builder: PrometheusBuilder,
    buckets: Vec<f64>,
    upkeep_every: Duration,
}

impl Default for PrometheusSetup {
    fn default() -> Self {
        Self::new()
    }
}

impl PrometheusSetup {
    /// A setup with [`DURATION_BUCKETS`] for this crate's histograms, no
    /// global label, and upkeep every 5 s.
    pub fn new() -> Self {
        PrometheusSetup {
            builder: PrometheusBuilder::new(),
            buckets: DURATION_BUCKETS.to_vec(),
            upkeep_every: Duration::from_secs(5),
        }
    }

    /// Adds a label to every series, e.g. `("service", "orders-api")`.
    /// None by default. (Prometheus adds `instance` and `job` itself when
    /// it scrapes.)
    pub fn global_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.builder = self.builder.add_global_label(name, value);
        self
    }

    /// Sets the bucket bounds (seconds, increasing) of this crate's
    /// duration histograms. Defaults to [`DURATION_BUCKETS`]; an empty list
    /// keeps the default. The rows histogram keeps
    /// [`ROW_BUCKETS`](crate::names::ROW_BUCKETS).
    pub fn buckets(mut self, bounds: &[f64]) -> Self {
        if !bounds.is_empty() {
            self.buckets = bounds.to_vec();
        }
        self
    }

    /// Sets how often the upkeep runs. Defaults to 5 s.
    pub fn upkeep_every(mut self, every: Duration) -> Self {
        self.upkeep_every = every.max(Duration::from_millis(10));
        self
    }

    /// Changes the underlying builder (buckets of the application's own
    /// histograms, idle timeouts, …). The identity by default.
    pub fn configure(mut self, f: impl FnOnce(PrometheusBuilder) -> PrometheusBuilder) -> Self {
        self.builder = f(self.builder);
        self
    }

    fn finish(self) -> (PrometheusBuilder, Duration) {
        let mut builder = self.builder;
        for (name, kind, unit, _) in names::ALL {
            if matches!(kind, names::Kind::Histogram) {
                let buckets = match unit {
                    Some(metrics::Unit::Seconds) => &self.buckets[..],
                    _ => names::ROW_BUCKETS,
                };
                builder = builder
                    .set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
                    .expect("the bucket list is never empty");
            }
        }
        (builder, self.upkeep_every)
    }

    /// Builds the recorder, installs it as the global one, describes this
    /// crate's metrics to it, and starts the upkeep thread (which runs for
    /// the rest of the process). Returns the handle that renders the
    /// exposition.
    ///
    /// # Errors
    ///
    /// When a global recorder is installed already.
    pub fn install(self) -> Result<PrometheusHandle, BuildError> {
        let (builder, every) = self.finish();
        let handle = builder.install_recorder()?;
        metrics::with_recorder(|r| names::describe_metrics(r));
        std::mem::forget(Upkeep::start(handle.clone(), every));
        Ok(handle)
    }

    /// Builds the recorder without installing it (for
    /// [`DbMonitor::with_recorder`](crate::DbMonitor::with_recorder), or
    /// tests), with its handle and its upkeep thread, which stops when the
    /// returned [`Upkeep`] is dropped.
    pub fn build(self) -> (PrometheusRecorder, PrometheusHandle, Upkeep) {
        let (builder, every) = self.finish();
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let upkeep = Upkeep::start(handle.clone(), every);
        (recorder, handle, upkeep)
    }
}

/// The upkeep thread of a recorder; dropping this stops it.
#[derive(Debug)]
pub struct Upkeep {
    stop: Arc<AtomicBool>,
}

impl Upkeep {
    fn start(handle: PrometheusHandle, every: Duration) -> Upkeep {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let _ = std::thread::Builder::new()
            .name("db-monitor-prometheus-upkeep".to_owned())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    handle.run_upkeep();
                    std::thread::park_timeout(every);
                }
            });
        Upkeep { stop }
    }
}

impl Drop for Upkeep {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics::Recorder;

    #[test]
    fn every_histogram_of_ours_renders_as_a_histogram_with_the_buckets() {
        let (recorder, handle, _upkeep) = PrometheusSetup::new().global_label("service", "test").build();
        names::describe_metrics(&recorder);
        let key = metrics::Key::from_name(names::OPERATION_DURATION);
        let meta = metrics::Metadata::new("t", metrics::Level::INFO, None);
        recorder.register_histogram(&key, &meta).record(0.003);
        let text = handle.render();
        assert!(
            text.contains("# TYPE db_client_operation_duration_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains("db_client_operation_duration_seconds_bucket{service=\"test\",le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(text.contains("db_client_operation_duration_seconds_bucket{service=\"test\",le=\"0.001\"} 0"));
        assert!(!text.contains("quantile="), "no summaries: {text}");
    }
}
