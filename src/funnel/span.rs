//! Spans: every statement a `tracing` span (target `db_monitor`, at the
//! pool's level: INFO unless `MonitorConfig::span_level` says otherwise) named and attributed by OpenTelemetry's database conventions; a
//! transaction a span over its statements; a checkout that timed out a span
//! with its `error.type`.
//!
//! A source opens a span when its operation starts ([`statement`],
//! [`transaction`]) and hands it back when it ends ([`statement_done`],
//! [`transaction_done`]). With no subscriber interested in the target at
//! the pool's level (or the spans off), opening a statement's span is one check of a cached interest
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
//! What a span carries is what the stores keep: the statement's text with
//! literals as `?` and parameters as written (`$1`), its summary, the
//! crate's error kind and the SQLSTATE (of an error, or of a warning the
//! server sent with the statement). Never a parameter's value, a literal
//! or a server message.
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
use crate::classify::{ErrorKind, SqlStateCode};

/// The target of every span here (and of the crate's log events).
pub(crate) const TARGET: &str = "db_monitor";

/// The `db.operation.name` of a prepare.
pub(crate) const PREPARE: &str = "PREPARE";

/// The `db.system.name` of PostgreSQL.
const SYSTEM: &str = "postgresql";

/// Where a pool's statements go: the attributes each of its spans carries
/// from the start, and the labels of its statement metrics.
#[derive(Debug, Default, Clone)]
pub(crate) struct SpanTarget {
    /// `db.namespace`: the database.
    pub(crate) namespace: Option<Box<str>>,
    /// `server.address`: the first host (or socket directory).
    pub(crate) address: Option<Box<str>>,
    /// `server.port`.
    pub(crate) port: Option<u16>,
    /// The level of the pool's spans; `None`: no spans.
    pub(crate) level: Option<SpanLevel>,
}

/// The levels a pool's spans may have ([`MonitorConfig::span_level`](crate::MonitorConfig::span_level)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpanLevel {
    Info,
    Debug,
    Trace,
}

impl SpanLevel {
    /// The level of `level`; ERROR and WARN are taken as INFO, the highest
    /// a span of the crate has.
    pub(crate) fn of(level: tracing::Level) -> SpanLevel {
        match level {
            tracing::Level::TRACE => SpanLevel::Trace,
            tracing::Level::DEBUG => SpanLevel::Debug,
            _ => SpanLevel::Info,
        }
    }
}

/// One span macro per level (a callsite's level is fixed): `$level` picks
/// the callsite.
macro_rules! span_at {
    ($level:expr, $($args:tt)*) => {
        match $level {
            SpanLevel::Info => tracing::info_span!($($args)*),
            SpanLevel::Debug => tracing::debug_span!($($args)*),
            SpanLevel::Trace => tracing::trace_span!($($args)*),
        }
    };
}

/// The first schema of a `search_path` set in the connection's startup
/// options (`-c search_path=app,public` or `--search_path=app`), as
/// written; none when the options set none (the schema is then the
/// server's choice, which the monitor learns of only by asking).
fn first_schema(options: &str) -> Option<&str> {
    let mut words = options.split_ascii_whitespace();
    while let Some(word) = words.next() {
        let setting = match word {
            "-c" => words.next()?,
            w => w.strip_prefix("-c").or_else(|| w.strip_prefix("--")).unwrap_or(w),
        };
        let Some(path) = setting.strip_prefix("search_path=") else {
            continue;
        };
        let first = path.split(',').next()?.trim().trim_matches('"');
        return (!first.is_empty() && first != "$user").then_some(first);
    }
    None
}

/// PostgreSQL's port, which `server_port` is not labelled with.
const DEFAULT_PORT: u16 = 5432;

