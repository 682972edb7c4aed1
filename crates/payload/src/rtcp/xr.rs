//! RTCP Extended Reports (RFC 3611): the report blocks a VoIP monitor cares about.
//!
//! Loss RLE (1) and Duplicate RLE (2) are kept as their chunks and summarised (packets received /
//! lost or duplicated); Receiver Reference Time (4), DLRR (5), Statistics Summary (6) and VoIP
//! Metrics (7) are decoded field by field; every other block type is kept raw.

use crate::wire::Reader;

use super::RtcpPacket;

/// An XR packet: the reporter's SSRC and its report blocks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExtendedReport {
    /// SSRC of the packet's originator.
    pub ssrc: u32,
    /// The report blocks in wire order.
    pub blocks: Vec<XrBlock>,
}

/// One XR report block.
#[derive(Debug, Clone, PartialEq)]
pub enum XrBlock {
    /// BT 1: which packets of a sequence range were received, run-length encoded.
    LossRle(RleReport),
    /// BT 2: which packets of a sequence range were duplicated, run-length encoded.
    DuplicateRle(RleReport),
    /// BT 4: the receiver's NTP wallclock when it sent the report (for RTT from DLRR).
    ReceiverReferenceTime {
        /// NTP seconds since 1900.
        ntp_seconds: u32,
        /// NTP fraction of a second in units of 2⁻³² s.
        ntp_fraction: u32,
    },
    /// BT 5: delay since the last Receiver Reference Time, per receiver.
    Dlrr(Vec<DlrrItem>),
    /// BT 6: statistics over a sequence range.
    StatisticsSummary(StatisticsSummary),
    /// BT 7: VoIP metrics.
    VoipMetrics(VoipMetrics),
    /// Any other block type, undecoded.
    Other {
        /// Block type.
        block_type: u8,
        /// The type-specific header byte.
        type_specific: u8,
        /// Block contents after the 4-byte block header.
        data: Vec<u8>,
    },
}

impl XrBlock {
    /// The block type number.
    pub fn block_type(&self) -> u8 {
        match self {
            XrBlock::LossRle(_) => 1,
            XrBlock::DuplicateRle(_) => 2,
            XrBlock::ReceiverReferenceTime { .. } => 4,
            XrBlock::Dlrr(_) => 5,
            XrBlock::StatisticsSummary(_) => 6,
            XrBlock::VoipMetrics(_) => 7,
            XrBlock::Other { block_type, .. } => *block_type,
        }
    }

    /// A short snake_case name of the block type, as used in the JSON form.
    pub fn name(&self) -> &'static str {
        match self {
            XrBlock::LossRle(_) => "loss_rle",
            XrBlock::DuplicateRle(_) => "duplicate_rle",
            XrBlock::ReceiverReferenceTime { .. } => "receiver_reference_time",
            XrBlock::Dlrr(_) => "dlrr",
            XrBlock::StatisticsSummary(_) => "statistics_summary",
            XrBlock::VoipMetrics(_) => "voip_metrics",
            XrBlock::Other { .. } => "other",
        }
    }
}

/// A Loss RLE or Duplicate RLE block (RFC 3611 §4.1, §4.2).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RleReport {
    /// SSRC of the RTP source reported on.
    pub ssrc: u32,
    /// Thinning T: only sequence numbers that are multiples of 2^T are reported.
    pub thinning: u8,
    /// First sequence number covered.
    pub begin_seq: u16,
    /// Last sequence number covered plus one.
    pub end_seq: u16,
    /// The 16-bit chunks (run-length, bit-vector or terminating null chunks).
    pub chunks: Vec<u16>,
}

/// Counts taken from an RLE block's chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct RleSummary {
    /// Packets whose bit is 1: received (Loss RLE) or duplicated (Duplicate RLE).
    pub marked: u32,
    /// Packets whose bit is 0: lost (Loss RLE) or not duplicated (Duplicate RLE).
    pub unmarked: u32,
}

