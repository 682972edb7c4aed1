//! TCP stream reassembly: in-order byte streams per connection direction, with bounded
//! memory, gap skipping and timestamp-driven eviction.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use crate::decode::{Decoded, FlowKey, TcpFlags, Transport};
use crate::ranges::{insert_first_wins, Pieces};
use crate::time::Timestamp;

/// Bookkeeping charged per buffered segment on top of its bytes.
const PIECE_OVERHEAD: usize = 64;
/// Bookkeeping charged per tracked direction against the total budget.
const FLOW_OVERHEAD: usize = 256;

/// Limits and timeouts of a [`TcpReassembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpConfig {
    /// Out-of-order bytes (plus bookkeeping) one direction may buffer behind a hole; beyond
    /// it the hole is skipped and reported as a gap, so one lost segment cannot stall a flow.
    pub max_buffered_per_flow: usize,
    /// Out-of-order bytes all directions together may buffer; beyond it the directions with
    /// the most buffered data skip their holes first.
    pub max_buffered_total: usize,
    /// Connection directions tracked at once; beyond it idle ones are expired, then the least
    /// recently seen are evicted.
    pub max_flows: usize,
    /// How long (in packet time) a direction waits for a missing segment before skipping it.
    pub gap_timeout: Duration,
    /// A direction without segments for this long (in packet time) is flushed and forgotten.
    pub idle_timeout: Duration,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            max_buffered_per_flow: 1024 * 1024,
            max_buffered_total: 64 * 1024 * 1024,
            max_flows: 65536,
            gap_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// One TCP segment to reassemble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    /// The direction it travels in.
    pub flow: FlowKey,
    /// Capture time; drives gap and idle timeouts.
    pub timestamp: Timestamp,
    /// Sequence number.
    pub seq: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Segment data.
    pub payload: &'a [u8],
}

impl<'a> TcpSegment<'a> {
    /// The segment carried by a decoded TCP packet (`None` for other transports).
    pub fn from_decoded(decoded: &'a Decoded<'_>, timestamp: Timestamp) -> Option<Self> {
        let Transport::Tcp(tcp) = decoded.transport else {
            return None;
        };
        Some(TcpSegment {
            flow: decoded.flow_key()?,
            timestamp,
            seq: tcp.seq,
            flags: tcp.flags,
            payload: decoded.payload(),
        })
    }
}

/// Why a direction stopped being tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// All data up to the FIN was delivered.
    Fin,
    /// A RST was seen in either direction.
    Reset,
    /// No segment for the idle timeout.
    Idle,
    /// Evicted to stay under the flow-count cap.
    Evicted,
    /// A SYN with a new initial sequence number started another connection on the same ports.
    Reused,
    /// [`TcpReassembler::flush_all`] ended it (end of capture).
    Flushed,
}

/// What the reassembler reports, in stream order per direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent<'a> {
    /// In-order bytes of one direction. Borrowed from the segment on the in-order fast path,
    /// owned when they come out of the out-of-order buffer.
    Data {
        /// The direction.
        flow: FlowKey,
        /// Timestamp of the segment that made these bytes deliverable.
        timestamp: Timestamp,
        /// Stream offset of the first byte (0 = first byte after the SYN, or the first byte
        /// seen when the capture started mid-stream).
        offset: u64,
        /// The bytes.
        data: Cow<'a, [u8]>,
    },
    /// Bytes that never arrived and were skipped; the stream resumes at `offset + len`.
    Gap {
        /// The direction.
        flow: FlowKey,
        /// Timestamp of the segment (or sweep) that decided to skip.
        timestamp: Timestamp,
        /// Stream offset of the first missing byte.
        offset: u64,
        /// Number of missing bytes.
        len: u64,
    },
    /// The direction is no longer tracked; its consumer state can go.
    Closed {
        /// The direction.
        flow: FlowKey,
        /// When it was closed.
        timestamp: Timestamp,
        /// Why.
        reason: CloseReason,
    },
}

impl StreamEvent<'_> {
    /// The direction the event concerns.
    pub fn flow(&self) -> FlowKey {
        match self {
            StreamEvent::Data { flow, .. }
            | StreamEvent::Gap { flow, .. }
            | StreamEvent::Closed { flow, .. } => *flow,
        }
    }
}

