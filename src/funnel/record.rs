//! [`record`]: one event into the metrics, the stores and the request
//! scope, one small function per kind of event.
//!
//! Statements are the hot path: cached handles and atomics only, no lock,
//! no allocation, no logging. Every other event is rare, and its function
//! is kept out of line.

use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::event::{Event, Outcome, PoolCounters, Rows, StatementEnd, TxOutcome};
use super::scope;
use super::sink::Sink;
use crate::classify::{error_message, server_message, ErrorKind};
use crate::stats::counters::{stripe_of_thread, Run, RunEnd};
use crate::stats::{outcome_word, ErrorSource, NewError, NewSlow, Origin, PoolReading, RawRecent, StatementOutcome};
use crate::units::hex;

/// Records one event of the pool behind `sink`.
///
/// Inlined, so that at each call site the match folds into a call of the
/// one function for that event.
#[inline(always)]
pub(crate) fn record(sink: &Sink, event: Event<'_>) {
    match event {
        Event::Statement(end) => statement(sink, end),
        Event::Transaction { outcome, elapsed } => transaction(sink, outcome, elapsed),
        Event::Connect { elapsed, error } => connect(sink, elapsed, error),
        Event::Invalid(error) => invalid(sink, error),
        Event::ConnectionClosed { connection, error } => connection_closed(sink, connection, error),
        Event::Notice { connection, notice } => notice_sent(sink, connection, notice),
        Event::Checkout {
            at,
            waited,
            timeout,
            failed_fast,
        } => checkout(sink, at, waited, timeout, failed_fast),
        Event::Waiting(Some(at)) => sink.stores.load.wait_began(at),
        Event::Waiting(None) => sink.stores.load.wait_ended(),
        Event::ReplicaChosen => sink.metrics.replica_reads.increment(1),
        Event::PoolSecond(reading) => sink.stores.trend.second(reading),
        Event::Shed => {
            sink.metrics.shed.increment(1);
            sink.stores.load.shed();
        }
        Event::Return {
            at,
            held,
            busy,
            route,
            location,
        } => checkin(sink, at, held, busy, route, location),
        Event::NPlusOne {
            origin,
            fingerprint,
            runs,
            threshold,
        } => n_plus_one(sink, origin, fingerprint, runs, threshold),
        Event::SerialReads { origin, run } => serial_reads(sink, origin, run),
        Event::Redundant {
            origin,
            fingerprint,
            runs,
        } => redundant(sink, origin, fingerprint, runs),
        Event::Request {
            route,
            statements,
            nanos,
            failed,
            elapsed,
            bad,
        } => request_done(sink, route, statements, nanos, failed, elapsed, bad),
        Event::PoolState {
            reading,
            counters,
            sample,
        } => pool_state(sink, reading, counters, sample),
        Event::Score(score) => sink.metrics.score.set(score),
        Event::AlertsChanged => alerts_changed(sink),
        Event::ServerSample { sample, failed } => server_sample(sink, sample, failed),
        Event::ServerFailed(error) => server_failed(sink, error),
        Event::LoadSample { at_unix_ms, active } => load_sample(sink, at_unix_ms, active),
        Event::Plan { fingerprint, plan } => sink.stores.plans.keep(fingerprint, plan),
        Event::BackgroundFailed { part, message } => background_failed(sink, part, message),
        Event::Forecast(forecast) => forecast_updated(sink, forecast),
        Event::Anomalies(anomalies) => anomalies_found(sink, anomalies),
    }
}

