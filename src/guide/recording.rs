//! What the monitor records, and where it comes from.
//!
//! A [`DbMonitor`](crate::DbMonitor) builds the pool
//! ([`MonitoredPool`](crate::MonitoredPool), or
//! [`MonitoredDeadpool`](crate::MonitoredDeadpool) with the feature
//! `deadpool`); everything below happens inside the pool's types, and the
//! application keeps calling tokio-postgres's methods under their own names.
//!
//! | event | source | recorded as |
//! |---|---|---|
//! | statement | [`MonitoredClient`](crate::MonitoredClient) / [`MonitoredTransaction`](crate::MonitoredTransaction) methods (same names as tokio-postgres) | duration by operation, table and summary; errors by kind and SQLSTATE; slow count; rows; its latency split, per statement: the checkout's wait (charged to the checkout's first statement), the time queued behind the connection's earlier statements, and for streams the time to the first row ([`LatencySplit`](crate::stats::LatencySplit), in the query-performance report and beside the server's mean in the server view) |
//! | abandoned statement (its future dropped: a cancelled request) | drop guard | `cancelled` count; the connection is kept once the server is past it, else cancelled on the server and retired (see [abandoned statements](super::abandoned)) |
//! | stream dropped before its end | `MonitoredStream` drop | a finished statement with the rows read; `db_monitor_streams_ended_early_total` |
//! | `prepare_cached` | `MonitoredClient` / `MonitoredTransaction` | `db_monitor_prepared_cache_total{result="hit"|"miss"}`; per connection in the snapshot |
//! | transaction | `commit` / `rollback` / drop | duration by outcome: `committed`, `rolled_back`, `abandoned`, `failed` (also dropped after a failed statement) |
//! | checkout | `MonitoredPool::get` | wait time; on timeout `pool_exhausted` (every connection taken, connects not failing) or `connect_timeout` (with the last connect error as source) |
//! | return | drop of `MonitoredConnection` | use time; a leak warning (log and counter) past `leak_threshold`, naming the `get()` call site; with [`hold_times`](crate::MonitorConfig::hold_times) on, the hold split into time in statements and time held idle, by route and call site ([`PoolMonitor::hold_report`](crate::PoolMonitor::hold_report), `db_monitor_connection_held_idle_seconds`) |
//! | connect | `MonitoredManager` | create time, or the classified failure |
//! | connection end | the connection's background task | its error with SQLSTATE (e.g. `57P01` when the server shuts down, `25P03` for an idle-in-transaction timeout), or a `connection_failure` when it ended without a word (a crash, a proxy or the network cut it) |
//! | bb8 `State` / `Statistics` | `PoolMonitor::publish_state`: on a checkout at most every 250 ms, on every timeout, at each scrape of the layer's `/metrics`, every 5 s from the background task, or when called | gauges and absolute counters |
//! | a part of the background work failing (a panic) | the background task | logged, `db_monitor_background_failures_total{part}`; that part runs again at its next tick, the others keep their pace |
//!
//! Each connection has an id and its own counts
//! ([`PoolMonitor::snapshot`](crate::PoolMonitor::snapshot)); each checkout
//! can tell what it has run so far
//! ([`MonitoredConnection::session`](crate::MonitoredConnection::session)).
//! [`DbMonitor::track`](crate::DbMonitor::track)`("name", fut)` times any
//! async operation and classifies its error.
//!
//! Everything goes to three places:
//!
//! - the [`metrics`] facade, under OpenTelemetry's names (the table is in
//!   [`names`](crate::names)), for whatever recorder the application
//!   installed ([`prometheus`](crate::prometheus), [`otlp`](crate::otlp), its
//!   own);
//! - bounded in-process stores, read as reports ([`stats`](crate::stats),
//!   [`report`](crate::report)) and by the alert engine
//!   ([`alerts`](crate::alerts));
//! - a `tracing` span per statement ([spans](super::spans)).
//!
//! Statement text is only ever shown normalized (`SELECT * FROM t WHERE id =
//! ?`): no parameter or literal reaches a label, a log line, a span or a
//! report ([what text leaves the process](super::privacy)).
//!
//! # Error classes
//!
//! Every failure gets an [`ErrorKind`](crate::ErrorKind); its
//! [`as_str`](crate::ErrorKind::as_str) (`deadlock`, `statement_timeout`, …)
//! is the `error_type` label and the spans' `error.type`, and the SQLSTATE is
//! kept beside it (`db_response_status_code`, `db.response.status_code`).
//! OpenTelemetry's convention prefers the SQLSTATE itself as `error.type` and
//! allows a documented value of the instrumentation's own: `ErrorKind`'s
//! variants are that documentation. The classes are few and stable, so that
//! an alert rule can name `deadlock` rather than `40P01`; `other` plays the
//! convention's `_OTHER`. A checkout that times out is `pool_exhausted` when
//! every connection was checked out and no connect had failed since the last
//! success, and `connect_timeout` otherwise (the database down, refusing, or
//! rejecting the login), with the last connect error as its source.
//!
//! Every class is produced for real against PostgreSQL in `tests/faults.rs`:
//! a two-session deadlock, a serializable conflict, `statement_timeout`,
//! `lock_timeout`, `idle_in_transaction_session_timeout`,
//! `pg_terminate_backend` on an idle and on a busy connection,
//! `max_connections` exhausted, a full pool, a refused port, a server restart
//! with recovery of the same pool, and a connection a proxy cuts without a
//! word.
//!
//! # Network timeouts
//!
//! Set `keepalives_idle` and `tcp_user_timeout` on the
//! `tokio_postgres::Config` (the examples do): without them a silently
//! dropped network (a NAT or firewall forgetting the flow, a host gone)
//! leaves a statement waiting forever.
