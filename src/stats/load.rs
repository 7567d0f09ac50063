//! The pool's load over the last seconds: checkouts waiting now and since
//! when without a pause, and the checkouts that ended in the last ten
//! seconds (how many were served, how long they waited). Readiness and
//! shedding read it; it is written by checkouts, with atomics only.
//!
//! Waits go into one-second slots, each a log-linear histogram (the
//! statement histogram's buckets); a slot is emptied by the first checkout
//! of its next second. Two checkouts racing on that change may lose a
//! count: a readiness signal can afford it, a lock on the checkout path
//! could not.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

use super::histogram::{bucket_of, Histogram, BUCKETS};

/// The seconds the load is read over.
pub(crate) const WINDOW_SECONDS: u64 = 10;
/// Slots kept: the window and the second being filled, with room.
const SLOTS: usize = 16;
/// Bits of the packed waiting word that count waiters (the rest hold when
/// the pool last had none).
const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// The load of a pool over the last seconds, as readiness and shedding
/// see it (part of the `…/ready` document).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PoolLoad {
    /// The time the counts cover (up to 10 s; less for a young pool).
    #[serde(rename = "window_ms", serialize_with = "crate::units::ser_ms")]
    pub window: Duration,
    /// Checkouts not yet served now: waiting for a connection, or in the
    /// pool's validity check of one.
    pub waiting: u32,
    /// How long checkouts have been pending without a pause (some checkout
    /// pending at every moment), if one is pending now.
    #[serde(rename = "waiting_for_ms", serialize_with = "crate::units::ser_opt_ms")]
    pub waiting_for: Option<Duration>,
    /// Checkouts that got a connection in the window.
    pub served: u64,
    /// Checkouts that failed in the window (timed out, or failed fast).
    pub failed: u64,
    /// Checkouts served per second over the window.
    pub served_per_second: f64,
    /// The 95th percentile of the window's checkout waits (failures
    /// included), if any checkout ended in it.
    #[serde(rename = "wait_p95_ms", serialize_with = "crate::units::ser_opt_ms")]
    pub wait_p95: Option<Duration>,
    /// Requests shed since the pool was made (by a
    /// [`ShedLayer`](crate::layer::ShedLayer)), not only in the window.
    pub requests_shed: u64,
}

impl PoolLoad {
    /// The wait a checkout starting now can expect: none while no checkout
    /// waits; otherwise its place in the queue over the rate at which the
    /// pool has been serving (`None`, without end, when it served none in
    /// the window).
    pub fn expected_wait(&self) -> Option<Duration> {
        expected_wait(self.waiting, self.served_per_second)
    }
}

/// `waiting` checkouts ahead, served at `per_second`: see
/// [`PoolLoad::expected_wait`].
fn expected_wait(waiting: u32, per_second: f64) -> Option<Duration> {
    if waiting == 0 {
        return Some(Duration::ZERO);
    }
    (per_second > 0.0).then(|| Duration::from_secs_f64(f64::from(waiting + 1) / per_second))
}

struct Slot {
    /// The second this slot counts (since the store's epoch), plus one.
    second: AtomicU64,
    served: AtomicU32,
    failed: AtomicU32,
    waits: [AtomicU32; BUCKETS],
}

/// See the module's documentation.
pub(crate) struct CheckoutLoad {
    epoch: quanta::Instant,
    slots: Box<[Slot; SLOTS]>,
    /// Checkouts waiting (low bits) and, while any is, the millisecond
    /// since `epoch` (plus one) at which the first of this run of waits
    /// began (high bits).
    waiting: AtomicU64,
    /// Requests shed, in all.
    shed: AtomicU64,
    /// The millisecond since `epoch` (plus one) at which a checkout was
    /// last served.
    last_served: AtomicU64,
}

impl Default for CheckoutLoad {
    fn default() -> Self {
        CheckoutLoad {
            epoch: crate::units::now(),
            slots: Box::new(std::array::from_fn(|_| Slot {
                second: AtomicU64::new(0),
                served: AtomicU32::new(0),
                failed: AtomicU32::new(0),
                waits: std::array::from_fn(|_| AtomicU32::new(0)),
            })),
            waiting: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            last_served: AtomicU64::new(0),
        }
    }
}

impl CheckoutLoad {
    fn since_epoch(&self, at: quanta::Instant) -> Duration {
        at.saturating_duration_since(self.epoch)
    }

