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
//! Memory is bounded: each shard maps a fingerprint to the capture time it was last seen at
//! and the wall-clock horizon ([`MEMORY_HORIZON`] or the window, whichever is longer) it was
//! recorded in. A fingerprint lives between one and two horizons, so a duplicate delayed in
//! transit by up to a horizon is still caught. Each horizon records at most a capped number of
//! fingerprints; past the cap further packets are let through (never wrongly dropped).
//!
//! Why one map with horizon numbers rather than a map per horizon: a packet then costs one hash
//! probe instead of two or three. At 130k packets/s the maps hold a few hundred thousand
//! fingerprints, far beyond the CPU caches, so each probe is a cache miss; the two-map version
//! took 3 % of the collector's CPU. Expired fingerprints are swept once per horizon, a
//! sequential pass.

use std::collections::hash_map::Entry;
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

/// What is remembered of a fingerprint.
#[derive(Clone, Copy)]
struct Sighting {
    /// Capture time (µs since the epoch) it was last recorded with.
    captured_us: u64,
    /// The shard's horizon number it was recorded in.
    horizon: u64,
}

/// Fingerprint → its last recorded sighting.
type FingerprintMap = HashMap<u64, Sighting, BuildHasherDefault<IdentityHasher>>;

struct Shard {
    /// Wall-clock start of the current horizon.
    started: Instant,
    /// Number of the current horizon; sightings of it and of the one before are live.
    horizon: u64,
    /// Fingerprints recorded in the current horizon (the capped quantity).
    recorded_now: usize,
    seen: FingerprintMap,
}

impl Shard {
    /// Starts a new horizon at `now`, forgetting what is two horizons old.
    fn rotate(&mut self, now: Instant, idle: bool) {
        if idle {
            // Nothing recorded in the last horizon: every sighting is stale.
            self.seen.clear();
        } else {
            let current = self.horizon;
            self.seen.retain(|_, s| s.horizon == current);
        }
        self.horizon += 1;
        self.recorded_now = 0;
        self.started = now;
    }
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
                    horizon: 0,
                    recorded_now: 0,
                    seen: FingerprintMap::default(),
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
            shard.rotate(now, age >= self.horizon * 2);
        }
        let current = shard.horizon;
        let window_us = self.window_us;
        let at_cap = shard.recorded_now >= self.max_per_shard;
        match shard.seen.entry(fingerprint) {
            Entry::Occupied(mut seen) => {
                // Every sighting in the map is live: a rotation drops those two horizons old.
                let s = *seen.get();
                if s.captured_us.abs_diff(captured_us) <= window_us {
                    return true;
                }
                // A retransmission (same bytes, captured later): remember this one.
                if s.horizon == current || !at_cap {
                    if s.horizon != current {
                        shard.recorded_now += 1;
                    }
                    seen.insert(Sighting {
                        captured_us,
                        horizon: current,
                    });
                }
            }
            Entry::Vacant(slot) => {
                if !at_cap {
                    shard.recorded_now += 1;
                    slot.insert(Sighting {
                        captured_us,
                        horizon: current,
                    });
                }
            }
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

    /// Fingerprints the shards hold, of this horizon and the last.
    fn remembered(d: &Deduplicator) -> usize {
        d.shards
            .iter()
            .map(|s| s.lock().expect("lock").seen.len())
            .sum()
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
            .map(|s| s.lock().expect("lock").recorded_now)
            .sum();
        assert!(total <= 16, "{total}");
        assert!(remembered(&d) <= 16, "{}", remembered(&d));
        // A new horizon records again, and still knows what the previous one recorded.
        let later = now + MEMORY_HORIZON + Duration::from_millis(1);
        let known: Vec<(u64, u64)> = d
            .shards
            .iter()
            .flat_map(|s| {
                s.lock()
                    .expect("lock")
                    .seen
                    .iter()
                    .map(|(f, s)| (*f, s.captured_us))
                    .collect::<Vec<_>>()
            })
            .collect();
        for i in 20_000..30_000u64 {
            d.is_duplicate(i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i, later);
        }
        for (f, at) in &known {
            assert!(
                d.is_duplicate(*f, *at, later),
                "forgot {f:x} one horizon later"
            );
        }
        assert!(remembered(&d) <= 32, "{}", remembered(&d));
        let off = Deduplicator::new(Duration::ZERO, 16);
        assert!(!off.is_duplicate(1, 0, now));
        assert!(!off.is_duplicate(1, 0, now));
    }
}