/// A statement: its counters, histogram, request scope and recent entry;
/// a failure or a slow run also goes to its store and wakes the alert
/// engine.
#[inline(always)]
fn statement(sink: &Sink, end: StatementEnd<'_>) {
    let StatementEnd {
        entry,
        end,
        elapsed,
        nanos,
        outcome,
        split,
        deadlock_peers,
    } = end;
    let slow = elapsed >= entry.slow;
    let stripe = stripe_of_thread();
    entry.stats.record(&Run {
        stripe,
        nanos,
        slow,
        end: match outcome {
            Outcome::Ok(rows) => RunEnd::Ok(rows.count()),
            Outcome::Failed(_) => RunEnd::Failed,
            Outcome::Cancelled => RunEnd::Cancelled,
        },
        split,
    });
    let failed = match outcome {
        Outcome::Ok(rows) => {
            entry.metrics.ok.record(elapsed);
            if let (Rows::Returned(n), Some(histogram)) = (rows, &entry.metrics.rows) {
                histogram.record(n as f64);
            }
            None
        }
        Outcome::Failed(error) => Some(statement_failed(sink, entry, elapsed, error, deadlock_peers)),
        Outcome::Cancelled => {
            entry.metrics.cancelled.increment(1);
            None
        }
    };
    let outcome_code = match (&outcome, failed) {
        (Outcome::Cancelled, _) => StatementOutcome::Cancelled,
        (_, Some(kind)) => StatementOutcome::Failed(kind),
        _ => StatementOutcome::Ok,
    };
    let read = entry.operation == crate::sql::Operation::Select;
    let route = scope::record_statement(entry.fingerprint, end, nanos, failed.is_some(), slow, read);
    sink.stores.recent.push(stripe, || RawRecent {
        end_ns: crate::units::saturating_nanos(end.saturating_duration_since(sink.clock_epoch)),
        duration_ns: nanos,
        fingerprint: entry.fingerprint,
        outcome: outcome_word(outcome_code, route),
    });
    if slow && !matches!(outcome, Outcome::Cancelled) {
        slow_statement(sink, entry, elapsed, failed);
    }
}

#[cold]
#[inline(never)]
fn statement_failed(
    sink: &Sink,
    entry: &super::table::QueryEntry,
    elapsed: Duration,
    error: &tokio_postgres::Error,
    deadlock_peers: Option<&str>,
) -> ErrorKind {
    let kind = ErrorKind::of(error);
    let code = error.code().map(|c| c.code());
    entry
        .metrics
        .failed(kind, code, |labels| {
            sink.registry.histogram(crate::names::OPERATION_DURATION, labels)
        })
        .record(elapsed);
    keep_error(
        sink,
        NewError {
            at: SystemTime::now(),
            kind,
            sqlstate: code,
            source: ErrorSource::Statement,
            statement: Some((entry.fingerprint, &entry.normalized)),
            message: match deadlock_peers {
                None => error_message(error, sink.config.expose_application_messages),
                Some(peers) => format!(
                    "{}; the other side: {peers}",
                    error_message(error, sink.config.expose_application_messages)
                )
                .into(),
            },
            route: request_route(),
        },
    );
    if kind.ends_connection() {
        sink.stores.alerts.connection_failed();
    } else {
        sink.stores.alerts.signal();
    }
    kind
}

#[cold]
#[inline(never)]
fn slow_statement(sink: &Sink, entry: &super::table::QueryEntry, elapsed: Duration, failed: Option<ErrorKind>) {
    entry.metrics.slow.increment(1);
    sink.stores.slow.record(NewSlow {
        at: SystemTime::now(),
        fingerprint: entry.fingerprint,
        statement: &entry.normalized,
        operation: entry.operation,
        table: entry.table.as_deref(),
        duration: elapsed,
        error_type: failed,
        threshold: entry.slow,
    });
    sink.stores.alerts.signal();
}

/// The route of the request running on this task, if any (a failure's
/// rare path: the lookup takes the route table's lock).
fn request_route() -> Option<Arc<str>> {
    crate::stats::routes::route_name(super::scope::current_route_id())
}

/// Counts an error (`db_monitor_errors_total`) and keeps it in the error
/// store.
fn keep_error(sink: &Sink, error: NewError<'_>) {
    sink.error_counter(error.kind, error.sqlstate).increment(1);
    sink.stores.errors.record(error);
}

#[inline(never)]
fn transaction(sink: &Sink, outcome: TxOutcome, elapsed: Duration) {
    sink.metrics.transaction(outcome).record(elapsed);
}

#[inline(never)]
fn connect(sink: &Sink, elapsed: Duration, error: Option<&tokio_postgres::Error>) {
    match error {
        None => {
            sink.metrics.create_time.record(elapsed);
            sink.stores.alerts.connected();
        }
        Some(error) => {
            keep_connection_error(sink, error, ErrorSource::Connect, sink.describe(error));
            sink.stores.alerts.connection_failed();
        }
    }
}

#[inline(never)]
fn invalid(sink: &Sink, error: &tokio_postgres::Error) {
    let message = format!("validity check failed: {}", sink.describe(error));
    keep_connection_error(sink, error, ErrorSource::Connection, message);
    sink.stores.alerts.signal();
}

