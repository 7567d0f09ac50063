//! The pool's statements minute by minute (`GET …/metrics/series`): what
//! the dashboard's charts draw. Each point is one history slot of every
//! statement together: runs, failures, p50/p95/p99, and the failures kept
//! in the error store by kind.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::performance::{LatencyStats, Window};
use crate::classify::ErrorKind;
use crate::units::unix_ms;

/// Points a series holds at most (with one-second slots, 12 minutes).
pub(crate) const MAX_POINTS: usize = 720;
/// The runs a partial point needs before its percentiles are given.
const PARTIAL_PERCENTILES: u64 = 20;
/// The time a partial point must cover before its rate is given.
const PARTIAL_RATE: Duration = Duration::from_secs(5);

/// The pool's statements per slot over the last minutes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StatementSeries {
    /// The pool's name.
    pub pool: String,
    /// The minutes asked for (1 to 60: the history keeps one-minute slots
    /// for an hour).
    pub minutes: u32,
    /// The length of one point, in seconds (the history slot, a minute).
    pub slot_seconds: f64,
    /// Oldest first; a point without runs has zero counts and no
    /// percentiles.
    pub points: Vec<SeriesPoint>,
}

/// One slot of a [`StatementSeries`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SeriesPoint {
    /// When the slot ended (Unix milliseconds).
    pub end_unix_ms: u64,
    /// Statements that finished in it.
    pub statements: u64,
    /// The time the point covers, in seconds: a whole slot, but for the
    /// last point, the current slot so far.
    pub covered_seconds: f64,
    /// Whether the point is the current slot, still filling: its counts
    /// are not a whole slot's, so compare its rate, not its count.
    pub partial: bool,
    /// `statements` over `covered_seconds`, per minute (absent for a
    /// partial point of under 5 s, too short to say).
    pub statements_per_minute: Option<f64>,
    /// Of which failed.
    pub errors: u64,
    /// Median, in milliseconds (absent without runs, and for a partial
    /// point with fewer than 20: too few to stand beside a whole slot's).
    pub p50_ms: Option<f64>,
    /// 95th percentile, in milliseconds.
    pub p95_ms: Option<f64>,
    /// 99th percentile, in milliseconds.
    pub p99_ms: Option<f64>,
    /// Failures in the slot, by kind (statements, checkouts and connects),
    /// every one counted (to the second: with slots under a second, a
    /// second's failures go to the slot its start falls in).
    pub errors_by_kind: BTreeMap<&'static str, u64>,
}

