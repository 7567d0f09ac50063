//! Metric names and labels, following OpenTelemetry's database client
//! conventions (v1.44) in Prometheus form.
//!
//! The convention's metrics keep its names: `db.client.operation.duration`
//! is [`OPERATION_DURATION`], `db.client.connection.count` is
//! [`CONNECTION_COUNT`], and so on, dots as underscores and the unit as a
//! suffix. The crate's own metrics live under `db_monitor_*`, never in the
//! convention's `db_client_*` namespace.
//!
//! Every series carries [`DB_SYSTEM_NAME`]`="postgresql"` and
//! [`POOL_NAME`]`=<the pool's name>` (an extra on the statement histograms,
//! so that two pools on one database stay apart); the statement histograms
//! carry [`NAMESPACE`] (the database, and `|schema` when the connection's
//! startup options set a `search_path`), [`SERVER_ADDRESS`] and
//! [`SERVER_PORT`] (when it is not 5432).
//!
//! The library only emits; the application installs a recorder
//! ([`prometheus::PrometheusSetup`](crate::prometheus::PrometheusSetup),
//! [`otlp::OtlpRecorder`](crate::otlp::OtlpRecorder), its own) before the
//! first statement (handles are cached), or gives the monitor one of its own
//! with [`DbMonitor::with_recorder`](crate::DbMonitor::with_recorder). The
//! monitor describes every metric once, with its unit, when it is created.
//!
//! # The metrics
//!
//! | name | kind | unit | labels (besides `db_system_name`, `db_client_connection_pool_name`) |
//! |---|---|---|---|
//! | `db_client_operation_duration_seconds` | histogram | seconds | `db_namespace`, `server_address`, `server_port`, `db_query_summary`; on failures `error_type` and `db_response_status_code` |
//! | `db_client_response_returned_rows` | histogram | rows | `db_namespace`, `server_address`, `server_port`, `db_query_summary` (statements that return rows; with `MonitorConfig::returned_rows` on) |
//! | `db_client_connection_count` | gauge | connections | `db_client_connection_state` = `idle` / `used` |
//! | `db_client_connection_max` | gauge | connections | |
//! | `db_client_connection_idle_max` | gauge | connections | (the pool's maximum: neither pool bounds idle connections apart) |
//! | `db_client_connection_idle_min` | gauge | connections | |
//! | `db_client_connection_pending_requests` | gauge | checkouts | |
//! | `db_client_connection_wait_time_seconds` | histogram | seconds | |
//! | `db_client_connection_use_time_seconds` | histogram | seconds | |
//! | `db_monitor_connection_held_idle_seconds` | histogram | seconds | (the part of a checkout's hold with no statement running; with `MonitorConfig::hold_times` on) |
//! | `db_client_connection_create_time_seconds` | histogram | seconds | |
//! | `db_client_connection_timeouts_total` | counter | timeouts | `reason` = `pool_exhausted` / `connect_timeout` |
//! | `db_monitor_errors_total` | counter | errors | `error_type`, `db_response_status_code` |
//! | `db_monitor_slow_queries_total` | counter | statements | `db_query_summary` |
//! | `db_monitor_operation_cancelled_total` | counter | statements | `db_query_summary` |
//! | `db_monitor_transaction_duration_seconds` | histogram | seconds | `outcome` = `committed` / `rolled_back` / `abandoned` / `failed` |
//! | `db_monitor_connection_created_total` | counter | connections | |
//! | `db_monitor_connection_closed_total` | counter | connections | `reason` = `broken` / `invalid` / `max_lifetime` / `idle_timeout` |
//! | `db_monitor_connection_gets_total` | counter | checkouts | `result` = `direct` / `waited` / `timed_out` |
//! | `db_monitor_connection_leaks_total` | counter | checkouts | |
//! | `db_monitor_connection_failed_fast_total` | counter | checkouts | (checkouts failed at once while the database was out of reach) |
//! | `db_monitor_requests_shed_total` | counter | requests | (answered 503 by a `ShedLayer` before their handler ran) |
//! | `db_monitor_replica_reads_total` | counter | checkouts | (reads a `ReplicaSet` sent to this pool) |
//! | `db_monitor_objective_requests_total` | counter | requests | `http_route` (routes with an objective only) |
//! | `db_monitor_objective_requests_slow_total` | counter | requests | `http_route` (database time at or over the route's latency bound) |
//! | `db_monitor_objective_requests_failed_total` | counter | requests | `http_route` (a statement failed) |
//! | `db_monitor_n_plus_one_total` | counter | requests | `db_query_summary` |
//! | `db_monitor_notices_total` | counter | notices | `severity`, `db_response_status_code` (capped like errors') |
//! | `db_monitor_cancel_requests_total` | counter | requests | `outcome` (`sent`, `failed`, `timed_out`, `skipped`) |
//! | `db_monitor_abandoned_connections_total` | counter | connections | `outcome` = `kept` / `retired` |
//! | `db_monitor_streams_ended_early_total` | counter | streams | |
//! | `db_monitor_background_failures_total` | counter | failures | `part` |
//! | `db_monitor_prepared_cache_total` | counter | calls | `result` = `hit` / `miss` |
//! | `db_monitor_tracked_operation_duration_seconds` | histogram | seconds | `operation`, `error_type` (failures only) |
//! | `db_monitor_alerts_active` | gauge | alerts | `alert_type`, `severity` (every combination, zeros included) |
//! | `db_monitor_performance_score` | gauge | 0–100 | |
//! | `db_monitor_pool_exhausted_in_seconds` | gauge | seconds | (NaN without a forecast) |
//! | `db_monitor_anomalous_statements` | gauge | statements | `kind` = `latency` / `error_rate` |
//! | `db_monitor_server_oldest_transaction_seconds` | gauge (server view) | seconds | |
//! | `db_monitor_server_blocked_backends` | gauge (server view) | backends | |
//! | `db_monitor_server_idle_in_transaction_backends` | gauge (server view) | backends | |
//! | `db_monitor_server_load_sessions` | gauge (server view) | sessions | `wait_event_type` = `CPU`, `Lock`, `LWLock`, `IO`, `IPC`, `Client`, `Timeout`, `BufferPin`, `Activity`, `Extension`, `other` |
//! | `db_monitor_server_connections` | gauge (server view, elected poller) | connections | `state` = `available` / `used` / `committed` (NaN on an instance that is not the elected poller) |
//!
//! Buckets are OpenTelemetry's advice: `[0.001, 0.005, 0.01, 0.05, 0.1, 0.5,
//! 1, 5, 10]` seconds for every duration, `[1, 2, 5, 10, 20, 50, 100, 200, 500,
//! 1000, 2000, 5000, 10000]` for the rows. Units: the facade carries
//! `seconds` (the `_seconds` suffix) and `count` (no suffix); the
//! convention's curly-brace units (`{connection}`, `{row}`) have no place in
//! it, so the unit column above says what is counted.
//!
//! `db_query_summary` is the convention's `db.query.summary`: the operations
//! and the tables they name, in the order written and as written (`SELECT
//! orders`, `INSERT shipping_details SELECT orders`, `SELECT SELECT orders
//! customers` for a query over a subquery), at most 255 characters. The
//! operation and the table are not labels of their own
//! (`db_operation_name`, `db_collection_name`): the convention says not to
//! take them from the query's text, and the text is all a client of
//! tokio-postgres has.
//!
//! `error_type` is the crate's [error class](crate::guide::recording#error-classes) (`deadlock`,
//! `statement_timeout`, …), not the SQLSTATE the convention prefers: the
//! classes are few and stable, so alert rules can name them, and the
//! SQLSTATE is beside it in `db_response_status_code`. A failure with no
//! class of its own is `other` (the convention's `_OTHER`).
//!
//! Labels are bounded: at most `max_query_summaries` (100) summaries per
//! pool, the rest `OTHER`; SQLSTATE values are capped at `max_status_codes`
//! (50) per pool on the counters, and at 16 error type and code pairs per
//! summary on the duration histogram, the rest `other` (PL/pgSQL `RAISE` can
//! choose any code).
//! Fingerprints are capped at `max_fingerprints` (1000) per pool, the rest
//! counted under one `other` entry. Nothing is dropped past a cap, only
//! merged.

