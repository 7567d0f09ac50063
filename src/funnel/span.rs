//! Spans: every statement a `tracing` span (target `db_monitor`, level
//! INFO) named and attributed by OpenTelemetry's database conventions; a
//! transaction a span over its statements; a checkout that timed out a span
//! with its `error.type`.
//!
//! A source opens a span when its operation starts ([`statement`],
//! [`transaction`]) and hands it back when it ends ([`statement_done`],
//! [`transaction_done`]). With no subscriber interested in the target at
//! INFO, opening a statement's span is one check of a cached interest
//! ([`wanted`]) and yields no span at all (`None`: nothing to drop);
//! a transaction's is `Span::none()`.
//!
//! Why the check comes before the span macro: with `tracing`'s `log`
//! feature on (axum's default `tower-log` turns it on, so most services
//! have it), the macro's disabled path still builds a span with metadata,
//! records every field into it for `log` and logs its drop: about 250
//! instructions a statement for nothing. Filter the spans by target and
//! level (`db_monitor=info`), not by span name: the check asks about the
//! target and level only.
//!
//! What a span carries is what the stores keep: the statement's normalized
//! text (literals replaced by `?`), its summary, the crate's error kind and
//! the SQLSTATE. Never a parameter, a literal or a server message.
//!
//! # Names
//!
//! A statement span is named `{db.query.summary}` (`SELECT orders`), as the
//! convention asks. A statement whose fingerprint is past the table's cap
//! has no summary of its own and is named by its target, `db.namespace`
//! (or `postgresql` when the database is unknown).
//!
//! `db.operation.name` and `db.collection.name` are, by the convention, not
//! to be parsed from the text: what the lexer finds goes in the summary,
//! and `db.operation.name` is set only where the operation is known without
//! parsing, the transaction statements the crate itself sends (`BEGIN`,
//! `COMMIT`, `ROLLBACK`, `SAVEPOINT`).

use tracing::field::Empty;
use tracing::Span;

use super::event::{Outcome, Rows, TxOutcome};
use super::table::{QueryEntry, OTHER_FINGERPRINT};
use crate::classify::ErrorKind;

/// The target of every span here (and of the crate's log events).
pub(crate) const TARGET: &str = "db_monitor";

/// The `db.system.name` of PostgreSQL.
const SYSTEM: &str = "postgresql";

/// Where a pool's statements go: the attributes each of its spans carries
/// from the start. Set once by the pool's connection manager.
#[derive(Debug, Default, Clone)]
pub(crate) struct SpanTarget {
    /// `db.namespace`: the database.
    pub(crate) namespace: Option<Box<str>>,
    /// `server.address`: the first host (or socket directory).
    pub(crate) address: Option<Box<str>>,
    /// `server.port`.
    pub(crate) port: Option<u16>,
}

/// Opens a statement's span, a child of the current span (the entered
/// `parent` when there is one, a transaction's). `waited_nanos` is how long
/// the statement's checkout waited for its connection.
#[inline]
pub(crate) fn statement(
    pool: &str,
    target: &SpanTarget,
    parent: Option<&Span>,
    waited_nanos: impl FnOnce() -> u64,
) -> Option<Span> {
    if !wanted() {
        return None;
    }
    let _in_parent = parent.filter(|p| !p.is_disabled()).map(Span::enter);
    let span = tracing::info_span!(
        target: TARGET,
        "db.statement",
        otel.name = Empty,
        otel.kind = "client",
        otel.status_code = Empty,
        "db.system.name" = SYSTEM,
        "db.namespace" = Empty,
        "server.address" = Empty,
        "server.port" = Empty,
        "db.client.connection.pool.name" = Empty,
        "db_monitor.checkout.wait_ms" = Empty,
        "db.query.summary" = Empty,
        "db.query.text" = Empty,
        "db.operation.name" = Empty,
        "db.response.status_code" = Empty,
        "error.type" = Empty,
        "db.response.returned_rows" = Empty,
        "db_monitor.rows_affected" = Empty,
    );
    if !span.is_disabled() {
        connection_fields(&span, pool, target);
        span.record("db_monitor.checkout.wait_ms", waited_nanos() as f64 / 1e6);
    }
    Some(span)
}

/// Whether a subscriber wants the crate's spans: the cached interest of
/// one callsite (target `db_monitor`, INFO).
#[inline(always)]
fn wanted() -> bool {
    tracing::span_enabled!(target: TARGET, tracing::Level::INFO)
}

