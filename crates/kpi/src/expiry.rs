//! Time-ordered expiry queues: what the tracker uses to find its timed-out transactions,
//! sessions and registrations, oldest first, without looking at the items that are not due.
//!
//! A queue holds `(deadline, key)` items in buckets of 2^20 µs (about a second) of deadline time, in a
//! `BTreeMap` keyed by bucket number. The number of buckets is bounded by the longest timeout
//! over the bucket width (a few thousand with the default two-hour dialog idle timeout), not
//! by the number of items, so pushing and popping cost the same with ten thousand items or
//! three million: a push appends to a bucket's vector, expiry drains whole buckets.
//!
//! Deletion is lazy. An item is a reminder to look at `key` at `deadline`; the owner keeps,
//! in each tracked entry, the deadline of the item that stands for it (`queued`) and ignores
//! any other. When an entry is touched its deadline moves later and nothing is pushed: when
//! its item comes due the owner finds the entry not due and pushes it again at its real
//! deadline (at most once per timeout period, however often it was touched). Only a deadline
//! that moves *earlier* (a state with a shorter timeout) pushes a new item at once. Items of
//! entries that were removed are dropped when they come due, or by [`TimeQueue::retain`],
//! which the owner calls once the queue has grown to twice its table (amortised O(1)).

use std::collections::{BTreeMap, VecDeque};

/// Width of a bucket of deadlines: 2^20 µs ≈ 1.05 s.
const BUCKET_SHIFT: u32 = 20;

fn bucket(deadline: i64) -> i64 {
    deadline >> BUCKET_SHIFT
}

/// Items `(deadline µs, key)` in buckets of deadline time.
#[derive(Debug, Default)]
pub(crate) struct TimeQueue {
    /// Each bucket in push order, which is nearly deadline order: the oldest leave first.
    buckets: BTreeMap<i64, VecDeque<(i64, u64)>>,
    len: usize,
}

impl TimeQueue {
    /// Reminds the owner of `key` at `deadline`.
    pub(crate) fn push(&mut self, deadline: i64, key: u64) {
        self.buckets
            .entry(bucket(deadline))
            .or_default()
            .push_back((deadline, key));
        self.len += 1;
    }

    /// Moves every item whose deadline is at or before `now` into `out` (cleared first), in
    /// bucket order. Buckets entirely before `now` are taken whole; in the bucket that holds
    /// `now`, only the due items are taken.
    pub(crate) fn take_due(&mut self, now: i64, out: &mut Vec<(i64, u64)>) {
        out.clear();
        let now_bucket = bucket(now);
        while let Some(mut entry) = self.buckets.first_entry() {
            let b = *entry.key();
            if b > now_bucket {
                break;
            }
            if b < now_bucket {
                let items = entry.remove();
                self.len -= items.len();
                out.extend(items);
                continue;
            }
            let items = entry.get_mut();
            let before = items.len();
            items.retain(|&(d, k)| {
                if d <= now {
                    out.push((d, k));
                    false
                } else {
                    true
                }
            });
            self.len -= before - items.len();
            if items.is_empty() {
                entry.remove();
            }
            break;
        }
    }

    /// Takes the first item of the earliest bucket: the oldest deadline, to the bucket's width
    /// and the order of pushes.
    pub(crate) fn pop_oldest(&mut self) -> Option<(i64, u64)> {
        let mut entry = self.buckets.first_entry()?;
        let item = entry.get_mut().pop_front();
        if entry.get().is_empty() {
            entry.remove();
        }
        if item.is_some() {
            self.len -= 1;
        }
        item
    }

    /// Keeps only the items for which `keep` holds (drops stale reminders).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(i64, u64) -> bool) {
        let mut len = 0;
        self.buckets.retain(|_, items| {
            items.retain(|&(d, k)| keep(d, k));
            len += items.len();
            !items.is_empty()
        });
        self.len = len;
    }

    /// Whether the queue has grown to hold more than twice `live` items plus some slack: time
    /// to [`TimeQueue::retain`] the live ones, a pass paid for by the pushes since the last.
    pub(crate) fn needs_compaction(&self, live: usize) -> bool {
        self.len > live.saturating_mul(2).saturating_add(4096)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUCKET_US: i64 = 1 << BUCKET_SHIFT;

    #[test]
    fn due_items_come_out_and_the_rest_stay() {
        let mut q = TimeQueue::default();
        for (d, k) in [
            (5, 1),
            (BUCKET_US + 3, 2),
            (BUCKET_US + 9, 3),
            (10 * BUCKET_US, 4),
        ] {
            q.push(d, k);
        }
        q.push(-7, 5);
        let mut out = Vec::new();
        q.take_due(BUCKET_US + 5, &mut out);
        out.sort();
        assert_eq!(out, vec![(-7, 5), (5, 1), (BUCKET_US + 3, 2)]);
        assert_eq!(q.len, 2);
        q.take_due(BUCKET_US + 5, &mut out);
        assert!(out.is_empty());
        assert_eq!(q.pop_oldest(), Some((BUCKET_US + 9, 3)));
        // Within a bucket, first pushed, first out.
        q.push(10 * BUCKET_US + 2, 6);
        q.push(10 * BUCKET_US + 1, 7);
        assert_eq!(q.pop_oldest(), Some((10 * BUCKET_US, 4)));
        assert_eq!(q.pop_oldest(), Some((10 * BUCKET_US + 2, 6)));
        q.push(10 * BUCKET_US, 4);
        q.retain(|_, k| k != 4 && k != 7);
        assert_eq!(q.len, 0);
        assert_eq!(q.pop_oldest(), None);
    }

    #[test]
    fn compaction_is_due_past_twice_the_live_items() {
        let mut q = TimeQueue::default();
        for k in 0..5000 {
            q.push(k, k as u64);
        }
        assert!(!q.needs_compaction(1000));
        assert!(q.needs_compaction(10));
    }
}