use metrics::Unit;

/// Histogram (seconds): duration of each statement
/// (`db.client.operation.duration`). Labels: [`NAMESPACE`],
/// [`SERVER_ADDRESS`], [`SERVER_PORT`], [`QUERY_SUMMARY`], and on failures
/// [`ERROR_TYPE`] and [`RESPONSE_STATUS_CODE`] (when the failure has a
/// SQLSTATE). Buckets: [`DURATION_BUCKETS`].
pub const OPERATION_DURATION: &str = "db_client_operation_duration_seconds";
/// Histogram (rows): rows each statement returned
/// (`db.client.response.returned_rows`; statements that return rows: a
/// query, a stream, a `RETURNING`). Labels as [`OPERATION_DURATION`]'s,
/// without the error ones. Buckets: [`ROW_BUCKETS`]. Recorded only with
/// [`MonitorConfig::returned_rows`](crate::MonitorConfig::returned_rows)
/// on (off by default: its cost per statement).
pub const RETURNED_ROWS: &str = "db_client_response_returned_rows";
/// Counter: failed statements, connects and connection losses.
/// Labels: [`ERROR_TYPE`], [`RESPONSE_STATUS_CODE`] (empty when the failure had no SQLSTATE).
pub const ERRORS: &str = "db_monitor_errors_total";
/// Counter: statements at or over the slow threshold. Label: [`QUERY_SUMMARY`].
pub const SLOW_QUERIES: &str = "db_monitor_slow_queries_total";
/// Counter: statements whose future was dropped before they finished
/// (e.g. a cancelled HTTP request). Label: [`QUERY_SUMMARY`].
pub const OPERATIONS_CANCELLED: &str = "db_monitor_operation_cancelled_total";
/// Gauge: connections by [`CONNECTION_STATE`] (`idle` / `used`)
/// (`db.client.connection.count`).
pub const CONNECTION_COUNT: &str = "db_client_connection_count";
/// Gauge: the pool's `max_size` (`db.client.connection.max`).
pub const CONNECTION_MAX: &str = "db_client_connection_max";
/// Gauge: the most idle connections the pool keeps
/// (`db.client.connection.idle.max`). Neither bb8 nor deadpool has a bound
/// of its own for idle connections: every open connection may be idle, so
/// this is the pool's `max_size`.
pub const CONNECTION_IDLE_MAX: &str = "db_client_connection_idle_max";
/// Gauge: the pool's `min_idle` (`db.client.connection.idle.min`).
pub const CONNECTION_IDLE_MIN: &str = "db_client_connection_idle_min";
/// Gauge: checkouts waiting for a connection (bb8's `pending_gets`).
pub const CONNECTION_PENDING_REQUESTS: &str = "db_client_connection_pending_requests";
/// Histogram (seconds): time `get()` waited for a connection, timeouts included.
pub const CONNECTION_WAIT_TIME: &str = "db_client_connection_wait_time_seconds";
/// Histogram (seconds): time a connection was held by one checkout.
pub const CONNECTION_USE_TIME: &str = "db_client_connection_use_time_seconds";
/// Histogram (seconds): the part of one checkout's hold in which none of
/// its statements ran (with [`MonitorConfig::hold_times`](crate::MonitorConfig::hold_times) on).
pub const CONNECTION_HELD_IDLE: &str = "db_monitor_connection_held_idle_seconds";
/// Histogram (seconds): time to open a connection (TCP, TLS, startup, setup).
pub const CONNECTION_CREATE_TIME: &str = "db_client_connection_create_time_seconds";
/// Counter: checkouts that timed out, by [`REASON`] (`pool_exhausted` / `connect_timeout`).
pub const CONNECTION_TIMEOUTS: &str = "db_client_connection_timeouts_total";
/// Counter (absolute, from bb8's `Statistics`): connections opened.
pub const CONNECTIONS_CREATED: &str = "db_monitor_connection_created_total";
/// Counter (absolute, from bb8's `Statistics`): connections closed by
/// [`REASON`] (`broken`, `invalid`, `max_lifetime`, `idle_timeout`).
pub const CONNECTIONS_CLOSED: &str = "db_monitor_connection_closed_total";
/// Counter (absolute, from bb8's `Statistics`): completed checkouts by
/// [`RESULT`] (`direct`, `waited`, `timed_out`).
pub const CONNECTION_GETS: &str = "db_monitor_connection_gets_total";
/// Counter: checkouts held longer than the leak threshold.
pub const CONNECTION_LEAKS: &str = "db_monitor_connection_leaks_total";
/// Counter: checkouts that failed at once, without waiting, because the
/// database was out of reach ([`MonitorConfig::fail_fast`](crate::MonitorConfig::fail_fast)).
pub const CONNECTION_FAILED_FAST: &str = "db_monitor_connection_failed_fast_total";
/// Counter: requests a [`ShedLayer`](crate::layer::ShedLayer) answered with
/// 503 before their handler ran, the pool's expected checkout wait being
/// over their budget.
pub const REQUESTS_SHED: &str = "db_monitor_requests_shed_total";
/// Counter: reads a [`ReplicaSet`](crate::ReplicaSet) sent to this pool.
pub const REPLICA_READS: &str = "db_monitor_replica_reads_total";
/// Counter: requests of a route with an [`Objective`](crate::Objective),
/// by [`HTTP_ROUTE`].
pub const OBJECTIVE_REQUESTS: &str = "db_monitor_objective_requests_total";
/// Counter: those whose database time was at or over the objective's
/// latency bound, by [`HTTP_ROUTE`].
pub const OBJECTIVE_REQUESTS_SLOW: &str = "db_monitor_objective_requests_slow_total";
/// Counter: those in which a statement failed, by [`HTTP_ROUTE`].
pub const OBJECTIVE_REQUESTS_FAILED: &str = "db_monitor_objective_requests_failed_total";
/// Counter: requests through [`DbMonitorLayer`](crate::DbMonitorLayer)
/// in which one statement ran more than the N+1 threshold, by
/// [`QUERY_SUMMARY`].
pub const N_PLUS_ONE: &str = "db_monitor_n_plus_one_total";
/// Counter: notices the server sent (`RAISE NOTICE`, warnings), by
/// [`SEVERITY`] and [`RESPONSE_STATUS_CODE`] (capped like errors'). Their
/// text is never a label, and is logged masked.
pub const NOTICES: &str = "db_monitor_notices_total";
/// Counter: cancel requests for abandoned statements, by [`OUTCOME`]:
/// `sent`, `failed`, `timed_out`, or `skipped` (too many in progress: the
/// connection is retired without one).
pub const CANCEL_REQUESTS: &str = "db_monitor_cancel_requests_total";
/// Counter: connections whose checkout ended with an abandoned statement
/// (a dropped future, or a stream dropped before its end), by [`OUTCOME`]:
/// `kept` (the server had finished that work within the grace, so the
/// connection went back to the pool) or `retired` (still running: a cancel
/// request was sent and the connection closed).
pub const ABANDONED_CONNECTIONS: &str = "db_monitor_abandoned_connections_total";
/// Counter: row streams their reader dropped before the end (a statement
/// recorded as finished, with the rows read).
pub const STREAMS_ENDED_EARLY: &str = "db_monitor_streams_ended_early_total";
/// Counter: failures of one part of a pool's background work, by
/// [`PART`]: `poller` (the server view), `sample`, `evaluate`, `minute`,
/// `forecast`, `reset`, `alerts`, `gauges`. The part is logged and runs
/// again; the others go on.
pub const BACKGROUND_FAILURES: &str = "db_monitor_background_failures_total";
/// Counter: `prepare_cached` calls, by [`RESULT`]: `hit` (served from the
/// connection's cache) or `miss` (prepared on the server, then kept).
pub const PREPARED_CACHE: &str = "db_monitor_prepared_cache_total";
/// Gauge (seconds): age of the oldest transaction open on one of the
/// pool's backends, at the server view's last sample.
pub const SERVER_OLDEST_TRANSACTION: &str = "db_monitor_server_oldest_transaction_seconds";
/// Gauge: the pool's backends waiting on a lock, at the server view's last
/// sample.
pub const SERVER_BLOCKED: &str = "db_monitor_server_blocked_backends";
/// Gauge: the pool's backends idle in a transaction, at the server view's
/// last sample.
pub const SERVER_IDLE_IN_TRANSACTION: &str = "db_monitor_server_idle_in_transaction_backends";
/// Gauge: the database load of the pool's backends, average active
/// sessions over the last 60 samples of the load sampler, by
/// [`WAIT_EVENT_TYPE`] (`CPU`: active, waiting on nothing).
pub const SERVER_LOAD: &str = "db_monitor_server_load_sessions";
/// Gauge: the server's connection budget at the elected poller's last
/// cycle, by [`CONNECTION_BUDGET_STATE`]: `available` (`max_connections`
/// less the reserved ones), `used` (client backends open), `committed`
/// (what the monitored pools can open, one poller each included). NaN on
/// an instance that is not the elected poller (a follower, or one whose
/// cycle failed), so that no rule reads zeros as a full server.
pub const SERVER_CONNECTIONS: &str = "db_monitor_server_connections";
/// Gauge (seconds): when the pool is forecast to run out (connections in
/// use plus waiting checkouts reaching its maximum); NaN while there is no
/// forecast (see [`PoolForecast`](crate::stats::PoolForecast)).
pub const POOL_EXHAUSTED_IN: &str = "db_monitor_pool_exhausted_in_seconds";
/// Gauge: statements anomalous against their own baseline now, by
/// [`ANOMALY_KIND`] (`latency` or `error_rate`).
pub const ANOMALOUS_STATEMENTS: &str = "db_monitor_anomalous_statements";
/// Gauge: the pool's performance score, 0 to 100 (see [`crate::report`]).
pub const PERFORMANCE_SCORE: &str = "db_monitor_performance_score";
/// Gauge: active alerts by [`ALERT_TYPE`] and [`SEVERITY`] (every
/// combination is published, zeros included, so that a rule can compare).
pub const ALERTS_ACTIVE: &str = "db_monitor_alerts_active";
/// Histogram (seconds): duration of transactions from `BEGIN` to their end,
/// by [`OUTCOME`] (`committed`, `rolled_back`, `abandoned`, `failed`).
pub const TRANSACTION_DURATION: &str = "db_monitor_transaction_duration_seconds";
/// Histogram (seconds): duration of operations timed with
/// [`DbMonitor::track`](crate::DbMonitor::track). Labels: [`TRACKED_OPERATION`],
/// and [`ERROR_TYPE`] on failures.
pub const TRACKED_DURATION: &str = "db_monitor_tracked_operation_duration_seconds";

