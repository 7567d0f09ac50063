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
    /// pool's validity check of one, or opening one for a pool with room.
    pub waiting: u32,
    /// Of those, the checkouts queued for a connection: the pending ones
    /// that the pool's free room (connections neither checked out nor
    /// being handed out) cannot serve. A burst on an idle pool pings its
    /// connections and queues nothing.
    pub queued: u32,
    /// How long checkouts have been pending without a pause (some checkout
    /// pending at every moment), if one is pending now.
    #[serde(rename = "waiting_for_ms", serialize_with = "crate::units::ser_opt_ms")]
    pub waiting_for: Option<Duration>,
    /// Checkouts that got a connection in the window.
    pub served: u64,
    /// Checkouts that failed in the window (timed out, or failed fast).
    pub failed: u64,
    /// Checkouts served per second over the window: the demand met, which
    /// on a pool with room is no measure of what it could serve.
    pub served_per_second: f64,
    /// Connections given back per second over the window.
    pub returned_per_second: f64,
    /// The mean time a connection was held by the checkouts that gave it
    /// back in the window, if any did.
    #[serde(rename = "mean_hold_ms", serialize_with = "crate::units::ser_opt_ms")]
    pub mean_hold: Option<Duration>,
    /// The rate at which the pool can hand connections to a queue: its
    /// checked-out connections over their mean hold time, or the rate it
    /// served at, whichever is higher (Little's law: `in use / hold`).
    pub capacity_per_second: f64,
    /// The 95th percentile of the window's checkout waits (failures
    /// included), if any checkout ended in it.
    #[serde(rename = "wait_p95_ms", serialize_with = "crate::units::ser_opt_ms")]
    pub wait_p95: Option<Duration>,
    /// Requests shed since the pool was made (by a
    /// [`ShedLayer`](crate::layer::ShedLayer)), not only in the window.
    pub requests_shed: u64,
}

impl PoolLoad {
    /// The wait a checkout starting now can expect: none while nothing is
    /// [queued](Self::queued) (a checkout in its validity ping is not);
    /// otherwise its place in the queue over the pool's
    /// [capacity](Self::capacity_per_second) (`None`, without end, when
    /// nothing was served or given back in the window).
    pub fn expected_wait(&self) -> Option<Duration> {
        expected_wait(self.queued, self.capacity_per_second)
    }
}

/// `queued` checkouts ahead, served at `per_second`: see
/// [`PoolLoad::expected_wait`].
fn expected_wait(queued: u32, per_second: f64) -> Option<Duration> {
    if queued == 0 {
        return Some(Duration::ZERO);
    }
    (per_second > 0.0).then(|| Duration::from_secs_f64(f64::from(queued + 1) / per_second))
}

/// The rate at which `in_use` connections held `mean_hold` each come back,
/// or `served`, whichever is higher.
fn capacity(served_per_second: f64, in_use: u32, mean_hold: Option<Duration>) -> f64 {
    let cycling = match mean_hold {
        Some(hold) if !hold.is_zero() && in_use > 0 => f64::from(in_use) / hold.as_secs_f64(),
        _ => 0.0,
    };
    served_per_second.max(cycling)
}

/// What the pool is doing now, beside its load: the room it has for a
/// pending checkout without a queue, and its connections checked out.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Room {
    /// Connections neither checked out nor being handed out: the pool's
    /// size less those checked out (idle, or not yet opened).
    pub(crate) free: u32,
    /// Connections checked out now.
    pub(crate) in_use: u32,
}

struct Slot {
    /// The second this slot counts (since the store's epoch), plus one.
    second: AtomicU64,
    served: AtomicU32,
    failed: AtomicU32,
    /// Connections given back, and the microseconds they were held.
    returned: AtomicU32,
    held_us: AtomicU64,
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
                returned: AtomicU32::new(0),
                held_us: AtomicU64::new(0),
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

    /// The slot of the second of `since`, emptied first if it still
    /// counts an older one.
    #[inline]
    fn slot(&self, since: Duration) -> &Slot {
        let second = since.as_secs() + 1;
        let slot = &self.slots[(second % SLOTS as u64) as usize];
        if slot.second.load(Relaxed) != second {
            self.turn(slot, second);
        }
        slot
    }