    /// A checkout ended at `at` after waiting `waited`: served, or failed.
    #[inline]
    pub(crate) fn ended(&self, at: quanta::Instant, waited: Duration, served: bool) {
        let since = self.since_epoch(at);
        if served {
            // Written once a millisecond at most: the line stays shared.
            let ms = since.as_secs().saturating_mul(1000) + u64::from(since.subsec_millis()) + 1;
            if self.last_served.load(Relaxed) != ms {
                self.last_served.store(ms, Relaxed);
            }
        }
        let second = since.as_secs() + 1;
        let slot = &self.slots[(second % SLOTS as u64) as usize];
        if slot.second.load(Relaxed) != second {
            self.turn(slot, second);
        }
        let count = if served { &slot.served } else { &slot.failed };
        count.fetch_add(1, Relaxed);
        slot.waits[bucket_of(crate::units::saturating_nanos(waited))].fetch_add(1, Relaxed);
    }

    /// Empties `slot` for `second`, once (the checkout that claims it).
    #[cold]
    fn turn(&self, slot: &Slot, second: u64) {
        let old = slot.second.swap(second, Relaxed);
        if old == second {
            return;
        }
        slot.served.store(0, Relaxed);
        slot.failed.store(0, Relaxed);
        for count in &slot.waits {
            count.store(0, Relaxed);
        }
    }

    /// A checkout began to wait at `at`.
    pub(crate) fn wait_began(&self, at: quanta::Instant) {
        let since = self.since_epoch(at);
        // Not `as_millis`: a 128-bit division on a checkout's path.
        let ms = since.as_secs().saturating_mul(1000) + u64::from(since.subsec_millis());
        let _ = self.waiting.fetch_update(Relaxed, Relaxed, |word| {
            let count = word & COUNT_MASK;
            let since = if count == 0 {
                ms.saturating_add(1)
            } else {
                word >> COUNT_BITS
            };
            Some((since << COUNT_BITS) | (count + 1).min(COUNT_MASK))
        });
    }

    /// A waiting checkout stopped waiting (served, failed or dropped).
    pub(crate) fn wait_ended(&self) {
        let _ = self.waiting.fetch_update(Relaxed, Relaxed, |word| {
            let count = (word & COUNT_MASK).saturating_sub(1);
            let since = if count == 0 { 0 } else { word >> COUNT_BITS };
            Some((since << COUNT_BITS) | count)
        });
    }

    /// A request was shed.
    pub(crate) fn shed(&self) {
        self.shed.fetch_add(1, Relaxed);
    }

    /// The slots of the window ending at `age`, and the window's length.
    fn window(&self, age: Duration) -> (impl Iterator<Item = &Slot>, Duration) {
        let now = age.as_secs() + 1;
        let first = now.saturating_sub(WINDOW_SECONDS - 1).max(1);
        let slots = self
            .slots
            .iter()
            .filter(move |slot| (first..=now).contains(&slot.second.load(Relaxed)));
        // The whole seconds before this one, and this one so far.
        let length =
            age.min(Duration::from_secs(WINDOW_SECONDS - 1) + Duration::from_nanos(u64::from(age.subsec_nanos())));
        (slots, length)
    }

    /// The wait a checkout starting at `at` can expect: none while no
    /// checkout waits (one atomic read); otherwise the longer of its place
    /// in the queue over the window's rate of service
    /// ([`PoolLoad::expected_wait`]) and the time since a checkout was
    /// last served (a queue that has not moved for that long will not
    /// serve a newcomer sooner, whatever the rate was before it stalled).
    #[inline]
    pub(crate) fn expected_wait(&self, at: quanta::Instant) -> Option<Duration> {
        let waiting = self.waiting.load(Relaxed) & COUNT_MASK;
        if waiting == 0 {
            return Some(Duration::ZERO);
        }
        let age = self.since_epoch(at);
        let (slots, window) = self.window(age);
        let served: u64 = slots.map(|slot| u64::from(slot.served.load(Relaxed))).sum();
        let seconds = window.as_secs_f64();
        let per_second = if seconds > 0.0 { served as f64 / seconds } else { 0.0 };
        let queue = expected_wait(u32::try_from(waiting).unwrap_or(u32::MAX), per_second)?;
        let last = self.last_served.load(Relaxed);
        let stalled = if last == 0 {
            age
        } else {
            age.saturating_sub(Duration::from_millis(last - 1))
        };
        Some(queue.max(stalled))
    }

