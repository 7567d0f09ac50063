//! The database load of the pool's own backends, by route and wait event:
//! Performance Insights' "DB load" (average active sessions), sliced by
//! the application's routes. The server view's sampler adds one sample a
//! second; the store keeps an hour of minutes, each bounded in slices.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// How many minutes are kept.
pub(crate) const MINUTES: usize = 60;

/// Distinct (route, wait event) slices one minute keeps; later ones are
/// counted under `(other)`.
const MAX_SLICES: usize = 256;

/// The wait event types PostgreSQL reports (`pg_stat_activity`), with
/// `CPU` for an active backend that waits on nothing: the values of the
/// load gauge's `wait_event_type` label (anything else is `other`).
pub(crate) const WAIT_TYPES: [&str; 11] = [
    "CPU",
    "Lock",
    "LWLock",
    "IO",
    "IPC",
    "Client",
    "Timeout",
    "BufferPin",
    "Activity",
    "Extension",
    "other",
];

/// The route of a backend no request holds (a checkout outside the layer,
/// or a connection idle in the pool that is still active on the server).
pub(crate) const NO_ROUTE: &str = "(no route)";

/// The index in [`WAIT_TYPES`] of a wait event type (`None`: on CPU).
pub(crate) fn wait_type_index(wait_type: Option<&str>) -> usize {
    let name = wait_type.unwrap_or("CPU");
    WAIT_TYPES
        .iter()
        .position(|t| *t == name)
        .unwrap_or(WAIT_TYPES.len() - 1)
}

/// One active backend of the pool in one sample.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ActiveBackend {
    /// The route of the request holding it, or [`NO_ROUTE`].
    pub(crate) route: Arc<str>,
    /// `CPU` when it waits on nothing.
    pub(crate) wait_event_type: Arc<str>,
    /// `CPU` when it waits on nothing.
    pub(crate) wait_event: Arc<str>,
}

/// One (route, wait) slice of the load.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LoadSlice {
    /// The route of the requests holding the backends (`(no route)`:
    /// checkouts outside a request).
    pub route: String,
    /// `CPU` for an active backend that waits on nothing; otherwise
    /// PostgreSQL's `wait_event_type` (`Lock`, `LWLock`, `IO`, `Client`, …).
    pub wait_event_type: String,
    /// PostgreSQL's `wait_event` (`transactionid`, `DataFileRead`, …), or
    /// `CPU`.
    pub wait_event: String,
    /// Average active sessions: the backends of this slice in an average
    /// sample of the period.
    pub average_active_sessions: f64,
}

/// One minute of load.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LoadMinute {
    /// The minute's start, in milliseconds since the Unix epoch.
    pub start_unix_ms: u64,
    /// Samples taken in it.
    pub samples: u32,
    /// Its slices, heaviest first.
    pub slices: Vec<LoadSlice>,
}

struct Minute {
    start_unix_ms: u64,
    samples: u32,
    counts: HashMap<ActiveBackend, u32>,
}

/// The store: a minute ring, and the last 60 samples' count by wait type
/// for the gauge.
#[derive(Default)]
pub(crate) struct LoadStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    minutes: VecDeque<Minute>,
    recent: VecDeque<[u32; WAIT_TYPES.len()]>,
}

impl LoadStore {
    /// Adds a sample taken at `at_unix_ms` of the pool's `active`
    /// backends; returns the average active sessions by wait type over the
    /// last 60 samples (the gauge's values, in [`WAIT_TYPES`]' order).
    pub(crate) fn add(&self, at_unix_ms: u64, active: Vec<ActiveBackend>) -> [f64; WAIT_TYPES.len()] {
        let start = at_unix_ms - at_unix_ms % 60_000;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.minutes.back().is_none_or(|m| m.start_unix_ms < start) {
            if inner.minutes.len() == MINUTES {
                inner.minutes.pop_front();
            }
            inner.minutes.push_back(Minute {
                start_unix_ms: start,
                samples: 0,
                counts: HashMap::new(),
            });
        }
        let mut by_type = [0u32; WAIT_TYPES.len()];
        // A clock stepped back lands in the newest minute.
        if let Some(minute) = inner.minutes.back_mut() {
            minute.samples += 1;
            for backend in active {
                by_type[wait_type_index(Some(&backend.wait_event_type))] += 1;
                let key = if minute.counts.len() < MAX_SLICES || minute.counts.contains_key(&backend) {
                    backend
                } else {
                    ActiveBackend {
                        route: Arc::from("(other)"),
                        wait_event_type: backend.wait_event_type,
                        wait_event: Arc::from("(other)"),
                    }
                };
                *minute.counts.entry(key).or_insert(0) += 1;
            }
        }
        if inner.recent.len() == 60 {
            inner.recent.pop_front();
        }
        inner.recent.push_back(by_type);
        let n = inner.recent.len() as f64;
        let mut average = [0.0; WAIT_TYPES.len()];
        for sample in &inner.recent {
            for (sum, count) in average.iter_mut().zip(sample) {
                *sum += f64::from(*count);
            }
        }
        average.map(|sum| sum / n)
    }

