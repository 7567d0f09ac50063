//! The server view: `pg_stat_activity`, the lock tree and `pg_stat_statements`, joined to the client's routes.
//!
//! The client knows who (route, `get()` call site, pooled connection) and how
//! long; the server knows why (a lock held by another backend, a transaction
//! idle for minutes). With [`MonitorConfig::server_view`](crate::MonitorConfig::server_view)`(`[`ServerView::default()`](crate::ServerView)`)`
//! or `ASYNC_DB_SERVER_VIEW=15s`, the background task polls the server and
//! joins the two:
//!
//! - **Pids.** Each pooled connection learns its backend's pid and start when
//!   it is made (one `SELECT` on the new connection, not recorded as the
//!   application's); the connection list shows the pid, the route and the call
//!   site holding it. pid and start together name a backend, since pids are
//!   reused. A deadlock's error record and alert name the pool's connections
//!   on the other side, from the pids in the server's `DETAIL` (only the pids
//!   are read): `deadlock detected; the other side: connection 3 (PUT
//!   /accounts/{id} at src/accounts.rs:42)`. This needs no poller.
//! - **The poller** runs on one connection of its own, outside the pool (it
//!   never takes an application's slot), with the pool's settings and role,
//!   `application_name=db-monitor [pool max 10]` (the configured name and
//!   the pool's maximum, which the other instances' connection budget
//!   reads), and `statement_timeout` (2 s) and
//!   `lock_timeout` (100 ms) on every query. Cycles never overlap; it
//!   reconnects with a backoff of 1 s doubling to 1 min. It needs no privilege
//!   beyond the application's own role: other roles' backends are counted as
//!   `unknown`, and the document says what it could not read
//!   (`pg_read_all_stats`). A failed cycle is reported in the documents
//!   (`last_failure`, masked) and logged once per streak.
//! - **`GET …/server/activity`**: the pool's backends with state,
//!   `wait_event_type`/`wait_event`, transaction, statement and state ages,
//!   the statement normalized by the crate's lexer (the server's text is never
//!   kept), the connection id, the route and the call site; other backends
//!   counted by state (by `application_name` × state with
//!   `ServerView::application_names(true)`: any client can write a value
//!   there, so it is off by default).
//! - **`GET …/server/locks`**: the blocking tree from `pg_blocking_pids()`,
//!   queried only when a backend waits on a lock; root blockers first; each
//!   node with pid, application (with `application_names(true)`), state, transaction age, the mode it waits
//!   for or holds, and, when it is the pool's, its route and call site.
//! - **`GET …/server/statements?limit=N`**: with `pg_stat_statements`, the top
//!   statements of this database and role by total time, lexed again so that
//!   their fingerprints are the client's, with the server's mean next to the
//!   client's (`difference_ms` is network, pool and client). Texts are read
//!   (`pg_stat_statements(true)`) only for `queryid`s not seen before. Without
//!   the extension the document says so (`available: false`, `missing`).
//! - **`GET …/server/load?minutes=15`**: the database load of the pool's
//!   backends, as Performance Insights draws it (average active sessions),
//!   sliced by the application's routes: a sampler reads the pool's
//!   backends in use once a second ([`ServerView::load_interval`](crate::ServerView::load_interval);
//!   one query filtered by their pids, on the poller's connection, apart
//!   from the slower cycle; none while no connection is in use) and counts
//!   each active one under the route holding it and its wait event (`CPU`
//!   when it waits on nothing), per minute for an hour. The gauge
//!   `db_monitor_server_load_sessions{wait_event_type}` has the last 60
//!   samples' average by wait type (bounded: PostgreSQL's ten types and
//!   `other`). The dashboard stacks it by wait type, with a route picker.
//! - **One poller for a fleet** ([`ServerView::elect`](crate::ServerView::elect), on by
//!   default). With ten instances, ten pollers would read the same
//!   `pg_stat_statements` and lock tables. The pollers of one pool name on
//!   one database and role try a session-level `pg_try_advisory_lock` each
//!   cycle; the holder runs the server-wide queries (every backend, the lock
//!   tree, `pg_stat_statements`, the budget), the others read only their own
//!   backends (activity, load, plans). The lock ends with the holder's
//!   session, so a new holder takes over at its next cycle when the old one
//!   dies (measured: 0.11 s after a `kill -9`, with a 0.5 s interval). Each
//!   document's `poller` says whether this instance holds it and, if not,
//!   the holder's pid: a follower's lock tree and statements are empty, and
//!   are in the holder's documents.
//! - **`GET …/server/connections`**: the connection budget, read by the
//!   holder: `max_connections`, the reserved connections
//!   (`superuser_reserved_connections`, and `reserved_connections` on 16
//!   and later), the client backends open on the server by application
//!   and client address (names masked as for other backends, except the
//!   monitor's pollers), and the monitored instances with their pools'
//!   maximums, read from their pollers' `application_name`. The
//!   [`ConnectionBudget`](crate::alerts::AlertType::ConnectionBudget) alert
//!   fires when the pools can open more than the server allows (their
//!   maximums plus a poller each), and when fewer than
//!   [`min_free_connections`](crate::ServerView::min_free_connections) (5)
//!   are free; `db_monitor_server_connections{state}` carries the figures to
//!   Prometheus (`DbConnectionBudget` in the shipped rules). Only the
//!   elected poller reads the budget: the other instances export NaN, which
//!   compares false, so a fleet raises the alert once.
//! - **Plans of slow statements** ([`ServerView::plans`](crate::ServerView::plans), on by
//!   default; PostgreSQL 16 and later): after each cycle the poller reads
//!   `EXPLAIN (GENERIC_PLAN, FORMAT JSON, VERBOSE)` of the slowest
//!   statements not planned in the last hour, at most six a minute, over the
//!   simple protocol so that nothing is bound. The text explained is the
//!   statement with `$n` for each literal; a text that cannot be made so
//!   (a `jsonb` `?` operator, several statements, a cut text) is skipped,
//!   never explained with a value. Only the nodes' type, table, index, join
//!   type and estimates are kept, never a condition. The slow-query report
//!   shows each group's plan, flags sequential scans over tables of at least
//!   10,000 rows (`reltuples`), and puts the planner's row estimate beside
//!   the rows the client saw per run; the recommendations name the table.
//!   On 15 the report says plans need 16 (`plans_unavailable`).
//! - Every document says when its sample was taken (`sampled_unix_ms`), how
//!   long the cycle took and how many queries it ran. The comprehensive
//!   document carries a summary (`server`), and the server alerts feed
//!   the score's alerts part and its recommendations.
//!
//! Statements running past their slow threshold need no server view: each
//! connection marks the statement it runs (two relaxed atomic stores at
//! its start, one at its end), `GET …/metrics/running` lists those past
//! their threshold with route and call site, and the background task logs
//! each once, at `WARN`, while it still runs.
//!
//! A transfer blocked by a request on another route (`cargo run --example
//! axum_server`, then `curl -X POST '…/hold?seconds=10' & curl -X POST
//! '…/transfer?from=1&to=2'`), as `GET /health/database/server/locks` shows it:
//!
//! ```json
//! {
//!   "pool": "primary", "enabled": true, "sampled_unix_ms": 1796020125054,
//!   "sample_took_ms": 5.47, "sample_queries": 4, "last_failure": null, "unreadable": [],
//!   "waiting": 1,
//!   "roots": [{
//!     "pid": 27464, "application_name": "db-monitor-axum", "state": "active",
//!     "transaction_age_ms": 3348.3, "waiting_for": null, "holding": "ExclusiveLock",
//!     "ours": true, "connection": 4, "route": "/hold", "checkout_site": "examples/axum_server.rs:210",
//!     "blocking": [{
//!       "pid": 27465, "application_name": "db-monitor-axum", "state": "active",
//!       "transaction_age_ms": 2847.5, "waiting_for": "ShareLock", "holding": null,
//!       "ours": true, "connection": 3, "route": "/transfer", "checkout_site": "examples/axum_server.rs:179",
//!       "blocking": []
//!     }]
//!   }]
//! }
//! ```
//!
//! Tests (`tests/server.rs`, real PostgreSQL): a lock chain of an outside
//! session and two requests on different routes shows the outside pid as the
//! root and both routes below it; an idle-in-transaction checkout fires its
//! alert (with its call site) and resolves when released; a function slowed
//! by `pg_sleep` shows server ≈ client time (server started with
//! `shared_preload_libraries=pg_stat_statements`), and the shared server
//! without it says the extension is missing; a poller whose query meets a
//! locked catalog (`lock_timeout`) reports the failure while the application
//! goes on; a role without `pg_read_all_stats` sees its own backends; a
//! route blocked on a lock is its `Lock` wait in the load and a CPU-bound
//! statement its route's `CPU`; two pools whose maximums exceed
//! `max_connections=12` fire the budget alert; a slow statement gets a
//! generic plan with its sequential scan flagged and no literal (on 18; on
//! 15 the report says plans need 16); a statement running past its
//! threshold is listed and logged before it ends. `tests/examples.rs` runs
//! two instances of the example on one server and kills the holder. The
//! suite runs on PostgreSQL 15 and 18 (`tests/postgres18.rs`).
