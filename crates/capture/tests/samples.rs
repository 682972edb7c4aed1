//! Integration tests over the real captures in the shared sample directory.

mod common;

use std::collections::BTreeMap;

use capture::{
    decode_packet, open, Defragmenter, LayerError, PacketSource, TcpConfig, Transport, TunnelKind,
};
use common::*;

/// Packet counts computed independently with `capinfos -c -M FILE` (Wireshark 4.0). tcpdump
/// 4.99.3 agrees when counting its packet lines (`tcpdump -r FILE | grep -c '^[0-9][0-9]:'`),
/// except where it prints one packet on several lines.
const PACKET_COUNTS: &[(&str, usize)] = &[
    ("heplify-pcaps/FAX-Call-t38-CA-TDM-SIP-FB-1.pcap", 7217),
    ("heplify-pcaps/ipip0.pcap", 8),
    ("heplify-pcaps/ipv6_udp_fragmented.pcap", 6),
    ("heplify-pcaps/rtp_rtcp_sip_ipv4_udp.pcap", 4269),
    ("heplify-pcaps/sip_ipv4_tcp.pcap", 84),
    ("heplify-pcaps/sip_ipv4_tcp_fragmented.pcap", 1542),
    ("heplify-pcaps/sip_ipv4_tcp_retrans.pcap", 196),
    ("heplify-pcaps/sip_ipv6_udp.pcap", 6),
    ("heplify-pcaps/sip_sctp.pcap", 5),
    ("heplify-pcaps/sip_tcp_websocket.pcap", 61),
    ("kamailio-hep2-udp/hep-udp9060.pcap", 43),
    ("kamailio-hep2-udp/sip-traffic.pcap", 43),
    ("kamailio-hep3-tcp/hep-tcp9060.pcap", 97),
    ("kamailio-hep3-tcp/sip-traffic.pcap", 43),
    ("kamailio-hep3-udp/hep-udp9060.pcap", 305),
    ("kamailio-hep3-udp/sip-traffic.pcap", 302),
    ("rtpengine-hep3-rtcp/hep-udp9060.pcap", 6),
    ("rtpengine-hep3-rtcp/media-and-ng.pcap", 618),
];

