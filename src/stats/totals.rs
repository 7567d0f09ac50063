//! Cumulative statement totals of a pool, snapshotted once a minute, so
//! that any window up to an hour is the difference of two snapshots.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A pool's cumulative totals at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) statements: u64,
    pub(crate) errors: u64,
    pub(crate) busy_ns: u64,
}

impl std::ops::Sub for Totals {
    type Output = Totals;
    fn sub(self, older: Totals) -> Totals {
        Totals {
            statements: self.statements.saturating_sub(older.statements),
            errors: self.errors.saturating_sub(older.errors),
            busy_ns: self.busy_ns.saturating_sub(older.busy_ns),
        }
    }
}

/// Snapshots at least a minute apart, kept for a little over an hour; the
/// first is the pool's creation (all zero).
pub(crate) struct TotalsHistory {
    snapshots: Mutex<VecDeque<(Instant, Totals)>>,
}

const EVERY: Duration = Duration::from_secs(60);
const KEEP: Duration = Duration::from_secs(61 * 60);

impl TotalsHistory {
    pub(crate) fn new() -> Self {
        Self::starting_at(Instant::now())
    }

    pub(crate) fn starting_at(at: Instant) -> Self {
        TotalsHistory {
            snapshots: Mutex::new(VecDeque::from([(at, Totals::default())])),
        }
    }

    /// Keeps `totals` as of `now` if the last snapshot is a minute old.
    pub(crate) fn observe(&self, now: Instant, totals: Totals) {
        let mut snapshots = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        if snapshots
            .back()
            .is_none_or(|(at, _)| now.saturating_duration_since(*at) >= EVERY)
        {
            snapshots.push_back((now, totals));
        }
        // Keep one snapshot at or beyond the longest window as its base.
        while snapshots.len() > 2
            && snapshots
                .get(1)
                .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= KEEP)
        {
            snapshots.pop_front();
        }
    }

    /// What happened over the last `window` before `now`, given the current
    /// totals: the difference from the latest snapshot at least `window`
    /// old (or the oldest there is), and the time that actually covers.
    pub(crate) fn over(&self, now: Instant, current: Totals, window: Duration) -> (Totals, Duration) {
        let snapshots = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        let base = snapshots
            .iter()
            .rev()
            .find(|(at, _)| now.saturating_duration_since(*at) >= window)
            .or_else(|| snapshots.front())
            .copied();
        match base {
            Some((at, totals)) => (current - totals, now.saturating_duration_since(at)),
            None => (current, Duration::ZERO),
        }
    }

    /// Forgets everything before `now` (a store reset).
    pub(crate) fn reset(&self, now: Instant, current: Totals) {
        let mut snapshots = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        snapshots.clear();
        snapshots.push_back((now, current));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(statements: u64, errors: u64) -> Totals {
        Totals {
            statements,
            errors,
            busy_ns: 0,
        }
    }

    #[test]
    fn a_window_is_the_difference_from_the_snapshot_that_old() {
        let t0 = Instant::now();
        let h = TotalsHistory::starting_at(t0);
        for minute in 1..=30u64 {
            h.observe(t0 + Duration::from_secs(60 * minute), totals(100 * minute, minute));
        }
        let now = t0 + Duration::from_secs(60 * 30 + 20);
        let current = totals(3010, 30);
        let (five, covered) = h.over(now, current, Duration::from_secs(300));
        assert_eq!(five, totals(3010 - 2500, 5));
        assert_eq!(covered, Duration::from_secs(320));
        // Less history than asked for: the whole life of the pool, and says so.
        let (hour, covered) = h.over(now, current, Duration::from_secs(3600));
        assert_eq!(hour, current);
        assert_eq!(covered, now - t0);
    }

    #[test]
    fn observations_closer_than_a_minute_are_skipped_and_old_ones_dropped() {
        let t0 = Instant::now();
        let h = TotalsHistory::starting_at(t0);
        h.observe(t0 + Duration::from_secs(10), totals(1, 0));
        assert_eq!(h.snapshots.lock().unwrap().len(), 1);
        for minute in 1..=200u64 {
            h.observe(t0 + Duration::from_secs(60 * minute), totals(minute, 0));
        }
        let len = h.snapshots.lock().unwrap().len();
        assert!((61..=63).contains(&len), "{len}");
        let now = t0 + Duration::from_secs(60 * 200);
        let (hour, covered) = h.over(now, totals(200, 0), Duration::from_secs(3600));
        assert_eq!((hour.statements, covered), (60, Duration::from_secs(3600)));
    }
}