/// Counters of a [`TcpReassembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpStats {
    /// Segments fed.
    pub segments: u64,
    /// Bytes delivered in order.
    pub bytes_delivered: u64,
    /// Bytes dropped as already delivered or already buffered (retransmissions, overlaps).
    pub duplicate_bytes: u64,
    /// Segments that arrived ahead of a hole.
    pub out_of_order_segments: u64,
    /// Holes skipped.
    pub gaps: u64,
    /// Bytes skipped in holes.
    pub gap_bytes: u64,
    /// Directions started.
    pub flows_opened: u64,
    /// Directions closed by FIN.
    pub closed_fin: u64,
    /// Directions closed by RST.
    pub closed_reset: u64,
    /// Directions expired by the idle timeout.
    pub expired_idle: u64,
    /// Directions evicted by the flow cap, or replaced by a new connection on the same ports.
    pub evicted: u64,
}

#[derive(Debug)]
struct Direction {
    /// Initial sequence number, when the SYN was seen.
    isn: Option<u32>,
    /// Sequence number of the next byte to deliver.
    next_seq: u32,
    /// Stream offset of `next_seq`.
    offset: u64,
    /// Out-of-order data, keyed by stream offset; every key is above `offset`.
    pending: Pieces,
    pending_cost: usize,
    /// Stream offset of the FIN, once seen.
    fin_offset: Option<u64>,
    last_seen: Timestamp,
    /// Since when the direction has waited on its current hole.
    stalled_since: Option<Timestamp>,
}

/// Reassembles TCP byte streams, one per connection direction (source and destination
/// address and port).
///
/// * Starts at the SYN's initial sequence number, or at the first data segment seen when the
///   capture begins mid-stream (anything before that is treated as old).
/// * Sequence numbers wrap: positions are computed modulo 2^32 relative to the next expected
///   byte, so any segment within 2 GiB either side is placed correctly.
/// * Retransmitted and overlapping data is trimmed **first copy wins**: bytes delivered or
///   buffered first are kept, later copies are counted as duplicates.
/// * A hole is skipped (and reported as [`StreamEvent::Gap`]) when the direction buffered
///   more than `max_buffered_per_flow`, when it waited `gap_timeout`, when the total budget is
///   exceeded, or when the direction is closed.
/// * FIN closes its direction once all data before it was delivered; RST closes both
///   directions at once, flushing what was buffered.
/// * Time is the packet timestamps only; no wall clock.
///
/// Events about other flows (idle expiry, eviction) may be returned by any call, each carrying
/// its own flow key.
#[derive(Debug)]
pub struct TcpReassembler {
    config: TcpConfig,
    flows: HashMap<FlowKey, Direction>,
    total_cost: usize,
    next_sweep: Option<Timestamp>,
    stats: TcpStats,
}

impl Default for TcpReassembler {
    fn default() -> Self {
        Self::new(TcpConfig::default())
    }
}

