//! A log-linear latency histogram: 256 buckets over microseconds, eight per
//! power of two, so that a bucket's midpoint is within 6.25% of any value in
//! it. Values from 0 to 7 µs have a bucket each; the last bucket holds
//! everything from about 4.3 hours up.
//!
//! Chosen over hdrhistogram because the hot path only increments one
//! counter in a fixed array (no allocation, no resizing), the arrays merge
//! by addition, and 256 four-byte counters fit in one kilobyte.

use std::time::Duration;

/// Buckets per histogram.
pub(crate) const BUCKETS: usize = 256;

/// The bucket of a duration.
#[inline]
pub(crate) fn bucket_of(nanos: u64) -> usize {
    let us = nanos / 1000;
    if us < 8 {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros() as usize; // floor(log2), at least 3
    let sub = ((us >> (exp - 3)) & 7) as usize;
    (8 + (exp - 3) * 8 + sub).min(BUCKETS - 1)
}

/// The smallest value of bucket `index`, in microseconds.
fn lower_us(index: usize) -> u64 {
    if index < 8 {
        return index as u64;
    }
    let exp = (index - 8) / 8 + 3;
    let sub = ((index - 8) % 8) as u64;
    (8 + sub) << (exp - 3)
}

/// A bucket's representative value: the middle of its range.
fn middle(index: usize) -> Duration {
    let low = lower_us(index);
    let high = if index + 1 < BUCKETS {
        lower_us(index + 1)
    } else {
        low * 2
    };
    Duration::from_nanos((low + high) * 500)
}

/// Counts per bucket, dense, for merging and reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
        }
    }
}

impl Histogram {
    pub(crate) fn add(&mut self, index: usize, count: u64) {
        self.counts[index] += count;
        self.total += count;
    }

    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.total
    }

    /// Values in buckets whose middle is at most `limit` (so within the
    /// buckets' 6.25%).
    pub(crate) fn count_at_most(&self, limit: Duration) -> u64 {
        self.counts
            .iter()
            .enumerate()
            .take_while(|(i, _)| middle(*i) <= limit)
            .map(|(_, c)| c)
            .sum()
    }

    /// The non-empty buckets, for compact storage.
    pub(crate) fn sparse(&self) -> Vec<(u8, u32)> {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| (i as u8, u32::try_from(*c).unwrap_or(u32::MAX)))
            .collect()
    }

    pub(crate) fn add_sparse(&mut self, sparse: &[(u8, u32)]) {
        for (i, c) in sparse {
            self.add(usize::from(*i), u64::from(*c));
        }
    }

    /// The value at quantile `q` (0 to 1): the middle of the bucket holding
    /// the `ceil(q * count)`-th value, clamped to `[min, max]` when known.
    pub(crate) fn quantile(&self, q: f64, min: Option<Duration>, max: Option<Duration>) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        let index = self.counts.iter().position(|c| {
            seen += c;
            seen >= rank
        })?;
        let mut value = middle(index);
        if let Some(min) = min {
            value = value.max(min);
        }
        if let Some(max) = max {
            value = value.min(max);
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_cover_every_value() {
        let mut previous = 0;
        for us in 0..200_000u64 {
            let b = bucket_of(us * 1000);
            assert!(b >= previous, "{us} µs");
            assert!(lower_us(b) <= us, "{us} µs in bucket {b} starting at {}", lower_us(b));
            if b + 1 < BUCKETS {
                assert!(us < lower_us(b + 1), "{us} µs");
            }
            previous = b;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_of(999), 0);
    }

    #[test]
    fn a_bucket_middle_is_within_6_25_percent() {
        for us in [8u64, 9, 100, 1_234, 99_999, 2_000_000, 3_600_000_000] {
            let m = middle(bucket_of(us * 1000)).as_secs_f64() * 1e6;
            let err = (m - us as f64).abs() / us as f64;
            assert!(err <= 0.0625 + 1e-9, "{us} µs → {m} ({err})");
        }
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut h = Histogram::default();
        // 1..=1000 ms, one each.
        for ms in 1..=1000u64 {
            h.add(bucket_of(ms * 1_000_000), 1);
        }
        for (q, expected_ms) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0)] {
            let got = h.quantile(q, None, None).unwrap().as_secs_f64() * 1e3;
            assert!((got - expected_ms).abs() / expected_ms <= 0.0625, "p{q}: {got}");
        }
        let max = Duration::from_millis(1000);
        assert!(h.quantile(1.0, None, Some(max)).unwrap() <= max);
        assert_eq!(Histogram::default().quantile(0.5, None, None), None);
    }

    #[test]
    fn counts_at_most_a_limit() {
        let mut h = Histogram::default();
        for ms in [1u64, 10, 100, 1000] {
            h.add(bucket_of(ms * 1_000_000), 1);
        }
        assert_eq!(h.count_at_most(Duration::from_millis(50)), 2);
        assert_eq!(h.count_at_most(Duration::from_secs(10)), 4);
        assert_eq!(h.count_at_most(Duration::ZERO), 0);
    }

    #[test]
    fn sparse_round_trips_and_merges_add() {
        let mut a = Histogram::default();
        a.add(3, 2);
        a.add(200, 5);
        let mut b = Histogram::default();
        b.add_sparse(&a.sparse());
        assert_eq!(a, b);
        b.merge(&a);
        assert_eq!((b.count(), b.sparse()), (14, vec![(3, 4), (200, 10)]));
    }

    proptest::proptest! {
        #[test]
        fn every_duration_falls_in_the_bucket_whose_range_holds_it(
            // Log-uniform up to about five hours, past which the top bucket
            // takes everything; and any value at all.
            exp in 0u32..44,
            bits in proptest::num::u64::ANY,
            any in proptest::num::u64::ANY,
        ) {
            for nanos in [(1u64 << exp) | (bits & ((1u64 << exp) - 1)), any] {
                let b = bucket_of(nanos);
                let us = nanos / 1000;
                proptest::prop_assert!(b < BUCKETS);
                proptest::prop_assert!(lower_us(b) <= us, "{us} µs below bucket {b}");
                proptest::prop_assert!(b == BUCKETS - 1 || us < lower_us(b + 1), "{us} µs past bucket {b}");
            }
        }
    }
}
