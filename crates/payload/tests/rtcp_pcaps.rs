//! Binary RTCP from real captures: every RTCP packet in heplify's rtp_rtcp_sip_ipv4_udp.pcap and
//! rtpengine's media-and-ng.pcap decodes completely, and its values equal what tshark decodes
//! (tests/data/rtcp-tshark-expected.json, produced by tests/data/regen-rtcp-tshark.sh).

mod common;

use payload::rtcp::{self, RtcpPacket};
use serde_json::Value;

const FILES: [&str; 2] = [
    "heplify-pcaps/rtp_rtcp_sip_ipv4_udp.pcap",
    "rtpengine-hep3-rtcp/media-and-ng.pcap",
];

/// One UDP payload found in a capture, with the capture's 1-based frame number.
struct UdpPayload {
    frame: u64,
    bytes: Vec<u8>,
}

fn u16_at(b: &[u8], at: usize, little: bool) -> Option<u16> {
    let s: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
    Some(if little {
        u16::from_le_bytes(s)
    } else {
        u16::from_be_bytes(s)
    })
}

fn u32_at(b: &[u8], at: usize, little: bool) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(if little {
        u32::from_le_bytes(s)
    } else {
        u32::from_be_bytes(s)
    })
}

/// The IPv4 packet inside a frame of the given link type, if the frame carries one.
fn ipv4_of(linktype: u32, frame: &[u8]) -> Option<&[u8]> {
    match linktype {
        // Ethernet, skipping 802.1Q tags.
        1 => {
            let mut at = 12;
            let mut ethertype = u16_at(frame, at, false)?;
            while ethertype == 0x8100 || ethertype == 0x88a8 {
                at += 4;
                ethertype = u16_at(frame, at, false)?;
            }
            (ethertype == 0x0800).then(|| frame.get(at + 2..)).flatten()
        }
        // Linux cooked capture (SLL).
        113 => (u16_at(frame, 14, false)? == 0x0800)
            .then(|| frame.get(16..))
            .flatten(),
        // BSD loopback: 4-byte address family in host order (2 = AF_INET).
        0 => {
            let family = u32_at(frame, 0, true)?;
            (family == 2 || family.swap_bytes() == 2)
                .then(|| frame.get(4..))
                .flatten()
        }
        // OpenBSD loopback: family in network order.
        108 => (u32_at(frame, 0, false)? == 2)
            .then(|| frame.get(4..))
            .flatten(),
        // Raw IP.
        101 => Some(frame),
        _ => None,
    }
}

/// The UDP payload of an unfragmented IPv4 UDP packet.
fn udp_payload(ip: &[u8]) -> Option<&[u8]> {
    let first = *ip.first()?;
    if first >> 4 != 4 || *ip.get(9)? != 17 {
        return None;
    }
    let header_len = usize::from(first & 0x0f) * 4;
    let total_len = usize::from(u16_at(ip, 2, false)?);
    let flags_fragment = u16_at(ip, 6, false)?;
    if flags_fragment & 0x3fff != 0 {
        return None; // a fragment: not a whole datagram
    }
    let ip = ip.get(..total_len.min(ip.len()))?;
    let udp = ip.get(header_len..)?;
    let udp_len = usize::from(u16_at(udp, 4, false)?);
    udp.get(8..udp_len.min(udp.len()))
}

/// Every UDP payload of a classic pcap file.
fn walk_pcap(bytes: &[u8]) -> Vec<UdpPayload> {
    let magic = u32_at(bytes, 0, true).expect("pcap header");
    let little = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        other => panic!("not a classic pcap file (magic {other:#x})"),
    };
    let linktype = u32_at(bytes, 20, little).expect("pcap header") & 0x0fff_ffff;
    let mut out = Vec::new();
    let mut at = 24;
    let mut frame = 0u64;
    while let Some(caplen) = u32_at(bytes, at + 8, little) {
        frame += 1;
        let start = at + 16;
        let end = start + caplen as usize;
        let data = bytes.get(start..end).expect("record inside the file");
        if let Some(payload) = ipv4_of(linktype, data).and_then(udp_payload) {
            out.push(UdpPayload {
                frame,
                bytes: payload.to_vec(),
            });
        }
        at = end;
    }
    out
}

/// The test's RTCP rule: version 2 and a packet type of 200..=207 in the second byte.
fn is_rtcp(p: &[u8]) -> bool {
    matches!(p, [first, pt, ..] if first >> 6 == 2 && (200..=207).contains(pt))
}

fn expected() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/rtcp-tshark-expected.json"
    );
    let text = std::fs::read_to_string(path).expect("fixture present");
    serde_json::from_str::<Value>(&text)
        .expect("fixture is JSON")
        .as_array()
        .expect("fixture is an array")
        .clone()
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not an unsigned number: {v}"))
}

