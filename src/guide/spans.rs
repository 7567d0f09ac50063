//! A `tracing` span per statement, named and attributed by OpenTelemetry's database conventions.
//!
//! Every statement is a [`tracing`](https://docs.rs/tracing) span, so a service that already traces
//! its requests (tower-http's `TraceLayer`, exported by `tracing-opentelemetry`)
//! sees its database calls inside them. Target `db_monitor`, level INFO by
//! default ([`MonitorConfig::span_level`](crate::MonitorConfig::span_level), `ASYNC_DB_SPAN_LEVEL`: `info`,
//! `debug`, `trace` or `off`), named and attributed by OpenTelemetry's
//! database conventions (v1.44). Everything known when the statement starts
//! (its name, summary, text, target, pool, checkout wait) is set when the
//! span is created, so that a head sampler sees it; the outcome is recorded
//! at the end in one call.
//!
//! | attribute | value |
//! |---|---|
//! | span name (`otel.name`) | `db.query.summary`, e.g. `SELECT orders`; a prepare is `PREPARE SELECT orders`; a statement past the fingerprint cap is named by its target (`db.namespace`) |
//! | `otel.kind` | `client` |
//! | `db.system.name` | `postgresql` |
//! | `db.namespace`, `server.address`, `server.port` | the pool's database, first host and port |
//! | `db.query.summary` | the operations and tables in the order written, as written (`INSERT shipping_details SELECT orders`; see [`names`](crate::names)) |
//! | `db.query.text` | the text with every literal replaced by `?` and parameters as written (`WHERE id = $1`), comments and extra whitespace dropped; never a value. Statements that differ only in literals or parameters are one statement (one fingerprint) and show the text of the first of them seen |
//! | `db.operation.name` | only where the operation is known without parsing: `BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT` (sent by the crate), `PREPARE`. The convention asks that it not be parsed from the text, so what the lexer finds is in the summary; `db.collection.name` is never set, for the same reason |
//! | `db.response.returned_rows` | rows returned (`query*`, row streams, `simple_query`) |
//! | `db_monitor.rows_affected` | rows affected (`execute*`) |
//! | `db.response.status_code`, `error.type`, `otel.status_code` | on failure: the SQLSTATE, the crate's kind (`deadlock`, `statement_timeout`, `constraint_violation`, …; `cancelled` for an abandoned statement), `ERROR`. No message text |
//! | `db.response.status_code` alone | a statement the server answered with a warning: the warning's SQLSTATE (PostgreSQL's convention asks for it); no error |
//! | `db.client.connection.pool.name` | the pool (**extra**: the convention defines it for the connection metrics, not for spans) |
//! | `db_monitor.checkout.wait_ms` | **extra**: how long the checkout holding the connection waited for it (an attribute, not a span of its own: a span per checkout is noise) |
//! | `db_monitor.rows_affected` | **extra**: rows an `execute` affected (the convention has returned rows only) |
//! | `db_monitor.transaction.outcome` | **extra**, on transaction spans (below) |
//!
//! `error.type` is the crate's error class, not the SQLSTATE the convention
//! prefers; the mapping is [`ErrorKind`](crate::ErrorKind) (see [error classes](super::recording#error-classes)), the
//! SQLSTATE is beside it in `db.response.status_code`, and a failure with no
//! class is `other`. The attributes marked **extra** are the crate's own;
//! everything else is the convention's.
//!
//! - **Transactions.** A transaction is a span (`transaction`, kind internal,
//!   `db_monitor.transaction.outcome` = `committed`, `rolled_back`,
//!   `abandoned` or `failed`), child of the current span; its `BEGIN`,
//!   statements and `COMMIT` are its children, and a savepoint is a
//!   transaction span inside it.
//! - **A checkout that fails** (timeout, connect error) is a span `checkout`
//!   with its `error.type` (`pool_exhausted`, `connect_timeout`, …) and the
//!   wait. It is opened when the failure is known, so its own duration is
//!   nil; the wait is in `db_monitor.checkout.wait_ms`. A checkout that
//!   succeeds has no span.
//! - **Cost.** A statement checks the callsite's cached interest (about 30
//!   instructions); with no subscriber, or one that does not want
//!   `db_monitor` at the spans' level, there is no span and every later step
//!   returns at once. A subscriber that takes the level gets a span per
//!   statement: about 1,000 instructions with `tracing-subscriber`'s registry
//!   alone, about 13,000 through `tracing-opentelemetry` into the
//!   OpenTelemetry SDK (figures in the repository's benches/README.md). To keep spans for the
//!   application and not for every statement, set
//!   `span_level(Some(Level::DEBUG))` (or `ASYNC_DB_SPAN_LEVEL=debug`) or
//!   `None`, or filter `db_monitor=warn` in the subscriber.
//! - **Allocation.** The crate records every attribute by reference (the
//!   summary and normalized text are the statement table's own); with
//!   `tracing-subscriber`'s registry a statement's span allocates nothing
//!   once warm (`tests/allocations.rs`). An exporter allocates what it keeps.
//!
//! **Trace context to the server** (opt-in):
//! [`MonitorConfig::trace_context`](crate::MonitorConfig::trace_context)`(|| …)` gives the pool the current trace at
//! each checkout, and the pool sets the connection's `application_name` to its
//! W3C `traceparent` (55 characters; `application_name` holds 63) for as long
//! as the checkout lasts, and gives the connection back its own name (kept
//! on the server in `db_monitor.application_name` at its first traced
//! checkout, whatever set it: a setup statement, a customizer) at the next
//! checkout outside a trace. `pg_stat_activity`, the
//! server log (`%a` in `log_line_prefix`) and the server view's activity
//! (`trace_id` per backend) then name each backend's trace. The name is set
//! by `SELECT set_config('application_name', '<traceparent>', false)`,
//! written ahead of the checkout's first statement, its reply read and
//! dropped by the driver, so it adds no round trip: the server runs one tiny
//! statement per traced checkout. It is a `SELECT`, whose constants
//! `pg_stat_statements` keeps out of its entry, so one entry serves all
//! traces (a `SET` made one per trace), and the server view lists none of the
//! monitor's statements. The application's statement texts
//! and prepared statements are untouched. The crate adds no SQLCommenter
//! comment: a comment per trace makes every statement text distinct, so a
//! prepared statement would be prepared again for each trace, and
//! `pg_stat_statements` keeps the first text it sees for a `queryid`, one
//! trace's comment standing for all. (pg_tracing reads such comments; with
//! this crate it joins by `application_name` instead.) The function is yours
//! so that the crate is not tied to one OpenTelemetry version; with
//! `tracing-opentelemetry` it is four lines, written out on
//! [`MonitorConfig::trace_context`](crate::MonitorConfig::trace_context).
//!
//! **The whole recipe** is in the axum example: `OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318
//! cargo run --example axum_server --features otlp` exports OTLP/HTTP to a collector
//! (Jaeger, Tempo, the OpenTelemetry Collector): `tracing_subscriber::registry()
//! .with(tracing_opentelemetry::layer().with_tracer(tracer))`, tower-http's
//! `TraceLayer` outermost, `DbMonitorLayer` inside it, and the trace context
//! above. `GET /customers/3` is then one trace: tower-http's `request` span
//! with `SELECT demo_customers` below it; `POST /transfer` has a
//! `transaction` span holding `BEGIN`, two `UPDATE demo_accounts`, a
//! `SELECT` and `COMMIT`.
//!
//! Tests: `tests/spans.rs` (a capturing `tracing` layer of its own, real
//! PostgreSQL) runs each of the 20 client methods and checks its span's name,
//! text, rows and the pool's attributes; a real deadlock (`deadlock`,
//! `40P01`), a real `statement_timeout` (`statement_timeout`, `57014`) and an
//! abandoned statement (`cancelled`); a transaction with a savepoint and an
//! abandoned one under a request span; a checkout timeout; markers in
//! literals, parameters, a unique violation's `DETAIL` and a conversion error
//! absent from every attribute; and the trace context in
//! `current_setting('application_name')`, in `pg_stat_activity` seen from
//! another session, in the server view's `trace_id`, and reset after.
//! `tests/otlp.rs` runs the axum example's app with the real
//! `opentelemetry-otlp` exporter (HTTP, protobuf) into a receiver started by
//! the test, which decodes with `opentelemetry-proto`, and checks the two
//! traces above: names, kinds, attributes, parents and trace ids.
