//! What text from the application or its data leaves the process, and in what form.
//!
//! The monitor's surfaces are the JSON routes, the Prometheus exposition
//! (metric labels), its log lines (targets `db_monitor::*`), alert events
//! (notifiers) and the Alertmanager webhook's bodies. The only text from the
//! application or its data that reaches any of them is:
//!
//! | text | where | what is kept |
//! |---|---|---|
//! | statements (the client's, and the server's from `pg_stat_activity` and `pg_stat_statements` in the server view) | routes, logs, alerts, spans, the `db_query_summary` label (operations and tables only) | normalized by the lexer: every literal (`'…'`, `E'…'`, `U&'…'`, `B'…'`, `X'…'`, `N'…'`, dollar quotes with any tag PostgreSQL accepts, numbers) becomes `?`; identifiers and keywords stay |
//! | PostgreSQL's own messages (errors, notices, connect errors) | error store (routes), logs, alert summaries | the message with every quoted run (from its quote to the last quote of that kind in the message, so a value holding quotes cannot shift the pairing), every number (`0xe9`, `42`; digits inside a word such as `int4` stay) and every non-ASCII run masked as `?`. A quoted name is kept only in an integrity violation (class 23), where the server names its schema, table, column, type or constraint in fields of their own and the message holds no value. Never `DETAIL`, `HINT`, `WHERE` or the query position |
//! | messages the application writes (PL/pgSQL `RAISE` and `ASSERT`, whatever SQLSTATE they carry, and class P0) | same | no text: `(raised by the application; its text is not kept)`, with the SQLSTATE and severity. With [`expose_application_messages(true)`](crate::MonitorConfig::expose_application_messages) (`ASYNC_DB_EXPOSE_APPLICATION_MESSAGES=true`) the text is kept, masked by the rule above; `RAISE 'user % over quota', email` puts the value unquoted, where no mask can find it |
//! | messages from a server whose `lc_messages` is not English | same | no text (its quotes, `»users«`, are not the ones the mask reads): SQLSTATE and PostgreSQL's own severity word only |
//! | client-side conversion errors (`FromSql`, `ToSql`, serde) | same | the driver's text naming what failed (`error deserializing column 0`), never its cause, which quotes the value |
//! | route names | routes, logs | the method and route template of the request (`GET /orders/{id}`), a gRPC request's path, or your `route_label` (cut at 256 bytes) |
//! | other backends' `application_name` (server view) | `/server/activity`, `/server/locks`, `/server/connections` | nothing by default: other backends are counted by state, named `(not shown)` (a trace context `(traceparent)`), and lock nodes name no application; with [`ServerView::application_names(true)`](crate::ServerView::application_names), up to 64 characters as the client set it (any client may put any text there) |
//! | generic plans of slow statements (server view, PostgreSQL 16+) | `/metrics/slow-queries`, the dashboard, recommendations | the text explained has `$n` for every literal (a text that cannot be made so is skipped, never explained); of the plan only node types, tables, indexes, join types and estimates are kept, never a filter or condition |
//! | statements running past their threshold | `/metrics/running`, one `WARN` log line each | the normalized text, route and call site |
//! | the database URL, the webhook URL | logs | never the password; the webhook URL without its `user:pass@` |
//! | the pool's database, host and port (its connection settings) | the statement histograms' `db_namespace`, `server_address`, `server_port`; spans' `db.namespace`, `server.address`, `server.port` | as the settings give them, as OpenTelemetry's convention asks: the operator's configuration, not the application's data |
//!
//! Parameters are never read. The SQLSTATE, severity, error class, durations
//! and counts are kept as they are. `Server-Timing`, when switched on,
//! tells a client its own request's database time and statement count (see
//! [the layer](crate::layer)).
//!
//! Outside the monitor: tokio-postgres logs each statement's SQL at `DEBUG`
//! under its own `tokio_postgres` target; filter that target out if your
//! DEBUG logs leave the host.
//!
//! Tests: `tests/privacy.rs` (the server view on) plants a marker in
//! literals, parameters, a backend's last statement, a literal written for
//! `standard_conforming_strings = off`, other backends' `application_name`
//! (in the lock tree too), 17 failing statements of every class above (including the quoted array value,
//! the unquoted byte sequence and the role name of the review), notices, a
//! slow statement and conversion errors, then reads every JSON route, the
//! exposition, every log line of this crate at `TRACE` and anyone's at `INFO`,
//! every alert event and every webhook body, and finds it nowhere; a German
//! server keeps no text. Properties: random values in 27 real message
//! templates through the mask, and random bodies in every quoting form
//! through the lexer, never let a marker through.