    /// The last `minutes` minutes that have samples, oldest first.
    pub(crate) fn minutes(&self, minutes: usize) -> Vec<LoadMinute> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let skip = inner.minutes.len().saturating_sub(minutes);
        inner
            .minutes
            .iter()
            .skip(skip)
            .map(|m| LoadMinute {
                start_unix_ms: m.start_unix_ms,
                samples: m.samples,
                slices: slices(m.counts.iter().map(|(k, &c)| (k, f64::from(c))), f64::from(m.samples)),
            })
            .collect()
    }
}

/// The slices of `counts` over `samples` samples, heaviest first.
pub(crate) fn slices<'a>(counts: impl Iterator<Item = (&'a ActiveBackend, f64)>, samples: f64) -> Vec<LoadSlice> {
    let mut out: Vec<LoadSlice> = counts
        .map(|(k, count)| LoadSlice {
            route: k.route.to_string(),
            wait_event_type: k.wait_event_type.to_string(),
            wait_event: k.wait_event.to_string(),
            average_active_sessions: if samples > 0.0 { count / samples } else { 0.0 },
        })
        .collect();
    out.sort_by(|a, b| {
        b.average_active_sessions
            .total_cmp(&a.average_active_sessions)
            .then_with(|| {
                (&a.route, &a.wait_event_type, &a.wait_event).cmp(&(&b.route, &b.wait_event_type, &b.wait_event))
            })
    });
    out
}

/// The slices of several minutes together, over all their samples.
pub(crate) fn total(minutes: &[LoadMinute]) -> Vec<LoadSlice> {
    let samples: f64 = minutes.iter().map(|m| f64::from(m.samples)).sum();
    let mut counts: HashMap<ActiveBackend, f64> = HashMap::new();
    for m in minutes {
        for s in &m.slices {
            let key = ActiveBackend {
                route: Arc::from(s.route.as_str()),
                wait_event_type: Arc::from(s.wait_event_type.as_str()),
                wait_event: Arc::from(s.wait_event.as_str()),
            };
            *counts.entry(key).or_insert(0.0) += s.average_active_sessions * f64::from(m.samples);
        }
    }
    slices(counts.iter().map(|(k, &c)| (k, c)), samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(route: &str, wait_type: &str, event: &str) -> ActiveBackend {
        ActiveBackend {
            route: Arc::from(route),
            wait_event_type: Arc::from(wait_type),
            wait_event: Arc::from(event),
        }
    }

    #[test]
    fn load_is_average_active_sessions_per_minute_and_over_the_window() {
        let store = LoadStore::default();
        // A minute's start.
        let t0 = 1_800_000_000_000;
        // Four samples in the first minute: a lock wait in all, CPU in two.
        for i in 0..4 {
            let mut a = vec![active("PUT /a", "Lock", "transactionid")];
            if i % 2 == 0 {
                a.push(active("GET /b", "CPU", "CPU"));
            }
            store.add(t0 + i * 1000, a);
        }
        // Four empty samples in the next minute.
        let mut gauge = [0.0; WAIT_TYPES.len()];
        for i in 0..4 {
            gauge = store.add(t0 + 60_000 + i * 1000, Vec::new());
        }
        let minutes = store.minutes(15);
        assert_eq!(minutes.len(), 2);
        assert_eq!(minutes[0].samples, 4);
        assert_eq!(minutes[0].slices[0].route, "PUT /a");
        assert_eq!(minutes[0].slices[0].average_active_sessions, 1.0);
        assert_eq!(minutes[0].slices[1].average_active_sessions, 0.5);
        assert!(minutes[1].slices.is_empty());
        let all = total(&minutes);
        assert_eq!(all[0].average_active_sessions, 0.5);
        assert_eq!(all[1].average_active_sessions, 0.25);
        // Over the last 8 samples: 4 lock waits and 2 on CPU.
        assert_eq!(gauge[wait_type_index(Some("Lock"))], 0.5);
        assert_eq!(gauge[wait_type_index(None)], 0.25);
        assert_eq!(store.minutes(1).len(), 1);
    }

    #[test]
    fn a_minute_keeps_a_bounded_number_of_slices_and_an_hour_of_minutes() {
        let store = LoadStore::default();
        let many: Vec<ActiveBackend> = (0..1000)
            .map(|i| active(&format!("GET /{i}"), "IO", "DataFileRead"))
            .collect();
        store.add(0, many);
        let minute = &store.minutes(1)[0];
        assert_eq!(minute.slices.len(), MAX_SLICES + 1);
        let other = minute.slices.iter().find(|s| s.route == "(other)").unwrap();
        assert_eq!(other.average_active_sessions, (1000 - MAX_SLICES) as f64);
        for m in 1..=100 {
            store.add(m * 60_000, Vec::new());
        }
        assert_eq!(store.minutes(1000).len(), MINUTES);
        assert_eq!(wait_type_index(Some("Nonsense")), WAIT_TYPES.len() - 1);
    }
}
