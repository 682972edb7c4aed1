//! IPv4 and IPv6 fragment reassembly with bounded memory and timestamp-driven expiry.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::ranges::{insert_first_wins, Pieces};
use crate::time::Timestamp;

/// Bookkeeping charged per stored piece on top of its bytes, so that floods of tiny fragments
/// hit the memory cap as surely as large ones.
const PIECE_OVERHEAD: usize = 64;
/// Largest reassembled IP payload: the 16-bit length fields cannot describe more.
pub const MAX_DATAGRAM_LEN: usize = 65535;

/// Limits and timeouts of a [`Defragmenter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefragConfig {
    /// A datagram whose first fragment is older than this (in packet time) is dropped.
    pub timeout: Duration,
    /// Largest reassembled payload accepted (capped at 65535 whatever the value).
    pub max_datagram_len: usize,
    /// Memory (bytes plus per-piece overhead) all pending datagrams may use; above it the
    /// oldest datagrams are dropped.
    pub max_total_bytes: usize,
    /// Memory the pending datagrams of one source/destination address pair may use; a fragment
    /// that would exceed it drops its datagram, so one sender cannot take the whole budget.
    pub max_bytes_per_flow: usize,
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig {
            timeout: Duration::from_secs(30),
            max_datagram_len: MAX_DATAGRAM_LEN,
            max_total_bytes: 32 * 1024 * 1024,
            max_bytes_per_flow: 2 * 1024 * 1024,
        }
    }
}

/// Counters of a [`Defragmenter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DefragStats {
    /// Fragments offered.
    pub fragments: u64,
    /// Datagrams completed.
    pub reassembled: u64,
    /// Datagrams dropped because they did not complete within the timeout.
    pub expired: u64,
    /// Datagrams dropped by the size, per-flow or global memory caps.
    pub dropped_over_cap: u64,
    /// Datagrams dropped because their fragments disagree on where the datagram ends.
    pub dropped_inconsistent: u64,
    /// Fragment bytes ignored because earlier fragments already covered them.
    pub overlapping_bytes: u64,
}

/// One IP fragment as the decoder hands it over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP identification (16 bits for IPv4, 32 for IPv6).
    pub id: u32,
    /// IPv4: the protocol field (part of the datagram's identity). IPv6: the fragment header's
    /// next header, authoritative only in the first fragment.
    pub protocol: u8,
    /// Offset of `payload` in the datagram, in bytes.
    pub offset: usize,
    /// Whether more fragments follow.
    pub more: bool,
    /// The fragment's bytes.
    pub payload: &'a [u8],
}

/// A datagram put back together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassembled {
    /// Protocol of the payload (the first fragment's, for IPv6).
    pub protocol: u8,
    /// The reassembled IP payload.
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DatagramKey {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    /// The IPv4 protocol; 0 for IPv6 whose identity is (src, dst, id) only.
    protocol: u8,
}

#[derive(Debug)]
struct Datagram {
    first_seen: Timestamp,
    pieces: Pieces,
    /// Bytes stored plus piece overhead: what this datagram charges to the caps.
    cost: usize,
    /// Bytes stored.
    stored: usize,
    /// Datagram length, known once the last fragment arrived.
    total_len: Option<usize>,
    /// Upper-layer protocol, known once the first fragment (IPv6) or any fragment (IPv4) came.
    protocol: Option<u8>,
}

/// Reassembles IPv4 and IPv6 fragments.
///
/// Overlaps are resolved first-copy-wins: bytes already received are never overwritten.
/// Fragments disagreeing on the datagram's end drop the datagram. Time only advances with the
/// packet timestamps given to [`Defragmenter::push`] (no wall clock), so replaying a capture
/// gives the same result as capturing it live.
#[derive(Debug)]
pub struct Defragmenter {
    config: DefragConfig,
    datagrams: HashMap<DatagramKey, Datagram>,
    per_flow: HashMap<(IpAddr, IpAddr), usize>,
    total_cost: usize,
    next_sweep: Option<Timestamp>,
    stats: DefragStats,
}

impl Default for Defragmenter {
    fn default() -> Self {
        Self::new(DefragConfig::default())
    }
}

