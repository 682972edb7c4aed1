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
//! Memory is bounded: each shard remembers a fingerprint with the capture time it was last
//! seen at and the wall-clock horizon ([`MEMORY_HORIZON`] or the window, whichever is longer)
//! it was recorded in. A fingerprint lives between one and two horizons, so a duplicate delayed
//! in transit by up to a horizon is still caught. Each horizon records at most a capped number
//! of fingerprints; past the cap further packets are let through (never wrongly dropped).
//!
//! Why a table of our own ([`FingerprintTable`]) rather than a `HashMap`: at 130k packets/s the
//! shards hold a few hundred thousand fingerprints, far beyond the CPU caches, so every probe
//! misses. A `HashMap` keeps its control bytes and its entries in two arrays, two misses per
//! packet (and the shard's unlock waited for the second); the map version took 5 % of the
//! collector's CPU. Here a probe reads one 64-byte bucket of four 16-byte slots. Expiry is lazy:
//! a slot whose horizon is over is free for the next insert, and the table is rebuilt from its
//! live slots only when too many slots have been used, instead of a sweep at every horizon.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Shards the fingerprint space so receive threads rarely contend on one lock.
const SHARDS: usize = 16;

/// How long (wall clock) a fingerprint is remembered at least: copies of one packet may reach
/// the collector this far apart (different agents, TCP queues, a spool replay on the sender).
pub const MEMORY_HORIZON: Duration = Duration::from_secs(2);

/// Bits of a slot's `sighting` that hold the capture time. HEP carries capture times as 32-bit
/// seconds and microseconds, so every one fits: (2³² − 1) · 10⁶ + (2³² − 1) < 2⁵².
const TIME_BITS: u32 = 52;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;
/// The horizon number is kept modulo 2¹² in the bits above the time. A table is rebuilt (which
/// drops every expired slot) at least every [`REBUILD_EVERY_HORIZONS`] horizons, so a slot
/// left from 4,096 horizons ago can never pass for a live one.
const TAG_MASK: u64 = (1 << (64 - TIME_BITS)) - 1;
const REBUILD_EVERY_HORIZONS: u64 = 2048;

/// A remembered fingerprint. `fingerprint == 0` marks a slot never used since the last rebuild
/// (a fingerprint that hashes to 0 is stored as 1).
#[derive(Clone, Copy, Default)]
struct Slot {
    fingerprint: u64,
    /// `horizon tag << 52 | capture time in µs`.
    sighting: u64,
}

impl Slot {
    fn captured_us(self) -> u64 {
        self.sighting & TIME_MASK
    }

    fn tag(self) -> u64 {
        self.sighting >> TIME_BITS
    }
}

fn sighting(captured_us: u64, horizon: u64) -> u64 {
    ((horizon & TAG_MASK) << TIME_BITS) | captured_us.min(TIME_MASK)
}

/// Four slots in one cache line: a probe costs one memory access.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Bucket([Slot; 4]);

/// Smallest table, in buckets (a shard that sees little traffic stays at 4 KiB).
const MIN_BUCKETS: usize = 64;

/// What a probe found for a fingerprint.
enum Probe {
    /// A live slot holds it: (bucket, slot).
    Live(usize, usize),
    /// It is not remembered; the first free slot (expired or never used) on its probe path.
    Absent(usize, usize),
}

/// Open addressing over buckets, linear probing. A slot is live while its horizon is the
/// current one or the one before; expired slots are reused by inserts, and lookups go past
/// them (an expired slot never becomes "never used" again, so probe paths stay intact) up to
/// the first never-used slot. The table is rebuilt from its live slots once more than 3/4 of
/// its slots have been used, so a probe always ends.
struct FingerprintTable {
    /// A power of two in length.
    buckets: Vec<Bucket>,
    /// Slots used (live or expired) since the last rebuild.
    used: usize,
    /// The horizon of the last rebuild.
    rebuilt_at: u64,
    /// Random per table: fingerprints are hashes anyone can compute (the seed of
    /// [`fingerprint`] is fixed), so the bucket is taken from a salted mix of them, lest
    /// crafted packets pile up in one probe path.
    salt: u64,
}

impl FingerprintTable {
    fn new(horizon: u64, salt: u64) -> FingerprintTable {
        FingerprintTable {
            buckets: vec![Bucket::default(); MIN_BUCKETS],
            used: 0,
            rebuilt_at: horizon,
            salt,
        }
    }