#[inline(never)]
fn connection_closed(sink: &Sink, connection: u64, error: Option<&tokio_postgres::Error>) {
    let Some(error) = error else {
        tracing::debug!(pool = %sink.name, connection, "database connection closed");
        return;
    };
    let message = if error.is_closed() {
        // tokio-postgres says only "connection closed".
        "connection closed without a word from the server".to_owned()
    } else {
        sink.describe(error)
    };
    tracing::warn!(
        pool = %sink.name,
        connection,
        error_type = ErrorKind::of_connect(error).as_str(),
        sqlstate = error.code().map(|c| c.code()),
        "database connection lost: {message}"
    );
    keep_connection_error(sink, error, ErrorSource::Connection, message);
    sink.stores.alerts.connection_failed();
}

/// A failure of a connection rather than of a statement: classified as
/// one, counted and kept.
fn keep_connection_error(sink: &Sink, error: &tokio_postgres::Error, source: ErrorSource, message: String) {
    keep_error(
        sink,
        NewError {
            at: SystemTime::now(),
            kind: ErrorKind::of_connect(error),
            sqlstate: error.code().map(|c| c.code()),
            source,
            statement: None,
            message: message.into(),
            route: None,
        },
    );
}

/// A notice: counted by severity and SQLSTATE, and logged with its
/// message masked (tokio-postgres would log its whole text at INFO).
#[inline(never)]
fn notice_sent(sink: &Sink, connection: u64, notice: &tokio_postgres::error::DbError) {
    let severity = crate::classify::severity(notice);
    let code = notice.code().code();
    sink.notice_counter(severity, code).increment(1);
    let message = server_message(notice, sink.config.expose_application_messages);
    if severity.eq_ignore_ascii_case("WARNING") {
        tracing::warn!(pool = %sink.name, connection, severity, sqlstate = code, "database notice: {message}");
    } else {
        tracing::debug!(pool = %sink.name, connection, severity, sqlstate = code, "database notice: {message}");
    }
}

#[inline(never)]
fn checkout(sink: &Sink, at: quanta::Instant, waited: Duration, timeout: Option<ErrorKind>, failed_fast: bool) {
    sink.metrics.wait_time.record(waited);
    sink.stores.load.ended(at, waited, timeout.is_none());
    let Some(kind) = timeout else { return };
    let message = if failed_fast {
        sink.metrics.failed_fast.increment(1);
        "no connection: database out of reach, not waiting".to_owned()
    } else {
        sink.metrics.timeout(kind).increment(1);
        format!(
            "no connection within {:.1?} ({})",
            waited,
            kind.as_str().replace('_', " ")
        )
    };
    keep_error(
        sink,
        NewError {
            at: SystemTime::now(),
            kind,
            sqlstate: None,
            source: ErrorSource::Checkout,
            statement: None,
            message: message.into(),
            route: request_route(),
        },
    );
    sink.stores.alerts.signal();
}

#[inline(never)]
fn checkin(
    sink: &Sink,
    at: quanta::Instant,
    held: Duration,
    busy: Duration,
    route: u32,
    location: &'static Location<'static>,
) {
    sink.metrics.use_time.record(held);
    sink.stores.load.returned(at, held);
    if let Some(held_idle) = &sink.metrics.held_idle {
        held_idle.record(held.saturating_sub(busy));
        sink.stores.holds.record(route, location, held, busy);
    }
    if sink.config.leak_threshold.is_some_and(|limit| held > limit) {
        sink.metrics.leaks.increment(1);
        tracing::warn!(
            pool = %sink.name,
            held_ms = held.as_millis() as u64,
            checked_out_at = %location,
            "connection held longer than the leak threshold"
        );
    }
}

/// Keeps one request's repeats of `fingerprint` in `log` (N+1 patterns, or
/// statements repeated with the same parameters): the statement's entry,
/// and whether the (route, statement) pair is new there.
fn keep_repeats(
    sink: &Sink,
    log: &crate::stats::NPlusOneLog,
    origin: Origin<'_>,
    fingerprint: u64,
    runs: u64,
) -> (Option<Arc<super::QueryEntry>>, bool) {
    let entry = sink.queries.by_fingerprint(fingerprint);
    let statement = entry.as_ref().map(|e| &*e.normalized);
    let new = log.record(SystemTime::now(), origin, fingerprint, statement, runs);
    (entry, new)
}