/// The fields every span of a pool has.
fn connection_fields(span: &Span, pool: &str, target: &SpanTarget) {
    span.record("db.client.connection.pool.name", pool);
    if let Some(namespace) = &target.namespace {
        span.record("db.namespace", &**namespace);
    }
    if let Some(address) = &target.address {
        span.record("server.address", &**address);
    }
    if let Some(port) = target.port {
        span.record("server.port", port);
    }
}

/// Completes a statement's span: its name, text and outcome.
/// `operation` is the operation when it is known without parsing.
#[inline]
pub(crate) fn statement_done(
    span: Option<&Span>,
    target: &SpanTarget,
    entry: &QueryEntry,
    operation: Option<&'static str>,
    outcome: &Outcome<'_>,
) {
    if let Some(span) = span.filter(|s| !s.is_disabled()) {
        fill_statement(span, target, entry, operation, outcome);
    }
}

#[inline(never)]
fn fill_statement(
    span: &Span,
    target: &SpanTarget,
    entry: &QueryEntry,
    operation: Option<&'static str>,
    outcome: &Outcome<'_>,
) {
    if entry.fingerprint == OTHER_FINGERPRINT {
        span.record("otel.name", target.namespace.as_deref().unwrap_or(SYSTEM));
    } else {
        span.record("otel.name", &*entry.summary);
        span.record("db.query.summary", &*entry.summary);
        span.record("db.query.text", &*entry.normalized);
    }
    if let Some(operation) = operation {
        span.record("db.operation.name", operation);
    }
    match outcome {
        Outcome::Ok(Rows::Returned(n)) => {
            span.record("db.response.returned_rows", n);
        }
        Outcome::Ok(Rows::Affected(n)) => {
            span.record("db_monitor.rows_affected", n);
        }
        Outcome::Ok(Rows::Unknown) => {}
        Outcome::Failed(error) => {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", ErrorKind::of(error).as_str());
            if let Some(code) = error.code() {
                span.record("db.response.status_code", code.code());
            }
        }
        Outcome::Cancelled => {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", "cancelled");
        }
    }
}

/// Completes a prepare's span: named `PREPARE {summary}`, with the
/// statement's text, and the error if it failed (the failed statement is
/// recorded as such too).
pub(crate) fn prepare_done(
    span: &Span,
    target: &SpanTarget,
    entry: &QueryEntry,
    error: Option<&tokio_postgres::Error>,
) {
    if span.is_disabled() {
        return;
    }
    let outcome = match error {
        Some(error) => Outcome::Failed(error),
        None => Outcome::Ok(Rows::Unknown),
    };
    fill_statement(span, target, entry, Some("PREPARE"), &outcome);
    if entry.fingerprint != OTHER_FINGERPRINT {
        let name = format!("PREPARE {}", entry.summary);
        span.record("otel.name", name.as_str());
        span.record("db.query.summary", name.as_str());
    }
}

/// Opens a transaction's span (its statements' parent), a child of the
/// current span.
pub(crate) fn transaction(pool: &str, target: &SpanTarget) -> Span {
    if !wanted() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET,
        "db.transaction",
        otel.name = "transaction",
        otel.kind = "internal",
        otel.status_code = Empty,
        "db.system.name" = SYSTEM,
        "db.namespace" = Empty,
        "server.address" = Empty,
        "server.port" = Empty,
        "db.client.connection.pool.name" = Empty,
        "db_monitor.transaction.outcome" = Empty,
        "error.type" = Empty,
    );
    if !span.is_disabled() {
        connection_fields(&span, pool, target);
    }
    span
}

/// Records how a transaction ended on its span.
pub(crate) fn transaction_done(span: &Span, outcome: TxOutcome) {
    if span.is_disabled() {
        return;
    }
    span.record("db_monitor.transaction.outcome", outcome.as_str());
    if outcome == TxOutcome::Failed {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", "transaction_failed");
    }
}

/// A checkout that timed out or failed: a span of its own, opened when the
/// failure is known (a checkout that succeeds has none; its wait is an
/// attribute of its statements' spans), with the wait as an attribute.
pub(crate) fn checkout_failed(pool: &str, target: &SpanTarget, kind: ErrorKind, waited_nanos: u64) {
    if !wanted() {
        return;
    }
    let span = tracing::info_span!(
        target: TARGET,
        "db.checkout",
        otel.name = "checkout",
        otel.kind = "internal",
        otel.status_code = "ERROR",
        "db.system.name" = SYSTEM,
        "db.namespace" = Empty,
        "server.address" = Empty,
        "server.port" = Empty,
        "db.client.connection.pool.name" = Empty,
        "db_monitor.checkout.wait_ms" = waited_nanos as f64 / 1e6,
        "error.type" = kind.as_str(),
    );
    if !span.is_disabled() {
        connection_fields(&span, pool, target);
    }
}
