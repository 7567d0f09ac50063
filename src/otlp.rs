//! The crate's metrics over OpenTelemetry, and so over OTLP, without a
//! Prometheus scrape (feature `otlp`).
//!
//! [`OtlpRecorder`] is a `metrics` recorder that hands every metric of
//! this crate to an OpenTelemetry [`Meter`] under the convention's own
//! names: `db_client_operation_duration_seconds` is
//! `db.client.operation.duration` in seconds (`s`), its label
//! `db_query_summary` the attribute `db.query.summary`, and so on; the
//! crate's own metrics are `db_monitor.*` (`db_monitor.errors`). Histograms
//! get the convention's advised bucket boundaries
//! ([`DURATION_BUCKETS`](crate::names::DURATION_BUCKETS),
//! [`ROW_BUCKETS`](crate::names::ROW_BUCKETS)); counters published as
//! absolute values (bb8's statistics) stay monotonic; gauges are gauges.
//! Metrics that are not the crate's pass through unchanged.
//!
//! The bridge under it is [`metrics-opentelemetry`], chosen because it
//! supports what this crate emits: explicit bucket boundaries per
//! histogram, gauges, and counters set to an absolute value (the other
//! bridge on crates.io, `metrics-exporter-opentelemetry`, has no bucket
//! boundaries of its own, so every duration would fall into the SDK's
//! default millisecond-scale buckets). The application keeps its
//! OpenTelemetry pipeline: it builds the `MeterProvider` with its
//! exporter (`opentelemetry-otlp`) and gives the recorder a `Meter`.
//!
//! Each statement then costs what the OpenTelemetry SDK charges for a
//! histogram record with attributes, on top of the crate's own cost (the
//! Prometheus recorder's is lower); measure it in your service.
//!
//! # Example
//!
//! ```no_run
//! use db_monitor::otlp::OtlpRecorder;
//! use db_monitor::{DbMonitor, MonitorConfig};
//! use opentelemetry::metrics::MeterProvider as _;
//!
//! # fn run(provider: opentelemetry_sdk::metrics::SdkMeterProvider) -> Result<(), Box<dyn std::error::Error>> {
//! // `provider`: the application's, with its OTLP exporter.
//! let recorder = OtlpRecorder::new(provider.meter("orders-api"));
//! let monitor = DbMonitor::with_recorder(MonitorConfig::from_env()?, std::sync::Arc::new(recorder))?;
//! # let _ = monitor; Ok(()) }
//! ```
//!
//! [`Meter`]: opentelemetry::metrics::Meter
//! [`metrics-opentelemetry`]: https://crates.io/crates/metrics-opentelemetry

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};
use metrics_opentelemetry::{OpenTelemetryMetrics, OpenTelemetryRecorder};

pub use metrics_opentelemetry::opentelemetry;

use crate::names;

/// A `metrics` recorder that sends through an OpenTelemetry `Meter`, with
/// the crate's metrics under OpenTelemetry's names. See the [module
/// docs](self).
pub struct OtlpRecorder {
    inner: OpenTelemetryRecorder,
}

impl std::fmt::Debug for OtlpRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpRecorder").finish_non_exhaustive()
    }
}

impl OtlpRecorder {
    /// A recorder over `meter`, with the convention's bucket boundaries for
    /// this crate's histograms.
    pub fn new(meter: opentelemetry::metrics::Meter) -> Self {
        Self::with_buckets(meter, names::DURATION_BUCKETS)
    }

    /// [`new`](Self::new), with `bounds` (seconds, increasing) for the
    /// duration histograms instead of the convention's.
    pub fn with_buckets(meter: opentelemetry::metrics::Meter, bounds: &[f64]) -> Self {
        let mut inner = OpenTelemetryRecorder::new(OpenTelemetryMetrics::new(meter));
        for (name, kind, unit, _) in names::ALL {
            if *kind == names::Kind::Histogram {
                let bounds = if *unit == Some(Unit::Seconds) {
                    bounds
                } else {
                    names::ROW_BUCKETS
                };
                inner.set_histogram_bounds_mut(std::iter::once(otel_name(name)), bounds);
            }
        }
        OtlpRecorder { inner }
    }
}