#[inline(never)]
fn n_plus_one(sink: &Sink, origin: Origin<'_>, fingerprint: u64, runs: u64, threshold: u64) {
    let (entry, new) = keep_repeats(sink, &sink.stores.n_plus_one, origin, fingerprint, runs);
    let statement = entry.as_ref().map(|e| &*e.normalized);
    if let Some(entry) = &entry {
        entry.metrics.n_plus_one(&sink.registry).increment(1);
    }
    if new {
        tracing::warn!(
            pool = %sink.name,
            route = origin.route_name(),
            checkout_site = origin.site_name().as_deref().unwrap_or(""),
            fingerprint = %hex(fingerprint),
            runs,
            threshold,
            "N+1 pattern: `{}` ran {runs} times in one request",
            statement.unwrap_or("a statement of another pool")
        );
    }
}

#[inline(never)]
fn redundant(sink: &Sink, origin: Origin<'_>, fingerprint: u64, runs: u64) {
    let (entry, new) = keep_repeats(sink, &sink.stores.redundant, origin, fingerprint, runs);
    let statement = entry.as_ref().map(|e| &*e.normalized);
    if new {
        tracing::warn!(
            pool = %sink.name,
            route = origin.route_name(),
            checkout_site = origin.site_name().as_deref().unwrap_or(""),
            fingerprint = %hex(fingerprint),
            runs,
            "redundant statement: `{}` ran {runs} times with the same parameters in one request",
            statement.unwrap_or("a statement of another pool")
        );
    }
}

#[inline(never)]
fn serial_reads(sink: &Sink, origin: Origin<'_>, run: &scope::SerialRun) {
    let saving = Duration::from_nanos(run.saving_ns());
    let fingerprints = run.fingerprints;
    let statements = || -> Vec<Option<String>> {
        fingerprints
            .iter()
            .filter(|&&fp| fp != 0)
            .map(|&fp| sink.queries.by_fingerprint(fp).map(|e| e.normalized.to_string()))
            .collect()
    };
    let new = sink
        .stores
        .serial
        .record(SystemTime::now(), origin, fingerprints, run.reads, saving, statements);
    if new {
        let texts: Vec<String> = statements()
            .into_iter()
            .map(|s| s.unwrap_or_else(|| "a statement of another pool".to_owned()))
            .collect();
        tracing::warn!(
            pool = %sink.name,
            route = origin.route_name(),
            checkout_site = origin.site_name().as_deref().unwrap_or(""),
            reads = run.reads,
            saving_ms = saving.as_millis() as u64,
            "serial reads: {} reads ran one after another in one request; run together they would have taken \
             {} ms less: {}",
            run.reads,
            saving.as_millis(),
            texts.join(" · ")
        );
    }
}

#[inline(never)]
fn request_done(
    sink: &Sink,
    route: &Arc<str>,
    statements: u64,
    nanos: u64,
    failed: bool,
    elapsed: Duration,
    bad: bool,
) {
    sink.stores.routes.record(route, statements, nanos, failed);
    let objectives = &sink.stores.objectives;
    if let Some(index) = objectives.index(route) {
        let failed = bad;
        let slow = objectives.record(index, SystemTime::now(), elapsed, failed);
        if let Some([requests, slow_requests, failed_requests]) = sink.objectives.get(index) {
            requests.increment(1);
            if slow {
                slow_requests.increment(1);
            }
            if failed {
                failed_requests.increment(1);
            }
        }
    }
}

#[inline(never)]
fn pool_state(sink: &Sink, reading: &PoolReading, counters: &PoolCounters, sample: bool) {
    if sample {
        sink.stores.trend.sample(reading);
    }
    let m = &sink.metrics;
    m.idle.set(f64::from(reading.idle));
    m.used.set(f64::from(reading.size.saturating_sub(reading.idle)));
    m.max.set(f64::from(reading.max_size));
    m.idle_max.set(f64::from(reading.max_size));
    m.idle_min.set(f64::from(counters.idle_min));
    m.pending.set(reading.waiters as f64);
    m.created.absolute(counters.created);
    m.closed_broken.absolute(counters.closed_broken);
    m.closed_invalid.absolute(counters.closed_invalid);
    m.closed_max_lifetime.absolute(counters.closed_max_lifetime);
    m.closed_idle_timeout.absolute(counters.closed_idle_timeout);
    m.gets_direct.absolute(counters.gets_direct);
    m.gets_waited.absolute(counters.gets_waited);
    m.gets_timed_out.absolute(counters.gets_timed_out);
}