impl RleReport {
    /// How many sequence numbers of `begin_seq..end_seq` the block reports on, given its thinning.
    pub fn reported_packets(&self) -> u32 {
        let span = u32::from(self.end_seq.wrapping_sub(self.begin_seq));
        let step = 1u32 << (self.thinning & 0x0f);
        // Count the multiples of 2^T in [begin, begin + span) on the 16-bit sequence circle.
        let begin = u32::from(self.begin_seq);
        let first = begin.div_ceil(step) * step;
        let offset = first - begin;
        if offset >= span {
            0
        } else {
            (span - offset).div_ceil(step)
        }
    }

    /// Decodes the chunks into counts, never counting more packets than the range covers (the last
    /// bit-vector chunk may carry padding bits past `end_seq`).
    pub fn summary(&self) -> RleSummary {
        let limit = self.reported_packets();
        let mut summary = RleSummary::default();
        let mut add = |marked: bool, n: u32| {
            let room = limit.saturating_sub(summary.marked + summary.unmarked);
            let n = n.min(room);
            if marked {
                summary.marked += n;
            } else {
                summary.unmarked += n;
            }
        };
        for &chunk in &self.chunks {
            if chunk == 0 {
                // Null chunk: padding at the end of the block.
                break;
            }
            if chunk & 0x8000 == 0 {
                // Run-length chunk: bit 14 is the run type, 14 bits of run length.
                add(chunk & 0x4000 != 0, u32::from(chunk & 0x3fff));
            } else {
                // Bit-vector chunk: 15 packets, most significant bit first.
                for bit in (0..15).rev() {
                    add(chunk & (1 << bit) != 0, 1);
                }
            }
        }
        summary
    }
}

/// One DLRR sub-block (RFC 3611 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DlrrItem {
    /// SSRC of the receiver whose reference time is echoed.
    pub ssrc: u32,
    /// Middle 32 bits of that receiver's last Receiver Reference Time NTP timestamp.
    pub last_rr: u32,
    /// Delay since receiving it, in units of 1/65536 s.
    pub delay_since_last_rr: u32,
}

/// Statistics Summary block (RFC 3611 §4.6). Fields whose flag is clear are zero on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatisticsSummary {
    /// SSRC of the RTP source reported on.
    pub ssrc: u32,
    /// L flag: `lost_packets` is reported.
    pub loss_reported: bool,
    /// D flag: `dup_packets` is reported.
    pub duplicates_reported: bool,
    /// J flag: the jitter fields are reported.
    pub jitter_reported: bool,
    /// ToH: 0 none, 1 IPv4 TTL, 2 IPv6 hop limit, 3 reserved.
    pub ttl_or_hop_limit: u8,
    /// First sequence number covered.
    pub begin_seq: u16,
    /// Last sequence number covered plus one.
    pub end_seq: u16,
    /// Packets lost in the range.
    pub lost_packets: u32,
    /// Packets duplicated in the range.
    pub dup_packets: u32,
    /// Minimum relative transit time difference, RTP timestamp units.
    pub min_jitter: u32,
    /// Maximum relative transit time difference, RTP timestamp units.
    pub max_jitter: u32,
    /// Mean relative transit time difference, RTP timestamp units.
    pub mean_jitter: u32,
    /// Standard deviation of the relative transit time difference.
    pub dev_jitter: u32,
    /// Minimum TTL or hop limit.
    pub min_ttl_or_hl: u8,
    /// Maximum TTL or hop limit.
    pub max_ttl_or_hl: u8,
    /// Mean TTL or hop limit.
    pub mean_ttl_or_hl: u8,
    /// Standard deviation of TTL or hop limit.
    pub dev_ttl_or_hl: u8,
}

