//! The per-pool sink: everything the funnel writes to for one pool (its
//! name, settings, metric handles, error counters, statement table and
//! stores), and nothing of the pool itself.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use metrics::{Counter, Gauge, Histogram, Label};

use super::event::TxOutcome;
use super::handles::{base_labels, CappedHandles, Registry};
use super::span::SpanTarget;
use super::table::QueryTable;
use crate::alert_kind::{AlertSeverity, AlertType};
use crate::classify::{ErrorKind, SqlStateCode};
use crate::config::MonitorConfig;
use crate::names;
use crate::stats::alert_book::AlertEvent;
use crate::stats::PoolStores;

/// Hears the alert events of a pool: the monitor's notifiers, behind one
/// function (the sink does not know the notifier types of the floor above).
pub(crate) type AlertListener = Arc<dyn Fn(AlertEvent<'_>) + Send + Sync>;

/// Where the events of one pool go.
pub(crate) struct Sink {
    pub(crate) name: Arc<str>,
    pub(crate) config: Arc<MonitorConfig>,
    pub(crate) registry: Registry,
    pub(crate) queries: QueryTable,
    pub(crate) metrics: PoolMetrics,
    errors: CappedHandles<(ErrorKind, Option<SqlStateCode>), Counter>,
    notices: CappedHandles<(&'static str, SqlStateCode), Counter>,
    pub(crate) stores: PoolStores,
    /// Who hears this pool's alert events.
    pub(crate) listener: AlertListener,
    /// The statement clock's origin for this pool, and the wall time then.
    pub(crate) clock_epoch: quanta::Instant,
    pub(crate) epoch_wall: SystemTime,
    /// The server view's gauges, registered at its first sample.
    server: std::sync::OnceLock<ServerGauges>,
    /// Where this pool's statements go (its spans' attributes).
    pub(crate) span_target: SpanTarget,
    /// Per declared objective (in the order of the objective store): its
    /// requests, slow ones and failed ones.
    pub(crate) objectives: Vec<[Counter; 3]>,
}

/// The gauges of the server-side view.
pub(crate) struct ServerGauges {
    pub(crate) oldest_transaction: Gauge,
    pub(crate) blocked: Gauge,
    pub(crate) idle_in_transaction: Gauge,
    /// By [`WAIT_TYPES`](crate::stats::db_load::WAIT_TYPES).
    pub(crate) load: Vec<Gauge>,
    /// `available`, `used`, `committed`.
    pub(crate) connections: [Gauge; 3],
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Sink {
    pub(crate) fn new(
        name: &str,
        target: SpanTarget,
        config: Arc<MonitorConfig>,
        registry: Registry,
        listener: AlertListener,
    ) -> Self {
        let name: Arc<str> = Arc::from(name);
        let base = base_labels(&name);
        Sink {
            queries: QueryTable::new(&registry, &config, &base, &target.labels()),
            metrics: PoolMetrics::new(&registry, &base, config.hold_times),
            objectives: config
                .objectives
                .iter()
                .map(|o| {
                    let mut labels = base.clone();
                    labels.push(Label::new(names::HTTP_ROUTE, o.route.clone()));
                    [
                        names::OBJECTIVE_REQUESTS,
                        names::OBJECTIVE_REQUESTS_SLOW,
                        names::OBJECTIVE_REQUESTS_FAILED,
                    ]
                    .map(|name| registry.counter(name, labels.clone()))
                })
                .collect(),
            stores: PoolStores::new(&config),
            errors: CappedHandles::new(config.max_status_codes),
            notices: CappedHandles::new(config.max_status_codes),
            listener,
            clock_epoch: crate::units::now(),
            epoch_wall: SystemTime::now(),
            server: std::sync::OnceLock::new(),
            span_target: target,
            registry,
            config,
            name,
        }
    }

    /// Empties the stores (never the alert book) and zeroes the
    /// per-statement counts; entries and their metric handles stay.
    pub(crate) fn reset_stores(&self) {
        let stores = &self.stores;
        stores.errors.clear();
        stores.slow.clear();
        stores.trend.clear();
        stores.recent.clear();
        stores.n_plus_one.clear();
        stores.routes.clear();
        stores.holds.clear();
        stores.serial.clear();
        stores.redundant.clear();
        stores.objectives.clear();
        self.queries.reset_counts();
        self.queries.forget_texts();
        stores.totals.reset(std::time::Instant::now(), self.queries.totals());
    }

    /// The `db_monitor_notices_total` handle for `severity` and `code`,
    /// built once per distinct pair (past the cap, both are `other`).
    pub(crate) fn notice_counter(&self, severity: &str, code: &str) -> Counter {
        let severity = match severity {
            "WARNING" => "WARNING",
            "NOTICE" => "NOTICE",
            "INFO" => "INFO",
            "LOG" => "LOG",
            "DEBUG" => "DEBUG",
            _ => "other",
        };
        let code = SqlStateCode::new(code).unwrap_or(SqlStateCode::OTHER);
        let overflow = ("other", SqlStateCode::OTHER);
        self.notices.get((severity, code), overflow, |(severity, code)| {
            let mut labels = base_labels(&self.name);
            labels.push(Label::from_static_parts(names::SEVERITY, severity));
            labels.push(Label::new(names::RESPONSE_STATUS_CODE, code.as_str().to_owned()));
            self.registry.counter(names::NOTICES, labels)
        })
    }

    /// The server view's gauges, registered on first use (a pool without
    /// the view exports none of them).
    pub(crate) fn server_gauges(&self) -> &ServerGauges {
        self.server.get_or_init(|| {
            let base = base_labels(&self.name);
            ServerGauges {
                oldest_transaction: self.registry.gauge(names::SERVER_OLDEST_TRANSACTION, base.clone()),
                blocked: self.registry.gauge(names::SERVER_BLOCKED, base.clone()),
                idle_in_transaction: self.registry.gauge(names::SERVER_IDLE_IN_TRANSACTION, base.clone()),
                load: crate::stats::db_load::WAIT_TYPES
                    .iter()
                    .map(|t| {
                        let mut labels = base.clone();
                        labels.push(Label::from_static_parts(names::WAIT_EVENT_TYPE, t));
                        self.registry.gauge(names::SERVER_LOAD, labels)
                    })
                    .collect(),
                // NaN (no budget: this instance is not the elected poller,
                // or has not read it yet) until a budget is read: zeros
                // would read as a server with no connection free.
                connections: ["available", "used", "committed"].map(|state| {
                    let mut labels = base.clone();
                    labels.push(Label::from_static_parts(names::CONNECTION_BUDGET_STATE, state));
                    let gauge = self.registry.gauge(names::SERVER_CONNECTIONS, labels);
                    gauge.set(f64::NAN);
                    gauge
                }),
            }
        })
    }

    /// The `db_monitor_cancel_requests_total` handle for `outcome`.
    pub(crate) fn cancel_requests(&self, outcome: &'static str) -> Counter {
        let mut labels = base_labels(&self.name);
        labels.push(Label::from_static_parts(names::OUTCOME, outcome));
        self.registry.counter(names::CANCEL_REQUESTS, labels)
    }

    /// An error and its sources as this pool may show them
    /// ([`error_chain`](crate::classify::error_chain) under its settings).
    pub(crate) fn describe(&self, error: &(dyn std::error::Error + 'static)) -> String {
        crate::classify::error_chain(error, self.config.expose_application_messages)
    }

    /// The `db_monitor_errors_total` handle for `kind` and `code`, built once
    /// per distinct pair (codes past the cap are labelled `other`).
    pub(crate) fn error_counter(&self, kind: ErrorKind, code: Option<&str>) -> Counter {
        // A code that is no SQLSTATE is counted with the codes past the cap.
        let code = code.map(|c| SqlStateCode::new(c).unwrap_or(SqlStateCode::OTHER));
        let overflow = (kind, Some(SqlStateCode::OTHER));
        self.errors.get((kind, code), overflow, |(kind, code)| {
            let mut labels = base_labels(&self.name);
            labels.push(Label::new(names::ERROR_TYPE, kind.as_str()));
            labels.push(Label::new(
                names::RESPONSE_STATUS_CODE,
                code.as_ref().map_or("", SqlStateCode::as_str).to_owned(),
            ));
            self.registry.counter(names::ERRORS, labels)
        })
    }
}

/// The pool-level metric handles, registered once.
pub(crate) struct PoolMetrics {
    pub(crate) wait_time: Histogram,
    pub(crate) use_time: Histogram,
    /// With `hold_times` on only.
    pub(crate) held_idle: Option<Histogram>,
    pub(crate) create_time: Histogram,
    timeouts_exhausted: Counter,
    timeouts_connect: Counter,
    pub(crate) leaks: Counter,
    pub(crate) failed_fast: Counter,
    pub(crate) shed: Counter,
    pub(crate) replica_reads: Counter,
    /// Abandoned connections kept, and retired.
    pub(crate) abandoned: [Counter; 2],
    pub(crate) ended_early: Counter,
    /// `prepare_cached` hits, and misses.
    pub(crate) prepared: [Counter; 2],
    pub(crate) idle: Gauge,
    pub(crate) used: Gauge,
    pub(crate) max: Gauge,
    pub(crate) idle_max: Gauge,
    pub(crate) idle_min: Gauge,
    pub(crate) pending: Gauge,
    pub(crate) created: Counter,
    pub(crate) closed_broken: Counter,
    pub(crate) closed_invalid: Counter,
    pub(crate) closed_max_lifetime: Counter,
    pub(crate) closed_idle_timeout: Counter,
    pub(crate) gets_direct: Counter,
    pub(crate) gets_waited: Counter,
    pub(crate) gets_timed_out: Counter,
    pub(crate) score: Gauge,
    pub(crate) exhausted_in: Gauge,
    /// Anomalous statements: by latency, by failure rate.
    pub(crate) anomalous: [Gauge; 2],
    /// Active alerts, by alert type and severity index.
    pub(crate) alerts_active: Vec<[Gauge; 4]>,
    transactions: [Histogram; 4],
}

impl PoolMetrics {
    fn new(m: &Registry, base: &[Label], hold_times: bool) -> Self {
        let with = |name: &'static str, value: &'static str| {
            let mut labels = base.to_vec();
            labels.push(Label::from_static_parts(name, value));
            labels
        };
        PoolMetrics {
            wait_time: m.histogram(names::CONNECTION_WAIT_TIME, base.to_vec()),
            use_time: m.histogram(names::CONNECTION_USE_TIME, base.to_vec()),
            held_idle: hold_times.then(|| m.histogram(names::CONNECTION_HELD_IDLE, base.to_vec())),
            create_time: m.histogram(names::CONNECTION_CREATE_TIME, base.to_vec()),
            timeouts_exhausted: m.counter(names::CONNECTION_TIMEOUTS, with(names::REASON, "pool_exhausted")),
            timeouts_connect: m.counter(names::CONNECTION_TIMEOUTS, with(names::REASON, "connect_timeout")),
            leaks: m.counter(names::CONNECTION_LEAKS, base.to_vec()),
            failed_fast: m.counter(names::CONNECTION_FAILED_FAST, base.to_vec()),
            shed: m.counter(names::REQUESTS_SHED, base.to_vec()),
            replica_reads: m.counter(names::REPLICA_READS, base.to_vec()),
            abandoned: ["kept", "retired"].map(|o| m.counter(names::ABANDONED_CONNECTIONS, with(names::OUTCOME, o))),
            ended_early: m.counter(names::STREAMS_ENDED_EARLY, base.to_vec()),
            prepared: ["hit", "miss"].map(|r| m.counter(names::PREPARED_CACHE, with(names::RESULT, r))),
            idle: m.gauge(names::CONNECTION_COUNT, with(names::CONNECTION_STATE, "idle")),
            used: m.gauge(names::CONNECTION_COUNT, with(names::CONNECTION_STATE, "used")),
            max: m.gauge(names::CONNECTION_MAX, base.to_vec()),
            idle_max: m.gauge(names::CONNECTION_IDLE_MAX, base.to_vec()),
            idle_min: m.gauge(names::CONNECTION_IDLE_MIN, base.to_vec()),
            pending: m.gauge(names::CONNECTION_PENDING_REQUESTS, base.to_vec()),
            created: m.counter(names::CONNECTIONS_CREATED, base.to_vec()),
            closed_broken: m.counter(names::CONNECTIONS_CLOSED, with(names::REASON, "broken")),
            closed_invalid: m.counter(names::CONNECTIONS_CLOSED, with(names::REASON, "invalid")),
            closed_max_lifetime: m.counter(names::CONNECTIONS_CLOSED, with(names::REASON, "max_lifetime")),
            closed_idle_timeout: m.counter(names::CONNECTIONS_CLOSED, with(names::REASON, "idle_timeout")),
            gets_direct: m.counter(names::CONNECTION_GETS, with(names::RESULT, "direct")),
            gets_waited: m.counter(names::CONNECTION_GETS, with(names::RESULT, "waited")),
            gets_timed_out: m.counter(names::CONNECTION_GETS, with(names::RESULT, "timed_out")),
            score: m.gauge(names::PERFORMANCE_SCORE, base.to_vec()),
            exhausted_in: m.gauge(names::POOL_EXHAUSTED_IN, base.to_vec()),
            anomalous: ["latency", "error_rate"]
                .map(|kind| m.gauge(names::ANOMALOUS_STATEMENTS, with(names::ANOMALY_KIND, kind))),
            alerts_active: AlertType::ALL
                .iter()
                .map(|t| {
                    AlertSeverity::ALL.map(|s| {
                        let mut labels = base.to_vec();
                        labels.push(Label::from_static_parts(names::ALERT_TYPE, t.as_str()));
                        labels.push(Label::from_static_parts(names::SEVERITY, s.as_str()));
                        m.gauge(names::ALERTS_ACTIVE, labels)
                    })
                })
                .collect(),
            transactions: TxOutcome::ALL
                .map(|o| m.histogram(names::TRANSACTION_DURATION, with(names::OUTCOME, o.as_str()))),
        }
    }

    pub(crate) fn transaction(&self, outcome: TxOutcome) -> &Histogram {
        &self.transactions[outcome as usize]
    }

    pub(crate) fn timeout(&self, kind: ErrorKind) -> &Counter {
        if kind == ErrorKind::PoolExhausted {
            &self.timeouts_exhausted
        } else {
            &self.timeouts_connect
        }
    }
}
