//! rtpengine 10.5's real HEP type 5 payloads: every one parses, re-emits the same JSON, and
//! survives a trip through the binary format.

mod common;

use payload::rtcp::{self, RtcpPacket};
use payload::{Parsed, RtcpFormat};
use serde_json::Value;

fn samples() -> Vec<String> {
    let payloads: Vec<String> = common::oracle_payloads("rtpengine-hep3-rtcp/decoded.jsonl")
        .into_iter()
        .filter(|(proto, _)| *proto == 5)
        .map(|(_, p)| p)
        .collect();
    assert_eq!(
        payloads.len(),
        6,
        "the rtpengine sample holds 6 RTCP reports"
    );
    payloads
}

#[test]
fn every_payload_parses_and_reemits_the_same_json() {
    for text in samples() {
        let original: Value = serde_json::from_str(&text).expect("oracle payload is JSON");
        let report = rtcp::from_json(text.as_bytes()).expect("rtpengine JSON parses");
        assert!(report.diagnostics.is_empty());
        assert!(matches!(report.packets[0], RtcpPacket::SenderReport(_)));
        assert!(matches!(
            report.packets[1],
            RtcpPacket::SourceDescription(_)
        ));
        assert_eq!(
            rtcp::to_json(&report),
            original,
            "re-emitted JSON differs for {text}"
        );
        // The Serialize impl is the same shape.
        assert_eq!(serde_json::to_value(&report).expect("serializes"), original);
    }
}

#[test]
fn binary_built_from_the_values_reemits_the_same_json() {
    for text in samples() {
        let original: Value = serde_json::from_str(&text).expect("oracle payload is JSON");
        let report = rtcp::from_json(text.as_bytes()).expect("parses");
        let binary = rtcp::encode(&report).expect("encodes");
        let decoded = rtcp::parse(&binary).expect("binary parses");
        assert!(decoded.diagnostics.is_empty(), "{:?}", decoded.diagnostics);
        assert_eq!(decoded.packets, report.packets);
        assert_eq!(rtcp::to_json(&decoded), original);
    }
}

#[test]
fn dispatch_recognises_json_rtcp() {
    for text in samples() {
        match payload::parse(5, text.as_bytes()) {
            Parsed::Rtcp { format, report } => {
                assert_eq!(format, RtcpFormat::Json);
                assert_eq!(report.ssrc(), report.packets[0].ssrc());
            }
            other => panic!("expected RTCP, got {other:?}"),
        }
    }
}

#[test]
fn values_match_the_oracle() {
    let first = &samples()[0];
    let report = rtcp::from_json(first.as_bytes()).expect("parses");
    let RtcpPacket::SenderReport(sr) = &report.packets[0] else {
        panic!("first packet is not an SR");
    };
    assert_eq!(sr.ssrc, 286_331_153);
    assert_eq!(sr.sender_info.ntp_seconds, 4_004_332_680);
    assert_eq!(sr.sender_info.ntp_fraction, 1_224_008_704);
    assert_eq!(sr.sender_info.packet_count, 51);
    assert_eq!(sr.report_blocks[0].source_ssrc, 572_662_306);
    assert_eq!(sr.report_blocks[0].highest_seq, 1051);
    assert_eq!(sr.report_blocks[0].fraction_lost, 1);
    assert_eq!(sr.report_blocks[0].jitter, 25);
    let q = payload::quality::assess(&report, &payload::quality::QualityOptions::default());
    assert_eq!(q.blocks.len(), 1);
    assert!((q.blocks[0].fraction_lost_percent - 100.0 / 256.0).abs() < 1e-12);
    assert_eq!(q.blocks[0].jitter_ms, Some(25.0 / 8.0));
    assert_eq!(q.blocks[0].rtt_ms, None, "LSR 0 means no RTT");
}