impl SpanTarget {
    /// The target of a pool connecting with `config`: the database (the
    /// user's name when none is set, as the server takes it), and the
    /// first host and port; its spans at `level` (none without).
    pub(crate) fn of(config: &tokio_postgres::Config, level: Option<tracing::Level>) -> SpanTarget {
        let address = config.get_hosts().first().map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone().into_boxed_str(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.to_string_lossy().into(),
        });
        let database = config.get_dbname().or(config.get_user());
        let namespace = match (database, config.get_options().and_then(first_schema)) {
            (Some(database), Some(schema)) => Some(format!("{database}|{schema}").into_boxed_str()),
            (database, _) => database.map(Into::into),
        };
        let port = config.get_ports().first().copied().or(Some(DEFAULT_PORT));
        SpanTarget {
            namespace,
            address,
            port,
            level: level.map(SpanLevel::of),
        }
    }

    /// The labels of the statement metrics: `db_namespace` and
    /// `server_address` when known, `server_port` when it is not 5432.
    pub(crate) fn labels(&self) -> Vec<metrics::Label> {
        use crate::names;
        let mut labels = Vec::with_capacity(3);
        if let Some(namespace) = &self.namespace {
            labels.push(metrics::Label::new(names::NAMESPACE, namespace.to_string()));
        }
        if let Some(address) = &self.address {
            labels.push(metrics::Label::new(names::SERVER_ADDRESS, address.to_string()));
        }
        if let Some(port) = self.port.filter(|&p| p != DEFAULT_PORT) {
            labels.push(metrics::Label::new(names::SERVER_PORT, port.to_string()));
        }
        labels
    }
}

/// Opens a statement's span, a child of the current span (the entered
/// `parent` when there is one, a transaction's). `waited_nanos` is how long
/// the statement's checkout waited for its connection; `operation` is the
/// operation where it is known without parsing (`PREPARE` for a prepare,
/// named `PREPARE {summary}`).
///
/// Call it only when [`wanted`] (at `level`). Everything known at the start is set now,
/// the name, summary and text included, so that a head sampler sees them;
/// what is known at the end is recorded in one call ([`statement_done`]): a
/// subscriber such as `tracing-opentelemetry` pays a lookup and a lock per
/// `record` call, about 700 instructions, whatever the number of fields.
pub(crate) fn statement(
    level: SpanLevel,
    pool: &str,
    target: &SpanTarget,
    parent: Option<&Span>,
    waited_nanos: u64,
    entry: &QueryEntry,
    operation: Option<&'static str>,
) -> Span {
    let _in_parent = parent.filter(|p| !p.is_disabled()).map(Span::enter);
    let known = entry.fingerprint != OTHER_FINGERPRINT;
    // A prepare is named after what it prepares (rare: the one allocation).
    let prepare = operation == Some(PREPARE);
    let prepared = (known && prepare).then(|| format!("{PREPARE} {}", entry.summary));
    let name: &str = match &prepared {
        Some(name) => name,
        None if known => &entry.summary,
        None => target.namespace.as_deref().unwrap_or(SYSTEM),
    };
    span_at!(
        level,
        target: TARGET,
        "db.statement",
        otel.name = name,
        otel.kind = "client",
        otel.status_code = Empty,
        "db.system.name" = SYSTEM,
        "db.namespace" = target.namespace.as_deref(),
        "server.address" = target.address.as_deref(),
        "server.port" = target.port,
        "db.client.connection.pool.name" = pool,
        "db_monitor.checkout.wait_ms" = waited_nanos as f64 / 1e6,
        "db.query.summary" = known.then_some(name),
        "db.query.text" = known.then_some(&*entry.text),
        "db.operation.name" = operation,
        "db.response.status_code" = Empty,
        "error.type" = Empty,
        "db.response.returned_rows" = Empty,
        "db_monitor.rows_affected" = Empty,
    )
}

/// The level at which a subscriber wants the spans of a pool aimed at
/// `target`: none when its spans are off or no subscriber wants them (the
/// cached interest of one callsite, target `db_monitor`, at the level).
#[inline(always)]
pub(crate) fn wanted(target: &SpanTarget) -> Option<SpanLevel> {
    let level = target.level?;
    let on = match level {
        SpanLevel::Info => tracing::span_enabled!(target: TARGET, tracing::Level::INFO),
        SpanLevel::Debug => tracing::span_enabled!(target: TARGET, tracing::Level::DEBUG),
        SpanLevel::Trace => tracing::span_enabled!(target: TARGET, tracing::Level::TRACE),
    };
    on.then_some(level)
}