/// VoIP Metrics block (RFC 3611 §4.7), every field as on the wire.
///
/// Units: rates and densities are fractions × 256; durations and delays are milliseconds;
/// signal / noise levels are dBm (signed; 127 = unavailable); RERL and Gmin are dB;
/// R factors are 0..=100 (127 = unavailable); MOS-LQ and MOS-CQ are MOS × 10 (10..=50,
/// 127 = unavailable); jitter buffer sizes are milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VoipMetrics {
    /// SSRC of the RTP source reported on.
    pub ssrc: u32,
    /// Fraction of packets lost in the network (× 256).
    pub loss_rate: u8,
    /// Fraction of packets discarded by the jitter buffer (× 256).
    pub discard_rate: u8,
    /// Fraction of packets lost or discarded within bursts (× 256).
    pub burst_density: u8,
    /// Fraction of packets lost or discarded within gaps (× 256).
    pub gap_density: u8,
    /// Mean burst duration, ms.
    pub burst_duration: u16,
    /// Mean gap duration, ms.
    pub gap_duration: u16,
    /// Most recent round-trip delay, ms.
    pub round_trip_delay: u16,
    /// Most recent end-system (internal round-trip) delay, ms.
    pub end_system_delay: u16,
    /// Signal level, dBm (127 = unavailable).
    pub signal_level: i8,
    /// Noise level, dBm (127 = unavailable).
    pub noise_level: i8,
    /// Residual echo return loss, dB (127 = unavailable).
    pub rerl: u8,
    /// Gap threshold Gmin (consecutive received packets ending a burst).
    pub gmin: u8,
    /// Listening-quality R factor (127 = unavailable).
    pub r_factor: u8,
    /// External R factor (127 = unavailable).
    pub ext_r_factor: u8,
    /// Listening-quality MOS × 10 (127 = unavailable).
    pub mos_lq: u8,
    /// Conversational-quality MOS × 10 (127 = unavailable).
    pub mos_cq: u8,
    /// Receiver configuration byte.
    pub rx_config: RxConfig,
    /// Nominal jitter buffer delay, ms.
    pub jb_nominal: u16,
    /// Maximum jitter buffer delay, ms.
    pub jb_maximum: u16,
    /// Absolute maximum jitter buffer size, ms.
    pub jb_abs_max: u16,
}

/// The RX config byte of a VoIP Metrics block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxConfig {
    /// Packet loss concealment: 0 unspecified, 1 disabled, 2 enhanced, 3 standard.
    pub plc: u8,
    /// Jitter buffer adaptive: 0 unknown, 1 reserved, 2 non-adaptive, 3 adaptive.
    pub jba: u8,
    /// Jitter buffer adjustment rate (0..=15).
    pub jb_rate: u8,
}

impl RxConfig {
    /// Splits the wire byte.
    pub fn from_byte(b: u8) -> Self {
        RxConfig {
            plc: b >> 6,
            jba: (b >> 4) & 0x03,
            jb_rate: b & 0x0f,
        }
    }

    /// Packs the fields back into the wire byte (out-of-range bits are dropped).
    pub fn to_byte(self) -> u8 {
        (self.plc & 0x03) << 6 | (self.jba & 0x03) << 4 | (self.jb_rate & 0x0f)
    }
}

/// "Unavailable" marker of the VoIP Metrics R factor, MOS, RERL and level fields.
pub const UNAVAILABLE: u8 = 127;

impl VoipMetrics {
    /// MOS-LQ as a MOS value (1.0..=5.0), `None` when the reporter marked it unavailable.
    pub fn mos_lq_value(&self) -> Option<f64> {
        mos_value(self.mos_lq)
    }

    /// MOS-CQ as a MOS value (1.0..=5.0), `None` when the reporter marked it unavailable.
    pub fn mos_cq_value(&self) -> Option<f64> {
        mos_value(self.mos_cq)
    }
}

fn mos_value(raw: u8) -> Option<f64> {
    (raw != UNAVAILABLE && raw != 0).then(|| f64::from(raw) / 10.0)
}

