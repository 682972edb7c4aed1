//! Properties: no input makes any decoder panic; typed RTCP survives binary and JSON round trips.

use payload::rtcp::{
    self, AppPacket, DlrrItem, ExtendedReport, Feedback, FeedbackLayer, Goodbye, ReceiverReport,
    ReportBlock, RleReport, RtcpPacket, RtcpReport, RxConfig, SdesChunk, SdesItem, SenderInfo,
    SenderReport, SourceDescription, StatisticsSummary, VoipMetrics, XrBlock,
};
use payload::{dns, json, log, quality};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    "[ -~]{0,40}"
}

fn report_block() -> impl Strategy<Value = ReportBlock> {
    (any::<[u32; 5]>(), any::<u8>(), 0u32..=0x00ff_ffff).prop_map(|(w, fraction_lost, cum)| {
        ReportBlock {
            source_ssrc: w[0],
            fraction_lost,
            cumulative_lost: cum,
            highest_seq: w[1],
            jitter: w[2],
            lsr: w[3],
            dlsr: w[4],
        }
    })
}

fn sdes_item() -> impl Strategy<Value = SdesItem> {
    prop_oneof![
        (1u8..=255, text())
            .prop_filter("PRIV carries a prefix", |(t, _)| *t != 8)
            .prop_map(|(item_type, text)| SdesItem {
                item_type,
                prefix: None,
                text
            }),
        ("[ -~]{0,10}", text()).prop_map(|(prefix, text)| SdesItem {
            item_type: 8,
            prefix: Some(prefix),
            text
        }),
    ]
}

fn voip_metrics() -> impl Strategy<Value = VoipMetrics> {
    (
        any::<(u32, u8, u8, u8, u8, u16, u16, u16, u16)>(),
        any::<(i8, i8, u8, u8, u8, u8, u8, u8)>(),
        (0u8..4, 0u8..4, 0u8..16),
        any::<(u16, u16, u16)>(),
    )
        .prop_map(|(a, b, rx, jb)| VoipMetrics {
            ssrc: a.0,
            loss_rate: a.1,
            discard_rate: a.2,
            burst_density: a.3,
            gap_density: a.4,
            burst_duration: a.5,
            gap_duration: a.6,
            round_trip_delay: a.7,
            end_system_delay: a.8,
            signal_level: b.0,
            noise_level: b.1,
            rerl: b.2,
            gmin: b.3,
            r_factor: b.4,
            ext_r_factor: b.5,
            mos_lq: b.6,
            mos_cq: b.7,
            rx_config: RxConfig {
                plc: rx.0,
                jba: rx.1,
                jb_rate: rx.2,
            },
            jb_nominal: jb.0,
            jb_maximum: jb.1,
            jb_abs_max: jb.2,
        })
}

fn rle() -> impl Strategy<Value = RleReport> {
    (
        any::<u32>(),
        0u8..16,
        any::<u16>(),
        any::<u16>(),
        vec(1u16..=u16::MAX, 0..8),
    )
        .prop_map(|(ssrc, thinning, begin_seq, end_seq, chunks)| RleReport {
            ssrc,
            thinning,
            begin_seq,
            end_seq,
            chunks,
        })
}

fn stats() -> impl Strategy<Value = StatisticsSummary> {
    (
        any::<(u32, bool, bool, bool, u16, u16)>(),
        0u8..4,
        any::<[u32; 6]>(),
        any::<[u8; 4]>(),
    )
        .prop_map(|(a, toh, w, t)| StatisticsSummary {
            ssrc: a.0,
            loss_reported: a.1,
            duplicates_reported: a.2,
            jitter_reported: a.3,
            ttl_or_hop_limit: toh,
            begin_seq: a.4,
            end_seq: a.5,
            lost_packets: w[0],
            dup_packets: w[1],
            min_jitter: w[2],
            max_jitter: w[3],
            mean_jitter: w[4],
            dev_jitter: w[5],
            min_ttl_or_hl: t[0],
            max_ttl_or_hl: t[1],
            mean_ttl_or_hl: t[2],
            dev_ttl_or_hl: t[3],
        })
}