/// Label: always `postgresql`.
pub const DB_SYSTEM_NAME: &str = "db_system_name";
/// Label: the pool's name (`db.client.connection.pool.name`).
pub const POOL_NAME: &str = "db_client_connection_pool_name";
/// Label: the database the pool connects to (`db.namespace`): its name as
/// the pool's connection settings give it (the user's name when they give
/// none, as PostgreSQL does), followed by `|` and the first schema of the
/// `search_path` when the settings' startup options set one
/// (`-c search_path=sales,public` gives `shop|sales`). The schema is the
/// one given when connecting, as the convention recommends when reading
/// the current one would take a query; a `SET search_path` later is not
/// seen.
pub const NAMESPACE: &str = "db_namespace";
/// Label: the server's host as the pool's settings name it (the first,
/// when they name several; a Unix socket's directory)
/// (`server.address`).
pub const SERVER_ADDRESS: &str = "server_address";
/// Label: the server's port (`server.port`), when it is not PostgreSQL's
/// default 5432.
pub const SERVER_PORT: &str = "server_port";
/// Label: the operations and tables of the statement in the order written
/// (`SELECT users`, `INSERT shipping_details SELECT orders`;
/// `db.query.summary`), capped per pool.
pub const QUERY_SUMMARY: &str = "db_query_summary";
/// Label: an [`ErrorKind`](crate::ErrorKind) name (`error.type`; see
/// [`ErrorKind::as_str`](crate::ErrorKind::as_str) for why not the
/// SQLSTATE).
pub const ERROR_TYPE: &str = "error_type";
/// Label: the SQLSTATE code, capped per pool (`db.response.status_code`).
pub const RESPONSE_STATUS_CODE: &str = "db_response_status_code";
/// Label of [`CONNECTION_COUNT`]: `idle` or `used`
/// (`db.client.connection.state`).
pub const CONNECTION_STATE: &str = "db_client_connection_state";
/// Label of [`CONNECTION_TIMEOUTS`] and [`CONNECTIONS_CLOSED`].
pub const REASON: &str = "reason";
/// Label of the objective counters: the route as the layer names it
/// (OpenTelemetry's `http.route`), only for routes with an objective.
pub const HTTP_ROUTE: &str = "http_route";
/// Label of [`CONNECTION_GETS`] and [`PREPARED_CACHE`].
pub const RESULT: &str = "result";
/// Label of [`TRANSACTION_DURATION`], [`CANCEL_REQUESTS`] and
/// [`ABANDONED_CONNECTIONS`].
pub const OUTCOME: &str = "outcome";
/// Label: the part of the background work ([`BACKGROUND_FAILURES`]).
pub const PART: &str = "part";
/// Label: a wait event type of [`SERVER_LOAD`].
pub const WAIT_EVENT_TYPE: &str = "wait_event_type";
/// Label: which figure of [`SERVER_CONNECTIONS`].
pub const CONNECTION_BUDGET_STATE: &str = "state";
/// Label of [`TRACKED_DURATION`]: the name given to `track`.
pub const TRACKED_OPERATION: &str = "operation";
/// Label of [`ALERTS_ACTIVE`]: an alert's type
/// ([`AlertType::as_str`](crate::alerts::AlertType::as_str)).
pub const ALERT_TYPE: &str = "alert_type";
/// Label of [`ALERTS_ACTIVE`]: an alert's severity (`low`, `medium`,
/// `high`, `critical`).
pub const SEVERITY: &str = "severity";
/// Label: the kind of an anomaly, `latency` or `error_rate`.
pub const ANOMALY_KIND: &str = "kind";

