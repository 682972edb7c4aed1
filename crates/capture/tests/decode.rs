//! Packet decoding over synthetic frames: VLANs, tunnels, fragments, transports.

mod common;

use std::net::IpAddr;

use capture::{
    decode_packet, DefragConfig, Defragmenter, LayerError, LinkType, TcpFlags, Timestamp,
    Transport, TunnelKind, MAX_TUNNEL_DEPTH,
};
use common::*;

const SIP: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&src_port.to_be_bytes());
    u.extend_from_slice(&dst_port.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

fn ethernet(ethertype: u16, vlans: &[(u16, u16)], payload: &[u8]) -> Vec<u8> {
    let mut e = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for (tpid, id) in vlans {
        e.extend_from_slice(&tpid.to_be_bytes());
        e.extend_from_slice(&id.to_be_bytes());
    }
    e.extend_from_slice(&ethertype.to_be_bytes());
    e.extend_from_slice(payload);
    e
}

/// Decodes with a fresh defragmenter; owned so tests can pass temporaries.
fn decode(link: LinkType, frame: &[u8]) -> Result<Option<capture::Decoded<'static>>, LayerError> {
    decode_packet(link, Timestamp::EPOCH, frame, &mut Defragmenter::default())
        .map(|d| d.map(capture::Decoded::into_owned))
}

fn sip_udp_v4() -> Vec<u8> {
    wrap_ipv4(17, &udp(5060, 5080, SIP))
}

#[test]
fn udp_over_qinq_ethernet() {
    let frame = ethernet(
        0x0800,
        &[(0x88a8, 100), (0x8100, 0x2000 | 200)],
        &sip_udp_v4(),
    );
    let d = decode(LinkType::ETHERNET, &frame).unwrap().unwrap();
    assert_eq!(d.link.vlans.as_slice(), &[100, 200]);
    assert_eq!(d.link.src_mac.unwrap().0, [2, 0, 0, 0, 0, 2]);
    assert_eq!(d.src, "192.0.2.1".parse::<IpAddr>().unwrap());
    assert_eq!(
        d.transport,
        Transport::Udp {
            src_port: 5060,
            dst_port: 5080
        }
    );
    assert_eq!(d.payload(), SIP);
    assert!(!d.reassembled && d.tunnels.is_empty());
}

#[test]
fn non_ip_frames_yield_nothing() {
    let arp = ethernet(0x0806, &[], &[0; 28]);
    assert_eq!(decode(LinkType::ETHERNET, &arp), Ok(None));
}

#[test]
fn ethernet_padding_is_trimmed_to_the_ip_length() {
    let mut frame = ethernet(0x0800, &[], &wrap_ipv4(17, &udp(1, 2, b"x")));
    frame.extend_from_slice(&[0; 20]);
    let d = decode(LinkType::ETHERNET, &frame).unwrap().unwrap();
    assert_eq!(d.payload(), b"x");
}

fn gre(flags: u8, protocol: u16, key: Option<u32>, seq: Option<u32>, inner: &[u8]) -> Vec<u8> {
    let mut g = vec![flags, 0];
    g.extend_from_slice(&protocol.to_be_bytes());
    if let Some(k) = key {
        g.extend_from_slice(&k.to_be_bytes());
    }
    if let Some(s) = seq {
        g.extend_from_slice(&s.to_be_bytes());
    }
    g.extend_from_slice(inner);
    g
}

#[test]
fn gre_with_key_and_sequence_to_inner_ip() {
    let packet = wrap_ipv4(47, &gre(0x30, 0x0800, Some(7), Some(9), &sip_udp_v4()));
    let d = decode(LinkType::RAW, &packet).unwrap().unwrap();
    assert_eq!(
        d.tunnels[0].kind,
        TunnelKind::Gre {
            key: Some(7),
            sequence: Some(9)
        }
    );
    assert_eq!(d.payload(), SIP);
}

