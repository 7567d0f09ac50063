//! N+1 patterns: one statement run many times within one request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;

use crate::units::{hex, unix_ms};

/// A statement that ran more than the N+1 threshold within one request of
/// a route.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct NPlusOnePattern {
    /// The matched route, when known.
    pub route: Option<String>,
    /// The statement's fingerprint.
    pub fingerprint: String,
    /// The statement, normalized (`None` if it ran on another pool).
    pub statement: Option<String>,
    /// The `get()` call site of the first checkout of the first request
    /// it was seen in (`src/orders.rs:42`): where the handler took its
    /// connection. `None` when that request checked out on another pool
    /// or none.
    pub checkout_site: Option<String>,
    /// Requests in which it happened.
    pub requests: u64,
    /// The most runs in one of them.
    pub max_runs: u64,
    /// Runs in the latest one.
    pub last_runs: u64,
    /// When first seen, in milliseconds since the Unix epoch.
    pub first_seen_unix_ms: u64,
    /// When last seen.
    pub last_seen_unix_ms: u64,
}

/// The N+1 patterns of one pool, at most `capacity` (route, statement)
/// pairs; later pairs are not kept (existing ones keep counting).
/// (route, fingerprint).
type Key = (Option<Arc<str>>, u64);

pub(crate) struct NPlusOneLog {
    patterns: Mutex<HashMap<Key, NPlusOnePattern>>,
    capacity: usize,
}

impl NPlusOneLog {
    pub(crate) fn new(capacity: usize) -> Self {
        NPlusOneLog {
            patterns: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Records one request in which `fingerprint` ran `runs` times; whether
    /// the (route, statement) pair is new.
    pub(crate) fn record(
        &self,
        at: SystemTime,
        origin: super::Origin<'_>,
        fingerprint: u64,
        statement: Option<&str>,
        runs: u64,
    ) -> bool {
        let route = origin.route;
        let at = unix_ms(at);
        let mut patterns = self.patterns.lock().unwrap_or_else(|e| e.into_inner());
        let known = patterns.len();
        match patterns.get_mut(&(route.cloned(), fingerprint)) {
            Some(p) => {
                p.requests += 1;
                p.max_runs = p.max_runs.max(runs);
                p.last_runs = runs;
                p.last_seen_unix_ms = at;
                false
            }
            None if known < self.capacity => {
                patterns.insert(
                    (route.cloned(), fingerprint),
                    NPlusOnePattern {
                        route: route.map(|r| r.to_string()),
                        fingerprint: hex(fingerprint),
                        statement: statement.map(str::to_owned),
                        checkout_site: origin.site_name(),
                        requests: 1,
                        max_runs: runs,
                        last_runs: runs,
                        first_seen_unix_ms: at,
                        last_seen_unix_ms: at,
                    },
                );
                true
            }
            None => false,
        }
    }

    /// The patterns, the most requests first.
    pub(crate) fn report(&self) -> Vec<NPlusOnePattern> {
        let patterns = self.patterns.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<NPlusOnePattern> = patterns.values().cloned().collect();
        list.sort_by(|a, b| {
            b.requests
                .cmp(&a.requests)
                .then(b.max_runs.cmp(&a.max_runs))
                .then(a.fingerprint.cmp(&b.fingerprint))
        });
        list
    }

    pub(crate) fn clear(&self) {
        self.patterns.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_count_requests_per_route_and_statement_and_stay_bounded() {
        let log = NPlusOneLog::new(2);
        let users: Arc<str> = Arc::from("/users");
        let site = std::panic::Location::caller();
        let at_users = crate::stats::Origin {
            route: Some(&users),
            site: Some(site),
        };
        let now = SystemTime::now();
        assert!(log.record(now, at_users, 7, Some("SELECT * FROM orders WHERE user_id = ?"), 12));
        assert!(!log.record(now, at_users, 7, None, 30));
        assert!(!log.record(now, at_users, 7, None, 15));
        assert!(
            log.record(now, crate::stats::Origin::default(), 7, None, 11),
            "another route is another pattern"
        );
        assert!(!log.record(now, at_users, 8, None, 11), "past the capacity");
        let report = log.report();
        assert_eq!(report.len(), 2);
        assert_eq!(
            (report[0].requests, report[0].max_runs, report[0].last_runs),
            (3, 30, 15)
        );
        assert_eq!(report[0].route.as_deref(), Some("/users"));
        assert_eq!(
            report[0].checkout_site,
            Some(format!("{}:{}", site.file(), site.line()))
        );
        assert_eq!(report[0].fingerprint, "0000000000000007");
        log.clear();
        assert!(log.report().is_empty());
    }
}
