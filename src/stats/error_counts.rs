//! Exact counts of errors by time, class and SQLSTATE, next to the error
//! store's bounded records: the totals a report and a chart show come
//! from here, so that a storm of more errors than the store keeps is
//! counted whole.
//!
//! Per second for the last hour (the grain of the charts), per minute for
//! the last day (the longest report window), and since the last reset.
//! Each bucket holds one count per distinct (class, SQLSTATE) in it, so a
//! storm of one error costs one entry a second whatever its rate.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::classify::{ErrorKind, SqlStateCode};

/// Distinct (class, SQLSTATE) pairs counted since the reset; later ones
/// are counted under their class with no SQLSTATE.
const MAX_PAIRS: usize = 512;

type Pair = (ErrorKind, Option<SqlStateCode>);

/// One bucket: its start (seconds or minutes since the Unix epoch) and its
/// counts.
struct Bucket {
    at: u64,
    counts: Vec<(Pair, u64)>,
}

impl Bucket {
    fn add(&mut self, pair: Pair, n: u64) {
        match self.counts.iter_mut().find(|(p, _)| *p == pair) {
            Some((_, count)) => *count += n,
            None => self.counts.push((pair, n)),
        }
    }
}

#[derive(Default)]
pub(crate) struct ErrorCounts {
    seconds: VecDeque<Bucket>,
    /// The per-second buckets hold every error from this second on.
    seconds_from: u64,
    minutes: VecDeque<Bucket>,
    total: HashMap<Pair, u64>,
}

/// Exact counts over a window.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Counted {
    pub(crate) errors: u64,
    pub(crate) by_type: BTreeMap<String, u64>,
    pub(crate) by_sqlstate: BTreeMap<String, u64>,
}

/// Adds to the bucket of `at`, dropping buckets `keep` or more older;
/// the start of the newest one dropped, if any.
fn add_to(buckets: &mut VecDeque<Bucket>, at: u64, pair: Pair, n: u64, keep: u64) -> Option<u64> {
    match buckets.back_mut() {
        Some(last) if last.at == at => last.add(pair, n),
        // A clock that stepped back adds to the newest bucket.
        Some(last) if last.at > at => last.add(pair, n),
        _ => {
            let mut bucket = Bucket { at, counts: Vec::new() };
            bucket.add(pair, n);
            buckets.push_back(bucket);
        }
    }
    let mut dropped = None;
    while buckets.front().is_some_and(|b| b.at + keep <= at) {
        dropped = buckets.pop_front().map(|b| b.at);
    }
    dropped
}

impl ErrorCounts {
    /// Counts one error at `at_unix_ms`.
    pub(crate) fn add(&mut self, at_unix_ms: u64, kind: ErrorKind, sqlstate: Option<SqlStateCode>) {
        let pair = if self.total.len() < MAX_PAIRS || self.total.contains_key(&(kind, sqlstate)) {
            (kind, sqlstate)
        } else {
            (kind, None)
        };
        *self.total.entry(pair).or_insert(0) += 1;
        let second = at_unix_ms / 1000;
        if let Some(dropped) = add_to(&mut self.seconds, second, pair, 1, 3600) {
            self.seconds_from = dropped + 1;
        }
        add_to(&mut self.minutes, second / 60, pair, 1, 24 * 60);
    }

    /// The counts since `since_unix_ms` (everything since the reset when
    /// `None`): from the seconds within the last hour, from the minutes
    /// past it.
    pub(crate) fn over(&self, since_unix_ms: Option<u64>) -> Counted {
        let mut counted = Counted::default();
        let mut add = |(kind, sqlstate): &Pair, n: u64| {
            counted.errors += n;
            *counted.by_type.entry(kind.as_str().to_owned()).or_insert(0) += n;
            if let Some(code) = sqlstate {
                *counted.by_sqlstate.entry(code.as_str().to_owned()).or_insert(0) += n;
            }
        };
        let Some(since) = since_unix_ms else {
            for (pair, &n) in &self.total {
                add(pair, n);
            }
            return counted;
        };
        let since_second = since / 1000;
        let (buckets, from) = if since_second >= self.seconds_from {
            (&self.seconds, since_second)
        } else {
            // Past the seconds kept: whole minutes (the first one may start
            // up to a minute before `since`).
            (&self.minutes, since_second / 60)
        };
        for bucket in buckets.iter().filter(|b| b.at >= from) {
            for (pair, n) in &bucket.counts {
                add(pair, *n);
            }
        }
        counted
    }

    /// Per second since `since_unix_ms` (within the last hour): the
    /// second's start in Unix milliseconds, the class and the count.
    pub(crate) fn by_second(&self, since_unix_ms: u64) -> Vec<(u64, ErrorKind, u64)> {
        let since = since_unix_ms / 1000;
        self.seconds
            .iter()
            .filter(|b| b.at >= since)
            .flat_map(|b| b.counts.iter().map(move |((kind, _), n)| (b.at * 1000, *kind, *n)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GONE: ErrorKind = ErrorKind::ConnectionFailure;
    const UNIQUE: ErrorKind = ErrorKind::ConstraintViolation;

    fn code(c: &str) -> Option<SqlStateCode> {
        SqlStateCode::new(c)
    }

    #[test]
    fn a_storm_is_counted_whole_in_few_buckets() {
        let mut counts = ErrorCounts::default();
        let start = 1_800_000_000_000;
        for i in 0..8401u64 {
            counts.add(start + i, UNIQUE, code("23505"));
        }
        counts.add(start + 9000, GONE, None);
        let all = counts.over(None);
        assert_eq!(all.errors, 8402);
        assert_eq!(all.by_type["constraint_violation"], 8401);
        assert_eq!(all.by_sqlstate["23505"], 8401);
        assert_eq!(counts.over(Some(start)).errors, 8402);
        assert_eq!(
            counts.over(Some(start + 8000)).errors,
            402,
            "from the second of 8000 on"
        );
        assert!(counts.seconds.len() <= 10, "one bucket a second");
        let per_second: u64 = counts.by_second(start).iter().map(|(_, _, n)| n).sum();
        assert_eq!(per_second, 8402);
    }

    #[test]
    fn past_an_hour_the_minutes_answer_and_a_day_is_kept() {
        let mut counts = ErrorCounts::default();
        let start = 1_800_000_000_000u64;
        // One error a minute for three hours.
        for m in 0..180u64 {
            counts.add(start + m * 60_000, GONE, None);
        }
        let now = start + 179 * 60_000;
        assert!(counts.seconds.len() <= 61, "an hour of seconds");
        assert_eq!(counts.over(Some(now - 2 * 3600 * 1000)).errors, 121);
        assert_eq!(counts.over(Some(now - 10 * 60 * 1000)).errors, 11);
        assert_eq!(counts.over(None).errors, 180);
    }
}