impl TcpReassembler {
    /// A reassembler with the given limits.
    pub fn new(config: TcpConfig) -> Self {
        TcpReassembler {
            config,
            flows: HashMap::new(),
            total_cost: 0,
            next_sweep: None,
            stats: TcpStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> TcpStats {
        self.stats
    }

    /// Directions currently tracked.
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// Memory charged by buffered out-of-order data (bytes plus bookkeeping).
    pub fn buffered_bytes(&self) -> usize {
        self.total_cost
    }

    /// Feeds one segment; returns the events it caused, in order.
    pub fn feed<'a>(&mut self, segment: &TcpSegment<'a>) -> Vec<StreamEvent<'a>> {
        let mut out = Vec::new();
        let now = segment.timestamp;
        let flow = segment.flow;
        self.stats.segments += 1;
        self.maybe_sweep(now, &mut out);

        if segment.flags.contains(TcpFlags::RST) {
            self.close(flow, now, CloseReason::Reset, &mut out);
            self.close(flow.reversed(), now, CloseReason::Reset, &mut out);
            return out;
        }
        let syn = segment.flags.contains(TcpFlags::SYN);
        let fin = segment.flags.contains(TcpFlags::FIN);
        // The SYN occupies one sequence number; data starts after it.
        let data_seq = if syn {
            segment.seq.wrapping_add(1)
        } else {
            segment.seq
        };

        if syn {
            if let Some(dir) = self.flows.get_mut(&flow) {
                let untouched = dir.offset == 0 && dir.pending.is_empty();
                let same_connection = match dir.isn {
                    // A retransmitted SYN.
                    Some(isn) => isn == segment.seq,
                    // Started mid-stream: a SYN placing the stream start at or before what
                    // was already delivered is this connection's own, seen late.
                    None => {
                        let rel = i64::from(data_seq.wrapping_sub(dir.next_seq) as i32);
                        rel <= 0 && rel >= -(dir.offset.min(i32::MAX as u64) as i64)
                    }
                };
                if untouched {
                    dir.next_seq = data_seq;
                    dir.isn = Some(segment.seq);
                } else if !same_connection {
                    self.close(flow, now, CloseReason::Reused, &mut out);
                }
            }
        }
        if !self.flows.contains_key(&flow) {
            if !syn && !fin && segment.payload.is_empty() {
                // A bare ACK says nothing about where the stream starts.
                return out;
            }
            self.make_room(now, &mut out);
            self.flows.insert(
                flow,
                Direction {
                    isn: syn.then_some(segment.seq),
                    next_seq: data_seq,
                    offset: 0,
                    pending: Pieces::new(),
                    pending_cost: 0,
                    fin_offset: None,
                    last_seen: now,
                    stalled_since: None,
                },
            );
            self.total_cost += FLOW_OVERHEAD;
            self.stats.flows_opened += 1;
        }

        let Self {
            config,
            flows,
            total_cost,
            stats,
            ..
        } = self;
        let Some(dir) = flows.get_mut(&flow) else {
            return out;
        };
        dir.last_seen = now;
        // Position relative to the next expected byte, modulo 2^32.
        let rel = i64::from(data_seq.wrapping_sub(dir.next_seq) as i32);
        let at = dir.offset as i64 + rel;
        let len = segment.payload.len() as i64;
        if fin && at + len >= dir.offset as i64 {
            dir.fin_offset.get_or_insert((at + len) as u64);
        }
        let skip = (dir.offset as i64 - at).clamp(0, len);
        stats.duplicate_bytes += skip as u64;
        // skip lies in [0, len], so the slice is in bounds.
        let fresh = segment.payload.get(skip as usize..).unwrap_or_default();
        let fresh_at = (at + skip) as u64;
        if !fresh.is_empty() {
            if fresh_at == dir.offset && dir.pending.is_empty() {
                // In-order fast path: hand out the segment's own bytes.
                advance(dir, stats, fresh.len());
                out.push(StreamEvent::Data {
                    flow,
                    timestamp: now,
                    offset: fresh_at,
                    data: Cow::Borrowed(fresh),
                });
            } else {
                if fresh_at > dir.offset {
                    stats.out_of_order_segments += 1;
                }
                let inserted = insert_first_wins(&mut dir.pending, fresh_at, fresh);
                stats.duplicate_bytes += inserted.overlapping as u64;
                let cost = inserted.added + inserted.entries * PIECE_OVERHEAD;
                dir.pending_cost += cost;
                *total_cost += cost;
                if dir.stalled_since.is_none() {
                    dir.stalled_since = Some(now);
                }
                drain(flow, dir, stats, total_cost, now, &mut out);
            }
        }
        while dir.pending_cost > config.max_buffered_per_flow && !dir.pending.is_empty() {
            skip_hole(flow, dir, stats, total_cost, now, &mut out);
        }
        if dir
            .stalled_since
            .is_some_and(|since| now.saturating_since(since) >= config.gap_timeout)
        {
            skip_hole(flow, dir, stats, total_cost, now, &mut out);
        }
        let finished = dir.fin_offset.is_some_and(|f| dir.offset >= f);
        if finished {
            self.close(flow, now, CloseReason::Fin, &mut out);
        }
        self.enforce_total(now, &mut out);
        out
    }

    /// Applies the gap and idle timeouts at `now` without a segment (e.g. on a timer driven by
    /// capture time). `feed` does this periodically by itself.
    pub fn expire<'a>(&mut self, now: Timestamp) -> Vec<StreamEvent<'a>> {
        let mut out = Vec::new();
        self.sweep(now, &mut out);
        out
    }