#[test]
fn gre_transparent_ethernet_bridging() {
    let inner = ethernet(0x0800, &[(0x8100, 42)], &sip_udp_v4());
    let packet = wrap_ipv6(47, &gre(0, 0x6558, None, None, &inner));
    let d = decode(LinkType::RAW, &packet).unwrap().unwrap();
    assert_eq!(d.tunnels.len(), 1);
    assert!(d.tunnels[0].outer_src.is_ipv6());
    assert_eq!(d.inner_link.unwrap().vlans.as_slice(), &[42]);
    assert_eq!(d.payload(), SIP);
}

#[test]
fn erspan_types_one_two_three() {
    let inner = ethernet(0x0800, &[], &sip_udp_v4());
    // Type I: no sequence number, no ERSPAN header.
    let t1 = wrap_ipv4(47, &gre(0, 0x88be, None, None, &inner));
    let d = decode(LinkType::RAW, &t1).unwrap().unwrap();
    assert!(matches!(
        d.tunnels[0].kind,
        TunnelKind::Erspan { version: 1, .. }
    ));
    assert_eq!(d.payload(), SIP);

    // Type II: version 1 nibble, VLAN 5, session 0x155.
    let mut e2 = vec![0x10, 0x05, 0x01, 0x55, 0, 0, 0, 0];
    e2.extend_from_slice(&inner);
    let t2 = wrap_ipv4(47, &gre(0x10, 0x88be, None, Some(1), &e2));
    let d = decode(LinkType::RAW, &t2).unwrap().unwrap();
    assert_eq!(
        d.tunnels[0].kind,
        TunnelKind::Erspan {
            version: 2,
            session_id: 0x155,
            vlan: 5
        }
    );
    assert_eq!(d.payload(), SIP);

    // Type III with the optional 8-byte platform subheader (O flag).
    let mut e3 = vec![0x20, 0x07, 0x00, 0x09, 1, 2, 3, 4, 0, 0, 0, 0x01];
    e3.extend_from_slice(&[0xaa; 8]);
    e3.extend_from_slice(&inner);
    let t3 = wrap_ipv4(47, &gre(0x10, 0x22eb, None, Some(1), &e3));
    let d = decode(LinkType::RAW, &t3).unwrap().unwrap();
    assert_eq!(
        d.tunnels[0].kind,
        TunnelKind::Erspan {
            version: 3,
            session_id: 9,
            vlan: 7
        }
    );
    assert_eq!(d.payload(), SIP);
}

#[test]
fn gre_with_unknown_payload_is_delivered_as_gre() {
    let packet = wrap_ipv4(47, &gre(0, 0x8847, None, None, &[1, 2, 3, 4]));
    let d = decode(LinkType::RAW, &packet).unwrap().unwrap();
    assert_eq!(d.transport, Transport::Other(47));
    assert!(d.tunnels.is_empty());
}

#[test]
fn vxlan_decapsulates_and_plain_4789_without_flag_does_not() {
    let inner = ethernet(0x86dd, &[], &wrap_ipv6(17, &udp(5060, 5060, SIP)));
    let mut vx = vec![0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0];
    vx.extend_from_slice(&inner);
    let packet = wrap_ipv4(17, &udp(40000, 4789, &vx));
    let d = decode(LinkType::RAW, &packet).unwrap().unwrap();
    assert_eq!(d.tunnels[0].kind, TunnelKind::Vxlan { vni: 0x123456 });
    assert!(d.src.is_ipv6());
    assert_eq!(d.payload(), SIP);

    let not_vxlan = wrap_ipv4(17, &udp(40000, 4789, b"hello, this is not vxlan at all"));
    let d = decode(LinkType::RAW, &not_vxlan).unwrap().unwrap();
    assert!(matches!(d.transport, Transport::Udp { dst_port: 4789, .. }));
}

#[test]
fn all_four_ip_in_ip_combinations() {
    let v4 = sip_udp_v4();
    let v6 = wrap_ipv6(17, &udp(5060, 5080, SIP));
    for packet in [
        wrap_ipv4(4, &v4),
        wrap_ipv4(41, &v6),
        wrap_ipv6(4, &v4),
        wrap_ipv6(41, &v6),
    ] {
        let d = decode(LinkType::RAW, &packet).unwrap().unwrap();
        assert_eq!(d.tunnels.len(), 1);
        assert_eq!(d.tunnels[0].kind, TunnelKind::IpInIp);
        assert_eq!(d.payload(), SIP);
    }
}