#[test]
fn every_rtcp_packet_decodes_and_matches_tshark() {
    let expected = expected();
    let mut checked = 0;
    for file in FILES {
        let rtcp_frames: Vec<UdpPayload> = walk_pcap(&common::read_sample(file))
            .into_iter()
            .filter(|p| is_rtcp(&p.bytes))
            .collect();
        let want: Vec<&Value> = expected.iter().filter(|e| e["file"] == file).collect();
        let found: Vec<u64> = rtcp_frames.iter().map(|p| p.frame).collect();
        let want_frames: Vec<u64> = want.iter().map(|e| u(&e["frame"])).collect();
        assert_eq!(
            found, want_frames,
            "{file}: RTCP frames differ from tshark's"
        );

        for (packet, exp) in rtcp_frames.iter().zip(want) {
            let ctx = format!("{file} frame {}", packet.frame);
            let report = rtcp::parse(&packet.bytes).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert!(
                report.diagnostics.is_empty(),
                "{ctx}: {:?}",
                report.diagnostics
            );

            let types: Vec<u64> = report
                .packets
                .iter()
                .map(|p| u64::from(p.packet_type()))
                .collect();
            let want_types: Vec<u64> = exp["packet_types"]
                .as_array()
                .expect("array")
                .iter()
                .map(u)
                .collect();
            assert_eq!(types, want_types, "{ctx}: packet types");

            let sender_ssrcs: Vec<u64> = report
                .reports()
                .map(|(ssrc, _, _)| u64::from(ssrc))
                .collect();
            let want_ssrcs: Vec<u64> = exp["sender_ssrcs"]
                .as_array()
                .expect("array")
                .iter()
                .map(u)
                .collect();
            assert_eq!(sender_ssrcs, want_ssrcs, "{ctx}: sender SSRCs");

            let infos: Vec<_> = report
                .reports()
                .filter_map(|(_, si, _)| si.copied())
                .collect();
            let want_infos = exp["sender_info"].as_array().expect("array");
            assert_eq!(infos.len(), want_infos.len(), "{ctx}: sender info count");
            for (si, w) in infos.iter().zip(want_infos) {
                assert_eq!(u64::from(si.ntp_seconds), u(&w["ntp_msw"]), "{ctx}");
                assert_eq!(u64::from(si.ntp_fraction), u(&w["ntp_lsw"]), "{ctx}");
                assert_eq!(u64::from(si.rtp_timestamp), u(&w["rtp_timestamp"]), "{ctx}");
                assert_eq!(u64::from(si.packet_count), u(&w["packets"]), "{ctx}");
                assert_eq!(u64::from(si.octet_count), u(&w["octets"]), "{ctx}");
            }

            let blocks: Vec<_> = report
                .reports()
                .flat_map(|(_, _, b)| b.iter().copied())
                .collect();
            let want_blocks = exp["report_blocks"].as_array().expect("array");
            assert_eq!(blocks.len(), want_blocks.len(), "{ctx}: report block count");
            for (b, w) in blocks.iter().zip(want_blocks) {
                assert_eq!(u64::from(b.source_ssrc), u(&w["ssrc"]), "{ctx}");
                assert_eq!(u64::from(b.fraction_lost), u(&w["fraction_lost"]), "{ctx}");
                assert_eq!(
                    i64::from(b.cumulative_lost_signed()),
                    w["cumulative_lost"].as_i64().expect("integer"),
                    "{ctx}"
                );
                assert_eq!(u64::from(b.highest_seq), u(&w["ext_high_seq"]), "{ctx}");
                assert_eq!(u64::from(b.jitter), u(&w["jitter"]), "{ctx}");
                assert_eq!(u64::from(b.lsr), u(&w["lsr"]), "{ctx}");
                assert_eq!(u64::from(b.dlsr), u(&w["dlsr"]), "{ctx}");
            }

            let items: Vec<(u64, String)> = report
                .packets
                .iter()
                .filter_map(|p| match p {
                    RtcpPacket::SourceDescription(sd) => Some(sd),
                    _ => None,
                })
                .flat_map(|sd| sd.chunks.iter().flat_map(|c| c.items.iter()))
                .map(|i| (u64::from(i.item_type), i.text.clone()))
                .collect();
            let want_items: Vec<(u64, String)> = exp["sdes_items"]
                .as_array()
                .expect("array")
                .iter()
                .map(|i| (u(&i["type"]), i["text"].as_str().expect("text").to_owned()))
                .collect();
            assert_eq!(items, want_items, "{ctx}: SDES items");

            // And the binary form survives encode → parse unchanged.
            let again = rtcp::parse(&rtcp::encode(&report).expect("encodes")).expect("parses");
            assert_eq!(
                again.packets, report.packets,
                "{ctx}: re-encoding changed the packets"
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked, 40,
        "both captures hold 40 RTCP packets between them"
    );
}

#[test]
fn rtpengine_capture_agrees_with_its_own_hep_json() {
    // rtpengine sent, as HEP JSON, the SRs it forwarded; the capture holds the same SRs in binary.
    let json_reports: Vec<Value> = common::oracle_payloads("rtpengine-hep3-rtcp/decoded.jsonl")
        .into_iter()
        .filter(|(proto, _)| *proto == 5)
        .map(|(_, text)| serde_json::from_str(&text).expect("JSON"))
        .collect();
    let binary_json: Vec<Value> = walk_pcap(&common::read_sample(FILES[1]))
        .into_iter()
        .filter(|p| is_rtcp(&p.bytes))
        .map(|p| rtcp::to_json(&rtcp::parse(&p.bytes).expect("parses")))
        .collect();
    for report in &json_reports {
        assert!(
            binary_json.contains(report),
            "no captured RTCP packet re-emits rtpengine's JSON {report}"
        );
    }
}