/// The OpenTelemetry name of one of the crate's metrics (`name` itself
/// for any other).
fn otel_name(name: &str) -> KeyName {
    match names::ALL.iter().find(|(n, ..)| *n == name) {
        Some((n, _, unit, _)) => {
            let base = n.strip_suffix("_total").unwrap_or(n);
            let base = match unit {
                Some(Unit::Seconds) => base.strip_suffix("_seconds").unwrap_or(base),
                _ => base,
            };
            let dotted = match base.strip_prefix("db_client_") {
                Some(rest) => format!("db.client.{}", dotted_client(rest)),
                None => base.replacen("db_monitor_", "db_monitor.", 1),
            };
            KeyName::from(dotted)
        }
        None => KeyName::from(name.to_owned()),
    }
}

/// `operation_duration` → `operation.duration`,
/// `connection_pending_requests` → `connection.pending_requests`: the
/// first word is the convention's group, the rest its metric.
fn dotted_client(rest: &str) -> String {
    const GROUPS: &[(&str, &str)] = &[
        ("connection_idle_", "connection.idle."),
        ("connection_", "connection."),
        ("operation_", "operation."),
        ("response_", "response."),
    ];
    GROUPS
        .iter()
        .find_map(|(from, to)| rest.strip_prefix(from).map(|r| format!("{to}{r}")))
        .unwrap_or_else(|| rest.to_owned())
}

/// The OpenTelemetry attribute of one of the crate's labels.
fn otel_label(key: &str) -> &str {
    match key {
        names::DB_SYSTEM_NAME => "db.system.name",
        names::NAMESPACE => "db.namespace",
        names::SERVER_ADDRESS => "server.address",
        names::SERVER_PORT => "server.port",
        names::QUERY_SUMMARY => "db.query.summary",
        names::ERROR_TYPE => "error.type",
        names::RESPONSE_STATUS_CODE => "db.response.status_code",
        names::POOL_NAME => "db.client.connection.pool.name",
        names::CONNECTION_STATE => "db.client.connection.state",
        other => other,
    }
}

fn otel_key(key: &Key) -> Key {
    let labels: Vec<Label> = key
        .labels()
        .map(|l| Label::new(otel_label(l.key()).to_owned(), l.value().to_owned()))
        .collect();
    Key::from_parts(otel_name(key.name()), labels)
}

impl Recorder for OtlpRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(otel_name(key.as_str()), unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(otel_name(key.as_str()), unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner
            .describe_histogram(otel_name(key.as_str()), unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.inner.register_counter(&otel_key(key), metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.inner.register_gauge(&otel_key(key), metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.inner.register_histogram(&otel_key(key), metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crates_metrics_get_the_conventions_names() {
        for (prometheus, otel) in [
            (names::OPERATION_DURATION, "db.client.operation.duration"),
            (names::RETURNED_ROWS, "db.client.response.returned_rows"),
            (names::CONNECTION_COUNT, "db.client.connection.count"),
            (names::CONNECTION_IDLE_MAX, "db.client.connection.idle.max"),
            (names::CONNECTION_IDLE_MIN, "db.client.connection.idle.min"),
            (names::CONNECTION_MAX, "db.client.connection.max"),
            (
                names::CONNECTION_PENDING_REQUESTS,
                "db.client.connection.pending_requests",
            ),
            (names::CONNECTION_TIMEOUTS, "db.client.connection.timeouts"),
            (names::CONNECTION_WAIT_TIME, "db.client.connection.wait_time"),
            (names::CONNECTION_USE_TIME, "db.client.connection.use_time"),
            (names::CONNECTION_CREATE_TIME, "db.client.connection.create_time"),
            (names::ERRORS, "db_monitor.errors"),
            (names::TRANSACTION_DURATION, "db_monitor.transaction_duration"),
            ("app_requests_total", "app_requests_total"),
        ] {
            assert_eq!(otel_name(prometheus).as_str(), otel, "{prometheus}");
        }
        assert_eq!(otel_label(names::QUERY_SUMMARY), "db.query.summary");
        assert_eq!(otel_label("outcome"), "outcome");
    }
}
