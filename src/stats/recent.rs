//! The recent-statements ring: the last statements a pool ran, newest
//! first, without a lock on the statement path.
//!
//! The ring is split into one part per thread stripe (as the per-statement
//! counters are). A writer takes the next slot of its part with one atomic
//! increment and writes the slot under a sequence number (odd while
//! writing); a reader keeps a slot only if its sequence number was even and
//! unchanged around the read, so a slot being overwritten is skipped, never
//! read torn. (Two writers could only meet on one slot if one were held
//! up inside its few-nanosecond write while others wrote a whole part, at
//! least 125 entries with the default size.) Entries hold numbers only (the statement is found by its
//! fingerprint when read), so recording allocates nothing.

use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::classify::ErrorKind;
use crate::sql::Operation;
use crate::units::{hex, unix_ms};

/// How a recent statement ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StatementOutcome {
    /// It finished.
    Ok,
    /// It failed with this class of error.
    Failed(ErrorKind),
    /// Its caller dropped it before it finished.
    Cancelled,
}

impl StatementOutcome {
    pub(crate) fn code(self) -> u64 {
        match self {
            StatementOutcome::Ok => 0,
            StatementOutcome::Cancelled => 1,
            StatementOutcome::Failed(kind) => 2 + kind.index() as u64,
        }
    }

    fn from_code(code: u64) -> Self {
        match code {
            0 => StatementOutcome::Ok,
            1 => StatementOutcome::Cancelled,
            n => ErrorKind::ALL
                .get((n - 2) as usize)
                .map_or(StatementOutcome::Failed(ErrorKind::Other), |k| {
                    StatementOutcome::Failed(*k)
                }),
        }
    }
}

/// One recent statement ([`PoolMonitor::recent_statements`](crate::PoolMonitor::recent_statements)).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RecentStatement {
    /// When it ended, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// Its fingerprint.
    pub fingerprint: String,
    /// The statement, normalized (no literal values).
    pub statement: String,
    /// Its operation.
    pub operation: Operation,
    /// Its main table.
    pub table: Option<String>,
    /// How long it took, in milliseconds (until abandoned, if cancelled).
    pub duration_ms: f64,
    /// How it ended.
    pub outcome: StatementOutcome,
    /// The route of the HTTP request it ran in, when it ran inside one
    /// that passed through [`DbMonitorLayer`](crate::DbMonitorLayer) and
    /// the route is known (the framework's matched route, never the raw path).
    pub route: Option<String>,
}

/// The raw fields of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawRecent {
    /// When it ended, in nanoseconds since the pool's epoch.
    pub(crate) end_ns: u64,
    pub(crate) duration_ns: u64,
    pub(crate) fingerprint: u64,
    pub(crate) outcome: u64,
}

#[derive(Default)]
struct Slot {
    seq: AtomicU64,
    end_ns: AtomicU64,
    duration_ns: AtomicU64,
    fingerprint: AtomicU64,
    outcome: AtomicU64,
}

#[repr(align(128))]
struct Part {
    next: AtomicUsize,
    slots: Box<[Slot]>,
}

/// The ring of one pool.
pub(crate) struct RecentRing {
    parts: Box<[Part]>,
}

impl RecentRing {
    /// A ring of about `capacity` entries over `stripes` parts.
    pub(crate) fn new(capacity: usize, stripes: usize) -> Self {
        let stripes = stripes.max(1);
        let per_part = capacity.div_ceil(stripes);
        RecentRing {
            parts: (0..stripes)
                .map(|_| Part {
                    next: AtomicUsize::new(0),
                    slots: (0..per_part).map(|_| Slot::default()).collect(),
                })
                .collect(),
        }
    }