impl Defragmenter {
    /// A defragmenter with the given limits.
    pub fn new(config: DefragConfig) -> Self {
        Defragmenter {
            config,
            datagrams: HashMap::new(),
            per_flow: HashMap::new(),
            total_cost: 0,
            next_sweep: None,
            stats: DefragStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> DefragStats {
        self.stats
    }

    /// Datagrams waiting for more fragments.
    pub fn pending(&self) -> usize {
        self.datagrams.len()
    }

    /// Memory charged by pending datagrams (bytes plus bookkeeping).
    pub fn buffered_bytes(&self) -> usize {
        self.total_cost
    }

    /// Adds a fragment seen at `now`; returns the datagram when this fragment completes it.
    pub fn push(&mut self, now: Timestamp, fragment: Fragment<'_>) -> Option<Reassembled> {
        self.stats.fragments += 1;
        self.maybe_expire(now);
        let is_v4 = fragment.src.is_ipv4();
        let key = DatagramKey {
            src: fragment.src,
            dst: fragment.dst,
            id: fragment.id,
            protocol: if is_v4 { fragment.protocol } else { 0 },
        };
        let end = fragment.offset.saturating_add(fragment.payload.len());
        if end > self.config.max_datagram_len.min(MAX_DATAGRAM_LEN) {
            self.drop_datagram(&key);
            self.stats.dropped_over_cap += 1;
            return None;
        }
        let flow = (fragment.src, fragment.dst);
        let upper_bound_cost = fragment.payload.len() + PIECE_OVERHEAD * 2;
        let flow_cost = self.per_flow.get(&flow).copied().unwrap_or(0);
        if flow_cost + upper_bound_cost > self.config.max_bytes_per_flow {
            self.drop_datagram(&key);
            self.stats.dropped_over_cap += 1;
            return None;
        }
        if self.total_cost + upper_bound_cost > self.config.max_total_bytes {
            // Over budget: drop the oldest datagrams down to 7/8 of it in one pass, so a flood
            // of lone fragments costs one scan per eighth of the budget, not one per fragment.
            let goal = (self.config.max_total_bytes / 8 * 7).saturating_sub(upper_bound_cost);
            self.stats.dropped_over_cap += self.drop_oldest_except(&key, goal);
            if self.total_cost + upper_bound_cost > self.config.max_total_bytes {
                // Only this datagram is left and it alone exceeds the budget.
                self.drop_datagram(&key);
                self.stats.dropped_over_cap += 1;
                return None;
            }
        }

        let datagram = self.datagrams.entry(key).or_insert_with(|| Datagram {
            first_seen: now,
            pieces: Pieces::new(),
            cost: 0,
            stored: 0,
            total_len: None,
            protocol: None,
        });
        if is_v4 || fragment.offset == 0 {
            datagram.protocol.get_or_insert(fragment.protocol);
        }
        let consistent = match (fragment.more, datagram.total_len) {
            (false, Some(total)) => total == end,
            (false, None) => {
                let last_end = datagram
                    .pieces
                    .last_key_value()
                    .map_or(0, |(s, v)| *s as usize + v.len());
                datagram.total_len = Some(end);
                last_end <= end
            }
            (true, Some(total)) => end <= total,
            (true, None) => true,
        };
        if !consistent {
            self.drop_datagram(&key);
            self.stats.dropped_inconsistent += 1;
            return None;
        }
        let inserted = insert_first_wins(
            &mut datagram.pieces,
            fragment.offset as u64,
            fragment.payload,
        );
        let cost = inserted.added + inserted.entries * PIECE_OVERHEAD;
        datagram.cost += cost;
        datagram.stored += inserted.added;
        self.total_cost += cost;
        *self.per_flow.entry(flow).or_insert(0) += cost;
        self.stats.overlapping_bytes += inserted.overlapping as u64;

        let complete = datagram.total_len == Some(datagram.stored) && datagram.protocol.is_some();
        if !complete {
            return None;
        }
        let datagram = self.remove(&key)?;
        let mut payload = Vec::with_capacity(datagram.stored);
        // Pieces are disjoint and cover [0, total) exactly (their sizes add up to it).
        for piece in datagram.pieces.values() {
            payload.extend_from_slice(piece);
        }
        self.stats.reassembled += 1;
        Some(Reassembled {
            protocol: datagram.protocol.unwrap_or_default(),
            payload,
        })
    }

    /// Sweeps expired datagrams, at most once per eighth of a timeout of packet time, so that
    /// the scan's cost is spread over many fragments.
    fn maybe_expire(&mut self, now: Timestamp) {
        if self.next_sweep.is_some_and(|t| now < t) {
            return;
        }
        self.expire(now);
    }

    /// Drops every datagram whose first fragment is a timeout or more older than `now`.
    /// [`Defragmenter::push`] calls this periodically; call it directly to let time pass
    /// without fragments.
    pub fn expire(&mut self, now: Timestamp) {
        let period = (self.config.timeout / 8).max(Duration::from_millis(100));
        self.next_sweep = Some(now.saturating_add(period));
        let timeout = self.config.timeout;
        let expired: Vec<DatagramKey> = self
            .datagrams
            .iter()
            .filter(|(_, d)| now.saturating_since(d.first_seen) >= timeout)
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            self.remove(&key);
            self.stats.expired += 1;
        }
    }

    fn drop_datagram(&mut self, key: &DatagramKey) {
        self.remove(key);
    }

    /// Drops the oldest datagrams other than `keep` until the total cost is at most `goal`;
    /// returns how many were dropped.
    fn drop_oldest_except(&mut self, keep: &DatagramKey, goal: usize) -> u64 {
        let mut by_age: Vec<(Timestamp, u32, DatagramKey)> = self
            .datagrams
            .iter()
            .filter(|(k, _)| *k != keep)
            .map(|(k, d)| (d.first_seen, k.id, *k))
            .collect();
        by_age.sort_by_key(|a| (a.0, a.1));
        let mut dropped = 0;
        for (_, _, key) in by_age {
            if self.total_cost <= goal {
                break;
            }
            self.remove(&key);
            dropped += 1;
        }
        dropped
    }

    fn remove(&mut self, key: &DatagramKey) -> Option<Datagram> {
        let datagram = self.datagrams.remove(key)?;
        self.total_cost = self.total_cost.saturating_sub(datagram.cost);
        let flow = (key.src, key.dst);
        if let Some(cost) = self.per_flow.get_mut(&flow) {
            *cost = cost.saturating_sub(datagram.cost);
            if *cost == 0 {
                self.per_flow.remove(&flow);
            }
        }
        Some(datagram)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn frag(id: u32, offset: usize, more: bool, payload: &[u8]) -> Fragment<'_> {
        Fragment {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            id,
            protocol: 17,
            offset,
            more,
            payload,
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::new(secs, 0)
    }

    #[test]
    fn reassembles_out_of_order_with_overlap_first_copy_wins() {
        let mut d = Defragmenter::default();
        assert!(d.push(at(0), frag(1, 16, false, b"QRST")).is_none());
        assert!(d.push(at(0), frag(1, 8, true, b"IJKLMNOP")).is_none());
        // Overlaps bytes 8..16 with different content: the first copy stays.
        assert!(d.push(at(0), frag(1, 8, true, b"xxxxxxxx")).is_none());
        let r = d.push(at(0), frag(1, 0, true, b"ABCDEFGH")).unwrap();
        assert_eq!(r.payload, b"ABCDEFGHIJKLMNOPQRST");
        assert_eq!(r.protocol, 17);
        let s = d.stats();
        assert_eq!((s.reassembled, s.overlapping_bytes, s.fragments), (1, 8, 4));
        assert_eq!((d.pending(), d.buffered_bytes()), (0, 0));
    }

    #[test]
    fn expiry_follows_packet_time() {
        let mut d = Defragmenter::default();
        d.push(at(100), frag(1, 0, true, b"ABCDEFGH"));
        d.push(at(129), frag(2, 0, true, b"ABCDEFGH"));
        assert_eq!(d.pending(), 2);
        d.expire(at(131));
        assert_eq!((d.pending(), d.stats().expired), (1, 1));
        assert!(d.push(at(131), frag(1, 8, false, b"IJ")).is_none());
    }

    #[test]
    fn caps_drop_datagrams() {
        let mut d = Defragmenter::new(DefragConfig {
            max_total_bytes: 400,
            max_bytes_per_flow: 10_000,
            ..DefragConfig::default()
        });
        d.push(at(0), frag(1, 0, true, &[0; 96]));
        d.push(at(1), frag(2, 0, true, &[0; 96]));
        // A third would exceed 400 bytes: the oldest go first (down to 7/8 of the budget),
        // the new one is kept.
        d.push(at(2), frag(3, 0, true, &[0; 96]));
        assert!((1..=2).contains(&d.pending()), "{}", d.pending());
        assert!(d.stats().dropped_over_cap >= 1);
        assert!(d.buffered_bytes() <= 400);
        assert!(
            d.push(at(2), frag(1, 96, false, &[0; 8])).is_none(),
            "oldest dropped"
        );
        assert!(
            d.push(at(2), frag(3, 96, false, &[0; 8])).is_some(),
            "newest kept"
        );
        // Oversized datagram.
        assert!(d.push(at(2), frag(4, 65530, false, &[0; 16])).is_none());
        let mut per_flow = Defragmenter::new(DefragConfig {
            max_bytes_per_flow: 300,
            ..DefragConfig::default()
        });
        per_flow.push(at(0), frag(1, 0, true, &[0; 96]));
        per_flow.push(at(0), frag(2, 0, true, &[0; 96]));
        assert_eq!(per_flow.pending(), 1);
    }

    #[test]
    fn inconsistent_ends_drop() {
        let mut d = Defragmenter::default();
        d.push(at(0), frag(1, 0, true, &[1; 16]));
        assert!(d.push(at(0), frag(1, 8, false, b"xx")).is_none());
        assert_eq!(d.stats().dropped_inconsistent, 1);
        assert_eq!(d.pending(), 0);
    }
}
