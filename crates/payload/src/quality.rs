//! Quality figures derived from an RTCP report, for metrics and the UI.
//!
//! * **Fraction lost** (%): `fraction_lost / 256 · 100` (RFC 3550 §6.4.1: loss since the previous
//!   report).
//! * **Cumulative lost**: the signed 24-bit counter.
//! * **Jitter** (ms): `jitter / clock_rate · 1000`. The clock rate is the RTP clock of the
//!   stream's codec, which RTCP does not carry: [`QualityOptions::clock_rate_hz`] defaults to
//!   8000 Hz, right for G.711, G.729, G.723.1, GSM and also G.722 (whose RTP clock is 8000 Hz by
//!   RFC 3551's historical error); use 48000 for Opus, 16000 for AMR-WB.
//! * **Round-trip time** (RFC 3550 §6.4.1): `RTT = A − LSR − DLSR` in units of 1/65536 s, where A is
//!   the middle 32 bits of the NTP time at which the report arrived
//!   ([`QualityOptions::arrival_ntp_middle`], see [`ntp_middle_32`]). Unknown when LSR is 0 (no SR
//!   received yet), when A is not supplied, or when the subtraction goes negative (clock skew).
//!   The same formula on XR DLRR sub-blocks (`A − LRR − DLRR`) gives the receiver-side RTT.
//! * **MOS**: the G.107 E-model ([`crate::emodel`]) with Ppl = fraction lost (%) and the
//!   *effective* one-way delay ([`effective_delay_ms`]):
//!   `Ta = RTT/2 (0 when unknown) + 2 · jitter + 10 ms + `[`QualityOptions::extra_delay_ms`].
//!   Why: a receiver's jitter buffer holds packets for about twice the interarrival jitter
//!   before playing them out, and the codec adds a packetisation/look-ahead allowance; a stream
//!   with hundreds of ms of jitter is heard late even on a short path. This is the effective
//!   latency of heplify-server and homer-app (`latency + 2·jitter + 10`), here fed to G.107's
//!   delay impairment instead of their linear fit. For XR VoIP Metrics the
//!   reporter's own MOS-LQ / MOS-CQ / R factor are passed through (divided by 10 for MOS); an
//!   E-model MOS is also computed from its loss + discard rates and Ta = (round-trip delay +
//!   end-system delay) / 2: the end-system delay already includes the jitter buffer, so no
//!   jitter allowance is added there.

use serde::Serialize;

use crate::emodel::{self, Codec, EModelInput};
use crate::rtcp::{RtcpPacket, RtcpReport, VoipMetrics, XrBlock};

/// RTP clock rate assumed when the caller does not know the codec.
pub const DEFAULT_CLOCK_RATE_HZ: u32 = 8000;

/// How many times the interarrival jitter a receiver's jitter buffer adds to the delay.
pub const JITTER_BUFFER_FACTOR: f64 = 2.0;

/// Packetisation and codec allowance added to the effective delay, ms.
pub const CODEC_DELAY_MS: f64 = 10.0;

/// The effective one-way delay fed to the E-model for a reception report: network one-way delay
/// + [`JITTER_BUFFER_FACTOR`] · jitter + [`CODEC_DELAY_MS`] (unknown parts count as 0).
pub fn effective_delay_ms(one_way_ms: Option<f64>, jitter_ms: Option<f64>) -> f64 {
    let jitter = jitter_ms
        .filter(|j| j.is_finite() && *j >= 0.0)
        .unwrap_or(0.0);
    let one_way = one_way_ms
        .filter(|d| d.is_finite() && *d >= 0.0)
        .unwrap_or(0.0);
    one_way + JITTER_BUFFER_FACTOR * jitter + CODEC_DELAY_MS
}

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
pub const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// Parameters of [`assess`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QualityOptions {
    /// RTP clock rate of the reported stream, Hz. Default [`DEFAULT_CLOCK_RATE_HZ`].
    pub clock_rate_hz: u32,
    /// Middle 32 bits of the NTP time the report arrived at (see [`ntp_middle_32`]); `None`
    /// leaves RTT unknown. Default `None`.
    pub arrival_ntp_middle: Option<u32>,
    /// Codec for the E-model. Default G.711 with PLC.
    pub codec: Codec,
    /// Burst ratio for the E-model (1 = random loss). Default 1.
    pub burst_ratio: f64,
    /// Delay added to the effective delay ([`effective_delay_ms`]) for the E-model's
    /// mouth-to-ear delay: further fixed delays of the path that RTCP does not report
    /// (transcoders, satellite hops). Default 0 ms.
    pub extra_delay_ms: f64,
}

