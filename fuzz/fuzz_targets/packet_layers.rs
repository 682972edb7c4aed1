//! Fuzz packet decoding: the first byte picks a link type and the time, the rest is one frame.
//! The decoded packet feeds a defragmenter and a TCP reassembler with small caps, which must
//! hold their memory bounds whatever arrives.
#![no_main]

use std::time::Duration;

use capture::{
    decode_packet, DefragConfig, Defragmenter, LinkType, StreamEvent, TcpConfig, TcpReassembler,
    TcpSegment, Timestamp,
};
use libfuzzer_sys::fuzz_target;

const LINK_TYPES: [LinkType; 10] = [
    LinkType::NULL,
    LinkType::ETHERNET,
    LinkType::RAW_BSD,
    LinkType::RAW_OPENBSD,
    LinkType::RAW,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType::LINUX_SLL2,
];

const DEFRAG_TOTAL: usize = 16 * 1024;
const TCP_TOTAL: usize = 8 * 1024;
const TCP_FLOWS: usize = 8;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let link_type = LINK_TYPES[usize::from(selector) % LINK_TYPES.len()];
    let mut defrag = Defragmenter::new(DefragConfig {
        timeout: Duration::from_secs(1),
        max_datagram_len: 8 * 1024,
        max_total_bytes: DEFRAG_TOTAL,
        max_bytes_per_flow: 4 * 1024,
    });
    let mut tcp = TcpReassembler::new(TcpConfig {
        max_buffered_per_flow: 2 * 1024,
        max_buffered_total: TCP_TOTAL,
        max_flows: TCP_FLOWS,
        gap_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_secs(1),
    });
    // The frame twice and then split in halves, at advancing times, so fragments and segments
    // meet copies of themselves and timeouts fire.
    let half = rest.len() / 2;
    let frames = [rest, rest, &rest[..half], &rest[half..]];
    for (i, frame) in frames.into_iter().enumerate() {
        let now = Timestamp::new(i64::from(selector >> 4) * i as i64, 0);
        let Ok(Some(decoded)) = decode_packet(link_type, now, frame, &mut defrag) else {
            continue;
        };
        assert!(decoded.payload().len() <= frame.len().max(65535));
        let _ = decoded.sctp_data_chunks().count();
        if let Some(segment) = TcpSegment::from_decoded(&decoded, now) {
            for event in tcp.feed(&segment) {
                if let StreamEvent::Data { data, .. } = event {
                    assert!(!data.is_empty());
                }
            }
        }
        assert!(defrag.buffered_bytes() <= DEFRAG_TOTAL);
        assert!(tcp.flows() <= TCP_FLOWS);
    }
    let _ = tcp.flush_all();
    assert_eq!(tcp.buffered_bytes(), 0);
});