    /// The load at `at`.
    pub(crate) fn read(&self, at: quanta::Instant) -> PoolLoad {
        let age = self.since_epoch(at);
        let mut waits = Histogram::default();
        let (mut served, mut failed) = (0u64, 0u64);
        let (slots, window) = self.window(age);
        for slot in slots {
            served += u64::from(slot.served.load(Relaxed));
            failed += u64::from(slot.failed.load(Relaxed));
            for (index, count) in slot.waits.iter().enumerate() {
                let count = count.load(Relaxed);
                if count > 0 {
                    waits.add(index, u64::from(count));
                }
            }
        }
        let word = self.waiting.load(Relaxed);
        let waiting = u32::try_from(word & COUNT_MASK).unwrap_or(u32::MAX);
        let since = word >> COUNT_BITS;
        let waiting_for = (waiting > 0 && since > 0).then(|| age.saturating_sub(Duration::from_millis(since - 1)));
        let seconds = window.as_secs_f64();
        PoolLoad {
            window,
            waiting,
            waiting_for,
            served,
            failed,
            served_per_second: if seconds > 0.0 { served as f64 / seconds } else { 0.0 },
            wait_p95: waits.quantile(0.95, None, None),
            requests_shed: self.shed.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(load: &CheckoutLoad, ms: u64) -> quanta::Instant {
        load.epoch + Duration::from_millis(ms)
    }

    #[test]
    fn waits_and_rates_cover_the_last_ten_seconds() {
        let load = CheckoutLoad::default();
        // 100 checkouts a second for 15 s: 95 served at once, 5 after 200 ms.
        for second in 0..15 {
            for i in 0..100 {
                let waited = if i < 95 {
                    Duration::from_micros(50)
                } else {
                    Duration::from_millis(200)
                };
                load.ended(at(&load, second * 1000 + i * 10), waited, true);
            }
        }
        let read = load.read(at(&load, 14_999));
        assert!(
            read.window > Duration::from_millis(9_900) && read.window <= Duration::from_secs(10),
            "{read:?}"
        );
        assert_eq!(read.served, 1000, "the ten seconds from 5 to 14");
        assert_eq!(read.failed, 0);
        assert!((read.served_per_second - 100.0).abs() < 2.0, "{read:?}");
        let p95 = read.wait_p95.unwrap();
        // The 95th of 100 is the last of the quick ones, or the first slow.
        assert!(p95 < Duration::from_millis(220), "{p95:?}");
        // Ten seconds later with nothing new: empty.
        let quiet = load.read(at(&load, 30_000));
        assert_eq!((quiet.served, quiet.wait_p95), (0, None));
        assert_eq!(quiet.expected_wait(), Some(Duration::ZERO));
    }

    #[test]
    fn a_young_pool_counts_over_its_age() {
        let load = CheckoutLoad::default();
        for i in 0..10 {
            load.ended(at(&load, i * 100), Duration::from_millis(1), i % 2 == 0);
        }
        let read = load.read(at(&load, 2_000));
        assert_eq!((read.served, read.failed), (5, 5));
        assert_eq!(read.window, Duration::from_secs(2));
        assert!((read.served_per_second - 2.5).abs() < 1e-9);
    }

    #[test]
    fn waiting_runs_from_the_first_waiter_until_none_is_left() {
        let load = CheckoutLoad::default();
        assert_eq!(load.read(at(&load, 0)).waiting_for, None);
        load.wait_began(at(&load, 1_000));
        load.wait_began(at(&load, 3_000));
        load.wait_ended();
        // One still waits: the run began at 1 s.
        let read = load.read(at(&load, 5_000));
        assert_eq!(read.waiting, 1);
        assert_eq!(read.waiting_for, Some(Duration::from_secs(4)));
        load.wait_ended();
        assert_eq!(load.read(at(&load, 5_000)).waiting_for, None);
        // A new run starts afresh.
        load.wait_began(at(&load, 6_000));
        assert_eq!(
            load.read(at(&load, 6_500)).waiting_for,
            Some(Duration::from_millis(500))
        );
        // More ends than begins never wraps.
        load.wait_ended();
        load.wait_ended();
        assert_eq!(load.read(at(&load, 7_000)).waiting, 0);
    }

    #[test]
    fn the_expected_wait_is_the_queue_over_the_rate_served() {
        let load = CheckoutLoad::default();
        for i in 0..40 {
            load.ended(at(&load, i * 100), Duration::from_millis(5), true);
        }
        for _ in 0..3 {
            load.wait_began(at(&load, 3_900));
        }
        // 40 served in 4 s: 10 a second; a fourth in the queue waits 0.4 s.
        let read = load.read(at(&load, 4_000));
        let expected = read.expected_wait().unwrap();
        assert!((expected.as_secs_f64() - 0.4).abs() < 0.01, "{expected:?}");
        // Served up to 3.9 s: at 4 s the queue, not the stall, decides.
        assert_eq!(
            load.expected_wait(at(&load, 4_000)),
            Some(expected),
            "the quick read agrees"
        );
        // Nothing served since 3.9 s: by 5 s the stall is the longer.
        let stalled = load.expected_wait(at(&load, 5_000)).unwrap();
        assert!(
            stalled >= Duration::from_millis(1_099) && stalled <= Duration::from_millis(1_101),
            "{stalled:?}"
        );
        // Waiting and nothing served: no end in sight.
        let stuck = load.read(at(&load, 40_000));
        assert_eq!(stuck.expected_wait(), None);
        assert_eq!(load.expected_wait(at(&load, 40_000)), None);
    }
}