impl Default for QualityOptions {
    fn default() -> Self {
        QualityOptions {
            clock_rate_hz: DEFAULT_CLOCK_RATE_HZ,
            arrival_ntp_middle: None,
            codec: Codec::default(),
            burst_ratio: 1.0,
            extra_delay_ms: 0.0,
        }
    }
}

/// Figures for one reception report block.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BlockQuality {
    /// SSRC of the SR / RR sender (the receiver of the stream).
    pub reporter_ssrc: u32,
    /// SSRC of the stream reported on.
    pub source_ssrc: u32,
    /// Loss since the previous report, percent.
    pub fraction_lost_percent: f64,
    /// Cumulative packets lost (negative with duplicates).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter, milliseconds (`None` for a zero clock rate).
    pub jitter_ms: Option<f64>,
    /// Round-trip time, milliseconds, when computable.
    pub rtt_ms: Option<f64>,
    /// E-model R factor.
    pub r_factor: f64,
    /// E-model MOS.
    pub mos: f64,
}

/// Figures for one XR VoIP Metrics block.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VoipMetricsQuality {
    /// SSRC of the XR sender.
    pub reporter_ssrc: u32,
    /// SSRC of the stream reported on.
    pub source_ssrc: u32,
    /// Network loss, percent.
    pub loss_percent: f64,
    /// Jitter-buffer discards, percent.
    pub discard_percent: f64,
    /// Loss + discard density within bursts, percent.
    pub burst_density_percent: f64,
    /// Loss + discard density within gaps, percent.
    pub gap_density_percent: f64,
    /// Reported round-trip delay, ms.
    pub round_trip_delay_ms: u16,
    /// Reported end-system delay, ms.
    pub end_system_delay_ms: u16,
    /// The reporter's R factor, if it gave one.
    pub reported_r_factor: Option<u8>,
    /// The reporter's MOS-LQ, if it gave one.
    pub reported_mos_lq: Option<f64>,
    /// The reporter's MOS-CQ, if it gave one.
    pub reported_mos_cq: Option<f64>,
    /// E-model R factor from the block's loss, discard and delay.
    pub r_factor: f64,
    /// E-model MOS from the block's loss, discard and delay.
    pub mos: f64,
}

/// Receiver-side RTT from one XR DLRR sub-block.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DlrrQuality {
    /// SSRC of the XR sender.
    pub reporter_ssrc: u32,
    /// SSRC of the receiver whose reference time was echoed.
    pub receiver_ssrc: u32,
    /// Round-trip time, milliseconds, when computable.
    pub rtt_ms: Option<f64>,
}

/// Every figure derivable from one report.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ReportQuality {
    /// One entry per SR / RR report block.
    pub blocks: Vec<BlockQuality>,
    /// One entry per XR VoIP Metrics block.
    pub voip_metrics: Vec<VoipMetricsQuality>,
    /// One entry per XR DLRR sub-block.
    pub dlrr: Vec<DlrrQuality>,
}

/// Interarrival jitter in milliseconds; `None` for a zero clock rate.
pub fn jitter_ms(jitter: u32, clock_rate_hz: u32) -> Option<f64> {
    (clock_rate_hz != 0).then(|| f64::from(jitter) * 1000.0 / f64::from(clock_rate_hz))
}