/// The kind of a metric of this crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// A counter (`_total`).
    Counter,
    /// A gauge.
    Gauge,
    /// A histogram: exposed as `_bucket`, `_sum` and `_count` series.
    Histogram,
}

/// Bucket bounds, in seconds, of every duration histogram of this crate:
/// OpenTelemetry's advice for `db.client.operation.duration`.
pub const DURATION_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// Bucket bounds, in rows, of [`RETURNED_ROWS`]: OpenTelemetry's advice for
/// `db.client.response.returned_rows`.
pub const ROW_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
];

/// Every metric with its kind, unit and description.
pub(crate) const ALL: &[(&str, Kind, Option<Unit>, &str)] = &[
    (
        OPERATION_DURATION,
        Kind::Histogram,
        Some(Unit::Seconds),
        "Duration of database client operations.",
    ),
    (
        ERRORS,
        Kind::Counter,
        Some(Unit::Count),
        "Failed database operations, connects and connection losses, by error type and SQLSTATE.",
    ),
    (
        SLOW_QUERIES,
        Kind::Counter,
        Some(Unit::Count),
        "Statements at or over the slow-query threshold.",
    ),
    (
        OPERATIONS_CANCELLED,
        Kind::Counter,
        Some(Unit::Count),
        "Statements abandoned by their caller before they finished.",
    ),
    (
        RETURNED_ROWS,
        Kind::Histogram,
        Some(Unit::Count),
        "The actual number of records returned by the database operation.",
    ),
    (
        CONNECTION_COUNT,
        Kind::Gauge,
        Some(Unit::Count),
        "The number of connections that are currently in state described by the state attribute.",
    ),
    (
        CONNECTION_IDLE_MAX,
        Kind::Gauge,
        Some(Unit::Count),
        "The maximum number of idle open connections allowed.",
    ),
    (
        CONNECTION_MAX,
        Kind::Gauge,
        Some(Unit::Count),
        "Maximum number of connections the pool allows.",
    ),
    (
        CONNECTION_IDLE_MIN,
        Kind::Gauge,
        Some(Unit::Count),
        "Minimum number of idle connections the pool keeps.",
    ),
    (
        CONNECTION_PENDING_REQUESTS,
        Kind::Gauge,
        Some(Unit::Count),
        "Checkouts waiting for a connection.",
    ),
    (
        CONNECTION_WAIT_TIME,
        Kind::Histogram,
        Some(Unit::Seconds),
        "Time spent waiting for a connection from the pool.",
    ),
    (
        CONNECTION_USE_TIME,
        Kind::Histogram,
        Some(Unit::Seconds),
        "Time a connection was held by one checkout.",
    ),
    (
        CONNECTION_HELD_IDLE,
        Kind::Histogram,
        Some(Unit::Seconds),
        "Time a checkout held its connection with no statement running.",
    ),
    (
        CONNECTION_CREATE_TIME,
        Kind::Histogram,
        Some(Unit::Seconds),
        "Time taken to open a new connection.",
    ),
    (
        CONNECTION_TIMEOUTS,
        Kind::Counter,
        Some(Unit::Count),
        "Checkouts that timed out, by reason.",
    ),
    (
        CONNECTIONS_CREATED,
        Kind::Counter,
        Some(Unit::Count),
        "Connections opened by the pool.",
    ),
    (
        CONNECTIONS_CLOSED,
        Kind::Counter,
        Some(Unit::Count),
        "Connections closed by the pool, by reason.",
    ),
    (
        CONNECTION_GETS,
        Kind::Counter,
        Some(Unit::Count),
        "Completed checkouts by result (direct, waited, timed_out).",
    ),
    (
        CONNECTION_LEAKS,
        Kind::Counter,
        Some(Unit::Count),
        "Checkouts held longer than the leak threshold.",
    ),
    (
        CONNECTION_FAILED_FAST,
        Kind::Counter,
        Some(Unit::Count),
        "Checkouts failed at once because the database was out of reach.",
    ),
    (
        REQUESTS_SHED,
        Kind::Counter,
        Some(Unit::Count),
        "Requests answered 503 before their handler ran, the expected checkout wait being over their budget.",
    ),
    (
        REPLICA_READS,
        Kind::Counter,
        Some(Unit::Count),
        "Reads a replica set sent to this pool.",
    ),
    (
        OBJECTIVE_REQUESTS,
        Kind::Counter,
        Some(Unit::Count),
        "Requests of routes with an objective.",
    ),
    (
        OBJECTIVE_REQUESTS_SLOW,
        Kind::Counter,
        Some(Unit::Count),
        "Requests of routes with an objective whose database time reached the latency bound.",
    ),
    (
        OBJECTIVE_REQUESTS_FAILED,
        Kind::Counter,
        Some(Unit::Count),
        "Requests of routes with an objective in which a statement failed.",
    ),
    (
        N_PLUS_ONE,
        Kind::Counter,
        Some(Unit::Count),
        "Requests in which one statement ran more than the N+1 threshold.",
    ),
    (
        NOTICES,
        Kind::Counter,
        Some(Unit::Count),
        "Notices the server sent, by severity and SQLSTATE.",
    ),
    (
        CANCEL_REQUESTS,
        Kind::Counter,
        Some(Unit::Count),
        "Cancel requests for abandoned statements, by outcome.",
    ),
    (
        ABANDONED_CONNECTIONS,
        Kind::Counter,
        Some(Unit::Count),
        "Connections left with an abandoned statement, by whether they were kept or retired.",
    ),
    (
        STREAMS_ENDED_EARLY,
        Kind::Counter,
        Some(Unit::Count),
        "Row streams dropped by their reader before the end.",
    ),
    (
        BACKGROUND_FAILURES,
        Kind::Counter,
        Some(Unit::Count),
        "Failures of one part of the background work, by part; that part runs again.",
    ),
    (
        PREPARED_CACHE,
        Kind::Counter,
        Some(Unit::Count),
        "prepare_cached calls, by whether the connection's cache had the statement.",
    ),
    (
        SERVER_OLDEST_TRANSACTION,
        Kind::Gauge,
        Some(Unit::Seconds),
        "Age of the oldest transaction open on one of the pool's backends (server view).",
    ),
    (
        SERVER_BLOCKED,
        Kind::Gauge,
        Some(Unit::Count),
        "The pool's backends waiting on a lock (server view).",
    ),
    (
        SERVER_IDLE_IN_TRANSACTION,
        Kind::Gauge,
        Some(Unit::Count),
        "The pool's backends idle in a transaction (server view).",
    ),
    (
        SERVER_LOAD,
        Kind::Gauge,
        Some(Unit::Count),
        "The pool's database load: average active sessions over the last 60 samples, by wait event type (server view).",
    ),
    (
        SERVER_CONNECTIONS,
        Kind::Gauge,
        Some(Unit::Count),
        "The server's connection budget: available, used, committed by the monitored pools (server view, elected poller; NaN elsewhere).",
    ),
    (
        POOL_EXHAUSTED_IN,
        Kind::Gauge,
        Some(Unit::Seconds),
        "When the pool is forecast to run out; NaN without a forecast.",
    ),
    (
        ANOMALOUS_STATEMENTS,
        Kind::Gauge,
        Some(Unit::Count),
        "Statements anomalous against their own baseline, by kind.",
    ),
    (
        PERFORMANCE_SCORE,
        Kind::Gauge,
        None,
        "Performance score of the pool over the last hour, 0 to 100.",
    ),
    (
        ALERTS_ACTIVE,
        Kind::Gauge,
        Some(Unit::Count),
        "Active alerts by type and severity.",
    ),
    (
        TRANSACTION_DURATION,
        Kind::Histogram,
        Some(Unit::Seconds),
        "Duration of transactions by outcome.",
    ),
    (
        TRACKED_DURATION,
        Kind::Histogram,
        Some(Unit::Seconds),
        "Duration of operations timed with DbMonitor::track.",
    ),
];

