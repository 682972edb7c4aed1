//! Rendezvous (highest random weight) hashing: every member scores every key, the key goes to
//! the highest score. When a member leaves, only the keys it had move (each to its own
//! second-best member, so they spread evenly over the rest); when it comes back exactly those
//! keys return. Failover walks the same ranking, so a call whose member is down lands on the
//! same substitute for every one of its messages.
//!
//! Members are few (a handful of collectors), so scoring all of them per packet is cheaper
//! than any ring lookup and needs no table rebuild on membership changes.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Most members per group (ranking is done on the stack).
pub const MAX_MEMBERS: usize = 64;

/// The members' hash seeds, derived from their names so the mapping survives restarts and
/// reordering of the member list.
#[derive(Clone, Debug)]
pub struct Rendezvous {
    seeds: Vec<u64>,
}

impl Rendezvous {
    /// Builds the scorer for members with these names (at most [`MAX_MEMBERS`]; the rest are
    /// ignored).
    pub fn new<S: AsRef<str>>(members: &[S]) -> Rendezvous {
        Rendezvous {
            seeds: members
                .iter()
                .take(MAX_MEMBERS)
                .map(|m| xxh3_64_with_seed(m.as_ref().as_bytes(), 0x6865_7073_7461_636b))
                .collect(),
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.seeds.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.seeds.is_empty()
    }

    fn score(seed: u64, key: &[u8]) -> u64 {
        // Seeds are themselves hashes of the names, so similar names give unrelated scores.
        xxh3_64_with_seed(key, seed)
    }

    /// The member index for `key` among the members for which `usable(index)` holds: the
    /// highest scoring usable member. `None` when no member is usable.
    pub fn pick(&self, key: &[u8], mut usable: impl FnMut(usize) -> bool) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for (i, &seed) in self.seeds.iter().enumerate() {
            let s = Self::score(seed, key);
            if best.is_some_and(|(b, _)| b >= s) {
                continue;
            }
            if usable(i) {
                best = Some((s, i));
            }
        }
        best.map(|(_, i)| i)
    }

    /// The first choice for `key` regardless of health.
    pub fn first(&self, key: &[u8]) -> Option<usize> {
        self.pick(key, |_| true)
    }

    /// Share of `samples` synthetic keys each member gets (sums to 1); what `--check` prints.
    pub fn expected_share(&self, samples: u32) -> Vec<f64> {
        let mut counts = vec![0u64; self.seeds.len()];
        for n in 0..samples {
            // Keys shaped like Call-IDs: a counter in a fixed text.
            let key = format!("{n:08x}-relay-share@example.invalid");
            if let Some(i) = self.first(key.as_bytes()) {
                counts[i] += 1;
            }
        }
        let total = f64::from(samples.max(1));
        counts.into_iter().map(|c| c as f64 / total).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spreads_evenly() {
        let r = Rendezvous::new(&["a", "b", "c"]);
        let share = r.expected_share(30_000);
        for s in share {
            assert!((0.30..0.37).contains(&s), "share {s}");
        }
    }

    #[test]
    fn removing_a_member_moves_only_its_keys() {
        let all = Rendezvous::new(&["a", "b", "c", "d"]);
        let without_c = Rendezvous::new(&["a", "b", "d"]);
        let names = ["a", "b", "c", "d"];
        let rest = ["a", "b", "d"];
        let mut moved = 0;
        for n in 0..10_000u32 {
            let key = format!("call-{n}");
            let before = names[all.first(key.as_bytes()).unwrap()];
            let after = rest[without_c.first(key.as_bytes()).unwrap()];
            if before != "c" {
                assert_eq!(before, after, "key {key} moved although its member stayed");
            } else {
                moved += 1;
            }
        }
        assert!(moved > 2000 && moved < 3000, "moved {moved}");
    }

    proptest! {
        #[test]
        fn failover_is_the_ranking_without_the_down_member(key in proptest::collection::vec(any::<u8>(), 0..64), down in 0usize..3) {
            let r = Rendezvous::new(&["x", "y", "z"]);
            let first = r.first(&key).unwrap();
            let picked = r.pick(&key, |i| i != down).unwrap();
            prop_assert_ne!(picked, down);
            if first != down {
                prop_assert_eq!(picked, first);
            }
            // Same answer as the group without that member.
            let names = ["x", "y", "z"];
            let rest: Vec<&str> = names.iter().enumerate().filter(|(i, _)| *i != down).map(|(_, n)| *n).collect();
            let smaller = Rendezvous::new(&rest);
            prop_assert_eq!(rest[smaller.first(&key).unwrap()], names[picked]);
        }
    }
}