/// Buckets every statement's slot windows (`(end, window)`), what ran
/// since their last slot closed (`live`), and the error store's
/// `(at_unix_ms, kind)` into points of `slot` ending at `now`.
///
/// The last point is the current slot so far (`live`), so that a chart
/// shows statements from the first second, marked partial with the time
/// it covers (since the newest slot closed, or a whole slot if none has);
/// a closed slot goes to the point after the one its end falls in (it
/// ended within a slot of the current one, and covers the slot before).
pub(crate) fn series(
    pool: &str,
    minutes: u32,
    slot: Duration,
    now: (Instant, SystemTime),
    (windows, live): (Vec<(Instant, Window)>, Window),
    errors: Vec<(u64, ErrorKind, u64)>,
) -> StatementSeries {
    let slot = slot.max(Duration::from_millis(100));
    let wanted = (Duration::from_secs(60 * u64::from(minutes)).as_secs_f64() / slot.as_secs_f64()).ceil();
    let count = (wanted as usize).clamp(1, MAX_POINTS);
    let slot_ms = u64::try_from(slot.as_millis()).unwrap_or(u64::MAX).max(1);
    let now_ms = unix_ms(now.1);
    let mut buckets: Vec<Window> = vec![Window::default(); count];
    buckets[count - 1].merge(&live);
    let live_covers = windows
        .iter()
        .map(|(end, _)| now.0.saturating_duration_since(*end))
        .min()
        .map_or(slot, |since| since.min(slot));
    for (end, window) in windows {
        let ago = now.0.saturating_duration_since(end);
        let index = (ago.as_millis() / u128::from(slot_ms)) as usize + 1;
        if index < count {
            buckets[count - 1 - index].merge(&window);
        }
    }
    let mut kinds: Vec<BTreeMap<&'static str, u64>> = vec![BTreeMap::new(); count];
    for (at_ms, kind, n) in errors {
        let index = (now_ms.saturating_sub(at_ms) / slot_ms) as usize;
        if index < count {
            *kinds[count - 1 - index].entry(kind.as_str()).or_insert(0) += n;
        }
    }
    let points = buckets
        .iter()
        .zip(kinds)
        .enumerate()
        .map(|(i, (w, errors_by_kind))| {
            let stats = LatencyStats::of(w);
            let partial = i == count - 1;
            let covered = if partial { live_covers } else { slot };
            let said = !partial || stats.count >= PARTIAL_PERCENTILES;
            SeriesPoint {
                end_unix_ms: now_ms.saturating_sub(slot_ms.saturating_mul((count - 1 - i) as u64)),
                statements: stats.count,
                covered_seconds: covered.as_secs_f64(),
                partial,
                statements_per_minute: (!partial || covered >= PARTIAL_RATE)
                    .then(|| stats.count as f64 * 60.0 / covered.as_secs_f64()),
                errors: stats.errors,
                p50_ms: stats.p50_ms.filter(|_| said),
                p95_ms: stats.p95_ms.filter(|_| said),
                p99_ms: stats.p99_ms.filter(|_| said),
                errors_by_kind,
            }
        })
        .collect();
    StatementSeries {
        pool: pool.to_owned(),
        minutes,
        slot_seconds: slot.as_secs_f64(),
        points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_errors_fall_in_their_minute() {
        let now = Instant::now() + Duration::from_secs(3600);
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        let window = |finished: u64| Window {
            finished,
            ..Window::default()
        };
        let windows = vec![
            (now - Duration::from_secs(5), window(5)),
            (now - Duration::from_secs(30), window(2)),
            (now - Duration::from_secs(61), window(7)),
            (now - Duration::from_secs(2 * 60 + 1), window(100)),
        ];
        let errors = vec![
            (10_000_000 - 1_000, ErrorKind::Deadlock, 1),
            (10_000_000 - 65_000, ErrorKind::PoolExhausted, 1),
            (10_000_000 - 500_000, ErrorKind::Deadlock, 1),
        ];
        let s = series(
            "p",
            3,
            Duration::from_secs(60),
            (now, wall),
            (windows, window(4)),
            errors,
        );
        assert_eq!(s.points.len(), 3);
        let counts: Vec<u64> = s.points.iter().map(|p| p.statements).collect();
        assert_eq!(
            counts,
            [7, 7, 4],
            "oldest first; the current slot so far is last; the slot that ended 2 minutes ago is out"
        );
        assert_eq!(s.points[2].errors_by_kind.get("deadlock"), Some(&1));
        assert_eq!(s.points[1].errors_by_kind.get("pool_exhausted"), Some(&1));
        assert_eq!(s.points[2].end_unix_ms, 10_000_000);
        assert_eq!(s.points[0].end_unix_ms, 10_000_000 - 120_000);
        assert!(s.points[0].p95_ms.is_none());
        // The current slot covers the 5 s since the newest slot closed.
        assert!(s.points[2].partial && !s.points[1].partial);
        assert_eq!(s.points[2].covered_seconds, 5.0);
        assert_eq!(s.points[2].statements_per_minute, Some(48.0));
    }

    #[test]
    fn the_current_minute_is_partial_and_compares_by_its_rate() {
        let now = Instant::now() + Duration::from_secs(3600);
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        let window = |finished: u64| Window {
            finished,
            ..Window::default()
        };
        // 650 a minute, steadily; the current minute 17.5 s in.
        let windows = vec![
            (now - Duration::from_millis(17_500), window(650)),
            (now - Duration::from_millis(77_500), window(650)),
        ];
        let s = series(
            "p",
            3,
            Duration::from_secs(60),
            (now, wall),
            (windows, window(190)),
            Vec::new(),
        );
        let last = s.points.last().unwrap();
        assert_eq!(last.statements, 190, "the count so far");
        let rate = last.statements_per_minute.unwrap();
        assert!((rate - 651.4).abs() < 0.1, "no drop in the rate: {rate}");
        assert_eq!(s.points[1].statements_per_minute, Some(650.0));
    }

    #[test]
    fn a_short_slot_is_capped() {
        let now = (Instant::now(), SystemTime::now());
        let s = series(
            "p",
            60,
            Duration::from_millis(100),
            now,
            (Vec::new(), Window::default()),
            Vec::new(),
        );
        assert_eq!(s.points.len(), MAX_POINTS);
    }
}
