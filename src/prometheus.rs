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
//! - **Prometheus native histograms** instead, as an option (feature
//!   `native-histograms`, [`PrometheusSetup::native_histograms`]): the
//!   classic buckets stay the default;
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
//! # Native histograms
//!
//! With the feature `native-histograms`, [`PrometheusSetup::native_histograms`]
//! turns this crate's histograms into Prometheus native histograms
//! (exponential buckets, one series per histogram instead of one per
//! bound). The exporter writes those only in Prometheus's protobuf format,
//! so:
//!
//! - the layer's `/metrics` answers in protobuf when the scrape asks for it
//!   (`Accept: application/vnd.google.protobuf; …`, as Prometheus does when
//!   native histograms are on) and in text otherwise;
//! - a text scrape leaves the native histograms out (counters and gauges
//!   are in both);
//! - Prometheus must ask: `--enable-feature=native-histograms` on 2.40 to
//!   2.x, `scrape_native_histograms: true` on 3.x;
//! - queries change: `histogram_quantile(0.95, sum(rate(db_client_operation_duration_seconds[5m])))`,
//!   no `_bucket` and no `by (le)`. The rules and the Grafana dashboard in
//!   `deploy/` query the classic buckets.
//!
//! The feature builds the exporter's protobuf code with `protoc`
//! (`protobuf-compiler` and `libprotobuf-dev` on Debian), which must be on
//! the building machine.
//!
//! # In the repository's `deploy/`
//!
//! One process has the JSON routes; ten replicas are watched with the
//! standard tools. The files below are checked in the repository's CI;
//! the rules and the Grafana dashboard ship in the package too, the demo
//! is in the repository only.
//!
//! - **Alerting rules** — `deploy/prometheus/alerts.yml`, only against the
//!   exported names, per `instance` and pool; `deploy/prometheus/alerts.test.yml`
//!   fires and holds back each one from synthetic series (`promtool check
//!   rules`, `promtool test rules` in CI):
//!
//!   | in-process alert | Prometheus rule | condition | `for` | severity |
//!   |---|---|---|---|---|
//!   | `ConnectionFailure` (streak) | `DbConnectionFailure` | ≥ 5 `connection_failure` / `too_many_connections` errors in 5 min | — | high |
//!   | `ConnectionFailure` (`admin_shutdown`) | `DbServerShutdown` | any `admin_shutdown` in 5 min | — | critical |
//!   | `PoolExhaustion` (timeout) | `DbPoolExhausted` | any `pool_exhausted` checkout timeout in 5 min | — | critical |
//!   | `PoolExhaustion` (utilization) | `DbPoolUtilizationHigh` | `used / max ≥ 0.9` | 5 min | high |
//!   | `SlowQuery` | `DbSlowQuery` | any slow statement in 5 min, per `db_query_summary` | — | medium |
//!   | `HighErrorRate` | `DbHighErrorRate` (`window` = `5m` / `15m` / `1h`) | failed / all statements over 0.1 / 0.05 / 0.02, with ≥ 20 statements | — | high / medium / low |
//!   | `TransactionTimeout` | `DbTransactionTimeout` | any statement / lock / idle-in-transaction timeout in 5 min, per `error_type` | — | medium |
//!   | `Deadlock` | `DbDeadlock` | any `deadlock` in 5 min | — | high |
//!   | `PerformanceDegradation` | `DbPerformanceDegradation` | p95 over 5 min ≥ 2 × p95 over the hour before, ≥ 20 runs, per `db_query_summary` | — | medium |
//!   | `IdleInTransaction` | `DbIdleInTransaction` | `db_monitor_server_idle_in_transaction_backends > 0` | 1 min | medium |
//!   | `LongTransaction` | `DbLongTransaction` | `db_monitor_server_oldest_transaction_seconds ≥ 300` | — | medium |
//!   | `BlockedBackend` | `DbBlockedBackend` | `db_monitor_server_blocked_backends > 0` | 30 s | high |
//!   | `ConnectionBudget` | `DbConnectionBudget` (`reason` = `overcommitted` / `free`) | `db_monitor_server_connections{state="committed"} > …{state="available"}`; `available - used < 5` | — | high |
//!
//!   The in-process engine keys alerts finer (by fingerprint) and sends them
//!   to Alertmanager itself (`AlertmanagerNotifier`); the rules are for
//!   fleets, where Prometheus sees every replica.
//! - **Forecast rules** — `deploy/prometheus/forecast.yml` computes the pool
//!   exhaustion forecast in Prometheus for a whole fleet (`deriv` and
//!   `predict_linear` of the exported demand); `bash
//!   deploy/prometheus/forecast-rules.sh 1h` prints it for another range, and
//!   promtool tests check it.
//! - **Grafana** — `deploy/grafana/db-monitor.json` (import it; pick the
//!   Prometheus data source, then instances and pools): score and active
//!   alerts, statements per second and time in statements by summary,
//!   p50/p95/p99, the slowest summaries, errors by type, slow / cancelled /
//!   N+1, pool utilization, connections and waiters, wait / use / create
//!   times, checkout timeouts and closed connections, alerts by type and
//!   severity, the server view (oldest transaction, backends blocked and idle
//!   in a transaction, database load by wait type, the connection budget),
//!   forecasts and anomalous statements. A test checks that every
//!   metric its queries name is one the crate exports; the demo runs every
//!   query against a real Prometheus.
//! - **Two instances, one database** — `deploy/demo/run` starts a throwaway
//!   PostgreSQL, two instances of the axum example on it, a real Prometheus
//!   (scraping both every second, with the rules above) and a real
//!   Alertmanager, drives traffic on both (reads, an N+1, slow statements,
//!   deadlocks), and prints the statements per second of each instance and
//!   across both, from Prometheus's HTTP API, until Ctrl-C.
//!   `deploy/demo/run --check` (in CI, 12 s of traffic) checks that both
//!   instances' series are there and that the cross-instance sum is their sum,
//!   runs every dashboard query, and lists the rules that fired (here:
//!   `DbDeadlock DbHighErrorRate DbSlowQuery`).
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

