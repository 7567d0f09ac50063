//! A bounded ring: the newest `capacity` items, and how many were pushed out.

use std::collections::VecDeque;

pub(crate) struct Ring<T> {
    items: VecDeque<T>,
    capacity: usize,
    evicted: u64,
}

impl<T> Ring<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Ring {
            items: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
            evicted: 0,
        }
    }

    /// Adds `item`, pushing out the oldest when full (a capacity of zero
    /// keeps nothing).
    pub(crate) fn push(&mut self, item: T) {
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
}