fn xr_block() -> impl Strategy<Value = XrBlock> {
    prop_oneof![
        rle().prop_map(XrBlock::LossRle),
        rle().prop_map(XrBlock::DuplicateRle),
        any::<(u32, u32)>().prop_map(|(ntp_seconds, ntp_fraction)| {
            XrBlock::ReceiverReferenceTime {
                ntp_seconds,
                ntp_fraction,
            }
        }),
        vec(any::<(u32, u32, u32)>(), 0..4).prop_map(|items| XrBlock::Dlrr(
            items
                .into_iter()
                .map(|(ssrc, last_rr, delay_since_last_rr)| DlrrItem {
                    ssrc,
                    last_rr,
                    delay_since_last_rr
                })
                .collect()
        )),
        stats().prop_map(XrBlock::StatisticsSummary),
        voip_metrics().prop_map(XrBlock::VoipMetrics),
        (8u8..=255, any::<u8>(), vec(any::<[u8; 4]>(), 0..4)).prop_map(
            |(block_type, type_specific, words)| XrBlock::Other {
                block_type,
                type_specific,
                data: words.concat(),
            }
        ),
    ]
}

fn packet() -> impl Strategy<Value = RtcpPacket> {
    prop_oneof![
        (any::<u32>(), any::<[u32; 5]>(), vec(report_block(), 0..4)).prop_map(
            |(ssrc, s, report_blocks)| RtcpPacket::SenderReport(SenderReport {
                ssrc,
                sender_info: SenderInfo {
                    ntp_seconds: s[0],
                    ntp_fraction: s[1],
                    rtp_timestamp: s[2],
                    packet_count: s[3],
                    octet_count: s[4],
                },
                report_blocks,
            })
        ),
        (any::<u32>(), vec(report_block(), 0..4)).prop_map(|(ssrc, report_blocks)| {
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc,
                report_blocks,
            })
        }),
        vec((any::<u32>(), vec(sdes_item(), 0..3)), 1..4).prop_map(|chunks| {
            RtcpPacket::SourceDescription(SourceDescription {
                chunks: chunks
                    .into_iter()
                    .map(|(ssrc, items)| SdesChunk { ssrc, items })
                    .collect(),
            })
        }),
        (vec(any::<u32>(), 0..4), option::of(text()))
            .prop_map(|(ssrcs, reason)| RtcpPacket::Goodbye(Goodbye { ssrcs, reason })),
        (
            0u8..32,
            any::<u32>(),
            "[A-Z0-9]{4}",
            vec(any::<u8>(), 0..16)
        )
            .prop_map(|(subtype, ssrc, name, data)| {
                let mut n = [b' '; 4];
                n.copy_from_slice(&name.as_bytes()[..4]);
                RtcpPacket::App(AppPacket {
                    subtype,
                    ssrc,
                    name: n,
                    data,
                })
            }),
        (
            any::<bool>(),
            0u8..32,
            any::<(u32, u32)>(),
            vec(any::<u8>(), 0..16)
        )
            .prop_map(|(transport, fmt, (sender_ssrc, media_ssrc), fci)| {
                RtcpPacket::Feedback(Feedback {
                    layer: if transport {
                        FeedbackLayer::Transport
                    } else {
                        FeedbackLayer::PayloadSpecific
                    },
                    fmt,
                    sender_ssrc,
                    media_ssrc,
                    fci,
                })
            }),
        (any::<u32>(), vec(xr_block(), 0..4)).prop_map(|(ssrc, blocks)| {
            RtcpPacket::ExtendedReport(ExtendedReport { ssrc, blocks })
        }),
    ]
}

fn report() -> impl Strategy<Value = RtcpReport> {
    vec(packet(), 1..6).prop_map(|packets| RtcpReport {
        packets,
        diagnostics: vec![],
    })
}