mod rules;
pub use rules::objective_rules;

pub use crate::names::DURATION_BUCKETS;
#[cfg(feature = "native-histograms")]
pub use metrics_exporter_prometheus::NativeHistogramConfig;

/// A `metrics-exporter-prometheus` recorder set up for this crate.
#[derive(Debug)]
#[must_use]
pub struct PrometheusSetup {
    builder: PrometheusBuilder,
    buckets: Vec<f64>,
    upkeep_every: Duration,
    #[cfg(feature = "native-histograms")]
    native: Option<NativeHistogramConfig>,
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
            #[cfg(feature = "native-histograms")]
            native: None,
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

    /// Makes this crate's histograms (the durations and the rows)
    /// Prometheus native histograms with `config`, in place of the classic
    /// buckets (see [Native histograms](self#native-histograms): they are
    /// exposed in the protobuf format only). Classic buckets by default.
    ///
    /// ```
    /// use db_monitor::prometheus::{NativeHistogramConfig, PrometheusSetup};
    ///
    /// // Buckets 1.1× apart (schema 3), at most 160 of them, as
    /// // Prometheus's own client suggests.
    /// let config = NativeHistogramConfig::new(1.1, 160, 1e-9).expect("valid");
    /// let (_recorder, _handle, _upkeep) = PrometheusSetup::new().native_histograms(config).build();
    /// ```
    #[cfg(feature = "native-histograms")]
    pub fn native_histograms(mut self, config: NativeHistogramConfig) -> Self {
        self.native = Some(config);
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
                let matcher = Matcher::Full((*name).to_owned());
                #[cfg(feature = "native-histograms")]
                if let Some(native) = &self.native {
                    builder = builder.set_native_histogram_for_metric(matcher, native.clone());
                    continue;
                }
                builder = builder
                    .set_buckets_for_metric(matcher, buckets)
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

/// The two formats of the exposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Format {
    /// Prometheus's text format 0.0.4.
    Text,
    /// Prometheus's protobuf format (length-delimited `MetricFamily`
    /// messages), the only one with native histograms.
    #[cfg(feature = "native-histograms")]
    Protobuf,
}

impl Format {
    /// The format a scrape with this `Accept` header gets: protobuf when it
    /// names `application/vnd.google.protobuf` (or `application/x-protobuf`)
    /// with a weight above 0 and the feature is on, text otherwise.
    pub(crate) fn negotiate(accept: Option<&[u8]>) -> Format {
        #[cfg(feature = "native-histograms")]
        if accept.is_some_and(asks_for_protobuf) {
            return Format::Protobuf;
        }
        let _ = accept;
        Format::Text
    }

