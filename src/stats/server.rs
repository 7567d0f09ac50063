//! The server-side view's store: the latest sample the poller took of
//! `pg_stat_activity`, the lock tree and `pg_stat_statements`, already
//! joined to the pool's connections. Its types are the documents of the
//! `/server/*` routes.

use std::sync::{Arc, Mutex};

use serde::Serialize;

/// One backend of this pool, as the server saw it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ServerBackend {
    /// The backend's process id.
    pub pid: i32,
    /// When the backend started, in milliseconds since the Unix epoch (a
    /// pid is reused; pid and start name one backend).
    pub backend_start_unix_ms: i64,
    /// The pooled connection's id ([`ConnectionInfo::id`](crate::ConnectionInfo::id)).
    pub connection: u64,
    /// `active`, `idle`, `idle in transaction`, … (absent when not readable).
    pub state: Option<String>,
    /// What it waits for: `Lock`, `LWLock`, `IO`, `Client`, … (absent: not waiting).
    pub wait_event_type: Option<String>,
    /// The wait event within its type (`transactionid`, `relation`, …).
    pub wait_event: Option<String>,
    /// Age of its open transaction, in milliseconds (absent: none open).
    pub transaction_age_ms: Option<f64>,
    /// Age of its current or last statement, in milliseconds.
    pub statement_age_ms: Option<f64>,
    /// Time since its state last changed, in milliseconds.
    pub state_age_ms: Option<f64>,
    /// Its current or last statement, normalized by the crate's lexer (no
    /// literal; the server's text is never kept).
    pub statement: Option<String>,
    /// That statement's fingerprint, as the client's stores name it.
    #[serde(serialize_with = "crate::units::ser_opt_hex")]
    pub fingerprint: Option<u64>,
    /// The route of the request holding the connection, if any.
    pub route: Option<String>,
    /// The `get()` call site holding the connection (`file:line`), if
    /// checked out.
    pub checkout_site: Option<String>,
    /// The trace of the checkout holding it, when
    /// [`MonitorConfig::trace_context`](crate::MonitorConfig::trace_context)
    /// shows it to the server (32 hex digits, as trace viewers search it).
    pub trace_id: Option<String>,
}

impl ServerBackend {
    /// Whether it sits idle in a transaction (aborted or not).
    pub(crate) fn idle_in_transaction(&self) -> bool {
        self.state
            .as_deref()
            .is_some_and(|s| s.starts_with("idle in transaction"))
    }

    /// Whether it waits on a heavyweight lock.
    pub(crate) fn waits_on_lock(&self) -> bool {
        self.wait_event_type.as_deref() == Some("Lock")
    }
}

/// Backends of the database that are not this pool's, counted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct OtherBackends {
    /// Their `application_name` (at most 64 characters), when
    /// [`ServerView::application_names`](crate::ServerView::application_names)
    /// shows it; otherwise `(not shown)`, or `(traceparent)` for a trace
    /// context.
    pub application_name: String,
    /// Their state (`unknown` when the role may not read it).
    pub state: String,
    /// How many.
    pub count: u64,
}

/// A node of the lock tree: a backend that blocks or waits.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LockNode {
    /// The backend's process id.
    pub pid: i32,
    /// Its `application_name`, when readable and
    /// [`ServerView::application_names`](crate::ServerView::application_names)
    /// shows it.
    pub application_name: Option<String>,
    /// Its state, when readable.
    pub state: Option<String>,
    /// Age of its open transaction, in milliseconds, when readable.
    pub transaction_age_ms: Option<f64>,
    /// The lock mode it waits for (`ShareLock`, …), if it waits.
    pub waiting_for: Option<String>,
    /// The lock mode it holds on what its waiters want, if it blocks.
    pub holding: Option<String>,
    /// Whether it is one of this pool's connections.
    pub ours: bool,
    /// The pooled connection's id, when ours.
    pub connection: Option<u64>,
    /// The route of the request holding it, when ours and in a request.
    pub route: Option<String>,
    /// The `get()` call site holding it, when ours and checked out.
    pub checkout_site: Option<String>,
    /// The backends it blocks.
    pub blocking: Vec<LockNode>,
}