    /// Closes every direction, delivering buffered data across its holes (end of capture).
    /// Events come in flow-key order.
    pub fn flush_all<'a>(&mut self) -> Vec<StreamEvent<'a>> {
        let mut out = Vec::new();
        let mut keys: Vec<(FlowKey, Timestamp)> =
            self.flows.iter().map(|(k, d)| (*k, d.last_seen)).collect();
        keys.sort();
        for (key, last_seen) in keys {
            self.close(key, last_seen, CloseReason::Flushed, &mut out);
        }
        out
    }

    fn maybe_sweep<'a>(&mut self, now: Timestamp, out: &mut Vec<StreamEvent<'a>>) {
        if self.next_sweep.is_some_and(|t| now < t) {
            return;
        }
        self.sweep(now, out);
    }

    /// Expires idle directions and skips holes that waited too long. A full scan, so it runs
    /// at most every half of the shorter timeout of packet time.
    fn sweep<'a>(&mut self, now: Timestamp, out: &mut Vec<StreamEvent<'a>>) {
        let period = (self.config.gap_timeout.min(self.config.idle_timeout) / 2)
            .max(Duration::from_millis(100));
        self.next_sweep = Some(now.saturating_add(period));
        let mut idle = Vec::new();
        let mut stalled = Vec::new();
        for (key, dir) in &self.flows {
            if now.saturating_since(dir.last_seen) >= self.config.idle_timeout {
                idle.push(*key);
            } else if dir
                .stalled_since
                .is_some_and(|s| now.saturating_since(s) >= self.config.gap_timeout)
            {
                stalled.push(*key);
            }
        }
        idle.sort();
        stalled.sort();
        for key in idle {
            self.close(key, now, CloseReason::Idle, out);
        }
        let Self {
            flows,
            total_cost,
            stats,
            ..
        } = self;
        for key in stalled {
            if let Some(dir) = flows.get_mut(&key) {
                skip_hole(key, dir, stats, total_cost, now, out);
            }
        }
        let finished: Vec<FlowKey> = {
            let mut f: Vec<FlowKey> = flows
                .iter()
                .filter(|(_, d)| d.fin_offset.is_some_and(|fin| d.offset >= fin))
                .map(|(k, _)| *k)
                .collect();
            f.sort();
            f
        };
        for key in finished {
            self.close(key, now, CloseReason::Fin, out);
        }
    }

    /// Keeps the number of tracked directions under the cap before a new one is added.
    fn make_room<'a>(&mut self, now: Timestamp, out: &mut Vec<StreamEvent<'a>>) {
        if self.flows.len() < self.config.max_flows {
            return;
        }
        self.sweep(now, out);
        if self.flows.len() < self.config.max_flows {
            return;
        }
        // Evict a sixteenth at once so a flood of new flows does not rescan for each one.
        let mut by_age: Vec<(Timestamp, FlowKey)> =
            self.flows.iter().map(|(k, d)| (d.last_seen, *k)).collect();
        by_age.sort();
        let count = (self.flows.len() / 16).max(1);
        for (_, key) in by_age.into_iter().take(count) {
            self.close(key, now, CloseReason::Evicted, out);
        }
    }

    /// Skips holes in the directions with the most buffered data until the total fits, with
    /// headroom: once over the cap, the total is brought down to 7/8 of it in one pass, so a
    /// flood of out-of-order segments costs one scan of the flows per eighth of the budget,
    /// not one per segment.
    fn enforce_total<'a>(&mut self, now: Timestamp, out: &mut Vec<StreamEvent<'a>>) {
        if self.total_cost <= self.config.max_buffered_total {
            return;
        }
        let goal = self.config.max_buffered_total / 8 * 7;
        let mut by_cost: Vec<(usize, FlowKey)> = self
            .flows
            .iter()
            .filter(|(_, d)| !d.pending.is_empty())
            .map(|(k, d)| (d.pending_cost, *k))
            .collect();
        // Largest first; equal costs in key order, so the outcome is deterministic.
        by_cost.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, key) in by_cost {
            if self.total_cost <= goal {
                return;
            }
            let Self {
                flows,
                total_cost,
                stats,
                ..
            } = self;
            if let Some(dir) = flows.get_mut(&key) {
                while !dir.pending.is_empty() {
                    skip_hole(key, dir, stats, total_cost, now, out);
                }
            }
        }
        if self.total_cost <= self.config.max_buffered_total {
            return;
        }
        // Only per-flow bookkeeping is left: evict the least recently seen directions.
        let mut by_age: Vec<(Timestamp, FlowKey)> =
            self.flows.iter().map(|(k, d)| (d.last_seen, *k)).collect();
        by_age.sort();
        for (_, key) in by_age {
            if self.total_cost <= goal {
                return;
            }
            self.close(key, now, CloseReason::Evicted, out);
        }
    }

    /// Delivers what a direction buffered (skipping holes), reports it closed and forgets it.
    fn close<'a>(
        &mut self,
        key: FlowKey,
        now: Timestamp,
        reason: CloseReason,
        out: &mut Vec<StreamEvent<'a>>,
    ) {
        let Some(mut dir) = self.flows.remove(&key) else {
            return;
        };
        while !dir.pending.is_empty() {
            skip_hole(
                key,
                &mut dir,
                &mut self.stats,
                &mut self.total_cost,
                now,
                out,
            );
        }
        self.total_cost = self
            .total_cost
            .saturating_sub(FLOW_OVERHEAD + dir.pending_cost);
        match reason {
            CloseReason::Fin => self.stats.closed_fin += 1,
            CloseReason::Reset => self.stats.closed_reset += 1,
            CloseReason::Idle => self.stats.expired_idle += 1,
            CloseReason::Evicted | CloseReason::Reused => self.stats.evicted += 1,
            CloseReason::Flushed => {}
        }
        out.push(StreamEvent::Closed {
            flow: key,
            timestamp: now,
            reason,
        });
    }
}