    /// Records one statement in the part of `stripe` (nothing at all when
    /// the ring has no room: `query_history = 0` turns it off).
    #[inline]
    pub(crate) fn push(&self, stripe: usize, entry: impl FnOnce() -> RawRecent) {
        let part = &self.parts[stripe % self.parts.len()];
        if part.slots.is_empty() {
            return;
        }
        let entry = entry();
        let n = part.next.fetch_add(1, Ordering::Relaxed);
        let slot = &part.slots[n % part.slots.len()];
        // Odd while writing; the generation makes every write distinct.
        let seq = (n as u64) * 2 + 1;
        // Claim the slot, only while no other writer is on it: threads past
        // the number of parts share one, and a writer paused mid-write can
        // be lapped. One that finds the slot taken drops its entry (the
        // ring is a sample of the latest statements); two writers on one
        // slot would leave an entry mixing two statements.
        let current = slot.seq.load(Ordering::Relaxed);
        if current % 2 == 1
            || slot
                .seq
                .compare_exchange(current, seq, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        fence(Ordering::Release);
        slot.end_ns.store(entry.end_ns, Ordering::Relaxed);
        slot.duration_ns.store(entry.duration_ns, Ordering::Relaxed);
        slot.fingerprint.store(entry.fingerprint, Ordering::Relaxed);
        slot.outcome.store(entry.outcome, Ordering::Relaxed);
        slot.seq.store(seq + 1, Ordering::Release);
    }

    /// Every consistent entry, newest first, at most `limit`.
    pub(crate) fn read(&self, limit: usize) -> Vec<RawRecent> {
        let mut all = Vec::new();
        for part in self.parts.iter() {
            for slot in part.slots.iter() {
                let before = slot.seq.load(Ordering::Acquire);
                if before == 0 || before % 2 == 1 {
                    continue;
                }
                let entry = RawRecent {
                    end_ns: slot.end_ns.load(Ordering::Relaxed),
                    duration_ns: slot.duration_ns.load(Ordering::Relaxed),
                    fingerprint: slot.fingerprint.load(Ordering::Relaxed),
                    outcome: slot.outcome.load(Ordering::Relaxed),
                };
                fence(Ordering::Acquire);
                if slot.seq.load(Ordering::Relaxed) == before {
                    all.push(entry);
                }
            }
        }
        all.sort_by_key(|e| std::cmp::Reverse(e.end_ns));
        all.truncate(limit);
        all
    }

    pub(crate) fn clear(&self) {
        for part in self.parts.iter() {
            for slot in part.slots.iter() {
                slot.seq.store(0, Ordering::Release);
            }
        }
    }
}

/// Turns a raw entry into a snapshot, with the pool's clock anchor and the
/// statement found by fingerprint.
pub(crate) fn describe(
    raw: &RawRecent,
    epoch_wall: SystemTime,
    statement: Option<(&str, Operation, Option<&str>)>,
) -> RecentStatement {
    let (statement, operation, table) = statement.unwrap_or(("other", Operation::Other, None));
    RecentStatement {
        at_unix_ms: unix_ms(epoch_wall + Duration::from_nanos(raw.end_ns)),
        fingerprint: hex(raw.fingerprint),
        statement: statement.to_owned(),
        operation,
        table: table.map(str::to_owned),
        duration_ms: raw.duration_ns as f64 / 1e6,
        outcome: StatementOutcome::from_code(raw.outcome & u64::from(u32::MAX)),
        route: super::routes::route_name((raw.outcome >> 32) as u32).map(|r| r.to_string()),
    }
}

/// The ring's `outcome` word: the outcome's code, and the request's route
/// id (0: none) in the upper half.
pub(crate) fn outcome_word(outcome: StatementOutcome, route: u32) -> u64 {
    outcome.code() | (u64::from(route) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(end_ns: u64) -> RawRecent {
        RawRecent {
            end_ns,
            duration_ns: 5,
            fingerprint: 7,
            outcome: StatementOutcome::Failed(ErrorKind::Deadlock).code(),
        }
    }

    #[test]
    fn keeps_the_newest_across_parts_newest_first() {
        let ring = RecentRing::new(4, 2);
        for i in 1..=5 {
            ring.push(0, || raw(i * 10));
        }
        ring.push(1, || raw(25));
        let ends: Vec<u64> = ring.read(10).iter().map(|r| r.end_ns).collect();
        assert_eq!(ends, [50, 40, 25], "part 0 keeps its last 2, part 1 its 1");
        assert_eq!(ring.read(2).len(), 2);
        ring.clear();
        assert!(ring.read(10).is_empty());
    }

    #[test]
    fn writers_sharing_a_part_never_leave_a_torn_entry() {
        // One part of two slots and eight writers: several writers meet on
        // a slot whenever one is paused mid-write and another laps it.
        let ring = std::sync::Arc::new(RecentRing::new(2, 1));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers: Vec<_> = (1..=8u64)
            .map(|id| {
                let (ring, stop) = (ring.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let v = id << 40 | i;
                        ring.push(0, || RawRecent {
                            end_ns: v,
                            duration_ns: v,
                            fingerprint: v,
                            outcome: v,
                        });
                    }
                })
            })
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
        let mut torn = None;
        while torn.is_none() && std::time::Instant::now() < deadline {
            torn = ring
                .read(2)
                .into_iter()
                .find(|e| e.duration_ns != e.end_ns || e.fingerprint != e.end_ns || e.outcome != e.end_ns);
        }
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(torn, None, "an entry mixing two statements was read");
    }

    #[test]
    fn outcomes_round_trip() {
        for outcome in [StatementOutcome::Ok, StatementOutcome::Cancelled]
            .into_iter()
            .chain(ErrorKind::ALL.iter().map(|k| StatementOutcome::Failed(*k)))
        {
            assert_eq!(StatementOutcome::from_code(outcome.code()), outcome);
        }
    }

    #[test]
    fn concurrent_writers_never_produce_torn_entries() {
        // One writer per part, as threads have their own stripes.
        let ring = std::sync::Arc::new(RecentRing::new(64, 2));
        let writers: Vec<_> = (0..2u64)
            .map(|t| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    for i in 0..50_000u64 {
                        let v = t * 1_000_000 + i;
                        let entry = RawRecent {
                            end_ns: v,
                            duration_ns: v,
                            fingerprint: v,
                            outcome: v % 3,
                        };
                        ring.push(t as usize, || entry);
                    }
                })
            })
            .collect();
        for _ in 0..200 {
            for e in ring.read(64) {
                assert_eq!(
                    (e.end_ns, e.fingerprint),
                    (e.duration_ns, e.duration_ns),
                    "torn entry {e:?}"
                );
            }
        }
        for w in writers {
            w.join().unwrap();
        }
    }
}
