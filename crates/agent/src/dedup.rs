//! The duplicate filter: the same packet seen twice within a short window is dropped.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use capture::Timestamp;

/// Remembers packet hashes for `window` of packet time, at most `max_entries` of them.
#[derive(Debug)]
pub struct Dedup {
    window: Duration,
    max_entries: usize,
    /// Hash → time last seen.
    seen: HashMap<u64, Timestamp>,
    /// Arrival order, for expiry; an entry is stale when `seen` holds a later time for its hash.
    order: VecDeque<(u64, Timestamp)>,
}

impl Dedup {
    /// A filter; a zero window disables it.
    pub fn new(window: Duration, max_entries: usize) -> Self {
        Dedup {
            window,
            max_entries: max_entries.max(1),
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether `hash` was seen within the window before `now`; records it either way.
    pub fn is_duplicate(&mut self, hash: u64, now: Timestamp) -> bool {
        if self.window.is_zero() {
            return false;
        }
        self.expire(now);
        let duplicate = self
            .seen
            .get(&hash)
            .is_some_and(|&t| now.saturating_since(t) <= self.window && now >= t);
        self.seen.insert(hash, now);
        self.order.push_back((hash, now));
        while self.order.len() > self.max_entries {
            self.pop_front();
        }
        duplicate
    }

    /// Entries held (bounded by `max_entries`).
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn expire(&mut self, now: Timestamp) {
        while let Some(&(_, t)) = self.order.front() {
            if now.saturating_since(t) <= self.window {
                break;
            }
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some((hash, t)) = self.order.pop_front() {
            if self.seen.get(&hash) == Some(&t) {
                self.seen.remove(&hash);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: i64) -> Timestamp {
        Timestamp::from_micros(n * 1000)
    }

    #[test]
    fn drops_within_window_only() {
        let mut d = Dedup::new(Duration::from_millis(50), 100);
        assert!(!d.is_duplicate(1, ms(0)));
        assert!(d.is_duplicate(1, ms(10)));
        assert!(!d.is_duplicate(2, ms(20)));
        // 500 ms later: a SIP retransmission, not a duplicate.
        assert!(!d.is_duplicate(1, ms(510)));
        assert!(d.len() <= 2);
    }

    #[test]
    fn disabled_and_bounded() {
        let mut off = Dedup::new(Duration::ZERO, 10);
        assert!(!off.is_duplicate(1, ms(0)));
        assert!(!off.is_duplicate(1, ms(0)));
        let mut d = Dedup::new(Duration::from_secs(60), 8);
        for i in 0..1000 {
            d.is_duplicate(i, ms(i as i64));
        }
        assert_eq!(d.len(), 8);
        assert!(d.seen.len() <= 8);
    }
}