/// Every metric of this crate, with its kind (for dashboards and rules
/// that must name only real metrics).
pub fn all() -> impl Iterator<Item = (&'static str, Kind)> {
    ALL.iter().map(|(name, kind, _, _)| (*name, *kind))
}

/// Describes every metric of this crate, with its unit, to `recorder`.
///
/// [`DbMonitor`](crate::DbMonitor) does this once when it is created; call
/// it yourself only when you install a recorder after creating the monitor.
pub fn describe_metrics(recorder: &dyn metrics::Recorder) {
    for (name, kind, unit, text) in ALL {
        let key = metrics::KeyName::from_const_str(name);
        let text = metrics::SharedString::const_str(text);
        match kind {
            Kind::Counter => recorder.describe_counter(key, *unit, text),
            Kind::Gauge => recorder.describe_gauge(key, *unit, text),
            Kind::Histogram => recorder.describe_histogram(key, *unit, text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metric table of this module's docs: one row per metric, named,
    /// kind and unit as here, so that the two cannot drift.
    #[test]
    fn the_docs_list_every_metric_with_its_kind_and_unit() {
        let docs = include_str!("names.rs");
        let rows: Vec<Vec<&str>> = docs
            .lines()
            .filter_map(|l| l.strip_prefix("//! "))
            .filter(|l| l.starts_with("| `"))
            .map(|l| l.split('|').map(str::trim).collect())
            .collect();
        let listed: Vec<&str> = rows.iter().map(|r| r[1].trim_matches('`')).collect();
        let mut expected: Vec<&str> = ALL.iter().map(|(name, ..)| *name).collect();
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        expected.sort_unstable();
        assert_eq!(sorted, expected, "the docs' table and names::ALL differ");
        for (name, kind, unit, _) in ALL {
            let row = &rows[listed.iter().position(|l| l == name).unwrap()];
            let kind_word = match kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            assert!(row[2].starts_with(kind_word), "{name}: {} is no {kind_word}", row[2]);
            match unit {
                Some(Unit::Seconds) => assert_eq!(row[3], "seconds", "{name}"),
                Some(_) => assert!(!row[3].is_empty() && row[3] != "seconds", "{name}: {}", row[3]),
                None => assert_eq!(row[3], "0–100", "{name}"),
            }
            if *kind == Kind::Histogram {
                assert_eq!(
                    name.ends_with("_seconds"),
                    *unit == Some(Unit::Seconds),
                    "{name}: a duration ends in _seconds"
                );
            }
            if *kind == Kind::Counter {
                assert!(name.ends_with("_total"), "{name}");
            }
        }
    }
}