/// Bytes that start like an RTCP packet, so the decoder gets past the header checks.
fn rtcp_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    (0u8..64, 200u8..=207, vec(any::<u8>(), 0..200)).prop_map(|(bits, pt, body)| {
        let words = u16::try_from(body.len() / 4).unwrap_or(0);
        let mut out = vec![0x80 | (bits & 0x3f), pt];
        out.extend_from_slice(&words.to_be_bytes());
        out.extend_from_slice(&body);
        out
    })
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u32>().prop_map(serde_json::Value::from),
        "[a-z_]{0,8}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("type".to_owned()),
                    Just("ssrc".to_owned()),
                    Just("report_blocks".to_owned()),
                    Just("sender_information".to_owned()),
                    Just("sdes_information".to_owned()),
                    Just("xr".to_owned()),
                    Just("blocks".to_owned()),
                    Just("block_type".to_owned()),
                    Just("bye".to_owned()),
                    Just("report_blocks_xr".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512), proto in any::<u8>()) {
        if let Ok(report) = rtcp::parse(&bytes) {
            let _ = rtcp::to_json(&report);
            let _ = quality::assess(&report, &quality::QualityOptions::default());
        }
        let _ = rtcp::from_json(&bytes);
        let _ = dns::parse(&bytes);
        let _ = log::parse(&bytes);
        let _ = json::parse_value(&bytes);
        let parsed = payload::parse(proto, &bytes);
        let _ = serde_json::to_string(&parsed);
    }

    #[test]
    fn rtcp_shaped_bytes_never_panic(chunks in vec(rtcp_like_bytes(), 1..4)) {
        let bytes = chunks.concat();
        if let Ok(report) = rtcp::parse(&bytes) {
            prop_assert!(!report.packets.is_empty());
            let json = rtcp::to_json(&report);
            let _ = rtcp::from_json(json.to_string().as_bytes());
            let _ = quality::assess(&report, &quality::QualityOptions {
                arrival_ntp_middle: Some(0x1234_5678),
                ..quality::QualityOptions::default()
            });
        }
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value(), path in "[a-z_\\[\\]0-9.]{0,20}") {
        let text = value.to_string();
        let _ = rtcp::from_json(text.as_bytes());
        let _ = payload::parse(5, text.as_bytes());
        let _ = payload::parse(53, text.as_bytes());
        let _ = json::json_path(&value, &path);
    }

    #[test]
    fn binary_round_trip(report in report()) {
        let bytes = rtcp::encode(&report).expect("generated reports fit the wire format");
        let decoded = rtcp::parse(&bytes).expect("encoded report decodes");
        prop_assert!(decoded.diagnostics.is_empty(), "{:?}", decoded.diagnostics);
        prop_assert_eq!(&decoded.packets, &report.packets);
        prop_assert_eq!(rtcp::to_json(&decoded), rtcp::to_json(&report));
    }

    #[test]
    fn json_round_trip_is_stable(report in report()) {
        let first = rtcp::to_json(&report);
        let typed = rtcp::from_json(first.to_string().as_bytes()).expect("own JSON parses");
        let second = rtcp::to_json(&typed);
        prop_assert_eq!(&second, &first);
        // And what came back still fits the binary format.
        let bytes = rtcp::encode(&typed).expect("encodes");
        prop_assert_eq!(rtcp::to_json(&rtcp::parse(&bytes).expect("decodes")), second);
    }

    #[test]
    fn truncation_gives_a_prefix_of_the_packets(report in report(), cut in any::<prop::sample::Index>()) {
        let bytes = rtcp::encode(&report).expect("encodes");
        let cut = cut.index(bytes.len());
        if let Ok(partial) = rtcp::parse(&bytes[..cut]) {
            prop_assert!(partial.packets.len() <= report.packets.len());
            prop_assert_eq!(&partial.packets[..], &report.packets[..partial.packets.len()]);
        }
    }
}