/// The exhaustion forecast: kept, and its gauge set (NaN without one).
#[inline(never)]
fn forecast_updated(sink: &Sink, forecast: &crate::stats::forecast::PoolForecast) {
    sink.metrics
        .exhausted_in
        .set(forecast.exhausted_in_seconds.unwrap_or(f64::NAN));
    sink.stores.forecast.set_forecast(forecast.clone());
}

/// The anomalous statements: kept, and counted by kind.
#[inline(never)]
fn anomalies_found(sink: &Sink, anomalies: Vec<crate::stats::forecast::StatementAnomaly>) {
    let latency = anomalies.iter().filter(|a| a.kind == "latency").count();
    sink.metrics.anomalous[0].set(latency as f64);
    sink.metrics.anomalous[1].set((anomalies.len() - latency) as f64);
    sink.stores.forecast.set_anomalies(anomalies);
}

#[inline(never)]
fn alerts_changed(sink: &Sink) {
    sink.stores.alerts.publish_counts(|counts| {
        for (gauges, counts) in sink.metrics.alerts_active.iter().zip(counts) {
            for (gauge, count) in gauges.iter().zip(counts) {
                gauge.set(f64::from(*count));
            }
        }
    });
}

/// A sample of the server-side view: kept, its gauges set, and the alert
/// engine woken for the rules that read it.
#[inline(never)]
fn server_sample(sink: &Sink, sample: Arc<crate::stats::server::ServerSample>, failed: Option<&tokio_postgres::Error>) {
    let gauges = sink.server_gauges();
    gauges
        .oldest_transaction
        .set(sample.oldest_transaction_ms().unwrap_or(0.0) / 1000.0);
    gauges
        .blocked
        .set(sample.count(crate::stats::ServerBackend::waits_on_lock) as f64);
    gauges
        .idle_in_transaction
        .set(sample.count(crate::stats::ServerBackend::idle_in_transaction) as f64);
    // Only the elected poller reads the budget; every other sample (a
    // follower's, one that lost the election, a failed cycle) sets NaN,
    // which PromQL compares as false: no stale figure, no zeros that read
    // as a full server.
    let budget = sample
        .budget
        .as_ref()
        .map_or([f64::NAN; 3], |b| [b.available, b.used, b.committed].map(|n| n as f64));
    for (gauge, value) in gauges.connections.iter().zip(budget) {
        gauge.set(value);
    }
    if sink.stores.server.keep(sample, failed.is_none()) {
        tracing::info!(pool = %sink.name, "server view: sampling again");
    }
    if let Some(error) = failed {
        server_failed(sink, error);
    }
    sink.stores.alerts.signal();
}

/// A sample of the load sampler: kept, and the load gauges set.
#[inline(never)]
fn load_sample(sink: &Sink, at_unix_ms: u64, active: Vec<crate::stats::db_load::ActiveBackend>) {
    let average = sink.stores.db_load.add(at_unix_ms, active);
    for (gauge, value) in sink.server_gauges().load.iter().zip(average) {
        gauge.set(value);
    }
}

/// A failed cycle of the server-side poller: kept for the routes, logged
/// once per streak of failures (then at DEBUG), never the application's
/// concern.
#[inline(never)]
#[cold]
fn background_failed(sink: &Sink, part: &'static str, message: Option<&'static str>) {
    let mut labels = super::handles::base_labels(&sink.name);
    labels.push(metrics::Label::from_static_parts(crate::names::PART, part));
    sink.registry
        .counter(crate::names::BACKGROUND_FAILURES, labels)
        .increment(1);
    // A message built at run time could hold a value: only fixed ones are
    // repeated (the panic hook has printed the rest to stderr).
    let message = message.unwrap_or("a panic");
    tracing::error!(pool = %sink.name, part, "background work: {part} failed ({message}); it runs again, the other parts go on");
}

fn server_failed(sink: &Sink, error: &tokio_postgres::Error) {
    let message = sink.describe(error);
    let at = crate::units::unix_ms(SystemTime::now());
    if sink.stores.server.failed(at, message.clone()) {
        tracing::warn!(pool = %sink.name, "server view: a cycle failed: {message}");
    } else {
        tracing::debug!(pool = %sink.name, "server view: a cycle failed again: {message}");
    }
}
