//! Typed RTCP records back to the binary wire format.
//!
//! Used to synthesise RTCP (test traffic, load generators) and to check the decoder by round trip:
//! `parse(&encode(&report)?)?.packets == report.packets` for every report whose fields fit the
//! wire format. APP data and feedback FCI that are not a multiple of 4 bytes are padded with the
//! RTCP padding mechanism (P bit), which the decoder strips again.

use super::xr::{ExtendedReport, RleReport, StatisticsSummary, VoipMetrics, XrBlock};
use super::{
    AppPacket, Feedback, Goodbye, ReportBlock, RtcpPacket, RtcpReport, SdesChunk, SenderInfo,
    PT_APP, PT_BYE, PT_RR, PT_SDES, PT_SR, PT_XR,
};

/// Why a report cannot be written in the binary format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtcpEncodeError {
    /// A count field (report blocks, SDES chunks, BYE sources, subtype, FMT) exceeds 31.
    #[error("packet type {packet_type}: {count} does not fit the 5-bit count field")]
    CountTooLarge {
        /// Packet type being written.
        packet_type: u8,
        /// The count that does not fit.
        count: usize,
    },
    /// An SDES item or BYE reason is longer than the 255 bytes its length byte allows.
    #[error("packet type {packet_type}: text of {len} bytes exceeds 255")]
    TextTooLong {
        /// Packet type being written.
        packet_type: u8,
        /// Length of the text in bytes.
        len: usize,
    },
    /// A packet or XR block is longer than its 16-bit length field allows.
    #[error("packet type {packet_type}: {len} bytes exceed the 16-bit length field")]
    TooLong {
        /// Packet type being written.
        packet_type: u8,
        /// Length in bytes.
        len: usize,
    },
    /// An undecoded XR block's data is not a whole number of 32-bit words.
    #[error("XR block type {block_type}: {len} data bytes are not a multiple of 4")]
    UnalignedXrBlock {
        /// Block type.
        block_type: u8,
        /// Data length in bytes.
        len: usize,
    },
}

/// Writes every packet of `report` as one binary compound packet.
pub fn encode(report: &RtcpReport) -> Result<Vec<u8>, RtcpEncodeError> {
    let mut out = Vec::new();
    for packet in &report.packets {
        encode_packet(packet, &mut out)?;
    }
    Ok(out)
}

fn count5(packet_type: u8, count: usize) -> Result<u8, RtcpEncodeError> {
    u8::try_from(count)
        .ok()
        .filter(|c| *c <= 31)
        .ok_or(RtcpEncodeError::CountTooLarge { packet_type, count })
}