#[test]
fn tunnel_depth_is_bounded() {
    let mut packet = sip_udp_v4();
    for _ in 0..MAX_TUNNEL_DEPTH {
        packet = wrap_ipv4(4, &packet);
    }
    let d = decode(LinkType::RAW, &packet).unwrap().unwrap();
    assert_eq!(d.tunnels.len(), MAX_TUNNEL_DEPTH);
    let deeper = wrap_ipv4(4, &packet);
    assert_eq!(
        decode(LinkType::RAW, &deeper),
        Err(LayerError::TunnelTooDeep(MAX_TUNNEL_DEPTH))
    );
}

/// Splits an IPv4 datagram's payload into fragments of `chunk` bytes (multiple of 8).
fn fragment_v4(protocol: u8, payload: &[u8], chunk: usize, id: u16) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (i, part) in payload.chunks(chunk).enumerate() {
        let offset = i * chunk;
        let more = offset + part.len() < payload.len();
        let mut p = wrap_ipv4(protocol, part);
        p[4..6].copy_from_slice(&id.to_be_bytes());
        let flags = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
        p[6..8].copy_from_slice(&flags.to_be_bytes());
        out.push(p);
    }
    out
}

#[test]
fn ipv4_fragments_reassemble_in_any_order_through_decode() {
    let big: Vec<u8> = SIP.iter().cycle().take(3000).copied().collect();
    let datagram = udp(5060, 5060, &big);
    let mut frags = fragment_v4(17, &datagram, 1480, 77);
    assert_eq!(frags.len(), 3);
    frags.reverse();
    // A duplicate of the middle fragment on the way.
    frags.insert(1, frags[1].clone());
    let mut defrag = Defragmenter::new(DefragConfig::default());
    let mut results = Vec::new();
    for f in &frags {
        if let Some(d) = decode_packet(LinkType::RAW, Timestamp::EPOCH, f, &mut defrag).unwrap() {
            results.push(d.into_owned());
        }
    }
    assert_eq!(results.len(), 1);
    assert!(results[0].reassembled);
    assert_eq!(results[0].payload(), &big[..]);
    assert_eq!(defrag.stats().reassembled, 1);
    assert_eq!(defrag.stats().overlapping_bytes, 1480);
}

#[test]
fn fragmented_outer_tunnel_then_inner_packet() {
    // An IP-in-IP packet whose outer datagram is fragmented.
    let inner = sip_udp_v4();
    let frags = fragment_v4(4, &inner, 48, 5);
    let mut defrag = Defragmenter::default();
    let mut out = None;
    for f in &frags {
        if let Some(d) = decode_packet(LinkType::RAW, Timestamp::EPOCH, f, &mut defrag).unwrap() {
            out = Some(d.into_owned());
        }
    }
    let d = out.expect("reassembled");
    assert!(d.reassembled);
    assert_eq!(d.tunnels.len(), 1);
    assert_eq!(d.payload(), SIP);
}

#[test]
fn ipv6_extension_headers_and_fragments() {
    let datagram = udp(5060, 5060, SIP);
    // Hop-by-hop (8 bytes) then a destination-options header (8 bytes) before UDP.
    let mut ext = vec![60, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0];
    ext.extend_from_slice(&datagram);
    let d = decode(LinkType::RAW, &wrap_ipv6(0, &ext)).unwrap().unwrap();
    assert_eq!(d.payload(), SIP);

    // Two fragments, second first; the first carries hop-by-hop before the fragment header.
    let split = 32;
    let mut first = vec![44, 0, 1, 4, 0, 0, 0, 0];
    first.extend_from_slice(&[17, 0, 0x00, 0x01, 0, 0, 0, 9]);
    first.extend_from_slice(&datagram[..split]);
    let mut second = vec![17, 0];
    second.extend_from_slice(&(((split / 8) as u16) << 3).to_be_bytes());
    second.extend_from_slice(&[0, 0, 0, 9]);
    second.extend_from_slice(&datagram[split..]);
    let mut defrag = Defragmenter::default();
    let now = Timestamp::EPOCH;
    let b = wrap_ipv6(44, &second);
    assert_eq!(decode_packet(LinkType::RAW, now, &b, &mut defrag), Ok(None));
    let a = wrap_ipv6(0, &first);
    let d = decode_packet(LinkType::RAW, now, &a, &mut defrag)
        .unwrap()
        .unwrap();
    assert!(d.reassembled);
    assert_eq!(d.payload(), SIP);
}

