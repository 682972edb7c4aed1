//! TCP reassembly: synthetic scenarios and reordering properties.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use capture::{
    CloseReason, FlowKey, StreamEvent, TcpConfig, TcpFlags, TcpReassembler, TcpSegment, Timestamp,
};
use common::*;
use proptest::prelude::*;

fn key() -> FlowKey {
    flow("10.0.0.1", 40000, "10.0.0.2", 5060)
}

fn seg(seq: u32, flags: TcpFlags, payload: &[u8], secs: i64) -> TcpSegment<'_> {
    TcpSegment {
        flow: key(),
        timestamp: Timestamp::new(secs, 0),
        seq,
        flags,
        payload,
    }
}

const NONE: TcpFlags = TcpFlags(0);
const SYN: TcpFlags = TcpFlags::SYN;
const FIN: TcpFlags = TcpFlags::FIN;

/// Feeds segments and collects per-flow streams (offsets checked for contiguity).
fn run(
    tcp: &mut TcpReassembler,
    segments: &[TcpSegment<'_>],
) -> (BTreeMap<FlowKey, Stream>, Vec<CloseReason>) {
    let mut streams = BTreeMap::new();
    let mut reasons = Vec::new();
    for s in segments {
        let events = tcp.feed(s);
        reasons.extend(closes(&events));
        collect(&mut streams, events);
    }
    (streams, reasons)
}

fn closes(events: &[StreamEvent<'_>]) -> Vec<CloseReason> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Closed { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

#[test]
fn in_order_data_is_borrowed_not_copied() {
    let mut tcp = TcpReassembler::default();
    let data = b"INVITE sip:x SIP/2.0\r\n";
    tcp.feed(&seg(99, SYN, b"", 0));
    let events = tcp.feed(&seg(100, NONE, data, 0));
    match &events[..] {
        [StreamEvent::Data {
            data: std::borrow::Cow::Borrowed(b),
            offset: 0,
            ..
        }] => assert_eq!(b.as_ptr(), data.as_ptr()),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn sequence_numbers_wrap() {
    let isn = u32::MAX - 5;
    let mut tcp = TcpReassembler::default();
    let (streams, reasons) = run(
        &mut tcp,
        &[
            seg(isn, SYN, b"", 0),
            // Second half first: it starts after the wrap.
            seg(isn.wrapping_add(11), NONE, b"klmnopqrst", 0),
            seg(isn.wrapping_add(1), NONE, b"abcdefghij", 0),
            seg(isn.wrapping_add(21), FIN, b"", 0),
        ],
    );
    assert_eq!(streams[&key()].data, b"abcdefghijklmnopqrst");
    assert_eq!(reasons, vec![CloseReason::Fin]);
    assert_eq!(tcp.flows(), 0);
    assert_eq!(tcp.buffered_bytes(), 0);
}

#[test]
fn mid_stream_capture_starts_at_first_data() {
    let mut tcp = TcpReassembler::default();
    let (streams, _) = run(
        &mut tcp,
        &[
            seg(5000, NONE, b"", 0), // bare ACK: ignored
            seg(5000, NONE, b"second ", 0),
            seg(4990, NONE, b"0123456789", 0), // before the start: old data
            seg(5007, NONE, b"third", 0),
        ],
    );
    assert_eq!(streams[&key()].data, b"second third");
    assert_eq!(tcp.stats().duplicate_bytes, 10);
}

#[test]
fn overlaps_keep_the_first_copy() {
    let mut tcp = TcpReassembler::default();
    let (streams, _) = run(
        &mut tcp,
        &[
            seg(0, SYN, b"", 0),
            seg(5, NONE, b"FGHIJ", 0),    // out of order, buffered first
            seg(3, NONE, b"xxxxx", 0),    // overlaps 5..8: keeps FGH, adds 3..5 'xx'
            seg(1, NONE, b"abcdefgh", 0), // in order, overlapping everything buffered
            seg(1, NONE, b"zzzzzzzzzzzz", 0), // full retransmission with other bytes
        ],
    );
    assert_eq!(streams[&key()].data, b"abxxFGHIJzzz");
}

#[test]
fn a_lost_segment_becomes_a_gap_after_the_timeout() {
    let config = TcpConfig {
        gap_timeout: Duration::from_secs(2),
        ..TcpConfig::default()
    };
    let mut tcp = TcpReassembler::new(config);
    let (mut streams, _) = run(
        &mut tcp,
        &[
            seg(0, SYN, b"", 0),
            seg(1, NONE, b"aaaa", 0),
            // 5..9 lost
            seg(9, NONE, b"cccc", 0),
            seg(13, NONE, b"dddd", 1),
        ],
    );
    assert_eq!(streams[&key()].data, b"aaaa");
    // Time passes on another flow: the sweep skips the hole.
    let other = TcpSegment {
        flow: flow("10.9.9.9", 1, "10.9.9.8", 2),
        timestamp: Timestamp::new(3, 0),
        seq: 0,
        flags: NONE,
        payload: b"x",
    };
    let events = tcp.feed(&other);
    collect(&mut streams, events);
    let s = &streams[&key()];
    assert_eq!(s.data, b"aaaaccccdddd");
    assert_eq!(s.gaps, 4);
    assert_eq!((tcp.stats().gaps, tcp.stats().gap_bytes), (1, 4));
    // A late retransmission of the skipped bytes is old data now.
    let late = tcp.feed(&seg(5, NONE, b"bbbb", 4));
    assert!(late.iter().all(|e| !matches!(e, StreamEvent::Data { .. })));
}

#[test]
fn too_much_out_of_order_data_skips_the_hole() {
    let config = TcpConfig {
        max_buffered_per_flow: 1000,
        ..TcpConfig::default()
    };
    let mut tcp = TcpReassembler::new(config);
    let chunk = [7u8; 400];
    let mut segments = vec![seg(0, SYN, b"", 0)];
    // Bytes 1..101 lost; then 5 segments of 400 ahead.
    for i in 0..5u32 {
        segments.push(seg(101 + i * 400, NONE, &chunk, 0));
    }
    let (streams, _) = run(&mut tcp, &segments);
    let s = &streams[&key()];
    assert_eq!(s.gaps, 100);
    assert_eq!(s.data.len(), 2000);
    assert!(tcp.buffered_bytes() <= 1000 + 256);
}

#[test]
fn fin_waits_for_missing_data_and_rst_closes_both_directions() {
    let mut tcp = TcpReassembler::default();
    let (streams, reasons) = run(
        &mut tcp,
        &[
            seg(0, SYN, b"", 0),
            seg(6, FIN, b"world", 0),
            seg(1, NONE, b"hello", 0),
        ],
    );
    assert_eq!(streams[&key()].data, b"helloworld");
    assert_eq!(reasons, vec![CloseReason::Fin]);

    let mut tcp = TcpReassembler::default();
    let back = TcpSegment {
        flow: key().reversed(),
        timestamp: Timestamp::EPOCH,
        seq: 70,
        flags: NONE,
        payload: b"reply",
    };
    let (mut streams, _) = run(
        &mut tcp,
        &[
            seg(0, SYN, b"", 0),
            seg(1, NONE, b"ab", 0),
            seg(5, NONE, b"ef", 0), // hole at 3..5
            back,
        ],
    );
    assert_eq!(tcp.flows(), 2);
    let events = tcp.feed(&TcpSegment {
        flags: TcpFlags::RST,
        ..back
    });
    collect(&mut streams, events.clone());
    assert_eq!(
        closes(&events),
        vec![CloseReason::Reset, CloseReason::Reset]
    );
    // The buffered bytes after the hole were flushed before closing.
    assert_eq!(streams[&key()].data, b"abef");
    assert_eq!(streams[&key()].gaps, 2);
    assert_eq!(streams[&key().reversed()].data, b"reply");
    assert_eq!((tcp.flows(), tcp.buffered_bytes()), (0, 0));
    assert_eq!(tcp.stats().closed_reset, 2);
}

#[test]
fn idle_flows_expire_and_flow_count_is_capped() {
    let config = TcpConfig {
        idle_timeout: Duration::from_secs(60),
        max_flows: 4,
        ..TcpConfig::default()
    };
    let mut tcp = TcpReassembler::new(config);
    let mut reasons = Vec::new();
    for port in 0..10u16 {
        let s = TcpSegment {
            flow: flow("10.0.0.1", 1000 + port, "10.0.0.2", 5060),
            timestamp: Timestamp::new(i64::from(port), 0),
            seq: 1,
            flags: NONE,
            payload: b"data",
        };
        reasons.extend(closes(&tcp.feed(&s)));
        assert!(tcp.flows() <= 4);
    }
    assert_eq!(reasons.len(), 6);
    assert!(reasons.iter().all(|r| *r == CloseReason::Evicted));
    let events = tcp.expire(Timestamp::new(100, 0));
    assert_eq!(closes(&events), vec![CloseReason::Idle; 4]);
    assert_eq!(tcp.flows(), 0);
    assert_eq!(tcp.stats().expired_idle, 4);
}

#[test]
fn total_budget_forces_the_biggest_buffer_out() {
    let config = TcpConfig {
        max_buffered_total: 3000,
        ..TcpConfig::default()
    };
    let mut tcp = TcpReassembler::new(config);
    let data = [1u8; 1000];
    for port in 0..4u16 {
        let f = flow("10.0.0.1", 2000 + port, "10.0.0.2", 5060);
        let syn = TcpSegment {
            flow: f,
            timestamp: Timestamp::EPOCH,
            seq: 0,
            flags: SYN,
            payload: b"",
        };
        tcp.feed(&syn);
        tcp.feed(&TcpSegment {
            seq: 100,
            flags: NONE,
            payload: &data,
            ..syn
        });
        assert!(tcp.buffered_bytes() <= 3000, "{}", tcp.buffered_bytes());
    }
    assert!(tcp.stats().gaps >= 1);
}

#[test]
fn a_new_syn_on_the_same_ports_starts_a_new_stream() {
    let mut tcp = TcpReassembler::default();
    tcp.feed(&seg(0, SYN, b"", 0));
    tcp.feed(&seg(1, NONE, b"old", 0));
    // Retransmitted SYN of the same connection changes nothing.
    assert!(tcp.feed(&seg(0, SYN, b"", 0)).is_empty());
    let events = tcp.feed(&seg(90000, SYN, b"", 1));
    assert_eq!(closes(&events), vec![CloseReason::Reused]);
    let events = tcp.feed(&seg(90001, NONE, b"new", 1));
    assert!(matches!(
        &events[..],
        [StreamEvent::Data { offset: 0, data, .. }] if &data[..] == b"new"
    ));
}

#[test]
fn flush_all_closes_everything_in_key_order() {
    let mut tcp = TcpReassembler::default();
    tcp.feed(&seg(0, SYN, b"", 0));
    tcp.feed(&seg(5, NONE, b"later", 0));
    let events = tcp.flush_all();
    let mut streams = BTreeMap::new();
    collect(&mut streams, events.clone());
    assert_eq!(streams[&key()].data, b"later");
    assert_eq!(streams[&key()].gaps, 4);
    assert_eq!(closes(&events), vec![CloseReason::Flushed]);
}

/// A random stream, cut into segments, with duplicates and arbitrary overlapping re-sends,
/// delivered in any order.
fn reordered_stream() -> impl Strategy<Value = (u32, Vec<u8>, Vec<(usize, usize)>)> {
    (any::<u32>(), prop::collection::vec(any::<u8>(), 1..2000)).prop_flat_map(|(isn, data)| {
        let len = data.len();
        let cuts = prop::collection::vec(0..len, 0..12);
        let extra = prop::collection::vec((0..len, 1..400usize), 0..8);
        (Just(isn), Just(data), cuts, extra).prop_flat_map(move |(isn, data, mut cuts, extra)| {
            cuts.push(0);
            cuts.push(len);
            cuts.sort_unstable();
            cuts.dedup();
            let mut ranges: Vec<(usize, usize)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
            for (start, n) in extra {
                ranges.push((start, (start + n).min(len)));
            }
            let n = ranges.len();
            (
                Just(isn),
                Just(data),
                Just(ranges).prop_shuffle(),
                prop::collection::vec(0..n, 0..4),
            )
                .prop_map(|(isn, data, mut ranges, dups)| {
                    for d in dups {
                        let r = ranges[d % ranges.len()];
                        ranges.push(r);
                    }
                    (isn, data, ranges)
                })
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_order_duplication_or_overlap_reassembles_the_original(
        (isn, data, ranges) in reordered_stream()
    ) {
        let mut tcp = TcpReassembler::default();
        let mut segments = vec![seg(isn, SYN, b"", 0)];
        for &(a, b) in &ranges {
            segments.push(seg(isn.wrapping_add(1).wrapping_add(a as u32), NONE, &data[a..b], 0));
        }
        segments.push(seg(isn.wrapping_add(1).wrapping_add(data.len() as u32), FIN, b"", 0));
        let (streams, reasons) = run(&mut tcp, &segments);
        let s = &streams[&key()];
        prop_assert_eq!(&s.data, &data);
        prop_assert_eq!(s.gaps, 0);
        prop_assert_eq!(reasons, vec![CloseReason::Fin]);
        prop_assert_eq!(tcp.flows(), 0);
        prop_assert_eq!(tcp.buffered_bytes(), 0);
    }

    #[test]
    fn with_a_lost_range_the_stream_is_the_original_minus_a_reported_gap(
        data in prop::collection::vec(any::<u8>(), 100..1500),
        lost_at in 1usize..50,
        lost_len in 1usize..40,
    ) {
        let mut tcp = TcpReassembler::default();
        let lost_end = (lost_at + lost_len).min(data.len() - 1);
        let mut segments = vec![seg(0, SYN, b"", 0), seg(1, NONE, &data[..lost_at], 0)];
        for chunk_start in (lost_end..data.len()).step_by(100) {
            let end = (chunk_start + 100).min(data.len());
            segments.push(seg(1 + chunk_start as u32, NONE, &data[chunk_start..end], 0));
        }
        let (mut streams, _) = run(&mut tcp, &segments);
        collect(&mut streams, tcp.flush_all());
        let s = &streams[&key()];
        let mut expected = data[..lost_at].to_vec();
        expected.extend_from_slice(&data[lost_end..]);
        prop_assert_eq!(&s.data, &expected);
        prop_assert_eq!(s.gaps, (lost_end - lost_at) as u64);
    }
}
