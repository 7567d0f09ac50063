//! The server-side view's documents: what the last sample of the poller
//! saw, joined to the pool's connections and the client's statements.

use std::collections::HashMap;

use serde::Serialize;

use crate::pool::PoolMonitor;
use crate::stats::server::Latest;
use crate::stats::{
    ConnectionBudget, LoadMinute, LoadSlice, LockNode, OtherBackends, PollerRole, ServerBackend, ServerStatement,
};

/// The poller's last failure.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ServerFailure {
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// What failed, masked as every server message is.
    pub message: String,
    /// Failed cycles and connects since the pool was created.
    pub failures: u64,
}

/// When a document's sample was taken, and whether the view is on.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Sampled {
    /// Whether the server view is on ([`MonitorConfig::server_view`](crate::MonitorConfig::server_view)).
    pub enabled: bool,
    /// When the sample was taken, in milliseconds since the Unix epoch
    /// (absent: no sample yet).
    pub sampled_unix_ms: Option<u64>,
    /// How long the sample's queries took, in milliseconds.
    pub sample_took_ms: Option<f64>,
    /// How many queries the sample ran.
    pub sample_queries: Option<u32>,
    /// The poller's last failure, when the last cycle failed.
    pub last_failure: Option<ServerFailure>,
    /// What the poller's role may not read (it reports instead of failing).
    pub unreadable: Vec<String>,
    /// Which poller of the fleet read the server-wide parts (absent: no
    /// sample yet).
    pub poller: Option<PollerRole>,
}

/// `GET …/server/load`: the pool's database load by route and wait event.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ServerLoad {
    /// The pool's name.
    pub pool: String,
    /// Whether the load sampler runs (the server view is on and its
    /// [`load_interval`](crate::ServerView::load_interval) is not zero).
    pub enabled: bool,
    /// The minutes covered, with samples, oldest first.
    pub minutes: Vec<LoadMinute>,
    /// The slices over all those minutes, heaviest first.
    pub total: Vec<LoadSlice>,
    /// The average active sessions over all those minutes by wait event
    /// type, heaviest first.
    pub by_wait_event_type: Vec<LoadShare>,
    /// The same by route, heaviest first.
    pub by_route: Vec<LoadShare>,
}

/// The load of one wait event type or one route.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LoadShare {
    /// The wait event type or the route.
    pub name: String,
    /// Its average active sessions.
    pub average_active_sessions: f64,
}

/// `GET …/server/connections`: the connection budget.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ServerConnections {
    /// The pool's name.
    pub pool: String,
    /// When and how the sample was taken.
    #[serde(flatten)]
    pub sampled: Sampled,
    /// The budget, read by the elected poller (absent on the others: see
    /// `poller.leader_pid`).
    pub budget: Option<ConnectionBudget>,
}

/// `GET …/server/activity`: the pool's backends and the database's others.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ServerActivity {
    /// The pool's name.
    pub pool: String,
    /// When and how the sample was taken.
    #[serde(flatten)]
    pub sampled: Sampled,
    /// The pool's backends, by connection id.
    pub backends: Vec<ServerBackend>,
    /// The database's other client backends, by application name and state.
    pub other_backends: Vec<OtherBackends>,
}

/// `GET …/server/locks`: the blocking tree.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ServerLocks {
    /// The pool's name.
    pub pool: String,
    /// When and how the sample was taken.
    #[serde(flatten)]
    pub sampled: Sampled,
    /// Backends of the database waiting on a lock.
    pub waiting: u64,
    /// Root blockers first (backends that block and wait on no one), each
    /// with the backends it blocks, recursively.
    pub roots: Vec<LockNode>,
}

/// `GET …/server/statements`: `pg_stat_statements` next to the client.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ServerStatements {
    /// The pool's name.
    pub pool: String,
    /// When and how the sample was taken.
    #[serde(flatten)]
    pub sampled: Sampled,
    /// Whether `pg_stat_statements` could be read.
    pub available: bool,
    /// Why not, when it could not.
    pub missing: Option<String>,
    /// The top statements by total server time, each with the client's
    /// mean next to the server's.
    pub statements: Vec<ServerStatement>,
}

fn sampled(enabled: bool, latest: &Latest) -> Sampled {
    let sample = latest.sample.as_deref();
    Sampled {
        enabled,
        sampled_unix_ms: sample.map(|s| s.at_unix_ms),
        sample_took_ms: sample.map(|s| s.took_ms),
        sample_queries: sample.map(|s| s.queries),
        last_failure: latest.failure.as_ref().map(|(at, message)| ServerFailure {
            at_unix_ms: *at,
            message: message.clone(),
            failures: latest.failures,
        }),
        unreadable: sample.map(|s| s.unreadable.clone()).unwrap_or_default(),
        poller: sample.map(|s| s.poller.clone()),
    }
}

/// Sums of `slices` by `key`, heaviest first.
fn sums(slices: &[LoadSlice], key: fn(&LoadSlice) -> &str) -> Vec<LoadShare> {
    let mut sums: HashMap<&str, f64> = HashMap::new();
    for slice in slices {
        *sums.entry(key(slice)).or_insert(0.0) += slice.average_active_sessions;
    }
    let mut out: Vec<LoadShare> = sums
        .into_iter()
        .map(|(name, average_active_sessions)| LoadShare {
            name: name.to_owned(),
            average_active_sessions,
        })
        .collect();
    out.sort_by(|a, b| {
        b.average_active_sessions
            .total_cmp(&a.average_active_sessions)
            .then_with(|| a.name.cmp(&b.name))
    });
    out
}