#[test]
fn tcp_sctp_icmp_headers() {
    let mut tcp = vec![
        0x13, 0xc4, 0x9c, 0x40, 0, 0, 0, 100, 0, 0, 0, 200, 0x60, 0x18, 0x01, 0x00,
    ];
    tcp.extend_from_slice(&[0, 0, 0, 0, 1, 1, 1, 0]); // checksum, urgent, 4 bytes of options
    tcp.extend_from_slice(SIP);
    let d = decode(LinkType::RAW, &wrap_ipv4(6, &tcp)).unwrap().unwrap();
    let Transport::Tcp(h) = d.transport else {
        panic!("not TCP")
    };
    assert_eq!(
        (h.src_port, h.dst_port, h.seq, h.ack, h.window),
        (5060, 40000, 100, 200, 256)
    );
    assert!(h.flags.contains(TcpFlags::ACK) && h.flags.contains(TcpFlags::PSH));
    assert!(!h.flags.contains(TcpFlags::SYN));
    assert_eq!(d.payload(), SIP);

    let mut sctp = vec![0x13, 0xc4, 0x13, 0xc4, 0, 0, 0, 1, 0, 0, 0, 0];
    let mut chunk = vec![0, 0x03, 0, 0, 0, 0, 0, 5, 0, 1, 0, 2, 0, 0, 0, 0];
    chunk.extend_from_slice(b"abcde");
    let len = chunk.len() as u16;
    chunk[2..4].copy_from_slice(&len.to_be_bytes());
    chunk.extend_from_slice(&[0, 0, 0]);
    sctp.extend_from_slice(&[3, 0, 0, 4]); // a SACK-type chunk of 4 bytes, skipped
    sctp.extend_from_slice(&chunk);
    let d = decode(LinkType::RAW, &wrap_ipv4(132, &sctp))
        .unwrap()
        .unwrap();
    let chunks: Vec<_> = d.sctp_data_chunks().collect();
    assert_eq!(chunks.len(), 1);
    assert_eq!(
        (chunks[0].tsn, chunks[0].stream_id, chunks[0].stream_seq),
        (5, 1, 2)
    );
    assert_eq!(chunks[0].data, b"abcde");

    let d = decode(LinkType::RAW, &wrap_ipv4(1, &[8, 0, 0, 0, 1, 2, 3, 4]))
        .unwrap()
        .unwrap();
    assert_eq!(
        d.transport,
        Transport::Icmp {
            icmp_type: 8,
            code: 0
        }
    );
    assert_eq!(d.flow_key(), None);
}

#[test]
fn udp_length_checks() {
    let mut bad = udp(1, 2, b"abc");
    bad[4..6].copy_from_slice(&100u16.to_be_bytes());
    assert!(matches!(
        decode(LinkType::RAW, &wrap_ipv4(17, &bad)),
        Err(LayerError::Truncated { layer: "UDP", .. })
    ));
    bad[4..6].copy_from_slice(&4u16.to_be_bytes());
    assert!(matches!(
        decode(LinkType::RAW, &wrap_ipv4(17, &bad)),
        Err(LayerError::Malformed { layer: "UDP", .. })
    ));
}

#[test]
fn gre_flags_announcing_missing_fields_are_truncation_errors() {
    // Checksum flag set but the packet ends after the base header.
    let packet = wrap_ipv4(47, &[0x80, 0, 0x08, 0x00]);
    assert!(matches!(
        decode(LinkType::RAW, &packet),
        Err(LayerError::Truncated { layer: "GRE", .. })
    ));
    // Key flag with only two bytes of key.
    let packet = wrap_ipv4(47, &[0x20, 0, 0x08, 0x00, 1, 2]);
    assert!(matches!(
        decode(LinkType::RAW, &packet),
        Err(LayerError::Truncated { layer: "GRE", .. })
    ));
}