/// The fields of a statement's span recorded at its end, found once.
struct EndFields {
    status: Field,
    code: Field,
    error: Field,
    returned: Field,
    affected: Field,
}

impl EndFields {
    /// The fields of the statement callsite (the one callsite of the spans
    /// this module completes), found by name the first time.
    fn of(span: &Span) -> Option<&'static EndFields> {
        static FIELDS: [OnceLock<Option<EndFields>>; 3] = [const { OnceLock::new() }; 3];
        let meta = span.metadata()?;
        let slot = match *meta.level() {
            tracing::Level::TRACE => 2,
            tracing::Level::DEBUG => 1,
            _ => 0,
        };
        FIELDS[slot]
            .get_or_init(|| {
                let fields = meta.fields();
                Some(EndFields {
                    status: fields.field("otel.status_code")?,
                    code: fields.field("db.response.status_code")?,
                    error: fields.field("error.type")?,
                    returned: fields.field("db.response.returned_rows")?,
                    affected: fields.field("db_monitor.rows_affected")?,
                })
            })
            .as_ref()
            .filter(|f| f.status.callsite() == meta.callsite())
    }
}

/// Completes a statement's span with its outcome, and the SQLSTATE of a
/// warning the server sent with it (the PostgreSQL convention's
/// `db.response.status_code` for a response that ended with a warning).
#[inline(never)]
pub(crate) fn statement_done(span: &Span, outcome: &Outcome<'_>, warning: Option<SqlStateCode>) {
    if !span.is_disabled() {
        fill_statement(span, outcome, warning);
    }
}

fn fill_statement(span: &Span, outcome: &Outcome<'_>, warning: Option<SqlStateCode>) {
    let (Some(meta), Some(f)) = (span.metadata(), EndFields::of(span)) else {
        return;
    };
    let (mut returned, mut affected, mut status, mut error) = (None, None, None, None);
    let mut code = warning.as_ref().map(SqlStateCode::as_str);
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
        (&f.returned, value(&returned)),
        (&f.affected, value(&affected)),
        (&f.status, value(&status)),
        (&f.error, value(&error)),
        (&f.code, value(&code)),
    ];
    span.record_all(&meta.fields().value_set(&values));
}

/// Completes a prepare's span: the error if it failed (the failed
/// statement is recorded as such too).
pub(crate) fn prepare_done(span: &Span, error: Option<&tokio_postgres::Error>) {
    if span.is_disabled() {
        return;
    }
    let outcome = match error {
        Some(error) => Outcome::Failed(error),
        None => Outcome::Ok(Rows::Unknown),
    };
    fill_statement(span, &outcome, None);
}

/// Opens a transaction's span (its statements' parent), a child of the
/// current span.
pub(crate) fn transaction(pool: &str, target: &SpanTarget) -> Span {
    let Some(level) = wanted(target) else {
        return Span::none();
    };
    span_at!(
        level,
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
    let Some(level) = wanted(target) else {
        return;
    };
    let _closed_at_once = span_at!(
        level,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespace_is_the_database_and_the_first_schema_of_the_startup_path() {
        let namespace = |options: Option<&str>| {
            let mut config = tokio_postgres::Config::new();
            config.dbname("shop").user("app");
            if let Some(options) = options {
                config.options(options);
            }
            SpanTarget::of(&config, None).namespace.map(String::from)
        };
        assert_eq!(namespace(None).as_deref(), Some("shop"));
        assert_eq!(
            namespace(Some("-c search_path=sales,public")).as_deref(),
            Some("shop|sales")
        );
        assert_eq!(
            namespace(Some("--search_path=billing")).as_deref(),
            Some("shop|billing")
        );
        assert_eq!(
            namespace(Some("-csearch_path=ops -c statement_timeout=5s")).as_deref(),
            Some("shop|ops")
        );
        assert_eq!(namespace(Some("-c search_path=$user,public")).as_deref(), Some("shop"));
        assert_eq!(namespace(Some("-c statement_timeout=5s")).as_deref(), Some("shop"));
        let mut no_db = tokio_postgres::Config::new();
        no_db.user("app");
        assert_eq!(SpanTarget::of(&no_db, None).namespace.as_deref(), Some("app"));
    }
}
