//! Duplicate suppression: the same payload between the same source and destination
//! (address and port) captured again within a short window of *capture time* is dropped.
//! Kamailio traces the ACK of a locally generated reply twice, microseconds apart, and a
//! capture agent on a mirror port sees some packets twice; without this both copies are stored.
//!
//! The window is measured between the packets' own HEP timestamps, not their arrival: a SIP
//! retransmission carries the same bytes between the same endpoints, but is captured at least
//! T1 (500 ms by default) later and must be kept — it is what a troubleshooter looks for. A
//! capture replayed at full speed (`hepstack capture -r`) delivers such retransmissions
//! microseconds apart in wall-clock time, so arrival time cannot tell them apart.
//!
//! Memory is bounded: each shard keeps two wall-clock buckets of fingerprints (the current
//! horizon and the previous one), each capped, mapping a fingerprint to the capture time it was
//! last seen at. A fingerprint lives between one and two horizons ([`MEMORY_HORIZON`] or the
//! window, whichever is longer), so a duplicate delayed in transit by up to a horizon is still
//! caught. When a bucket is full, further packets are let through (never wrongly dropped).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Shards the fingerprint space so receive threads rarely contend on one lock.
const SHARDS: usize = 16;

/// How long (wall clock) a fingerprint is remembered at least: copies of one packet may reach
/// the collector this far apart (different agents, TCP queues, a spool replay on the sender).
pub const MEMORY_HORIZON: Duration = Duration::from_secs(2);

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

/// Fingerprint → capture time (µs since the epoch) it was last seen at.
type FingerprintMap = HashMap<u64, u64, BuildHasherDefault<IdentityHasher>>;

struct Shard {
    started: Instant,
    current: FingerprintMap,
    previous: FingerprintMap,
}

/// A time-bucketed set of packet fingerprints, safe to share between receive threads.
pub struct Deduplicator {
    /// Largest capture-time distance between two copies of one packet, in µs.
    window_us: u64,
    /// Wall-clock bucket length.
    horizon: Duration,
    max_per_shard: usize,
    shards: Vec<Mutex<Shard>>,
}

impl std::fmt::Debug for Deduplicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deduplicator")
            .field("window_us", &self.window_us)
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
    /// A deduplicator treating copies captured at most `window` apart as duplicates, remembering
    /// at most `max_entries` fingerprints per horizon. A zero window disables it
    /// ([`Deduplicator::is_duplicate`] is always false).
    pub fn new(window: Duration, max_entries: usize) -> Deduplicator {
        let now = Instant::now();
        let max_per_shard = max_entries.div_ceil(SHARDS).max(1);
        let shards = (0..if window.is_zero() { 0 } else { SHARDS })
            .map(|_| {
                Mutex::new(Shard {
                    started: now,
                    current: FingerprintMap::default(),
                    previous: FingerprintMap::default(),
                })
            })
            .collect();
        Deduplicator {
            window_us: u64::try_from(window.as_micros()).unwrap_or(u64::MAX),
            horizon: window.max(MEMORY_HORIZON),
            max_per_shard,
            shards,
        }
    }

    /// Records the fingerprint of a packet captured at `captured_us` (µs since the epoch) and
    /// received at `now`; true when a copy captured within the window was seen before.
    pub fn is_duplicate(&self, fingerprint: u64, captured_us: u64, now: Instant) -> bool {
        if self.shards.is_empty() {
            return false;
        }
        // The low bits pick the shard; the map hashes on all bits.
        let shard = &self.shards[(fingerprint as usize) % SHARDS];
        let Ok(mut guard) = shard.lock() else {
            return false;
        };
        let shard = &mut *guard;
        let age = now.saturating_duration_since(shard.started);
        if age >= self.horizon {
            // Rotate, reusing the older bucket's allocation (its size is capped).
            std::mem::swap(&mut shard.current, &mut shard.previous);
            shard.current.clear();
            if age >= self.horizon * 2 {
                // Nothing seen in the last horizon: both buckets are stale.
                shard.previous.clear();
            }
            shard.started = now;
        }
        let seen = shard
            .current
            .get(&fingerprint)
            .or_else(|| shard.previous.get(&fingerprint));
        if seen.is_some_and(|&at| at.abs_diff(captured_us) <= self.window_us) {
            return true;
        }
        // First copy, or a retransmission (same bytes, captured later): remember this one.
        if shard.current.len() < self.max_per_shard || shard.current.contains_key(&fingerprint) {
            shard.current.insert(fingerprint, captured_us);
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
    fn duplicates_within_capture_window_only() {
        let d = Deduplicator::new(Duration::from_millis(50), 1000);
        let t0 = Instant::now();
        let c0 = 1_700_000_000_000_000u64;
        let f = fingerprint(ip("10.0.0.1"), 5060, ip("10.0.0.2"), 5060, b"ACK");
        assert!(!d.is_duplicate(f, c0, t0));
        // Kamailio's doubled trace: 54 µs apart in capture time.
        assert!(d.is_duplicate(f, c0 + 54, t0 + Duration::from_micros(60)));
        // Delivered late (another agent, a TCP queue) but captured at the same moment.
        assert!(d.is_duplicate(f, c0 + 10, t0 + Duration::from_millis(1500)));
        // Long after in wall-clock time: forgotten.
        assert!(!d.is_duplicate(f, c0, t0 + Duration::from_secs(10)));
    }

    #[test]
    fn retransmissions_arriving_at_once_are_kept() {
        // A capture replayed at full speed: the INVITE and its retransmissions 500 ms, 1 s and
        // 2 s later (capture time) arrive within microseconds of each other.
        let d = Deduplicator::new(Duration::from_millis(50), 1000);
        let now = Instant::now();
        let c0 = 1_700_000_000_000_000u64;
        let f = fingerprint(ip("10.0.0.1"), 5060, ip("10.0.0.2"), 5060, b"INVITE");
        for offset_ms in [0u64, 500, 1500, 3500] {
            assert!(
                !d.is_duplicate(f, c0 + offset_ms * 1000, now),
                "{offset_ms}"
            );
            // ...each mirrored twice by Kamailio.
            assert!(
                d.is_duplicate(f, c0 + offset_ms * 1000 + 30, now),
                "{offset_ms}"
            );
        }
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
            d.is_duplicate(i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i, now);
        }
        let total: usize = d
            .shards
            .iter()
            .map(|s| s.lock().expect("lock").current.len())
            .sum();
        assert!(total <= 16, "{total}");
        let off = Deduplicator::new(Duration::ZERO, 16);
        assert!(!off.is_duplicate(1, 0, now));
        assert!(!off.is_duplicate(1, 0, now));
    }
}
