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
//!   `application_name=db-monitor`, and `statement_timeout` (2 s) and
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
//! - Every document says when its sample was taken (`sampled_unix_ms`), how
//!   long the cycle took and how many queries it ran. The comprehensive
//!   document carries a summary (`server`), and the three server alerts feed
//!   the score's alerts part and its recommendations.
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
//! goes on; a role without `pg_read_all_stats` sees its own backends.