/// RFC 3550 §6.4.1 round-trip time in ms from the arrival time `arrival` and the echoed
/// `lsr` / `dlsr` (all in NTP middle-32 units). `None` when `lsr` is 0 or the result would be
/// negative (more than half the 18-hour wrap, which only clock skew produces).
pub fn round_trip_ms(arrival: u32, lsr: u32, dlsr: u32) -> Option<f64> {
    if lsr == 0 {
        return None;
    }
    let rtt = arrival.wrapping_sub(lsr).wrapping_sub(dlsr);
    (rtt < 0x8000_0000).then(|| f64::from(rtt) * 1000.0 / 65536.0)
}

/// The middle 32 bits of the NTP timestamp of a Unix time (seconds + microseconds): 16 bits of
/// seconds and 16 bits of fraction, the unit of LSR / DLSR.
pub fn ntp_middle_32(unix_seconds: u64, micros: u32) -> u32 {
    let ntp_seconds = unix_seconds.wrapping_add(NTP_UNIX_OFFSET_SECS);
    let fraction16 = (u64::from(micros.min(999_999)) << 16) / 1_000_000;
    // Keep the low 16 bits of the seconds and the high 16 bits of the fraction.
    (((ntp_seconds & 0xffff) << 16) | fraction16) as u32
}

/// An NTP timestamp (seconds since 1900 + 2⁻³² fractions) as Unix microseconds.
pub fn ntp_to_unix_micros(ntp_seconds: u32, ntp_fraction: u32) -> i64 {
    let secs = i64::from(ntp_seconds) - NTP_UNIX_OFFSET_SECS as i64;
    let micros = (u64::from(ntp_fraction) * 1_000_000) >> 32;
    secs * 1_000_000 + micros as i64
}

fn percent_of_256(v: u8) -> f64 {
    f64::from(v) * 100.0 / 256.0
}

fn available(v: u8) -> Option<u8> {
    (v != crate::rtcp::XR_UNAVAILABLE).then_some(v)
}

/// Computes every quality figure of `report`.
pub fn assess(report: &RtcpReport, options: &QualityOptions) -> ReportQuality {
    let mut out = ReportQuality::default();
    for (reporter, _, blocks) in report.reports() {
        for b in blocks {
            let rtt_ms = options
                .arrival_ntp_middle
                .and_then(|a| round_trip_ms(a, b.lsr, b.dlsr));
            let fraction_lost_percent = percent_of_256(b.fraction_lost);
            let jitter = jitter_ms(b.jitter, options.clock_rate_hz);
            let e = emodel::evaluate(&EModelInput {
                codec: options.codec,
                one_way_delay_ms: effective_delay_ms(rtt_ms.map(|r| r / 2.0), jitter)
                    + options.extra_delay_ms,
                packet_loss_percent: fraction_lost_percent,
                burst_ratio: options.burst_ratio,
                advantage: 0.0,
            });
            out.blocks.push(BlockQuality {
                reporter_ssrc: reporter,
                source_ssrc: b.source_ssrc,
                fraction_lost_percent,
                cumulative_lost: b.cumulative_lost_signed(),
                highest_seq: b.highest_seq,
                jitter_ms: jitter,
                rtt_ms,
                r_factor: e.r,
                mos: e.mos,
            });
        }
    }
    for packet in &report.packets {
        let RtcpPacket::ExtendedReport(xr) = packet else {
            continue;
        };
        for block in &xr.blocks {
            match block {
                XrBlock::VoipMetrics(vm) => {
                    out.voip_metrics.push(voip_quality(xr.ssrc, vm, options));
                }
                XrBlock::Dlrr(items) => {
                    out.dlrr.extend(items.iter().map(|i| {
                        DlrrQuality {
                            reporter_ssrc: xr.ssrc,
                            receiver_ssrc: i.ssrc,
                            rtt_ms: options
                                .arrival_ntp_middle
                                .and_then(|a| round_trip_ms(a, i.last_rr, i.delay_since_last_rr)),
                        }
                    }));
                }
                _ => {}
            }
        }
    }
    out
}