    fn is_live(slot: Slot, horizon: u64) -> bool {
        let tag = slot.tag();
        slot.fingerprint != 0
            && (tag == horizon & TAG_MASK || tag == horizon.wrapping_sub(1) & TAG_MASK)
    }

    fn home(&self, fingerprint: u64) -> usize {
        // Multiply-shift of the salted fingerprint: the high bits of the product depend on
        // every bit of its input (the low ones, which pick the shard, are all alike here).
        let mixed = (fingerprint ^ self.salt).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (mixed >> 32) as usize & (self.buckets.len() - 1)
    }

    fn probe(&self, fingerprint: u64, horizon: u64) -> Probe {
        let mask = self.buckets.len() - 1;
        let mut b = self.home(fingerprint);
        let mut free = None;
        loop {
            for (i, &slot) in self.buckets[b].0.iter().enumerate() {
                if slot.fingerprint == 0 {
                    let (fb, fi) = free.unwrap_or((b, i));
                    return Probe::Absent(fb, fi);
                }
                if Self::is_live(slot, horizon) {
                    if slot.fingerprint == fingerprint {
                        return Probe::Live(b, i);
                    }
                } else if free.is_none() {
                    free = Some((b, i));
                }
            }
            b = (b + 1) & mask;
        }
    }

    fn slot_mut(&mut self, b: usize, i: usize) -> &mut Slot {
        &mut self.buckets[b].0[i]
    }

    /// Stores a fingerprint not live in the table at the free slot `probe` returned.
    fn insert_at(&mut self, b: usize, i: usize, fingerprint: u64, sighting: u64) {
        let slot = &mut self.buckets[b].0[i];
        self.used += usize::from(slot.fingerprint == 0);
        *slot = Slot {
            fingerprint,
            sighting,
        };
    }

    /// True when the next insert must wait for a rebuild: more than 3/4 of the slots used.
    fn is_crowded(&self) -> bool {
        (self.used + 1) * 4 > self.buckets.len() * 4 * 3
    }

    fn live(&self, horizon: u64) -> impl Iterator<Item = Slot> + '_ {
        self.buckets
            .iter()
            .flat_map(|b| b.0.iter().copied())
            .filter(move |s| Self::is_live(*s, horizon))
    }

    /// Rehashes the live slots into a table at most half full, dropping the expired ones: a
    /// quarter of the slots or more are left for new fingerprints before the next rebuild.
    /// (Half full, not emptier: the tables of 16 shards at 130k packets/s then take ≈ 16 MiB,
    /// about what `HashMap`s took.)
    fn rebuild(&mut self, horizon: u64) {
        let live = self.live(horizon).count();
        // At least two slots per live one, in four-slot buckets.
        let buckets = (live / 2 + 1).next_power_of_two().max(MIN_BUCKETS);
        let old = std::mem::replace(&mut self.buckets, vec![Bucket::default(); buckets]);
        self.used = 0;
        self.rebuilt_at = horizon;
        for bucket in &old {
            for &slot in &bucket.0 {
                if !Self::is_live(slot, horizon) {
                    continue;
                }
                if let Probe::Absent(b, i) = self.probe(slot.fingerprint, horizon) {
                    self.insert_at(b, i, slot.fingerprint, slot.sighting);
                }
            }
        }
    }
}

struct Shard {
    /// Wall-clock start of the current horizon.
    started: Instant,
    /// Number of the current horizon; sightings of it and of the one before are live.
    horizon: u64,
    /// Fingerprints recorded in the current horizon (the capped quantity).
    recorded_now: usize,
    seen: FingerprintTable,
}

impl Shard {
    /// Starts a new horizon at `now`; what is two horizons old expires.
    fn rotate(&mut self, now: Instant, idle: bool) {
        self.horizon += 1;
        if idle {
            // Nothing recorded in the last horizon: every sighting is stale, and the memory
            // of a burst is given back.
            self.seen = FingerprintTable::new(self.horizon, self.seen.salt);
        } else if self.horizon - self.seen.rebuilt_at >= REBUILD_EVERY_HORIZONS {
            self.seen.rebuild(self.horizon);
        }
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
        Deduplicator::with_salt(
            window,
            max_entries,
            RandomState::new().hash_one(0x0064_6564_7570_u64),
        )
    }