fn advance(dir: &mut Direction, stats: &mut TcpStats, len: usize) {
    dir.offset += len as u64;
    // Stream offsets grow without bound; sequence numbers wrap modulo 2^32 by design.
    dir.next_seq = dir.next_seq.wrapping_add(len as u32);
    stats.bytes_delivered += len as u64;
}

/// Delivers buffered pieces that now continue the stream.
fn drain<'a>(
    flow: FlowKey,
    dir: &mut Direction,
    stats: &mut TcpStats,
    total_cost: &mut usize,
    now: Timestamp,
    out: &mut Vec<StreamEvent<'a>>,
) {
    let mut delivered = false;
    while let Some(entry) = dir.pending.first_entry() {
        if *entry.key() != dir.offset {
            break;
        }
        let (offset, data) = entry.remove_entry();
        let cost = data.len() + PIECE_OVERHEAD;
        dir.pending_cost = dir.pending_cost.saturating_sub(cost);
        *total_cost = total_cost.saturating_sub(cost);
        advance(dir, stats, data.len());
        out.push(StreamEvent::Data {
            flow,
            timestamp: now,
            offset,
            data: Cow::Owned(data),
        });
        delivered = true;
    }
    if dir.pending.is_empty() {
        dir.stalled_since = None;
    } else if delivered {
        // Progress: the wait for the next hole starts now.
        dir.stalled_since = Some(now);
    }
}

/// Skips the hole before the first buffered piece (reporting a gap) and delivers what follows.
fn skip_hole<'a>(
    flow: FlowKey,
    dir: &mut Direction,
    stats: &mut TcpStats,
    total_cost: &mut usize,
    now: Timestamp,
    out: &mut Vec<StreamEvent<'a>>,
) {
    let Some((&first, _)) = dir.pending.first_key_value() else {
        dir.stalled_since = None;
        return;
    };
    let len = first.saturating_sub(dir.offset);
    if len > 0 {
        out.push(StreamEvent::Gap {
            flow,
            timestamp: now,
            offset: dir.offset,
            len,
        });
        stats.gaps += 1;
        stats.gap_bytes += len;
        dir.offset = first;
        // Holes lie within 2^31 of the stream position, so truncation is exact modulo 2^32.
        dir.next_seq = dir.next_seq.wrapping_add(len as u32);
    }
    drain(flow, dir, stats, total_cost, now, out);
    if !dir.pending.is_empty() {
        dir.stalled_since = Some(now);
    }
}
