//! B2BUA leg links: which call a leg's Call-ID belongs to, learned from the SIP that passes.
//!
//! A balance group with a `key_header` (e.g. `X-CID`) hashes a B-leg's SIP by that header, the
//! A-leg's Call-ID. The B-leg's RTCP, QoS reports and logs carry the B-leg's own Call-ID as
//! correlation id, and so do the B-leg's responses from the far end (which do not echo the
//! header). [`LegLinks`] remembers `B-leg Call-ID → A-leg key` whenever a SIP message carries
//! both, so those packets can be hashed on the call's key and land on the call's member.
//!
//! Memory is bounded: at most `capacity` links (the least recently used one is evicted,
//! counted, when a new one arrives at a full table) of at most [`MAX_ID_BYTES`] per id, and a
//! link not used for `idle` is forgotten. The table is split into shards, each behind its own
//! lock, so the receive threads rarely wait for each other.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hashlink::LinkedHashMap;
use xxhash_rust::xxh3::xxh3_64;

/// Longest Call-ID or key (bytes) that is learned; longer ones are not linked, which bounds
/// the memory a hostile sender can make a link take.
pub const MAX_ID_BYTES: usize = 256;

const SHARDS: usize = 16;

struct Link {
    call: Box<[u8]>,
    used: Instant,
}

/// One shard: links in least-recently-used order (front = oldest).
type Shard = LinkedHashMap<Box<[u8]>, Link>;

/// The links of one balance group.
pub(crate) struct LegLinks {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    idle: Duration,
    /// Links learned (new leg, or a leg that moved to another call).
    pub(crate) learned: AtomicU64,
    /// Packets hashed on their call's key through a link.
    pub(crate) followed: AtomicU64,
    /// Links evicted because the table was full.
    pub(crate) evicted_full: AtomicU64,
    /// Links forgotten after `idle` without use.
    pub(crate) evicted_idle: AtomicU64,
}

impl std::fmt::Debug for LegLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegLinks")
            .field("capacity", &self.capacity())
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

impl LegLinks {
    /// A table of at most `capacity` links (rounded up to a multiple of the shard count)
    /// forgetting links unused for `idle`.
    pub(crate) fn new(capacity: usize, idle: Duration) -> LegLinks {
        LegLinks {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            idle,
            learned: AtomicU64::new(0),
            followed: AtomicU64::new(0),
            evicted_full: AtomicU64::new(0),
            evicted_idle: AtomicU64::new(0),
        }
    }

    /// Most links held.
    pub(crate) fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    /// Whether this table was built with these limits (a reload keeps it then).
    pub(crate) fn has_limits(&self, capacity: usize, idle: Duration) -> bool {
        self.per_shard == capacity.div_ceil(SHARDS).max(1) && self.idle == idle
    }

    fn shard(&self, leg: &[u8]) -> MutexGuard<'_, Shard> {
        // The low bits of a 64-bit hash pick the shard; SHARDS is a power of two.
        let i = (xxh3_64(leg) as usize) & (SHARDS - 1);
        match self.shards[i].lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Records that the leg with Call-ID `leg` belongs to the call keyed `call`.
    pub(crate) fn learn(&self, leg: &[u8], call: &[u8], now: Instant) {
        if leg == call || leg.len() > MAX_ID_BYTES || call.len() > MAX_ID_BYTES {
            return;
        }
        let mut shard = self.shard(leg);
        if let Some(link) = shard.to_back(leg) {
            link.used = now;
            if *link.call != *call {
                link.call = call.into();
                self.learned.fetch_add(1, Relaxed);
            }
            return;
        }
        // Idle links sit at the front: drop them before counting the table as full.
        while shard
            .front()
            .is_some_and(|(_, l)| now.saturating_duration_since(l.used) >= self.idle)
        {
            shard.pop_front();
            self.evicted_idle.fetch_add(1, Relaxed);
        }
        if shard.len() >= self.per_shard {
            shard.pop_front();
            self.evicted_full.fetch_add(1, Relaxed);
        }
        shard.insert(
            leg.into(),
            Link {
                call: call.into(),
                used: now,
            },
        );
        self.learned.fetch_add(1, Relaxed);
    }

