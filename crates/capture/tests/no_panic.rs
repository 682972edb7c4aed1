//! Properties: no input makes any parser panic, and memory stays within the configured caps.

mod common;

use std::time::Duration;

use capture::{
    decode_packet, open, open_with_config, parse_link, DefragConfig, Defragmenter, LinkType,
    PacketSource, ReaderConfig, TcpConfig, TcpReassembler, TcpSegment, Timestamp,
};
use common::*;
use proptest::prelude::*;

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

fn small_defrag() -> Defragmenter {
    Defragmenter::new(DefragConfig {
        timeout: Duration::from_secs(1),
        max_datagram_len: 4096,
        max_total_bytes: 16 * 1024,
        max_bytes_per_flow: 4 * 1024,
    })
}

fn small_tcp() -> TcpReassembler {
    TcpReassembler::new(TcpConfig {
        max_buffered_per_flow: 2048,
        max_buffered_total: 8192,
        max_flows: 8,
        gap_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(2),
    })
}

/// Reads every packet of `bytes` and pushes it through decoding and reassembly.
fn exercise(bytes: &[u8]) {
    let config = ReaderConfig {
        max_packet_len: 4096,
    };
    let Ok(mut reader) = open_with_config(bytes, config) else {
        return;
    };
    let mut defrag = small_defrag();
    let mut tcp = small_tcp();
    for _ in 0..10_000 {
        match reader.next_packet() {
            Ok(Some(p)) => {
                assert!(p.data.len() <= 4096);
                if let Ok(Some(d)) = decode_packet(p.link_type, p.timestamp, p.data, &mut defrag) {
                    let _ = d.payload();
                    let _ = d.sctp_data_chunks().count();
                    if let Some(seg) = TcpSegment::from_decoded(&d, p.timestamp) {
                        let _ = tcp.feed(&seg);
                    }
                }
                assert!(defrag.buffered_bytes() <= 16 * 1024);
            }
            Ok(None) | Err(_) => break,
        }
    }
    let _ = tcp.flush_all();
}

fn pcap_header(link: u32) -> Vec<u8> {
    let mut h = vec![
        0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0,
    ];
    h.extend_from_slice(&link.to_le_bytes());
    h
}

fn pcapng_header() -> Vec<u8> {
    let mut h = vec![
        0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0,
    ];
    h.extend_from_slice(&[0xff; 8]);
    h.extend_from_slice(&[28, 0, 0, 0]);
    h
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_files_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        exercise(&bytes);
    }

    #[test]
    fn arbitrary_records_after_valid_headers_never_panic(
        link in prop::sample::select(LINK_TYPES.to_vec()),
        ng in any::<bool>(),
        body in prop::collection::vec(any::<u8>(), 0..800),
    ) {
        let mut bytes = if ng { pcapng_header() } else { pcap_header(link.0) };
        bytes.extend_from_slice(&body);
        exercise(&bytes);
    }

    #[test]
    fn arbitrary_frames_never_panic(
        link in prop::sample::select(LINK_TYPES.to_vec()),
        frame in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let _ = parse_link(link, &frame);
        let mut defrag = small_defrag();
        let _ = decode_packet(link, Timestamp::EPOCH, &frame, &mut defrag);
    }

    #[test]
    fn arbitrary_segments_never_panic_and_stay_bounded(
        segments in prop::collection::vec(
            (0u16..4, any::<u32>(), any::<u8>(), prop::collection::vec(any::<u8>(), 0..700), 0i64..10),
            0..60,
        )
    ) {
        let mut tcp = small_tcp();
        for (port, seq, flags, payload, secs) in &segments {
            let s = TcpSegment {
                flow: flow("10.0.0.1", *port, "10.0.0.2", 80),
                timestamp: Timestamp::new(*secs, 0),
                seq: *seq,
                flags: capture::TcpFlags(*flags),
                payload,
            };
            let _ = tcp.feed(&s);
            prop_assert!(tcp.buffered_bytes() <= 8192 + 8 * 256);
            prop_assert!(tcp.flows() <= 8);
        }
        let _ = tcp.flush_all();
        prop_assert_eq!(tcp.buffered_bytes(), 0);
    }
}

/// Real frames with random bytes changed: deep layers get exercised, not just the first check.
#[test]
fn mutated_real_frames_never_panic() {
    let mut frames = Vec::new();
    for rel in [
        "heplify-pcaps/sip_sctp.pcap",
        "heplify-pcaps/ipv6_udp_fragmented.pcap",
        "heplify-pcaps/ipip0.pcap",
        "heplify-pcaps/sip_ipv4_tcp_retrans.pcap",
        "kamailio-hep3-tcp/hep-tcp9060.pcap",
    ] {
        frames.extend(read_all(&read_file(&sample(rel))));
    }
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(2000));
    let strategy = (
        0..frames.len(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        any::<prop::sample::Index>(),
    );
    runner
        .run(&strategy, |(i, edits, cut)| {
            let mut data = frames[i].data.clone();
            for (at, byte) in edits {
                let at = at.index(data.len());
                data[at] = byte;
            }
            data.truncate(cut.index(data.len() + 1));
            let mut defrag = small_defrag();
            let mut tcp = small_tcp();
            if let Ok(Some(d)) =
                decode_packet(frames[i].link_type, frames[i].timestamp, &data, &mut defrag)
            {
                let _ = d.sctp_data_chunks().count();
                if let Some(seg) = TcpSegment::from_decoded(&d, frames[i].timestamp) {
                    let _ = tcp.feed(&seg);
                }
            }
            Ok(())
        })
        .expect("no panic");
    // And a whole real file, bytes mutated, read as a file.
    let file = read_file(&sample("heplify-pcaps/sip_ipv4_tcp.pcap"));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(300));
    runner
        .run(
            &prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..10),
            |edits| {
                let mut bytes = file.clone();
                for (at, byte) in edits {
                    let at = at.index(bytes.len());
                    bytes[at] = byte;
                }
                exercise(&bytes);
                Ok(())
            },
        )
        .expect("no panic");
    let _ = open(&file[..]);
}