/// Decodes the body of an XR packet (after the common header).
pub(super) fn parse(body: &[u8]) -> Result<RtcpPacket, &'static str> {
    let mut r = Reader::new(body);
    let ssrc = r.u32().ok_or("XR shorter than its SSRC")?;
    let mut blocks = Vec::new();
    while r.remaining() > 0 {
        let (Some(block_type), Some(type_specific), Some(words)) = (r.u8(), r.u8(), r.u16()) else {
            return Err("XR block header cut short");
        };
        let data = r
            .take(usize::from(words) * 4)
            .ok_or("XR block longer than the packet")?;
        blocks.push(parse_block(block_type, type_specific, data)?);
    }
    Ok(RtcpPacket::ExtendedReport(ExtendedReport { ssrc, blocks }))
}

fn parse_block(block_type: u8, type_specific: u8, data: &[u8]) -> Result<XrBlock, &'static str> {
    let mut r = Reader::new(data);
    let block = match block_type {
        1 | 2 => {
            let ssrc = r.u32().ok_or("RLE block too short")?;
            let begin_seq = r.u16().ok_or("RLE block too short")?;
            let end_seq = r.u16().ok_or("RLE block too short")?;
            let mut chunks: Vec<u16> = r
                .rest()
                .chunks_exact(2)
                .map(|c| match c {
                    [a, b] => u16::from_be_bytes([*a, *b]),
                    _ => 0,
                })
                .collect();
            // Trailing null chunks only pad the block to a word boundary.
            while chunks.last() == Some(&0) {
                chunks.pop();
            }
            let rle = RleReport {
                ssrc,
                thinning: type_specific & 0x0f,
                begin_seq,
                end_seq,
                chunks,
            };
            if block_type == 1 {
                XrBlock::LossRle(rle)
            } else {
                XrBlock::DuplicateRle(rle)
            }
        }
        4 => XrBlock::ReceiverReferenceTime {
            ntp_seconds: r.u32().ok_or("receiver reference time block too short")?,
            ntp_fraction: r.u32().ok_or("receiver reference time block too short")?,
        },
        5 => {
            let items = r
                .rest()
                .chunks_exact(12)
                .map(|c| {
                    let mut s = Reader::new(c);
                    DlrrItem {
                        ssrc: s.u32().unwrap_or(0),
                        last_rr: s.u32().unwrap_or(0),
                        delay_since_last_rr: s.u32().unwrap_or(0),
                    }
                })
                .collect();
            XrBlock::Dlrr(items)
        }
        6 => XrBlock::StatisticsSummary(
            parse_stats(type_specific, &mut r).ok_or("statistics summary block too short")?,
        ),
        7 => XrBlock::VoipMetrics(parse_voip(&mut r).ok_or("VoIP metrics block too short")?),
        _ => XrBlock::Other {
            block_type,
            type_specific,
            data: data.to_vec(),
        },
    };
    Ok(block)
}

fn parse_stats(flags: u8, r: &mut Reader<'_>) -> Option<StatisticsSummary> {
    Some(StatisticsSummary {
        loss_reported: flags & 0x80 != 0,
        duplicates_reported: flags & 0x40 != 0,
        jitter_reported: flags & 0x20 != 0,
        ttl_or_hop_limit: (flags >> 3) & 0x03,
        ssrc: r.u32()?,
        begin_seq: r.u16()?,
        end_seq: r.u16()?,
        lost_packets: r.u32()?,
        dup_packets: r.u32()?,
        min_jitter: r.u32()?,
        max_jitter: r.u32()?,
        mean_jitter: r.u32()?,
        dev_jitter: r.u32()?,
        min_ttl_or_hl: r.u8()?,
        max_ttl_or_hl: r.u8()?,
        mean_ttl_or_hl: r.u8()?,
        dev_ttl_or_hl: r.u8()?,
    })
}

