//! Duplicate suppression: the same payload between the same source and destination
//! (address and port) seen again within a window is dropped. Kamailio traces the ACK of a
//! locally generated reply twice, microseconds apart; without this both end up stored.
//!
//! Memory is bounded: each shard keeps two time buckets of 64-bit fingerprints (the current
//! window and the previous one), each capped; a packet is a duplicate when its fingerprint is in
//! either. A fingerprint therefore lives between one and two windows, so every duplicate within
//! the window is caught and nothing older than two windows is remembered. When a bucket is full,
//! further packets of that window are let through (never wrongly dropped).

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Shards the fingerprint space so receive threads rarely contend on one lock.
const SHARDS: usize = 16;

/// The fingerprints are already uniformly distributed hashes: use them as they are.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type FingerprintSet = HashSet<u64, BuildHasherDefault<IdentityHasher>>;

struct Shard {
    started: Instant,
    current: FingerprintSet,
    previous: FingerprintSet,
}

/// A time-bucketed set of packet fingerprints, safe to share between receive threads.
pub struct Deduplicator {
    window: Duration,
    max_per_shard: usize,
    shards: Vec<Mutex<Shard>>,
}

impl std::fmt::Debug for Deduplicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deduplicator")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// The fingerprint of a packet: its payload and both endpoints.
pub fn fingerprint(src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16, payload: &[u8]) -> u64 {
    let mut addrs = [0u8; 36];
    write_ip(&mut addrs[..16], src);
    write_ip(&mut addrs[16..32], dst);
    addrs[32..34].copy_from_slice(&src_port.to_be_bytes());
    addrs[34..36].copy_from_slice(&dst_port.to_be_bytes());
    let seed = xxh3_64_with_seed(&addrs, 0x6865_7073_7461_636b);
    xxh3_64_with_seed(payload, seed)
}

fn write_ip(out: &mut [u8], ip: IpAddr) {
    let v6 = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    out.copy_from_slice(&v6.octets());
}

impl Deduplicator {
    /// A deduplicator for `window` remembering at most `max_entries` fingerprints per window.
    /// A zero window disables it ([`Deduplicator::is_duplicate`] is always false).
    pub fn new(window: Duration, max_entries: usize) -> Deduplicator {
        let now = Instant::now();
        let max_per_shard = max_entries.div_ceil(SHARDS).max(1);
        let shards = (0..if window.is_zero() { 0 } else { SHARDS })
            .map(|_| {
                Mutex::new(Shard {
                    started: now,
                    current: FingerprintSet::default(),
                    previous: FingerprintSet::default(),
                })
            })
            .collect();
        Deduplicator {
            window,
            max_per_shard,
            shards,
        }
    }

    /// Records the fingerprint seen at `now`; true when it was already seen within the window.
    pub fn is_duplicate(&self, fingerprint: u64, now: Instant) -> bool {
        if self.shards.is_empty() {
            return false;
        }
        // The low bits pick the shard; the set hashes on all bits.
        let shard = &self.shards[(fingerprint as usize) % SHARDS];
        let Ok(mut guard) = shard.lock() else {
            return false;
        };
        let shard = &mut *guard;
        let age = now.saturating_duration_since(shard.started);
        if age >= self.window {
            // Rotate, reusing the older bucket's allocation (its size is capped).
            std::mem::swap(&mut shard.current, &mut shard.previous);
            shard.current.clear();
            if age >= self.window * 2 {
                // Nothing seen in the last window: both buckets are stale.
                shard.previous.clear();
            }
            shard.started = now;
        }
        if shard.current.contains(&fingerprint) || shard.previous.contains(&fingerprint) {
            return true;
        }
        if shard.current.len() < self.max_per_shard {
            shard.current.insert(fingerprint);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn duplicates_within_window_only() {
        let d = Deduplicator::new(Duration::from_millis(500), 1000);
        let t0 = Instant::now();
        let f = fingerprint(ip("10.0.0.1"), 5060, ip("10.0.0.2"), 5060, b"ACK");
        assert!(!d.is_duplicate(f, t0));
        assert!(d.is_duplicate(f, t0 + Duration::from_micros(54)));
        assert!(d.is_duplicate(f, t0 + Duration::from_millis(499)));
        // Long after: forgotten.
        assert!(!d.is_duplicate(f, t0 + Duration::from_secs(5)));
    }

    #[test]
    fn fingerprint_covers_addresses_and_ports() {
        let a = fingerprint(ip("10.0.0.1"), 5060, ip("10.0.0.2"), 5060, b"x");
        assert_ne!(
            a,
            fingerprint(ip("10.0.0.1"), 5061, ip("10.0.0.2"), 5060, b"x")
        );
        assert_ne!(
            a,
            fingerprint(ip("10.0.0.3"), 5060, ip("10.0.0.2"), 5060, b"x")
        );
        assert_ne!(
            a,
            fingerprint(ip("10.0.0.1"), 5060, ip("10.0.0.2"), 5060, b"y")
        );
        assert_eq!(
            a,
            fingerprint(ip("10.0.0.1"), 5060, ip("10.0.0.2"), 5060, b"x")
        );
    }

    #[test]
    fn bounded_and_disabled() {
        let d = Deduplicator::new(Duration::from_secs(10), 16);
        let now = Instant::now();
        for i in 0..10_000u64 {
            d.is_duplicate(i.wrapping_mul(0x9e37_79b9_7f4a_7c15), now);
        }
        let total: usize = d
            .shards
            .iter()
            .map(|s| s.lock().expect("lock").current.len())
            .sum();
        assert!(total <= 16, "{total}");
        let off = Deduplicator::new(Duration::ZERO, 16);
        assert!(!off.is_duplicate(1, now));
        assert!(!off.is_duplicate(1, now));
    }
}