    /// The call key the leg `leg` belongs to, if a live link says so; using a link keeps it
    /// alive (a call sending reports is still going).
    pub(crate) fn resolve(&self, leg: &[u8], now: Instant) -> Option<Vec<u8>> {
        if leg.len() > MAX_ID_BYTES {
            return None;
        }
        let mut shard = self.shard(leg);
        let link = shard.to_back(leg)?;
        if now.saturating_duration_since(link.used) >= self.idle {
            shard.remove(leg);
            self.evicted_idle.fetch_add(1, Relaxed);
            return None;
        }
        link.used = now;
        self.followed.fetch_add(1, Relaxed);
        Some(link.call.to_vec())
    }

    /// Links held now.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| match s.lock() {
                Ok(g) => g.len(),
                Err(poisoned) => poisoned.into_inner().len(),
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_learned_legs_and_not_others() {
        let links = LegLinks::new(100, Duration::from_secs(60));
        let now = Instant::now();
        links.learn(b"b-leg", b"a-leg", now);
        assert_eq!(links.resolve(b"b-leg", now).as_deref(), Some(&b"a-leg"[..]));
        assert_eq!(links.resolve(b"a-leg", now), None);
        assert_eq!(links.resolve(b"other", now), None);
        // A leg equal to its key is no link.
        links.learn(b"a-leg", b"a-leg", now);
        assert_eq!(links.len(), 1);
        assert_eq!(links.learned.load(Relaxed), 1);
        assert_eq!(links.followed.load(Relaxed), 1);
    }

    #[test]
    fn a_leg_that_moves_to_another_call_follows_it() {
        let links = LegLinks::new(100, Duration::from_secs(60));
        let now = Instant::now();
        links.learn(b"b", b"a1", now);
        links.learn(b"b", b"a1", now);
        assert_eq!(links.learned.load(Relaxed), 1);
        links.learn(b"b", b"a2", now);
        assert_eq!(links.resolve(b"b", now).as_deref(), Some(&b"a2"[..]));
        assert_eq!(links.learned.load(Relaxed), 2);
        assert_eq!(links.len(), 1);
    }

    #[test]
    fn idle_links_are_forgotten_and_use_keeps_them() {
        let idle = Duration::from_secs(10);
        let links = LegLinks::new(100, idle);
        let t0 = Instant::now();
        links.learn(b"used", b"call-1", t0);
        links.learn(b"unused", b"call-2", t0);
        let t1 = t0 + Duration::from_secs(6);
        assert!(links.resolve(b"used", t1).is_some());
        let t2 = t0 + Duration::from_secs(12);
        assert!(links.resolve(b"used", t2).is_some(), "use refreshed it");
        assert_eq!(links.resolve(b"unused", t2), None);
        assert_eq!(links.evicted_idle.load(Relaxed), 1);
        assert_eq!(links.len(), 1);
    }

    #[test]
    fn the_table_never_grows_past_its_capacity() {
        let links = LegLinks::new(64, Duration::from_secs(3600));
        let now = Instant::now();
        for i in 0..10_000u32 {
            links.learn(format!("leg-{i}").as_bytes(), b"call", now);
        }
        assert!(links.len() <= links.capacity(), "{}", links.len());
        assert_eq!(links.capacity(), 64);
        assert_eq!(
            links.evicted_full.load(Relaxed),
            10_000 - links.len() as u64
        );
        // The most recent links are the ones kept.
        assert!(links.resolve(b"leg-9999", now).is_some());
        assert!(links.resolve(b"leg-0", now).is_none());
    }

    #[test]
    fn oversized_ids_are_not_linked() {
        let links = LegLinks::new(64, Duration::from_secs(3600));
        let now = Instant::now();
        let long = vec![b'x'; MAX_ID_BYTES + 1];
        links.learn(&long, b"call", now);
        links.learn(b"leg", &long, now);
        assert_eq!(links.len(), 0);
        assert_eq!(links.resolve(&long, now), None);
    }
}