/// One statement from `pg_stat_statements`, next to the client's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ServerStatement {
    /// The server's `queryid`.
    pub queryid: i64,
    /// The server's normalized text, lexed again by the crate's lexer.
    pub statement: String,
    /// Its fingerprint, equal to the client's for the same statement.
    #[serde(serialize_with = "crate::units::ser_hex")]
    pub fingerprint: u64,
    /// Executions the server counted.
    pub calls: i64,
    /// Rows the server returned or affected.
    pub rows: i64,
    /// Total execution time on the server, in milliseconds.
    pub total_exec_time_ms: f64,
    /// Mean execution time on the server, in milliseconds.
    pub server_mean_ms: f64,
    /// Executions the client counted (absent: the client has not seen it).
    pub client_calls: Option<u64>,
    /// Mean time the client measured, in milliseconds.
    pub client_mean_ms: Option<f64>,
    /// Where the client's time went (the checkout's wait, the queue behind
    /// the connection's earlier statements, the first and the last row),
    /// beside `server_mean_ms`; the client's figures, as `client_mean_ms`.
    pub client_split: Option<super::LatencySplit>,
    /// `client_mean_ms - server_mean_ms`: network, pool and client time;
    /// only where this row is the only one of its fingerprint.
    pub difference_ms: Option<f64>,
    /// The server's rows read with this fingerprint, this one included.
    /// Over 1 (the same statement with a literal and with a parameter,
    /// which the server keeps apart and the crate's normalization does
    /// not; or run by other users or databases), the client's figures
    /// cover them all, and no difference is computed: it would compare
    /// one variant with a mix of them.
    pub rows_sharing_fingerprint: u32,
}

/// What one sample read from `pg_stat_statements`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct StatementsPart {
    /// Why there is nothing (the extension is missing, not readable, …).
    pub(crate) missing: Option<String>,
    /// Top statements by total time.
    pub(crate) top: Vec<ServerStatement>,
}

/// Which poller of a fleet runs the server-wide queries (see
/// [`ServerView::elect`](crate::ServerView::elect)).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PollerRole {
    /// Whether the pollers elect one (otherwise each runs them).
    pub election: bool,
    /// Whether this instance's poller runs them: it holds the election's
    /// advisory lock, or there is no election.
    pub leader: bool,
    /// This poller's backend pid.
    pub pid: Option<i32>,
    /// The backend pid of the poller holding the lock, when another does.
    pub leader_pid: Option<i32>,
    /// That poller's `application_name` (the monitor's own, naming its
    /// pool's maximum), when readable; its configured name is shown only
    /// when it is this instance's own or
    /// [`application_names`](crate::ServerView::application_names) is on
    /// (otherwise `(not shown) [pool max N]`), as in the budget.
    pub leader_application_name: Option<String>,
}

/// The server's connection budget (read by the elected poller): what
/// `max_connections` allows, what is open, and what the monitored pools
/// can open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ConnectionBudget {
    /// `max_connections`.
    pub max_connections: i64,
    /// `superuser_reserved_connections` plus `reserved_connections`
    /// (PostgreSQL 16 and later).
    pub reserved: i64,
    /// `max_connections` less the reserved ones: what ordinary roles may
    /// open.
    pub available: i64,
    /// Client backends open on the server now, every database.
    pub used: i64,
    /// `available - used`.
    pub free: i64,
    /// Under how many free connections the budget alert fires
    /// ([`ServerView::min_free_connections`](crate::ServerView::min_free_connections)).
    pub min_free: i64,
    /// What the monitored instances can open: each pool's maximum, and one
    /// for its poller.
    pub committed: i64,
    /// The monitored instances (this one included), from their pollers'
    /// `application_name`.
    pub instances: Vec<MonitoredInstance>,
    /// Every client backend, counted by application and client address.
    pub by_application: Vec<BackendsByApplication>,
}

