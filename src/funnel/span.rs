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

use std::sync::OnceLock;

use tracing::field::{Empty, Field, Value};
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
///
/// What is known at the start is given to the span macro, and what is
/// known at the end is recorded in one call ([`statement_done`]): a
/// subscriber such as `tracing-opentelemetry` pays a lookup and a lock per
/// `record` call, about 700 instructions, whatever the number of fields.
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
    Some(tracing::info_span!(
        target: TARGET,
        "db.statement",
        otel.name = Empty,
        otel.kind = "client",
        otel.status_code = Empty,
        "db.system.name" = SYSTEM,
        "db.namespace" = target.namespace.as_deref(),
        "server.address" = target.address.as_deref(),
        "server.port" = target.port,
        "db.client.connection.pool.name" = pool,
        "db_monitor.checkout.wait_ms" = waited_nanos() as f64 / 1e6,
        "db.query.summary" = Empty,
        "db.query.text" = Empty,
        "db.operation.name" = Empty,
        "db.response.status_code" = Empty,
        "error.type" = Empty,
        "db.response.returned_rows" = Empty,
        "db_monitor.rows_affected" = Empty,
    ))
}

/// Whether a subscriber wants the crate's spans: the cached interest of
/// one callsite (target `db_monitor`, INFO).
#[inline(always)]
fn wanted() -> bool {
    tracing::span_enabled!(target: TARGET, tracing::Level::INFO)
}

/// The fields of a statement's span recorded at its end, found once.
struct EndFields {
    name: Field,
    status: Field,
    summary: Field,
    text: Field,
    operation: Field,
    code: Field,
    error: Field,
    returned: Field,
    affected: Field,
}

impl EndFields {
    /// The fields of the statement callsite (the one callsite of the spans
    /// this module completes), found by name the first time.
    fn of(span: &Span) -> Option<&'static EndFields> {
        static FIELDS: OnceLock<Option<EndFields>> = OnceLock::new();
        let meta = span.metadata()?;
        FIELDS
            .get_or_init(|| {
                let fields = meta.fields();
                Some(EndFields {
                    name: fields.field("otel.name")?,
                    status: fields.field("otel.status_code")?,
                    summary: fields.field("db.query.summary")?,
                    text: fields.field("db.query.text")?,
                    operation: fields.field("db.operation.name")?,
                    code: fields.field("db.response.status_code")?,
                    error: fields.field("error.type")?,
                    returned: fields.field("db.response.returned_rows")?,
                    affected: fields.field("db_monitor.rows_affected")?,
                })
            })
            .as_ref()
            .filter(|f| f.name.callsite() == meta.callsite())
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
        fill_statement(span, target, entry, operation, outcome, false);
    }
}

#[inline(never)]
fn fill_statement(
    span: &Span,
    target: &SpanTarget,
    entry: &QueryEntry,
    operation: Option<&'static str>,
    outcome: &Outcome<'_>,
    prepare: bool,
) {
    let (Some(meta), Some(f)) = (span.metadata(), EndFields::of(span)) else {
        return;
    };
    let known = entry.fingerprint != OTHER_FINGERPRINT;
    // A prepare is named after what it prepares (rare: the one allocation).
    let prepared = (known && prepare).then(|| format!("PREPARE {}", entry.summary));
    let name: &str = match &prepared {
        Some(name) => name,
        None if known => &entry.summary,
        None => target.namespace.as_deref().unwrap_or(SYSTEM),
    };
    let summary = known.then_some(name);
    let text = known.then_some(&*entry.normalized);
    let (mut returned, mut affected, mut status, mut error, mut code) = (None, None, None, None, None);
    match outcome {
        Outcome::Ok(Rows::Returned(n)) => returned = Some(*n),
        Outcome::Ok(Rows::Affected(n)) => affected = Some(*n),
        Outcome::Ok(Rows::Unknown) => {}
        Outcome::Failed(e) => {
            status = Some("ERROR");
            error = Some(ErrorKind::of(e).as_str());
            code = e.code().map(|c| c.code());
        }
        Outcome::Cancelled => {
            status = Some("ERROR");
            error = Some("cancelled");
        }
    }
    fn value<T: Value>(v: &Option<T>) -> Option<&dyn Value> {
        v.as_ref().map(|v| v as &dyn Value)
    }
    let values = [
        (&f.name, Some(&name as &dyn Value)),
        (&f.summary, value(&summary)),
        (&f.text, value(&text)),
        (&f.operation, value(&operation)),
        (&f.returned, value(&returned)),
        (&f.affected, value(&affected)),
        (&f.status, value(&status)),
        (&f.error, value(&error)),
        (&f.code, value(&code)),
    ];
    span.record_all(&meta.fields().value_set(&values));
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
    fill_statement(span, target, entry, Some("PREPARE"), &outcome, true);
}

/// Opens a transaction's span (its statements' parent), a child of the
/// current span.
pub(crate) fn transaction(pool: &str, target: &SpanTarget) -> Span {
    if !wanted() {
        return Span::none();
    }
    tracing::info_span!(
        target: TARGET,
        "db.transaction",
        otel.name = "transaction",
        otel.kind = "internal",
        otel.status_code = Empty,
        "db.system.name" = SYSTEM,
        "db.namespace" = target.namespace.as_deref(),
        "server.address" = target.address.as_deref(),
        "server.port" = target.port,
        "db.client.connection.pool.name" = pool,
        "db_monitor.transaction.outcome" = Empty,
        "error.type" = Empty,
    )
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
    let _closed_at_once = tracing::info_span!(
        target: TARGET,
        "db.checkout",
        otel.name = "checkout",
        otel.kind = "internal",
        otel.status_code = "ERROR",
        "db.system.name" = SYSTEM,
        "db.namespace" = target.namespace.as_deref(),
        "server.address" = target.address.as_deref(),
        "server.port" = target.port,
        "db.client.connection.pool.name" = pool,
        "db_monitor.checkout.wait_ms" = waited_nanos as f64 / 1e6,
        "error.type" = kind.as_str(),
    );
}
