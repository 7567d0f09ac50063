//! A bounded ring: the newest `capacity` items, and how many were pushed out.

use std::collections::VecDeque;

pub(crate) struct Ring<T> {
    items: VecDeque<T>,
    capacity: usize,
    evicted: u64,
    /// Items ever pushed, never reset: the sequence number of the next one.
    pushed: u64,
}

impl<T> Ring<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Ring {
            items: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
            evicted: 0,
            pushed: 0,
        }
    }

    /// Adds `item`, pushing out the oldest when full (a capacity of zero
    /// keeps nothing).
    pub(crate) fn push(&mut self, item: T) {
        self.pushed += 1;
        if self.capacity == 0 {
            self.evicted += 1;
            return;
        }
        if self.items.len() == self.capacity {
            self.items.pop_front();
            self.evicted += 1;
        }
        self.items.push_back(item);
    }

    /// Oldest first.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.items.iter()
    }

    /// Items pushed out since creation or the last `clear`.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The sequence number the next item will get (items are numbered
    /// from 0 in push order; [`clear`](Self::clear) does not renumber).
    pub(crate) fn next_seq(&self) -> u64 {
        self.pushed
    }

    /// The items numbered `seq` and later that are still held, oldest
    /// first, and how many of those numbers are no longer held.
    pub(crate) fn since(&self, seq: u64) -> (u64, impl Iterator<Item = &T>) {
        let first = self.pushed - self.items.len() as u64;
        let missed = first.saturating_sub(seq);
        let skip = usize::try_from(seq.saturating_sub(first)).unwrap_or(usize::MAX);
        (missed, self.items.iter().skip(skip))
    }

    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.evicted = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_counts_the_rest() {
        let mut ring = Ring::new(3);
        (0..5).for_each(|i| ring.push(i));
        assert_eq!(ring.iter().copied().collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(ring.evicted(), 2);
        let mut none = Ring::new(0);
        none.push(1);
        assert_eq!((none.iter().count(), none.evicted()), (0, 1));
        ring.clear();
        assert_eq!((ring.iter().count(), ring.evicted()), (0, 0));
    }

    #[test]
    fn since_reads_by_sequence_number_across_evictions_and_clears() {
        let mut ring = Ring::new(3);
        (0..5).for_each(|i| ring.push(i));
        assert_eq!(ring.next_seq(), 5);
        let (missed, items) = ring.since(0);
        assert_eq!((missed, items.copied().collect::<Vec<_>>()), (2, vec![2, 3, 4]));
        let (missed, items) = ring.since(3);
        assert_eq!((missed, items.copied().collect::<Vec<_>>()), (0, vec![3, 4]));
        let (missed, items) = ring.since(5);
        assert_eq!((missed, items.count()), (0, 0));
        ring.clear();
        ring.push(5);
        let (missed, items) = ring.since(4);
        assert_eq!((missed, items.copied().collect::<Vec<_>>()), (1, vec![5]));
    }
}
