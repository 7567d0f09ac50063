//! Serial reads: reads of one request that ran one after another where
//! they could have run together (Sentry's "consecutive DB queries"), by
//! route and statements.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::units::{ms, unix_ms};

/// Reads of one request that ran one after another, each over the floor,
/// none overlapping the one before, where running them together would
/// have saved at least the saving floor: by route and statements.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SerialReadsPattern {
    /// The matched route, when known.
    pub route: Option<String>,
    /// The statements of the run, normalized, in the order they first ran
    /// (at most four; `None` for a statement of another pool).
    pub statements: Vec<Option<String>>,
    /// The `get()` call site of the first checkout of the first request
    /// it was seen in (`src/orders.rs:42`): where the handler took its
    /// connection.
    pub checkout_site: Option<String>,
    /// Requests in which it happened.
    pub requests: u64,
    /// The most reads in one run.
    pub max_reads: u32,
    /// What running them together would have saved in the latest request,
    /// in milliseconds: their durations summed less the longest.
    pub last_saving_ms: f64,
    /// The most it would have saved in one request, in milliseconds.
    pub max_saving_ms: f64,
    /// When first seen, in milliseconds since the Unix epoch.
    pub first_seen_unix_ms: u64,
    /// When last seen.
    pub last_seen_unix_ms: u64,
}

/// (route, the run's first four distinct fingerprints).
type Key = (Option<Arc<str>>, [u64; 4]);

/// The serial-read patterns of one pool, at most `capacity`; later ones
/// are not kept (those kept go on counting).
pub(crate) struct SerialLog {
    patterns: Mutex<HashMap<Key, SerialReadsPattern>>,
    capacity: usize,
}

impl SerialLog {
    pub(crate) fn new(capacity: usize) -> Self {
        SerialLog {
            patterns: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Records one request whose run of `reads` serial reads of
    /// `fingerprints` could have saved `saving`; `statements` gives their
    /// text the first time. Whether the pattern is new.
    pub(crate) fn record(
        &self,
        at: SystemTime,
        origin: super::Origin<'_>,
        fingerprints: [u64; 4],
        reads: u32,
        saving: Duration,
        statements: impl FnOnce() -> Vec<Option<String>>,
    ) -> bool {
        let at = unix_ms(at);
        let saving = ms(saving);
        let route = origin.route;
        let mut patterns = self.patterns.lock().unwrap_or_else(|e| e.into_inner());
        let known = patterns.len();
        match patterns.get_mut(&(route.cloned(), fingerprints)) {
            Some(p) => {
                p.requests += 1;
                p.max_reads = p.max_reads.max(reads);
                p.last_saving_ms = saving;
                p.max_saving_ms = p.max_saving_ms.max(saving);
                p.last_seen_unix_ms = at;
                false
            }
            None if known < self.capacity => {
                patterns.insert(
                    (route.cloned(), fingerprints),
                    SerialReadsPattern {
                        route: route.map(|r| r.to_string()),
                        statements: statements(),
                        checkout_site: origin.site_name(),
                        requests: 1,
                        max_reads: reads,
                        last_saving_ms: saving,
                        max_saving_ms: saving,
                        first_seen_unix_ms: at,
                        last_seen_unix_ms: at,
                    },
                );
                true
            }
            None => false,
        }
    }

    /// Every pattern, the most time they could have saved first.
    pub(crate) fn report(&self) -> Vec<SerialReadsPattern> {
        let patterns = self.patterns.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<SerialReadsPattern> = patterns.values().cloned().collect();
        list.sort_by(|a, b| {
            (b.max_saving_ms * b.requests as f64)
                .total_cmp(&(a.max_saving_ms * a.requests as f64))
                .then_with(|| a.route.cmp(&b.route))
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
    fn a_pattern_counts_its_requests_and_keeps_its_text_from_the_first() {
        let log = SerialLog::new(2);
        let route: Arc<str> = Arc::from("GET /page");
        let fps = [1, 2, 3, 0];
        let text = || vec![Some("SELECT a".to_owned()), None, Some("SELECT c".to_owned())];
        let site = std::panic::Location::caller();
        let origin = crate::stats::Origin {
            route: Some(&route),
            site: Some(site),
        };
        assert!(log.record(SystemTime::now(), origin, fps, 3, Duration::from_millis(80), text));
        assert!(!log.record(SystemTime::now(), origin, fps, 2, Duration::from_millis(40), Vec::new));
        let report = log.report();
        assert_eq!(report.len(), 1);
        let p = &report[0];
        assert_eq!((p.requests, p.max_reads), (2, 3));
        assert_eq!((p.last_saving_ms, p.max_saving_ms), (40.0, 80.0));
        assert_eq!(p.statements.len(), 3);
        assert_eq!(p.checkout_site, Some(format!("{}:{}", site.file(), site.line())));
        // Bounded: a third pattern is not kept.
        assert!(log.record(
            SystemTime::now(),
            crate::stats::Origin::default(),
            [4, 5, 0, 0],
            2,
            Duration::from_millis(60),
            Vec::new
        ));
        assert!(!log.record(
            SystemTime::now(),
            crate::stats::Origin::default(),
            [6, 7, 0, 0],
            2,
            Duration::from_millis(60),
            Vec::new
        ));
        assert_eq!(log.report().len(), 2);
        log.clear();
        assert!(log.report().is_empty());
    }
}