    /// A connection held `held` was given back at `at`.
    #[inline]
    pub(crate) fn returned(&self, at: quanta::Instant, held: Duration) {
        let slot = self.slot(self.since_epoch(at));
        slot.returned.fetch_add(1, Relaxed);
        let us = held.as_secs().saturating_mul(1_000_000) + u64::from(held.subsec_micros());
        slot.held_us.fetch_add(us, Relaxed);
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
        let slot = self.slot(since);
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
        slot.returned.store(0, Relaxed);
        slot.held_us.store(0, Relaxed);
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

    /// Checkouts pending now.
    pub(crate) fn pending(&self) -> u32 {
        u32::try_from(self.waiting.load(Relaxed) & COUNT_MASK).unwrap_or(u32::MAX)
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

    /// The wait a checkout starting at `at` can expect, with the pool's
    /// `room` now: none while no checkout is queued (one atomic read while
    /// none is pending); otherwise the longer of its place in the queue
    /// over the pool's capacity ([`PoolLoad::expected_wait`]) and the time
    /// the queue has not moved: since a checkout was last served, or since
    /// checkouts began to pend if that is later (a quiet gap before a burst
    /// is no stall).
    #[inline]
    pub(crate) fn expected_wait(&self, at: quanta::Instant, room: Room) -> Option<Duration> {
        let word = self.waiting.load(Relaxed);
        let pending = word & COUNT_MASK;
        if pending <= u64::from(room.free) {
            return Some(Duration::ZERO);
        }
        self.expected_wait_queued(at, word, room)
    }

    #[cold]
    fn expected_wait_queued(&self, at: quanta::Instant, word: u64, room: Room) -> Option<Duration> {
        let age = self.since_epoch(at);
        let totals = self.totals(age);
        let queued = queued(word, room);
        let queue = expected_wait(queued, totals.capacity(room.in_use))?;
        let last = self.last_served.load(Relaxed).max(word >> COUNT_BITS);
        let stalled = if last == 0 {
            age
        } else {
            age.saturating_sub(Duration::from_millis(last - 1))
        };
        Some(queue.max(stalled))
    }

    /// The window's counts at `age`.
    fn totals(&self, age: Duration) -> Totals {
        let (slots, window) = self.window(age);
        let mut totals = Totals {
            window,
            ..Totals::default()
        };
        for slot in slots {
            totals.served += u64::from(slot.served.load(Relaxed));
            totals.failed += u64::from(slot.failed.load(Relaxed));
            totals.returned += u64::from(slot.returned.load(Relaxed));
            totals.held_us += slot.held_us.load(Relaxed);
            for (index, count) in slot.waits.iter().enumerate() {
                let count = count.load(Relaxed);
                if count > 0 {
                    totals.waits.add(index, u64::from(count));
                }
            }
        }
        totals
    }

    /// The load at `at`, with the pool's `room` then.
    pub(crate) fn read(&self, at: quanta::Instant, room: Room) -> PoolLoad {
        let age = self.since_epoch(at);
        let totals = self.totals(age);
        let word = self.waiting.load(Relaxed);
        let waiting = u32::try_from(word & COUNT_MASK).unwrap_or(u32::MAX);
        let since = word >> COUNT_BITS;
        let waiting_for = (waiting > 0 && since > 0).then(|| age.saturating_sub(Duration::from_millis(since - 1)));
        PoolLoad {
            window: totals.window,
            waiting,
            queued: queued(word, room),
            waiting_for,
            served: totals.served,
            failed: totals.failed,
            served_per_second: totals.per_second(totals.served),
            returned_per_second: totals.per_second(totals.returned),
            mean_hold: totals.mean_hold(),
            capacity_per_second: totals.capacity(room.in_use),
            wait_p95: totals.waits.quantile(0.95, None, None),
            requests_shed: self.shed.load(Relaxed),
        }
    }
}

/// The pending checkouts of the `waiting` word that `room` cannot serve.
fn queued(word: u64, room: Room) -> u32 {
    u32::try_from((word & COUNT_MASK).saturating_sub(u64::from(room.free))).unwrap_or(u32::MAX)
}

/// A window's counts, summed over its slots.
#[derive(Default)]
struct Totals {
    window: Duration,
    served: u64,
    failed: u64,
    returned: u64,
    held_us: u64,
    waits: Histogram,
}

impl Totals {
    fn per_second(&self, count: u64) -> f64 {
        let seconds = self.window.as_secs_f64();
        if seconds > 0.0 {
            count as f64 / seconds
        } else {
            0.0
        }
    }

    fn mean_hold(&self) -> Option<Duration> {
        (self.returned > 0).then(|| Duration::from_micros(self.held_us / self.returned))
    }

    fn capacity(&self, in_use: u32) -> f64 {
        capacity(self.per_second(self.served), in_use, self.mean_hold())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(load: &CheckoutLoad, ms: u64) -> quanta::Instant {
        load.epoch + Duration::from_millis(ms)
    }

    /// A full pool of 4: no room, all checked out.
    const FULL: Room = Room { free: 0, in_use: 4 };

    impl CheckoutLoad {
        fn read_at(&self, ms: u64) -> PoolLoad {
            self.read(at(self, ms), FULL)
        }

        fn expected_at(&self, ms: u64) -> Option<Duration> {
            self.expected_wait(at(self, ms), FULL)
        }
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
        let read = load.read_at(14_999);
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
        let quiet = load.read_at(30_000);
        assert_eq!((quiet.served, quiet.wait_p95), (0, None));
        assert_eq!(quiet.expected_wait(), Some(Duration::ZERO));
    }

    #[test]
    fn a_young_pool_counts_over_its_age() {
        let load = CheckoutLoad::default();
        for i in 0..10 {
            load.ended(at(&load, i * 100), Duration::from_millis(1), i % 2 == 0);
        }
        let read = load.read_at(2_000);
        assert_eq!((read.served, read.failed), (5, 5));
        assert_eq!(read.window, Duration::from_secs(2));
        assert!((read.served_per_second - 2.5).abs() < 1e-9);
    }

    #[test]
    fn waiting_runs_from_the_first_waiter_until_none_is_left() {
        let load = CheckoutLoad::default();
        assert_eq!(load.read_at(0).waiting_for, None);
        load.wait_began(at(&load, 1_000));
        load.wait_began(at(&load, 3_000));
        load.wait_ended();
        // One still waits: the run began at 1 s.
        let read = load.read_at(5_000);
        assert_eq!(read.waiting, 1);
        assert_eq!(read.waiting_for, Some(Duration::from_secs(4)));
        load.wait_ended();
        assert_eq!(load.read_at(5_000).waiting_for, None);
        // A new run starts afresh.
        load.wait_began(at(&load, 6_000));
        assert_eq!(load.read_at(6_500).waiting_for, Some(Duration::from_millis(500)));
        // More ends than begins never wraps.
        load.wait_ended();
        load.wait_ended();
        assert_eq!(load.read_at(7_000).waiting, 0);
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
        let read = load.read_at(4_000);
        let expected = read.expected_wait().unwrap();
        assert!((expected.as_secs_f64() - 0.4).abs() < 0.01, "{expected:?}");
        // Served up to 3.9 s: at 4 s the queue, not the stall, decides.
        assert_eq!(load.expected_at(4_000), Some(expected), "the quick read agrees");
        // Nothing served since 3.9 s: by 5 s the stall is the longer.
        let stalled = load.expected_at(5_000).unwrap();
        assert!(
            stalled >= Duration::from_millis(1_099) && stalled <= Duration::from_millis(1_101),
            "{stalled:?}"
        );
        // Waiting and nothing served: no end in sight.
        let stuck = load.read_at(40_000);
        assert_eq!(stuck.expected_wait(), None);
        assert_eq!(load.expected_at(40_000), None);
    }

    #[test]
    fn a_burst_on_an_idle_pool_after_a_quiet_gap_queues_nothing() {
        let load = CheckoutLoad::default();
        // Ten checkouts in the first second, then 1.5 s of quiet.
        for i in 0..10 {
            load.ended(at(&load, i * 10), Duration::from_micros(100), true);
            load.returned(at(&load, i * 10 + 2), Duration::from_millis(2));
        }
        // A burst of 8 on a pool of 8 idle connections: all 8 in their
        // validity ping, none checked out yet.
        for _ in 0..8 {
            load.wait_began(at(&load, 1_600));
        }
        let idle = Room { free: 8, in_use: 0 };
        assert_eq!(load.expected_wait(at(&load, 1_601), idle), Some(Duration::ZERO));
        assert_eq!(load.read(at(&load, 1_601), idle).queued, 0);
        // A ninth finds every connection taken: it queues, but the queue
        // began at 1.6 s, not at the last checkout 1.5 s before.
        load.wait_began(at(&load, 1_602));
        let busy = Room { free: 0, in_use: 8 };
        let read = load.read(at(&load, 1_603), busy);
        assert_eq!((read.waiting, read.queued), (9, 9));
        // 8 connections held 2 ms each come back at 4,000 a second.
        assert!(read.capacity_per_second > 3_000.0, "{read:?}");
        let expected = load.expected_wait(at(&load, 1_603), busy).unwrap();
        assert!(expected <= Duration::from_millis(4), "{expected:?}");
    }

    #[test]
    fn capacity_is_the_connections_in_use_over_their_hold() {
        let load = CheckoutLoad::default();
        // Demand of 2 a second, each holding 100 ms: the pool could serve
        // far more than it was asked to.
        for i in 0..8 {
            load.ended(at(&load, i * 500), Duration::ZERO, true);
            load.returned(at(&load, i * 500 + 100), Duration::from_millis(100));
        }
        let room = Room { free: 0, in_use: 4 };
        let read = load.read(at(&load, 4_000), room);
        assert!((read.served_per_second - 2.0).abs() < 0.01, "{read:?}");
        assert_eq!(read.mean_hold, Some(Duration::from_millis(100)));
        assert!((read.capacity_per_second - 40.0).abs() < 0.01, "{read:?}");
    }
}