fn text_len(packet_type: u8, len: usize) -> Result<u8, RtcpEncodeError> {
    u8::try_from(len).map_err(|_| RtcpEncodeError::TextTooLong { packet_type, len })
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends header + body, padding the body with the P-bit mechanism when it is not word-aligned.
fn finish(
    out: &mut Vec<u8>,
    count: u8,
    packet_type: u8,
    mut body: Vec<u8>,
) -> Result<(), RtcpEncodeError> {
    let misalignment = body.len() % 4;
    let padded = misalignment != 0;
    if padded {
        let pad = 4 - misalignment;
        body.resize(body.len() + pad - 1, 0);
        // `pad` is 1..=3, so the cast is exact.
        body.push(pad as u8);
    }
    let words = u16::try_from(body.len() / 4).map_err(|_| RtcpEncodeError::TooLong {
        packet_type,
        len: body.len(),
    })?;
    out.push(0x80 | if padded { 0x20 } else { 0 } | (count & 0x1f));
    out.push(packet_type);
    // Length is in words minus one; the header is the extra word.
    put16(out, words);
    out.extend_from_slice(&body);
    Ok(())
}

fn encode_packet(packet: &RtcpPacket, out: &mut Vec<u8>) -> Result<(), RtcpEncodeError> {
    let mut body = Vec::new();
    match packet {
        RtcpPacket::SenderReport(sr) => {
            let count = count5(PT_SR, sr.report_blocks.len())?;
            put32(&mut body, sr.ssrc);
            put_sender_info(&mut body, &sr.sender_info);
            put_blocks(&mut body, &sr.report_blocks);
            finish(out, count, PT_SR, body)
        }
        RtcpPacket::ReceiverReport(rr) => {
            let count = count5(PT_RR, rr.report_blocks.len())?;
            put32(&mut body, rr.ssrc);
            put_blocks(&mut body, &rr.report_blocks);
            finish(out, count, PT_RR, body)
        }
        RtcpPacket::SourceDescription(sd) => {
            let count = count5(PT_SDES, sd.chunks.len())?;
            for chunk in &sd.chunks {
                put_sdes_chunk(&mut body, chunk)?;
            }
            finish(out, count, PT_SDES, body)
        }
        RtcpPacket::Goodbye(bye) => {
            let count = count5(PT_BYE, bye.ssrcs.len())?;
            put_bye(&mut body, bye)?;
            finish(out, count, PT_BYE, body)
        }
        RtcpPacket::App(app) => {
            let count = count5(PT_APP, usize::from(app.subtype))?;
            put_app(&mut body, app);
            finish(out, count, PT_APP, body)
        }
        RtcpPacket::Feedback(fb) => {
            let packet_type = fb.layer.packet_type();
            let count = count5(packet_type, usize::from(fb.fmt))?;
            put_feedback(&mut body, fb);
            finish(out, count, packet_type, body)
        }
        RtcpPacket::ExtendedReport(xr) => {
            put_xr(&mut body, xr)?;
            finish(out, 0, PT_XR, body)
        }
    }
}

fn put_sender_info(out: &mut Vec<u8>, si: &SenderInfo) {
    put32(out, si.ntp_seconds);
    put32(out, si.ntp_fraction);
    put32(out, si.rtp_timestamp);
    put32(out, si.packet_count);
    put32(out, si.octet_count);
}

fn put_blocks(out: &mut Vec<u8>, blocks: &[ReportBlock]) {
    for b in blocks {
        put32(out, b.source_ssrc);
        put32(
            out,
            u32::from(b.fraction_lost) << 24 | (b.cumulative_lost & 0x00ff_ffff),
        );
        put32(out, b.highest_seq);
        put32(out, b.jitter);
        put32(out, b.lsr);
        put32(out, b.dlsr);
    }
}

fn put_sdes_chunk(out: &mut Vec<u8>, chunk: &SdesChunk) -> Result<(), RtcpEncodeError> {
    let start = out.len();
    put32(out, chunk.ssrc);
    for item in &chunk.items {
        out.push(item.item_type);
        match &item.prefix {
            Some(prefix) if item.item_type == 8 => {
                let len = text_len(PT_SDES, 1 + prefix.len() + item.text.len())?;
                out.push(len);
                out.push(text_len(PT_SDES, prefix.len())?);
                out.extend_from_slice(prefix.as_bytes());
            }
            _ => out.push(text_len(PT_SDES, item.text.len())?),
        }
        out.extend_from_slice(item.text.as_bytes());
    }
    // END item, then nulls up to the next word boundary (at least one null in all).
    out.push(0);
    while (out.len() - start) % 4 != 0 {
        out.push(0);
    }
    Ok(())
}

fn put_bye(out: &mut Vec<u8>, bye: &Goodbye) -> Result<(), RtcpEncodeError> {
    for ssrc in &bye.ssrcs {
        put32(out, *ssrc);
    }
    if let Some(reason) = &bye.reason {
        out.push(text_len(PT_BYE, reason.len())?);
        out.extend_from_slice(reason.as_bytes());
        while out.len() % 4 != 0 {
            out.push(0);
        }
    }
    Ok(())
}

fn put_app(out: &mut Vec<u8>, app: &AppPacket) {
    put32(out, app.ssrc);
    out.extend_from_slice(&app.name);
    out.extend_from_slice(&app.data);
}

fn put_feedback(out: &mut Vec<u8>, fb: &Feedback) {
    put32(out, fb.sender_ssrc);
    put32(out, fb.media_ssrc);
    out.extend_from_slice(&fb.fci);
}

fn put_xr(out: &mut Vec<u8>, xr: &ExtendedReport) -> Result<(), RtcpEncodeError> {
    put32(out, xr.ssrc);
    for block in &xr.blocks {
        let mut data = Vec::new();
        let type_specific = match block {
            XrBlock::LossRle(rle) | XrBlock::DuplicateRle(rle) => {
                put_rle(&mut data, rle);
                rle.thinning & 0x0f
            }
            XrBlock::ReceiverReferenceTime {
                ntp_seconds,
                ntp_fraction,
            } => {
                put32(&mut data, *ntp_seconds);
                put32(&mut data, *ntp_fraction);
                0
            }
            XrBlock::Dlrr(items) => {
                for item in items {
                    put32(&mut data, item.ssrc);
                    put32(&mut data, item.last_rr);
                    put32(&mut data, item.delay_since_last_rr);
                }
                0
            }
            XrBlock::StatisticsSummary(stats) => put_stats(&mut data, stats),
            XrBlock::VoipMetrics(vm) => {
                put_voip(&mut data, vm);
                0
            }
            XrBlock::Other {
                block_type,
                type_specific,
                data: raw,
            } => {
                if raw.len() % 4 != 0 {
                    return Err(RtcpEncodeError::UnalignedXrBlock {
                        block_type: *block_type,
                        len: raw.len(),
                    });
                }
                data.extend_from_slice(raw);
                *type_specific
            }
        };
        let words = u16::try_from(data.len() / 4).map_err(|_| RtcpEncodeError::TooLong {
            packet_type: PT_XR,
            len: data.len(),
        })?;
        out.push(block.block_type());
        out.push(type_specific);
        put16(out, words);
        out.extend_from_slice(&data);
    }
    Ok(())
}

fn put_rle(out: &mut Vec<u8>, rle: &RleReport) {
    put32(out, rle.ssrc);
    put16(out, rle.begin_seq);
    put16(out, rle.end_seq);
    for chunk in &rle.chunks {
        put16(out, *chunk);
    }
    if rle.chunks.len() % 2 != 0 {
        // A null chunk pads the block to a word boundary.
        put16(out, 0);
    }
}

fn put_stats(out: &mut Vec<u8>, s: &StatisticsSummary) -> u8 {
    put32(out, s.ssrc);
    put16(out, s.begin_seq);
    put16(out, s.end_seq);
    for v in [
        s.lost_packets,
        s.dup_packets,
        s.min_jitter,
        s.max_jitter,
        s.mean_jitter,
        s.dev_jitter,
    ] {
        put32(out, v);
    }
    out.extend_from_slice(&[
        s.min_ttl_or_hl,
        s.max_ttl_or_hl,
        s.mean_ttl_or_hl,
        s.dev_ttl_or_hl,
    ]);
    u8::from(s.loss_reported) << 7
        | u8::from(s.duplicates_reported) << 6
        | u8::from(s.jitter_reported) << 5
        | (s.ttl_or_hop_limit & 0x03) << 3
}

fn put_voip(out: &mut Vec<u8>, vm: &VoipMetrics) {
    put32(out, vm.ssrc);
    out.extend_from_slice(&[
        vm.loss_rate,
        vm.discard_rate,
        vm.burst_density,
        vm.gap_density,
    ]);
    put16(out, vm.burst_duration);
    put16(out, vm.gap_duration);
    put16(out, vm.round_trip_delay);
    put16(out, vm.end_system_delay);
    out.extend_from_slice(&vm.signal_level.to_be_bytes());
    out.extend_from_slice(&vm.noise_level.to_be_bytes());
    out.extend_from_slice(&[
        vm.rerl,
        vm.gmin,
        vm.r_factor,
        vm.ext_r_factor,
        vm.mos_lq,
        vm.mos_cq,
        vm.rx_config.to_byte(),
        0,
    ]);
    put16(out, vm.jb_nominal);
    put16(out, vm.jb_maximum);
    put16(out, vm.jb_abs_max);
}

#[cfg(test)]
mod tests {
    use super::super::{parse, ReceiverReport, SdesItem, SourceDescription};
    use super::*;

    #[test]
    fn sdes_and_app_round_trip() {
        let report = RtcpReport {
            packets: vec![
                RtcpPacket::ReceiverReport(ReceiverReport {
                    ssrc: 1,
                    report_blocks: vec![ReportBlock {
                        source_ssrc: 2,
                        fraction_lost: 3,
                        cumulative_lost: 0x00ff_fffe,
                        highest_seq: 70_000,
                        jitter: 5,
                        lsr: 6,
                        dlsr: 7,
                    }],
                }),
                RtcpPacket::SourceDescription(SourceDescription {
                    chunks: vec![SdesChunk {
                        ssrc: 1,
                        items: vec![
                            SdesItem {
                                item_type: 1,
                                prefix: None,
                                text: "abc".into(),
                            },
                            SdesItem {
                                item_type: 8,
                                prefix: Some("p".into()),
                                text: "v".into(),
                            },
                        ],
                    }],
                }),
                RtcpPacket::App(AppPacket {
                    subtype: 3,
                    ssrc: 1,
                    name: *b"TEST",
                    data: vec![1, 2, 3],
                }),
            ],
            diagnostics: vec![],
        };
        let bytes = encode(&report).expect("encodes");
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(parse(&bytes).expect("parses"), report);
    }

    #[test]
    fn oversized_fields_are_errors() {
        let too_many = RtcpReport {
            packets: vec![RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: 1,
                report_blocks: vec![ReportBlock::default(); 32],
            })],
            diagnostics: vec![],
        };
        assert!(matches!(
            encode(&too_many),
            Err(RtcpEncodeError::CountTooLarge { count: 32, .. })
        ));
        let long_reason = RtcpReport {
            packets: vec![RtcpPacket::Goodbye(Goodbye {
                ssrcs: vec![1],
                reason: Some("x".repeat(256)),
            })],
            diagnostics: vec![],
        };
        assert!(matches!(
            encode(&long_reason),
            Err(RtcpEncodeError::TextTooLong { len: 256, .. })
        ));
    }
}