    /// [`Deduplicator::new`] with a given bucket salt (tests choose where fingerprints land).
    fn with_salt(window: Duration, max_entries: usize, salt: u64) -> Deduplicator {
        let now = Instant::now();
        let max_per_shard = max_entries.div_ceil(SHARDS).max(1);
        let shards = (0..if window.is_zero() { 0 } else { SHARDS })
            .map(|_| {
                Mutex::new(Shard {
                    started: now,
                    horizon: 0,
                    recorded_now: 0,
                    seen: FingerprintTable::new(0, salt),
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
        // 0 marks an unused slot; the low bits pick the shard, the high ones the bucket.
        let fingerprint = fingerprint.max(1);
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
        let at_cap = shard.recorded_now >= self.max_per_shard;
        match shard.seen.probe(fingerprint, current) {
            Probe::Live(b, i) => {
                let seen = *shard.seen.slot_mut(b, i);
                if seen.captured_us().abs_diff(captured_us.min(TIME_MASK)) <= self.window_us {
                    return true;
                }
                // A retransmission (same bytes, captured later): remember this one.
                let recorded_now = seen.tag() == current & TAG_MASK;
                if recorded_now || !at_cap {
                    if !recorded_now {
                        shard.recorded_now += 1;
                    }
                    shard.seen.slot_mut(b, i).sighting = sighting(captured_us, current);
                }
            }
            Probe::Absent(mut b, mut i) => {
                if at_cap {
                    return false;
                }
                if shard.seen.is_crowded() {
                    shard.seen.rebuild(current);
                    match shard.seen.probe(fingerprint, current) {
                        Probe::Absent(nb, ni) => (b, i) = (nb, ni),
                        Probe::Live(..) => return false,
                    }
                }
                shard.recorded_now += 1;
                shard
                    .seen
                    .insert_at(b, i, fingerprint, sighting(captured_us, current));
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

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
            .map(|s| {
                let shard = s.lock().expect("lock");
                shard.seen.live(shard.horizon).count()
            })
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
                let shard = s.lock().expect("lock");
                shard
                    .seen
                    .live(shard.horizon)
                    .map(|s| (s.fingerprint, s.captured_us()))
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

    /// `n` fingerprints of shard 0 whose home is `bucket` in a smallest table with salt 0.
    fn in_bucket(bucket: usize, n: usize) -> Vec<u64> {
        let table = FingerprintTable::new(0, 0);
        (1u64..)
            .map(|k| k.wrapping_mul(0x2545_f491_4f6c_dd1d) << 4)
            .filter(|&f| table.home(f) == bucket)
            .take(n)
            .collect()
    }

    /// Recurring fingerprints of the generated sequences: all in shard 0, half of them in
    /// bucket 0 and half in bucket 1 of a smallest table, so that probe paths cross.
    static RECURRING: std::sync::LazyLock<Vec<u64>> = std::sync::LazyLock::new(|| {
        let mut f = in_bucket(0, 12);
        f.extend(in_bucket(1, 12));
        f
    });

    /// The semantics the table must keep: one `HashMap` per shard, swept at every rotation
    /// (the implementation before [`FingerprintTable`]).
    struct ModelShard {
        started: Instant,
        horizon: u64,
        recorded_now: usize,
        seen: HashMap<u64, (u64, u64)>,
    }

    struct Model {
        window_us: u64,
        horizon: Duration,
        max_per_shard: usize,
        shards: Vec<ModelShard>,
    }

    impl Model {
        fn new(window: Duration, max_entries: usize, now: Instant) -> Model {
            Model {
                window_us: window.as_micros() as u64,
                horizon: window.max(MEMORY_HORIZON),
                max_per_shard: max_entries.div_ceil(SHARDS).max(1),
                shards: (0..SHARDS)
                    .map(|_| ModelShard {
                        started: now,
                        horizon: 0,
                        recorded_now: 0,
                        seen: HashMap::new(),
                    })
                    .collect(),
            }
        }

        fn is_duplicate(&mut self, fingerprint: u64, captured_us: u64, now: Instant) -> bool {
            let fingerprint = fingerprint.max(1);
            let shard = &mut self.shards[(fingerprint as usize) % SHARDS];
            let age = now.saturating_duration_since(shard.started);
            if age >= self.horizon {
                if age >= self.horizon * 2 {
                    shard.seen.clear();
                } else {
                    let current = shard.horizon;
                    shard.seen.retain(|_, (_, h)| *h == current);
                }
                shard.horizon += 1;
                shard.recorded_now = 0;
                shard.started = now;
            }
            let current = shard.horizon;
            let at_cap = shard.recorded_now >= self.max_per_shard;
            match shard.seen.get_mut(&fingerprint) {
                Some((at, h)) => {
                    if at.abs_diff(captured_us) <= self.window_us {
                        return true;
                    }
                    if *h == current || !at_cap {
                        if *h != current {
                            shard.recorded_now += 1;
                        }
                        *at = captured_us;
                        *h = current;
                    }
                }
                None => {
                    if !at_cap {
                        shard.recorded_now += 1;
                        shard.seen.insert(fingerprint, (captured_us, current));
                    }
                }
            }
            false
        }
    }

    /// One packet of a generated sequence: which fingerprint (a few recurring ones, or a
    /// fresh one), its capture-time offset, and how far the wall clock moves before it.
    #[derive(Debug, Clone)]
    struct Step {
        fingerprint: u64,
        captured_offset_us: u64,
        advance_us: u64,
    }

    fn step() -> impl Strategy<Value = Step> {
        (
            prop_oneof![
                // Recurring fingerprints (see `RECURRING`).
                (0usize..24).prop_map(|i| RECURRING[i]),
                // Fresh ones in shard 0 (fill the table and force rebuilds) or anywhere.
                any::<u64>().prop_map(|f| f << 4),
                any::<u64>(),
            ],
            prop_oneof![0u64..200, 0u64..100_000, 0u64..5_000_000],
            prop_oneof![
                8 => 0u64..3_000,
                1 => 1_000_000u64..2_500_000,
                1 => 2_000_000u64..5_000_000,
            ],
        )
            .prop_map(|(fingerprint, captured_offset_us, advance_us)| Step {
                fingerprint,
                captured_offset_us,
                advance_us,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        /// The table answers every packet as the swept map does: duplicates, retransmissions,
        /// the per-horizon cap, expiry after two horizons, idle resets and rebuilds.
        #[test]
        fn table_answers_as_the_swept_map(
            steps in proptest::collection::vec(step(), 1..3_000),
            cap in prop_oneof![Just(64usize), Just(4_096), Just(1_000_000)],
        ) {
            let t0 = Instant::now();
            let window = Duration::from_millis(50);
            let table = Deduplicator::with_salt(window, cap, 0);
            let mut model = Model::new(window, cap, t0);
            let mut now = t0;
            let c0 = 1_700_000_000_000_000u64;
            for (n, s) in steps.iter().enumerate() {
                now += Duration::from_micros(s.advance_us);
                let captured = c0 + s.captured_offset_us;
                prop_assert_eq!(
                    table.is_duplicate(s.fingerprint, captured, now),
                    model.is_duplicate(s.fingerprint, captured, now),
                    "step {}: {:?}", n, s
                );
            }
        }
    }

    #[test]
    fn tags_never_alias_across_many_horizons() {
        // One packet per horizon for more horizons than the tag holds: the periodic rebuild
        // keeps a fingerprint from 4,096 horizons ago from passing for a live one.
        let d = Deduplicator::with_salt(Duration::from_millis(50), 1000, 0);
        let mut now = Instant::now();
        let old = in_bucket(0, 1)[0];
        let others = in_bucket(1, TAG_MASK as usize + 1);
        let c0 = 1_700_000_000_000_000u64;
        assert!(!d.is_duplicate(old, c0, now));
        // At horizon 4,096 the tag of horizon 0 comes round again.
        for h in 1..=(TAG_MASK + 1) {
            now += MEMORY_HORIZON + Duration::from_millis(1);
            // Another bucket than `old`'s, so that nothing overwrites its slot.
            assert!(!d.is_duplicate(others[h as usize - 1], c0 + h, now), "{h}");
        }
        assert!(!d.is_duplicate(old, c0, now));
        assert!(d.is_duplicate(old, c0, now));
    }

    #[test]
    fn a_crowded_table_is_rebuilt_and_keeps_what_is_live() {
        let d = Deduplicator::new(Duration::from_millis(50), 1_000_000);
        let now = Instant::now();
        let c0 = 1_700_000_000_000_000u64;
        // 5,000 fingerprints of shard 0: the 256-slot table grows by rebuilds.
        let fps: Vec<u64> = (1..=5_000u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) << 4)
            .collect();
        for &f in &fps {
            assert!(!d.is_duplicate(f, c0, now));
        }
        for &f in &fps {
            assert!(d.is_duplicate(f, c0 + 10, now), "{f:x}");
        }
        let shard = d.shards[0].lock().expect("lock");
        assert_eq!(shard.seen.live(shard.horizon).count(), 5_000);
        assert!(shard.seen.buckets.len() * 4 * 3 >= 5_000 * 4);
    }
}