#[test]
fn every_sample_reads_to_the_end_with_the_expected_count() {
    // Every pcap in the sample tree must be listed, so a new sample cannot slip by untested.
    let mut found = Vec::new();
    for dir in std::fs::read_dir(samples_dir()).expect("list samples") {
        let dir = dir.expect("dir entry").path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).expect("list sample dir") {
            let file = file.expect("file entry").path();
            if file
                .extension()
                .is_some_and(|e| e == "pcap" || e == "pcapng")
            {
                let rel = file.strip_prefix(samples_dir()).expect("relative path");
                found.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    let mut listed: Vec<String> = PACKET_COUNTS.iter().map(|(f, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed, "sample pcaps and expected counts differ");

    for (rel, expected) in PACKET_COUNTS {
        let bytes = read_file(&sample(rel));
        let packets = read_all(&bytes);
        assert_eq!(packets.len(), *expected, "{rel}");
        // Every packet decodes or is reported with a typed error; none may panic.
        let mut defrag = Defragmenter::default();
        let mut decoded = 0;
        for p in &packets {
            if let Ok(Some(_)) = decode_packet(p.link_type, p.timestamp, &p.data, &mut defrag) {
                decoded += 1;
            }
        }
        assert!(decoded > 0, "{rel}: nothing decoded");
    }
}

#[test]
fn hep3_udp_datagrams_match_the_extracted_files() {
    let dir = samples_dir().join("kamailio-hep3-udp/datagrams");
    let mut expected: Vec<_> = std::fs::read_dir(&dir)
        .expect("datagrams dir")
        .map(|e| e.expect("entry").path())
        .collect();
    expected.sort();
    assert_eq!(expected.len(), 305);

    let bytes = read_file(&sample("kamailio-hep3-udp/hep-udp9060.pcap"));
    let mut reader = open(&bytes[..]).expect("open");
    let mut defrag = Defragmenter::default();
    let mut payloads = Vec::new();
    while let Some(p) = reader.next_packet().expect("read") {
        let d = decode_packet(p.link_type, p.timestamp, p.data, &mut defrag)
            .expect("decode")
            .expect("IP packet");
        assert!(matches!(d.transport, Transport::Udp { dst_port: 9060, .. }));
        // Zero-copy: the payload points into the frame.
        let frame = p.data.as_ptr_range();
        assert!(frame.contains(&d.payload().as_ptr()));
        payloads.push(d.payload().to_vec());
    }
    assert_eq!(payloads.len(), expected.len());
    for (payload, file) in payloads.iter().zip(&expected) {
        assert_eq!(payload, &read_file(file), "{}", file.display());
    }
}

#[test]
fn hep_tcp_client_stream_is_byte_identical() {
    let bytes = read_file(&sample("kamailio-hep3-tcp/hep-tcp9060.pcap"));
    let streams = reassemble(&bytes, TcpConfig::default());
    let expected = read_file(&sample("kamailio-hep3-tcp/tcp-stream-conn1.raw"));
    let client = streams
        .iter()
        .find(|(k, _)| k.dst_port == 9060)
        .map(|(_, s)| s)
        .expect("client to server stream");
    assert_eq!(client.gaps, 0);
    assert_eq!(client.closed, 1);
    assert_eq!(client.data.len(), expected.len());
    assert!(client.data == expected, "reassembled stream differs");
}

/// SIP message counts per direction from `tshark -r FILE [-d tcp.port==6060,sip] -Y sip -T
/// fields -e ip.src -e tcp.srcport -e ip.dst -e tcp.dstport -e sip.CSeq -E occurrence=a`
/// (tshark 4.0, one CSeq per SIP message, its own TCP reassembly).
/// Source address and port, destination address and port.
type Direction<'a> = (&'a str, u16, &'a str, u16);

fn check_sip_counts(rel: &str, expected: &[(Direction<'_>, usize)]) {
    let bytes = read_file(&sample(rel));
    let streams = reassemble(&bytes, TcpConfig::default());
    for ((src, sp, dst, dp), count) in expected {
        let key = flow(src, *sp, dst, *dp);
        let stream = streams
            .get(&key)
            .unwrap_or_else(|| panic!("{rel}: no stream {key:?}"));
        let (start_lines, cseq) = count_sip(&stream.data);
        assert_eq!(
            (start_lines, cseq),
            (*count, *count),
            "{rel}: {src}:{sp} -> {dst}:{dp}"
        );
        assert_eq!(stream.gaps, 0, "{rel}: {key:?} has gaps");
    }
}

#[test]
fn sip_over_tcp_each_message_once() {
    check_sip_counts(
        "heplify-pcaps/sip_ipv4_tcp.pcap",
        &[
            (("10.33.6.101", 5060, "10.33.6.100", 64802), 4),
            (("10.33.6.100", 64802, "10.33.6.101", 5060), 3),
        ],
    );
}

#[test]
fn sip_over_tcp_retransmissions_each_message_once() {
    check_sip_counts(
        "heplify-pcaps/sip_ipv4_tcp_retrans.pcap",
        &[
            (("172.168.0.228", 5060, "172.168.0.252", 52795), 2),
            (("172.168.0.252", 52795, "172.168.0.228", 5060), 2),
        ],
    );
    let bytes = read_file(&sample("heplify-pcaps/sip_ipv4_tcp_retrans.pcap"));
    let mut reader = open(&bytes[..]).expect("open");
    let mut defrag = Defragmenter::default();
    let mut tcp = capture::TcpReassembler::default();
    while let Some(p) = reader.next_packet().expect("read") {
        if let Ok(Some(d)) = decode_packet(p.link_type, p.timestamp, p.data, &mut defrag) {
            if let Some(seg) = capture::TcpSegment::from_decoded(&d, p.timestamp) {
                tcp.feed(&seg);
            }
        }
    }
    // tshark flags one retransmission of 592 bytes on the SIP connection; others exist too.
    assert!(tcp.stats().duplicate_bytes >= 592, "{:?}", tcp.stats());
}

#[test]
fn sip_over_tcp_split_across_segments_each_message_once() {
    check_sip_counts(
        "heplify-pcaps/sip_ipv4_tcp_fragmented.pcap",
        &[
            (("10.186.207.1", 37398, "10.186.205.131", 6060), 37),
            (("10.186.205.131", 6060, "10.186.207.1", 37398), 50),
            (("10.186.205.131", 16933, "10.186.207.1", 6060), 76),
            (("10.186.207.1", 6060, "10.186.205.131", 16933), 89),
            (("10.186.205.133", 6060, "10.186.207.1", 60722), 44),
            (("10.186.207.1", 60722, "10.186.205.133", 6060), 30),
            (("10.186.207.1", 6060, "10.186.205.133", 22600), 40),
            (("10.186.205.133", 22600, "10.186.207.1", 6060), 40),
        ],
    );
}

#[test]
fn ipv6_fragments_reassemble_to_one_datagram() {
    let bytes = read_file(&sample("heplify-pcaps/ipv6_udp_fragmented.pcap"));
    let mut defrag = Defragmenter::default();
    let mut reassembled = Vec::new();
    let mut whole = 0;
    for p in read_all(&bytes) {
        match decode_packet(p.link_type, p.timestamp, &p.data, &mut defrag).expect("decode") {
            Some(d) if d.reassembled => reassembled.push(d.into_owned()),
            Some(_) => whole += 1,
            None => {}
        }
    }
    assert_eq!(whole, 2);
    assert_eq!(reassembled.len(), 1);
    let d = &reassembled[0];
    assert_eq!(
        d.transport,
        Transport::Udp {
            src_port: 6363,
            dst_port: 6363
        }
    );
    assert_eq!(
        d.src,
        "2607:f010:3f9::1001".parse::<std::net::IpAddr>().unwrap()
    );
    // tshark: "UDP ... Len=5379" for the reassembled datagram.
    assert_eq!(d.payload().len(), 5379);
    // The datagram is NDN over UDP. First and last 16 bytes of tshark's reassembly
    // (`tshark -r FILE -Y frame.number==6 -T fields -e data`).
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let payload = d.payload();
    assert_eq!(hex(&payload[..16]), "06fd14ff072908076578616d706c6508");
    assert_eq!(
        hex(&payload[payload.len() - 16..]),
        "a01a4490ce0703f21b0ec617edd84f4f"
    );
    let stats = defrag.stats();
    assert_eq!(
        (stats.fragments, stats.reassembled, defrag.pending()),
        (4, 1, 0)
    );
}

/// `ipip0.pcap` was captured on the `ipip0` tunnel interface itself (raw IP link type), so
/// the outer header is already gone there; the test decodes it as captured, then wraps each
/// packet in real outer IPv4 and IPv6 headers to check the decapsulation.
#[test]
fn ip_in_ip_decapsulates_to_sip() {
    let bytes = read_file(&sample("heplify-pcaps/ipip0.pcap"));
    let packets = read_all(&bytes);
    assert_eq!(packets[0].link_type, capture::LinkType::RAW);
    let mut defrag = Defragmenter::default();
    let mut sip = 0;
    for p in &packets {
        let plain = decode_packet(p.link_type, p.timestamp, &p.data, &mut defrag)
            .expect("decode")
            .expect("IP");
        assert!(plain.tunnels.is_empty());
        if count_sip(plain.payload()) == (1, 1) {
            sip += 1;
        }
        for outer_v6 in [false, true] {
            let wrapped = if outer_v6 {
                wrap_ipv6(4, &p.data)
            } else {
                wrap_ipv4(4, &p.data)
            };
            let d = decode_packet(capture::LinkType::RAW, p.timestamp, &wrapped, &mut defrag)
                .expect("decode wrapped")
                .expect("IP");
            assert_eq!(d.tunnels.len(), 1, "{:?}", d.tunnels);
            assert_eq!(d.tunnels[0].kind, TunnelKind::IpInIp);
            assert_eq!(d.tunnels[0].outer_src.is_ipv6(), outer_v6);
            assert_eq!(
                (d.src, d.dst, d.transport),
                (plain.src, plain.dst, plain.transport)
            );
            assert_eq!(d.payload(), plain.payload());
        }
    }
    // tshark shows 8 SIP messages (INVITE, 403, 3 REGISTER, 3 401).
    assert_eq!(sip, 8);
}

#[test]
fn sctp_data_chunks_carry_sip() {
    let bytes = read_file(&sample("heplify-pcaps/sip_sctp.pcap"));
    let mut defrag = Defragmenter::default();
    let mut chunks = Vec::new();
    for p in read_all(&bytes) {
        let d = decode_packet(p.link_type, p.timestamp, &p.data, &mut defrag)
            .expect("decode")
            .expect("IP");
        assert!(matches!(d.transport, Transport::Sctp { .. }));
        for c in d.sctp_data_chunks() {
            chunks.push((c.flags, c.tsn, c.ppid, c.data.to_vec()));
        }
    }
    assert_eq!(chunks.len(), 5);
    // The INVITE is split over two DATA chunks (B then E flag) with consecutive TSNs.
    let (f0, t0, _, first) = &chunks[0];
    let (f1, t1, _, second) = &chunks[1];
    assert_eq!((f0 & 0x03, f1 & 0x03), (0x02, 0x01));
    assert_eq!(t0.wrapping_add(1), *t1);
    let mut invite = first.clone();
    invite.extend_from_slice(second);
    assert!(invite.starts_with(b"INVITE sip:9275890000@VMSSM;user=phone SIP/2.0\r\n"));
    for (_, _, _, data) in &chunks[2..] {
        assert_eq!(count_sip(data), (1, 1));
    }
    assert!(chunks[2].3.starts_with(b"SIP/2.0 100"));
    assert!(chunks[4].3.starts_with(b"ACK "));
}

#[test]
fn truncated_files_end_with_an_error_after_every_whole_packet() {
    let bytes = read_file(&sample("heplify-pcaps/sip_ipv4_tcp.pcap"));
    let all = read_all(&bytes);
    // Cut inside the last record's data, inside its header, and inside the file header.
    let last_len = all.last().expect("packets").data.len();
    // A cut exactly between records is a clean end.
    let clean = read_all(&bytes[..bytes.len() - last_len - 16]);
    assert_eq!(clean.len(), all.len() - 1);
    for (cut, whole) in [
        (bytes.len() - last_len / 2, all.len() - 1),
        (bytes.len() - last_len - 8, all.len() - 1),
        (bytes.len() - last_len - 15, all.len() - 1),
    ] {
        let mut reader = open(&bytes[..cut]).expect("open");
        let mut n = 0;
        let err = loop {
            match reader.next_packet() {
                Ok(Some(_)) => n += 1,
                Ok(None) => panic!("cut at {cut}: ended without an error"),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(err, capture::CaptureError::Truncated { .. }),
            "{err}"
        );
        assert_eq!(n, whole);
        assert!(reader.next_packet().expect("fused").is_none());
    }
    assert!(matches!(
        open(&bytes[..10]),
        Err(capture::CaptureError::Truncated { .. })
    ));
}

#[test]
fn websocket_and_sll_captures_decode_tcp() {
    let bytes = read_file(&sample("heplify-pcaps/sip_tcp_websocket.pcap"));
    let streams = reassemble(&bytes, TcpConfig::default());
    let total: usize = streams.values().map(|s| s.data.len()).sum();
    assert!(total > 0);
    let text: Vec<u8> = streams.values().flat_map(|s| s.data.clone()).collect();
    // The WebSocket upgrade handshake travels as plain HTTP in the stream.
    assert!(
        text.windows(18)
            .any(|w| w.eq_ignore_ascii_case(b"upgrade: websocket")),
        "no WebSocket handshake in the reassembled streams"
    );
}

#[test]
fn decode_errors_are_typed() {
    let mut defrag = Defragmenter::default();
    let now = capture::Timestamp::EPOCH;
    assert_eq!(
        decode_packet(capture::LinkType(9999), now, &[0; 40], &mut defrag),
        Err(LayerError::UnsupportedLinkType(9999))
    );
    // IPv4 header announcing more bytes than captured.
    let mut p = vec![
        0x45, 0, 0, 100, 0, 0, 0, 0, 64, 17, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
    ];
    p.extend_from_slice(&[0; 8]);
    assert!(matches!(
        decode_packet(capture::LinkType::RAW, now, &p, &mut defrag),
        Err(LayerError::Truncated { layer: "IPv4", .. })
    ));
    let _unused: BTreeMap<u8, u8> = BTreeMap::new();
}
