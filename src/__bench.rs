//! Not public API: hooks for the crate's own benchmarks (`benches/`),
//! which reach parts of the statement path that are not public.

use std::sync::Arc;

use crate::funnel::span::SpanTarget;
use crate::funnel::{Outcome, QueryEntry, Rows, Sink};
use crate::pool::shared::{ConnStats, PoolShared};
use crate::pool::{statement_ended, QueryRef, Times};

/// Runs the instrumentation of one statement, exactly as a
/// `MonitoredClient` method does around its I/O, with no I/O.
#[allow(missing_debug_implementations)]
pub struct StatementProbe {
    pool: Arc<PoolShared>,
    conn: Arc<ConnStats>,
}

/// A statement's entry, as a prepared statement holds it.
#[allow(missing_debug_implementations)]
pub struct Prepared(Arc<QueryEntry>);

impl StatementProbe {
    /// A probe recording into a pool called `pool` of `monitor`.
    pub fn new(monitor: &crate::DbMonitor, pool: &str) -> Self {
        let target = SpanTarget::of(&tokio_postgres::Config::new(), monitor.config().span_level);
        let sink: Sink = monitor.sink(pool, target);
        let pool = Arc::new(PoolShared::new(sink, Arc::new(|_| {})));
        let conn = pool.new_connection();
        StatementProbe { pool, conn }
    }

    /// One successful statement given as text: two clock reads, the text
    /// lookup, the metrics and the counters.
    #[inline(never)]
    pub fn statement(&self, sql: &str) {
        self.run(&QueryRef::Text(sql));
    }

    /// One successful statement given as text with its span opened and
    /// completed as a client method does (`Span::none()` unless a
    /// subscriber wants it).
    #[inline(never)]
    pub fn spanned(&self, sql: &str) {
        let sink = &self.pool.sink;
        let span = crate::funnel::span::wanted(&sink.span_target).map(|level| {
            sink.queries.with_entry(sql, |entry| {
                crate::funnel::span::statement(level, &sink.name, &sink.span_target, None, 0, entry, None)
            })
        });
        let start = crate::units::now();
        statement_ended(
            &self.pool,
            &self.conn,
            &QueryRef::Text(sql),
            span.as_ref(),
            Times {
                sent: start,
                behind: false,
                first_row: None,
                end: crate::units::now(),
            },
            Outcome::Ok(Rows::Returned(1)),
        );
    }

    /// Another probe on the same pool with a connection of its own, as
    /// a second task holding a second connection would be.
    pub fn second_connection(&self) -> Self {
        StatementProbe {
            pool: self.pool.clone(),
            conn: self.pool.new_connection(),
        }
    }

    /// The entry of `sql`, as a prepared statement holds it.
    pub fn prepare(&self, sql: &str) -> Prepared {
        Prepared(self.pool.sink.queries.entry(sql))
    }

    /// One successful run of a prepared statement: no text lookup.
    #[inline(never)]
    pub fn prepared(&self, statement: &Prepared) {
        self.run(&QueryRef::Entry(&statement.0));
    }

    /// One statement given as text that failed with `error`: what a
    /// success costs, plus classifying, counting and keeping the error.
    #[inline(never)]
    pub fn failed(&self, sql: &str, error: &tokio_postgres::Error) {
        let start = crate::units::now();
        statement_ended(
            &self.pool,
            &self.conn,
            &QueryRef::Text(sql),
            None,
            Times {
                sent: start,
                behind: false,
                first_row: None,
                end: crate::units::now(),
            },
            Outcome::Failed(error),
        );
    }

    /// What a failing or slow statement adds for the alert engine:
    /// raising the evaluator's flag (already raised in a burst).
    #[inline(never)]
    pub fn alert_signal(&self) {
        self.pool.sink.stores.alerts.signal();
    }

    #[inline(always)]
    fn run(&self, query: &QueryRef<'_>) {
        let start = crate::units::now();
        statement_ended(
            &self.pool,
            &self.conn,
            query,
            None,
            Times {
                sent: start,
                behind: false,
                first_row: None,
                end: crate::units::now(),
            },
            Outcome::Ok(Rows::Returned(1)),
        );
    }

    /// The first half of the background task's minute for this
    /// probe's pool at `now` (advance it a minute at a time): every
    /// statement's history snapshot.
    pub fn snapshot(&self, now: std::time::Instant) {
        self.pool.sink.queries.snapshot_minute(now);
    }

    /// The second half: the anomaly detector over the slots that ended
    /// by `now`. Returns the statements with a baseline.
    pub fn detect(&self, forecaster: &mut Forecaster, now: std::time::Instant) -> usize {
        crate::forecast::observe_minutes(&self.pool.sink, &mut forecaster.0, now);
        forecaster.0.baselines_len()
    }
}

/// The anomaly detector's and the forecast's state for a probe.
#[allow(missing_debug_implementations)]
pub struct Forecaster(crate::forecast::Forecaster);

impl Forecaster {
    /// State whose first minute starts at `now`.
    pub fn new(now: std::time::Instant) -> Self {
        Forecaster(crate::forecast::Forecaster::new(now))
    }
}

/// The anomaly detector's state per statement, in bytes.
pub const ANOMALY_STATE_BYTES: usize = crate::forecast::anomaly::STATE_BYTES;

/// The anomaly detector alone, on minutes the caller makes up.
#[allow(missing_debug_implementations)]
pub struct AnomalyProbe {
    baselines: crate::forecast::anomaly::Baselines,
    thresholds: crate::config::AnomalyThresholds,
}

impl AnomalyProbe {
    /// A detector with the default thresholds.
    pub fn new() -> Self {
        AnomalyProbe {
            baselines: Default::default(),
            thresholds: Default::default(),
        }
    }

    /// One minute of statement `fingerprint`: whether its latency and
    /// its failure rate are anomalous now.
    pub fn observe(
        &mut self,
        fingerprint: u64,
        calls: u64,
        errors: u64,
        p95_ms: f64,
        end_unix_ms: u64,
    ) -> (bool, bool) {
        let minute = crate::forecast::anomaly::Minute {
            calls,
            errors,
            p95_ms: Some(p95_ms),
            end_unix_ms,
        };
        let verdict = self.baselines.observe(fingerprint, minute, &self.thresholds);
        (verdict.latency.is_some(), verdict.errors.is_some())
    }
}

impl Default for AnomalyProbe {
    fn default() -> Self {
        Self::new()
    }
}

/// The exhaustion forecast alone, on samples the caller makes up.
#[allow(missing_debug_implementations)]
pub struct ForecastProbe {
    forecaster: crate::forecast::pool::PoolForecaster,
    thresholds: crate::config::ForecastThresholds,
}

impl ForecastProbe {
    /// A forecast with the default thresholds.
    pub fn new() -> Self {
        ForecastProbe {
            forecaster: Default::default(),
            thresholds: Default::default(),
        }
    }

    /// One sample at `at` seconds: the reported time to exhaustion.
    pub fn observe(&mut self, at: f64, in_use: u32, waiters: u64, max_size: u32) -> Option<f64> {
        let sample = crate::forecast::pool::PoolObservation {
            at,
            in_use,
            waiters,
            max_size,
            ..Default::default()
        };
        self.forecaster.observe(sample, &self.thresholds).exhausted_in_seconds
    }
}

impl Default for ForecastProbe {
    fn default() -> Self {
        Self::new()
    }
}