impl PoolMonitor {
    /// The server view summed up for the comprehensive document.
    pub(crate) fn server_summary(&self) -> Option<super::ServerSummary> {
        let (enabled, latest) = self.server_latest();
        if !enabled {
            return None;
        }
        let sample = latest.sample.as_deref();
        let count = |f: fn(&ServerBackend) -> bool| sample.map_or(0, |s| s.count(f));
        Some(super::ServerSummary {
            sampled_unix_ms: sample.map(|s| s.at_unix_ms),
            backends: sample.map_or(0, |s| s.backends.len()),
            active: count(|b| b.state.as_deref() == Some("active")),
            idle_in_transaction: count(ServerBackend::idle_in_transaction),
            waiting_on_locks: count(ServerBackend::waits_on_lock),
            oldest_transaction_ms: sample.and_then(|s| s.oldest_transaction_ms()),
            last_failure: latest.failure.map(|(_, message)| message),
        })
    }

    fn server_latest(&self) -> (bool, Latest) {
        (self.sink().config.server_view.is_some(), self.stores().server.latest())
    }

    /// The server view's last sample of the pool's backends: state, waits,
    /// transaction and statement ages, the normalized statement, and the
    /// route and checkout site holding each.
    pub fn server_activity(&self) -> ServerActivity {
        let (enabled, latest) = self.server_latest();
        let sample = latest.sample.as_deref();
        ServerActivity {
            pool: self.name().to_owned(),
            sampled: sampled(enabled, &latest),
            backends: sample.map(|s| s.backends.clone()).unwrap_or_default(),
            other_backends: sample.map(|s| s.others.clone()).unwrap_or_default(),
        }
    }

    /// The database load of the pool's backends over the last `minutes`
    /// (1 to 60): average active sessions per minute by route and wait
    /// event, from the load sampler (see
    /// [`ServerView::load_interval`](crate::ServerView::load_interval)).
    pub fn server_load(&self, minutes: usize) -> ServerLoad {
        let enabled = self
            .sink()
            .config
            .server_view
            .as_ref()
            .is_some_and(|v| !v.load_interval.is_zero());
        let minutes = self
            .stores()
            .db_load
            .minutes(minutes.clamp(1, crate::stats::db_load::MINUTES));
        let total = crate::stats::db_load::total(&minutes);
        ServerLoad {
            pool: self.name().to_owned(),
            enabled,
            by_wait_event_type: sums(&total, |s| &s.wait_event_type),
            by_route: sums(&total, |s| &s.route),
            minutes,
            total,
        }
    }

    /// The server's connection budget at the elected poller's last cycle.
    pub fn server_connections(&self) -> ServerConnections {
        let (enabled, latest) = self.server_latest();
        ServerConnections {
            pool: self.name().to_owned(),
            sampled: sampled(enabled, &latest),
            budget: latest.sample.as_deref().and_then(|s| s.budget.clone()),
        }
    }

    /// The server view's last lock tree.
    pub fn server_locks(&self) -> ServerLocks {
        let (enabled, latest) = self.server_latest();
        let sample = latest.sample.as_deref();
        ServerLocks {
            pool: self.name().to_owned(),
            sampled: sampled(enabled, &latest),
            waiting: sample.map_or(0, |s| s.waiting),
            roots: sample.map(|s| s.locks.clone()).unwrap_or_default(),
        }
    }

    /// The server view's last read of `pg_stat_statements`: at most
    /// `limit` statements by total time, with the client's calls and mean
    /// for the same fingerprint.
    pub fn server_statements(&self, limit: usize) -> ServerStatements {
        let (enabled, latest) = self.server_latest();
        let sample = latest.sample.as_deref();
        let client: HashMap<u64, (u64, f64, Option<crate::stats::LatencySplit>)> = self
            .query_stats()
            .into_iter()
            .filter(|q| q.calls > q.cancelled)
            .map(|q| {
                (
                    q.fingerprint,
                    (q.calls, q.mean_time().as_secs_f64() * 1000.0, q.split()),
                )
            })
            .collect();
        let statements = sample
            .map(|s| {
                let mut sharing: HashMap<u64, u32> = HashMap::new();
                for st in &s.statements.top {
                    *sharing.entry(st.fingerprint).or_insert(0) += 1;
                }
                s.statements
                    .top
                    .iter()
                    .take(limit)
                    .map(|st| {
                        let mut st = st.clone();
                        st.rows_sharing_fingerprint = sharing.get(&st.fingerprint).copied().unwrap_or(1);
                        if let Some((calls, mean, split)) = client.get(&st.fingerprint) {
                            let alone = st.rows_sharing_fingerprint == 1;
                            st.client_calls = Some(*calls);
                            st.client_mean_ms = Some(*mean);
                            st.difference_ms = alone.then_some(mean - st.server_mean_ms);
                            st.client_split = split.clone();
                        }
                        st
                    })
                    .collect()
            })
            .unwrap_or_default();
        let missing = match sample {
            Some(s) => s.statements.missing.clone(),
            None if enabled => Some("no sample yet".to_owned()),
            None => Some("the server view is off (MonitorConfig::server_view)".to_owned()),
        };
        ServerStatements {
            pool: self.name().to_owned(),
            sampled: sampled(enabled, &latest),
            available: missing.is_none(),
            missing,
            statements,
        }
    }
}