/// A monitored instance seen on the server: its poller and its pool's
/// maximum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MonitoredInstance {
    /// Its poller's backend pid.
    pub poller_pid: i32,
    /// Its poller's `application_name`, less the pool's maximum: shown
    /// when it is this instance's configured name or
    /// [`ServerView::application_names`](crate::ServerView::application_names)
    /// asks for names (any client may name itself like a poller), else
    /// `(not shown)`.
    pub application_name: String,
    /// Its client address (`local` for a Unix socket).
    pub client_addr: String,
    /// Its pool's maximum size.
    pub pool_max: i64,
    /// Whether it is this instance.
    pub this_instance: bool,
}

/// Client backends of one application and client address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BackendsByApplication {
    /// Their `application_name` (at most 64 characters), as
    /// [`OtherBackends::application_name`] shows it: `(not shown)` unless
    /// [`ServerView::application_names`](crate::ServerView::application_names)
    /// asks for it; a poller's as its [`MonitoredInstance`] shows it, with
    /// its pool's maximum.
    pub application_name: String,
    /// Their client address (`local` for a Unix socket, `(not shown)`
    /// when the role may not read it).
    pub client_addr: String,
    /// How many.
    pub count: i64,
}

/// One sample of the server-side view.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ServerSample {
    /// When it was taken, in milliseconds since the Unix epoch.
    pub(crate) at_unix_ms: u64,
    /// How long its queries took, in milliseconds (server and round trips).
    pub(crate) took_ms: f64,
    /// Queries the cycle ran.
    pub(crate) queries: u32,
    /// Views or columns the role may not read.
    pub(crate) unreadable: Vec<String>,
    /// This pool's backends.
    pub(crate) backends: Vec<ServerBackend>,
    /// The database's other backends, by application and state.
    pub(crate) others: Vec<OtherBackends>,
    /// Root blockers first, each with what it blocks.
    pub(crate) locks: Vec<LockNode>,
    /// Backends waiting on a lock.
    pub(crate) waiting: u64,
    /// The statements part.
    pub(crate) statements: StatementsPart,
    /// Who runs the server-wide queries.
    pub(crate) poller: PollerRole,
    /// The connection budget (the leader's sample only).
    pub(crate) budget: Option<ConnectionBudget>,
}

impl ServerSample {
    /// The pool's backends matching `f`.
    pub(crate) fn count(&self, f: impl Fn(&ServerBackend) -> bool) -> usize {
        self.backends.iter().filter(|b| f(b)).count()
    }

    /// Age of the oldest transaction open on one of the pool's backends,
    /// in milliseconds.
    pub(crate) fn oldest_transaction_ms(&self) -> Option<f64> {
        self.backends
            .iter()
            .filter_map(|b| b.transaction_age_ms)
            .reduce(f64::max)
    }
}

/// The latest sample and the latest failure of the poller.
#[derive(Default)]
pub(crate) struct ServerStore {
    latest: Mutex<Latest>,
}

#[derive(Default, Clone)]
pub(crate) struct Latest {
    pub(crate) sample: Option<Arc<ServerSample>>,
    /// The last cycle's failure (masked), cleared by the next success.
    pub(crate) failure: Option<(u64, String)>,
    /// Cycles that failed since the store was created.
    pub(crate) failures: u64,
}

impl ServerStore {
    /// Keeps a sample; `clean` when nothing of its cycle failed, which
    /// ends a streak of failures. Whether it did.
    pub(crate) fn keep(&self, sample: Arc<ServerSample>, clean: bool) -> bool {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        latest.sample = Some(sample);
        clean && latest.failure.take().is_some()
    }

    /// Keeps a failure; whether it starts a streak.
    pub(crate) fn failed(&self, at_unix_ms: u64, message: String) -> bool {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        latest.failures += 1;
        latest.failure.replace((at_unix_ms, message)).is_none()
    }

    pub(crate) fn latest(&self) -> Latest {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