fn parse_voip(r: &mut Reader<'_>) -> Option<VoipMetrics> {
    let vm = VoipMetrics {
        ssrc: r.u32()?,
        loss_rate: r.u8()?,
        discard_rate: r.u8()?,
        burst_density: r.u8()?,
        gap_density: r.u8()?,
        burst_duration: r.u16()?,
        gap_duration: r.u16()?,
        round_trip_delay: r.u16()?,
        end_system_delay: r.u16()?,
        signal_level: i8::from_be_bytes([r.u8()?]),
        noise_level: i8::from_be_bytes([r.u8()?]),
        rerl: r.u8()?,
        gmin: r.u8()?,
        r_factor: r.u8()?,
        ext_r_factor: r.u8()?,
        mos_lq: r.u8()?,
        mos_cq: r.u8()?,
        rx_config: RxConfig::from_byte(r.u8()?),
        jb_nominal: {
            let _reserved = r.u8()?;
            r.u16()?
        },
        jb_maximum: r.u16()?,
        jb_abs_max: r.u16()?,
    };
    Some(vm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rle_summary_counts_runs_and_vectors() {
        // 10 received, 2 lost, then a bit vector 1010... over the remaining 3 packets.
        let rle = RleReport {
            ssrc: 1,
            thinning: 0,
            begin_seq: 100,
            end_seq: 115,
            chunks: vec![0x4000 | 10, 2, 0b1101_0000_0000_0000 | 0x8000, 0],
        };
        assert_eq!(rle.reported_packets(), 15);
        let s = rle.summary();
        assert_eq!(
            s,
            RleSummary {
                marked: 12,
                unmarked: 3
            }
        );
    }

    #[test]
    fn thinning_reduces_reported_packets() {
        let rle = RleReport {
            thinning: 2,
            begin_seq: 65534,
            end_seq: 6,
            ..RleReport::default()
        };
        // 65534, 65535, 0..6 → multiples of 4 on the circle: 0, 4 (65534 is not, 65535 is not).
        assert_eq!(rle.reported_packets(), 2);
    }

    #[test]
    fn voip_metrics_block_decodes() {
        let mut body = vec![0, 0, 0, 5]; // reporter SSRC
        body.extend_from_slice(&[7, 0, 0, 8]); // BT 7, length 8 words
        body.extend_from_slice(&[0, 0, 0, 9]); // source SSRC
        body.extend_from_slice(&[13, 2, 40, 3]); // loss, discard, burst, gap density
        body.extend_from_slice(&[0, 120, 1, 44]); // burst 120 ms, gap 300 ms
        body.extend_from_slice(&[0, 80, 0, 40]); // RTD 80, ESD 40
        body.extend_from_slice(&[0xe2, 0xb5, 127, 16]); // signal -30, noise -75, RERL n/a, Gmin 16
        body.extend_from_slice(&[88, 127, 41, 39]); // R 88, ext R n/a, MOS-LQ 4.1, MOS-CQ 3.9
        body.extend_from_slice(&[0b1011_0011, 0, 0, 60]); // PLC 2, JBA 3, rate 3; JB nominal 60
        body.extend_from_slice(&[0, 120, 0, 200]); // JB max 120, abs max 200
        let RtcpPacket::ExtendedReport(xr) = parse(&body).expect("decodes") else {
            panic!("not XR");
        };
        let [XrBlock::VoipMetrics(vm)] = xr.blocks.as_slice() else {
            panic!("blocks: {:?}", xr.blocks);
        };
        assert_eq!(vm.ssrc, 9);
        assert_eq!(vm.loss_rate, 13);
        assert_eq!(vm.gap_duration, 300);
        assert_eq!(vm.signal_level, -30);
        assert_eq!(vm.noise_level, -75);
        assert_eq!(vm.mos_lq_value(), Some(4.1));
        assert_eq!(vm.mos_cq_value(), Some(3.9));
        assert_eq!(
            vm.rx_config,
            RxConfig {
                plc: 2,
                jba: 3,
                jb_rate: 3
            }
        );
        assert_eq!(vm.rx_config.to_byte(), 0b1011_0011);
        assert_eq!(
            (vm.jb_nominal, vm.jb_maximum, vm.jb_abs_max),
            (60, 120, 200)
        );
    }

    #[test]
    fn block_past_packet_end_is_rejected() {
        let body = [0, 0, 0, 5, 7, 0, 0, 8, 0, 0];
        assert!(parse(&body).is_err());
    }
}