fn voip_quality(reporter: u32, vm: &VoipMetrics, options: &QualityOptions) -> VoipMetricsQuality {
    let loss_percent = percent_of_256(vm.loss_rate);
    let discard_percent = percent_of_256(vm.discard_rate);
    let e = emodel::evaluate(&EModelInput {
        codec: options.codec,
        one_way_delay_ms: (f64::from(vm.round_trip_delay) + f64::from(vm.end_system_delay)) / 2.0
            + options.extra_delay_ms,
        packet_loss_percent: loss_percent + discard_percent,
        burst_ratio: options.burst_ratio,
        advantage: 0.0,
    });
    VoipMetricsQuality {
        reporter_ssrc: reporter,
        source_ssrc: vm.ssrc,
        loss_percent,
        discard_percent,
        burst_density_percent: percent_of_256(vm.burst_density),
        gap_density_percent: percent_of_256(vm.gap_density),
        round_trip_delay_ms: vm.round_trip_delay,
        end_system_delay_ms: vm.end_system_delay,
        reported_r_factor: available(vm.r_factor),
        reported_mos_lq: vm.mos_lq_value(),
        reported_mos_cq: vm.mos_cq_value(),
        r_factor: e.r,
        mos: e.mos,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::{ExtendedReport, ReceiverReport, ReportBlock};

    #[test]
    fn jitter_conversion() {
        assert_eq!(jitter_ms(80, 8000), Some(10.0));
        assert_eq!(jitter_ms(480, 48000), Some(10.0));
        assert_eq!(jitter_ms(5, 0), None);
    }

    #[test]
    fn rtt_formula() {
        // RFC 3550 §6.4.1 example: A = 0xb710:8000 (46864.500 s), LSR = 0xb705:2000 (46853.125 s),
        // DLSR = 0x0005:4000 (5.250 s) → RTT = 6.125 s.
        let rtt = round_trip_ms(0xb710_8000, 0xb705_2000, 0x0005_4000).expect("rtt");
        assert!((rtt - 6125.0).abs() < 1e-9, "{rtt}");
        assert_eq!(round_trip_ms(0xb710_8000, 0, 0x0005_4000), None);
        // Arrival before LSR + DLSR: clock skew, no RTT.
        assert_eq!(round_trip_ms(0xb705_0000, 0xb705_2000, 0x10), None);
    }

    #[test]
    fn ntp_conversions() {
        // 2004-01-14 (frame 504 of heplify's capture has NTP seconds 3314714324).
        let micros = ntp_to_unix_micros(3_314_714_324, 0x8000_0000);
        assert_eq!(
            micros,
            (3_314_714_324 - 2_208_988_800) * 1_000_000 + 500_000
        );
        let mid = ntp_middle_32(3_314_714_324 - 2_208_988_800, 500_000);
        assert_eq!(mid, ((3_314_714_324u64 & 0xffff) << 16 | 0x8000) as u32);
    }

    #[test]
    fn assess_rr_and_voip_metrics() {
        let report = RtcpReport {
            packets: vec![
                RtcpPacket::ReceiverReport(ReceiverReport {
                    ssrc: 1,
                    report_blocks: vec![ReportBlock {
                        source_ssrc: 2,
                        fraction_lost: 64,
                        cumulative_lost: 0x00ff_ffff,
                        highest_seq: 10,
                        jitter: 160,
                        lsr: 0x0001_0000,
                        dlsr: 0x0000_8000,
                    }],
                }),
                RtcpPacket::ExtendedReport(ExtendedReport {
                    ssrc: 1,
                    blocks: vec![XrBlock::VoipMetrics(VoipMetrics {
                        ssrc: 2,
                        loss_rate: 0,
                        mos_lq: 41,
                        mos_cq: 127,
                        r_factor: 127,
                        ..VoipMetrics::default()
                    })],
                }),
            ],
            diagnostics: vec![],
        };
        let q = assess(
            &report,
            &QualityOptions {
                arrival_ntp_middle: Some(0x0001_c000),
                ..QualityOptions::default()
            },
        );
        let b = q.blocks[0];
        assert_eq!(b.fraction_lost_percent, 25.0);
        assert_eq!(b.cumulative_lost, -1);
        assert_eq!(b.jitter_ms, Some(20.0));
        assert_eq!(b.rtt_ms, Some(250.0));
        assert!(b.mos < 2.5, "25 % loss must be poor: {b:?}");
        let v = q.voip_metrics[0];
        assert_eq!(v.reported_mos_lq, Some(4.1));
        assert_eq!(v.reported_mos_cq, None);
        assert_eq!(v.reported_r_factor, None);
        assert!((v.mos - 4.41).abs() < 0.01);
    }

    fn rr_with_jitter(jitter: u32, lsr: u32, dlsr: u32) -> RtcpReport {
        RtcpReport {
            packets: vec![RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: 1,
                report_blocks: vec![ReportBlock {
                    source_ssrc: 2,
                    jitter,
                    lsr,
                    dlsr,
                    ..ReportBlock::default()
                }],
            })],
            diagnostics: vec![],
        }
    }

    /// Hand-computed G.107 values for the effective delay Ta = RTT/2 + 2·jitter + 10 ms, no loss:
    /// Idd = 25·((1 + X⁶)^⅙ − 3·(1 + (X/3)⁶)^⅙ + 2), X = log2(Ta/100), R = 93.2 − Idd,
    /// MOS = 1 + 0.035·R + R·(R − 60)·(100 − R)·7·10⁻⁶.
    #[test]
    fn jitter_raises_the_effective_delay() {
        assert_eq!(effective_delay_ms(None, None), 10.0);
        assert_eq!(effective_delay_ms(Some(125.0), Some(20.0)), 175.0);
        assert_eq!(effective_delay_ms(Some(f64::NAN), Some(-3.0)), 10.0);
        let options = QualityOptions::default();
        // 236 ms of jitter at 8 kHz (1888 timestamp units), no RTT: Ta = 2·236 + 10 = 482 ms,
        // X = 2.2691, Idd = 29.619, R = 63.581, MOS = 3.283 (it was 4.41 with the jitter ignored).
        let b = assess(&rr_with_jitter(1888, 0, 0), &options).blocks[0];
        assert_eq!(b.jitter_ms, Some(236.0));
        assert!((b.r_factor - 63.581).abs() < 0.001, "{b:?}");
        assert!((b.mos - 3.2834).abs() < 0.0001, "{b:?}");
        // 1155 ms of jitter: Ta = 2320 ms, X = 4.5361, Idd = 48.473, R = 44.727, MOS = 2.3011.
        let b = assess(&rr_with_jitter(9240, 0, 0), &options).blocks[0];
        assert!((b.r_factor - 44.727).abs() < 0.001, "{b:?}");
        assert!((b.mos - 2.3011).abs() < 0.0001, "{b:?}");
        // 20 ms jitter and an RTT of 250 ms: Ta = 125 + 40 + 10 = 175 ms, X = 0.80735,
        // Idd = 1.0349, R = 92.165, MOS = 4.3884.
        let rtt = QualityOptions {
            arrival_ntp_middle: Some(0x0001_c000),
            ..options
        };
        let b = assess(&rr_with_jitter(160, 0x0001_0000, 0x0000_8000), &rtt).blocks[0];
        assert_eq!(b.rtt_ms, Some(250.0));
        assert!((b.r_factor - 92.165).abs() < 0.001, "{b:?}");
        assert!((b.mos - 4.3884).abs() < 0.0001, "{b:?}");
        // Under 100 ms of effective delay G.107 has no delay impairment: R0.
        let b = assess(&rr_with_jitter(160, 0, 0), &options).blocks[0];
        assert_eq!(b.r_factor, 93.2);
    }
}