    /// Its `Content-Type`.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            #[cfg(feature = "native-histograms")]
            Format::Protobuf => {
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
            }
        }
    }

    /// The exposition of `handle` in this format.
    pub(crate) fn render(self, handle: &PrometheusHandle) -> Vec<u8> {
        match self {
            Format::Text => handle.render().into_bytes(),
            #[cfg(feature = "native-histograms")]
            Format::Protobuf => handle.render_protobuf(),
        }
    }
}

/// Whether a scrape's `Accept` header prefers protobuf: it names
/// `application/vnd.google.protobuf` (or `application/x-protobuf`) with a
/// weight above 0 and at least that of the text format (`text/plain`,
/// `text/*` or `*/*`).
#[cfg(feature = "native-histograms")]
fn asks_for_protobuf(accept: &[u8]) -> bool {
    let Ok(accept) = std::str::from_utf8(accept) else {
        return false;
    };
    let (mut protobuf, mut text) = (0.0_f64, 0.0_f64);
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let weight = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| v.trim().parse::<f64>().unwrap_or(0.0));
        match media.as_str() {
            "application/vnd.google.protobuf" | "application/x-protobuf" => protobuf = protobuf.max(weight),
            "text/plain" | "text/*" | "*/*" => text = text.max(weight),
            _ => {}
        }
    }
    protobuf > 0.0 && protobuf >= text
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

    #[test]
    fn the_format_follows_the_accept_header() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some(b"text/plain")), Format::Text);
        let prometheus_native = b"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1";
        let prometheus_classic = b"application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus_classic)), Format::Text);
        #[cfg(feature = "native-histograms")]
        {
            assert_eq!(Format::negotiate(Some(prometheus_native)), Format::Protobuf);
            assert_eq!(Format::negotiate(Some(b"application/x-protobuf")), Format::Protobuf);
            for text in [
                &b"application/vnd.google.protobuf;q=0, text/plain"[..],
                b"text/plain, application/vnd.google.protobuf;q=0.5",
                b"application/vnd.google.protobuf;q=oops",
                b"\xff\xfe",
            ] {
                assert_eq!(Format::negotiate(Some(text)), Format::Text, "{text:?}");
            }
        }
        #[cfg(not(feature = "native-histograms"))]
        assert_eq!(Format::negotiate(Some(prometheus_native)), Format::Text);
    }

    #[cfg(feature = "native-histograms")]
    #[test]
    fn native_histograms_leave_the_text_for_the_protobuf_exposition() {
        let native = NativeHistogramConfig::new(1.1, 160, 1e-9).unwrap();
        let (recorder, handle, _upkeep) = PrometheusSetup::new().native_histograms(native).build();
        names::describe_metrics(&recorder);
        let meta = metrics::Metadata::new("t", metrics::Level::INFO, None);
        let key = metrics::Key::from_name(names::OPERATION_DURATION);
        recorder.register_histogram(&key, &meta).record(0.003);
        let key = metrics::Key::from_name(names::ERRORS);
        recorder.register_counter(&key, &meta).increment(1);
        let text = handle.render();
        assert!(!text.contains(names::OPERATION_DURATION), "{text}");
        assert!(text.contains(names::ERRORS), "{text}");
        let proto = Format::Protobuf.render(&handle);
        let has = |needle: &[u8]| proto.windows(needle.len()).any(|w| w == needle);
        assert!(has(names::OPERATION_DURATION.as_bytes()));
        assert!(has(names::ERRORS.as_bytes()));
    }
}
