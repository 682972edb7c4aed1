//! MOS estimation with the ITU-T G.107 E-model (transmission planning model), reduced to the
//! inputs a packet network monitor has: codec, packet loss, loss burstiness and one-way delay.
//!
//! ```text
//! R       = R0 − Id − Ie,eff + A                 G.107 §7.1 (eq. 7-1), Is folded into R0
//! R0      = 93.2                                 Ro − Is with every G.107 default (Table 3)
//! Id      = Idd(Ta)                              G.107 §7.4, eq. 7-27 (see below)
//! Ie,eff  = Ie + (95 − Ie) · Ppl / (Ppl/BurstR + Bpl)      G.107 eq. 7-29
//! MOS     = 1 + 0.035 R + R (R − 60)(100 − R) · 7·10⁻⁶    G.107 Annex B (eq. B-4),
//!           1 for R < 0, 4.5 for R > 100
//! ```
//!
//! **Delay impairment.** `Id` uses the normative G.107 term for pure absolute delay,
//! `Idd = 25·{(1 + X⁶)^(1/6) − 3·(1 + (X/3)⁶)^(1/6) + 2}` with `X = log2(Ta/100)` for
//! Ta > 100 ms and 0 below. The other two parts of G.107's `Id` (talker echo `Idte` and listener
//! echo `Idle`) depend on the terminals' echo loudness ratings, which RTCP does not carry; with
//! G.107's defaults (TELR = 65 dB, WEPL = 110 dB) they are a near-constant 0.15 at T = 0, already
//! inside R0 = 93.2. The widely used Cole–Rosenbluth fit (`0.024·d + 0.11·(d − 177.3)·H(d − 177.3)`)
//! was not chosen because it bakes in a particular echo scenario and penalises even short delays,
//! which would make identical networks score differently from G.107 planning tools.
//!
//! **Wideband codecs** (G.722) use the G.107.1 scale: R0 = 129 and
//! `Ie,eff,wb = Ie,wb + (129 − Ie,wb) · Ppl / (Ppl/BurstR + Bpl)`; the resulting R is divided by 1.29
//! (the ratio of the two scales' maxima) before the MOS mapping so that MOS stays comparable with
//! narrowband calls.
//!
//! **Codec values** come from ITU-T G.113 Appendix I (Tables I.1 and I.3 for narrowband `Ie` and
//! `Bpl`, and the wideband `Ie,wb` table for G.722); see [`Codec`]. Where G.113 publishes no
//! `Bpl`, the codec is not offered: pass [`Codec::Custom`] with your own values (Opus and iLBC
//! have no G.113 values).

use serde::Serialize;

/// R0 − Is with all G.107 defaults: the R of a perfect narrowband connection.
pub const R0_NARROWBAND: f64 = 93.2;

/// R of a perfect wideband connection on the G.107.1 scale.
pub const R0_WIDEBAND: f64 = 129.0;

/// Ratio between the wideband and narrowband R scales (129 / 100).
pub const WIDEBAND_SCALE: f64 = 1.29;

/// Equipment impairment and packet-loss robustness of a codec.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CodecImpairment {
    /// Equipment impairment factor Ie (Ie,wb for wideband codecs).
    pub ie: f64,
    /// Packet-loss robustness factor Bpl.
    pub bpl: f64,
    /// Whether `ie` is on the wideband (G.107.1, R0 = 129) scale.
    pub wideband: bool,
}

/// Codecs with published planning values, plus caller-supplied values.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub enum Codec {
    /// G.711 with packet-loss concealment (G.711 Appendix I): Ie 0, Bpl 25.1 (G.113 Table I.3).
    /// The default: every common SIP endpoint conceals lost G.711 frames.
    #[default]
    G711Plc,
    /// G.711 without packet-loss concealment: Ie 0, Bpl 4.3 (G.113 Table I.3).
    G711NoPlc,
    /// G.729A with VAD: Ie 11, Bpl 19.0 (G.113 Tables I.1 / I.3).
    G729a,
    /// G.723.1 at 6.3 kbit/s with VAD: Ie 15, Bpl 16.1 (G.113 Tables I.1 / I.3).
    G723_1,
    /// GSM-EFR (AMR 12.2 kbit/s): Ie 5, Bpl 10.0 (G.113 Tables I.1 / I.3).
    GsmEfr,
    /// G.722 at 64 kbit/s, wideband scale: Ie,wb 13 (G.113 wideband Ie table). G.113 gives no Bpl
    /// for G.722; 25.1 is used on the assumption that its concealment (G.722 Appendix III)
    /// performs like G.711's, which keeps the loss sensitivity of the two comparable.
    G722,
    /// Caller-supplied values (for Opus, iLBC, AMR-WB or measured values).
    Custom {
        /// Equipment impairment factor.
        ie: f64,
        /// Packet-loss robustness factor (> 0).
        bpl: f64,
        /// Whether `ie` is on the wideband scale.
        wideband: bool,
    },
}

impl Codec {
    /// The codec's planning values.
    pub fn impairment(self) -> CodecImpairment {
        let (ie, bpl, wideband) = match self {
            Codec::G711Plc => (0.0, 25.1, false),
            Codec::G711NoPlc => (0.0, 4.3, false),
            Codec::G729a => (11.0, 19.0, false),
            Codec::G723_1 => (15.0, 16.1, false),
            Codec::GsmEfr => (5.0, 10.0, false),
            Codec::G722 => (13.0, 25.1, true),
            Codec::Custom { ie, bpl, wideband } => (ie, bpl, wideband),
        };
        CodecImpairment { ie, bpl, wideband }
    }

    /// The codec of a static RTP payload type (RFC 3551), if it has planning values here:
    /// 0 PCMU and 8 PCMA → G.711 with PLC, 4 → G.723.1, 9 → G.722, 18 → G.729A.
    pub fn from_static_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 | 8 => Some(Codec::G711Plc),
            4 => Some(Codec::G723_1),
            9 => Some(Codec::G722),
            18 => Some(Codec::G729a),
            _ => None,
        }
    }

    /// The codec of an SDP `rtpmap` encoding name (case-insensitive), if it has planning values.
    pub fn from_encoding_name(name: &str) -> Option<Codec> {
        const NAMES: &[(&str, Codec)] = &[
            ("PCMU", Codec::G711Plc),
            ("PCMA", Codec::G711Plc),
            ("G729", Codec::G729a),
            ("G729A", Codec::G729a),
            ("G723", Codec::G723_1),
            ("G722", Codec::G722),
            ("GSM-EFR", Codec::GsmEfr),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, c)| *c)
    }
}

/// Inputs of one E-model evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EModelInput {
    /// The codec in use. Default: G.711 with PLC.
    pub codec: Codec,
    /// One-way mouth-to-ear delay Ta in milliseconds. Default 0.
    pub one_way_delay_ms: f64,
    /// Packet loss probability Ppl in percent (0..=100; network loss plus jitter-buffer
    /// discards). Default 0.
    pub packet_loss_percent: f64,
    /// Burst ratio BurstR: 1 for random loss, > 1 for bursty loss. Default 1.
    pub burst_ratio: f64,
    /// Advantage factor A (0 for wired VoIP, up to 10 for mobile). Default 0.
    pub advantage: f64,
}

impl Default for EModelInput {
    fn default() -> Self {
        EModelInput {
            codec: Codec::default(),
            one_way_delay_ms: 0.0,
            packet_loss_percent: 0.0,
            burst_ratio: 1.0,
            advantage: 0.0,
        }
    }
}

/// Result of an E-model evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EModelResult {
    /// Transmission rating R on the narrowband scale (0..=100).
    pub r: f64,
    /// Delay impairment Id.
    pub id: f64,
    /// Effective equipment impairment Ie,eff (on the codec's own scale).
    pub ie_eff: f64,
    /// Estimated conversational MOS (1.0..=4.5).
    pub mos: f64,
}

/// Replaces NaN / infinities (which no measurement should produce) with `fallback`.
fn finite_or(v: f64, fallback: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        fallback
    }
}

/// G.107 Idd: impairment from absolute one-way delay `ta_ms` (0 up to 100 ms).
pub fn delay_impairment(ta_ms: f64) -> f64 {
    let ta = finite_or(ta_ms, 0.0);
    if ta <= 100.0 {
        return 0.0;
    }
    let x = (ta / 100.0).log2();
    25.0 * ((1.0 + x.powi(6)).powf(1.0 / 6.0) - 3.0 * (1.0 + (x / 3.0).powi(6)).powf(1.0 / 6.0)
        + 2.0)
}

/// G.107 eq. 7-29: effective equipment impairment for `loss_percent` (clamped to 0..=100) with
/// burst ratio `burst_ratio` (values ≤ 0 are treated as 1). `ceiling` is 95 on the narrowband
/// scale and 129 on the wideband one.
pub fn effective_equipment_impairment(
    impairment: CodecImpairment,
    loss_percent: f64,
    burst_ratio: f64,
) -> f64 {
    let ceiling = if impairment.wideband {
        R0_WIDEBAND
    } else {
        95.0
    };
    let ppl = finite_or(loss_percent, 0.0).clamp(0.0, 100.0);
    let burst_r = finite_or(burst_ratio, 1.0);
    let burst_r = if burst_r > 0.0 { burst_r } else { 1.0 };
    let bpl = finite_or(impairment.bpl, 1.0).max(f64::MIN_POSITIVE);
    let denominator = ppl / burst_r + bpl;
    impairment.ie + (ceiling - impairment.ie) * ppl / denominator
}

/// G.107 Annex B: MOS from R, clamped to 1.0..=4.5.
pub fn r_to_mos(r: f64) -> f64 {
    let r = finite_or(r, 0.0);
    if r <= 0.0 {
        return 1.0;
    }
    if r >= 100.0 {
        return 4.5;
    }
    (1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6).clamp(1.0, 4.5)
}

/// Runs the E-model on `input`.
pub fn evaluate(input: &EModelInput) -> EModelResult {
    let impairment = input.codec.impairment();
    let id = delay_impairment(input.one_way_delay_ms);
    let ie_eff =
        effective_equipment_impairment(impairment, input.packet_loss_percent, input.burst_ratio);
    let advantage = finite_or(input.advantage, 0.0);
    let r = if impairment.wideband {
        (R0_WIDEBAND - id - ie_eff + advantage) / WIDEBAND_SCALE
    } else {
        R0_NARROWBAND - id - ie_eff + advantage
    };
    let r = finite_or(r, 0.0).clamp(0.0, 100.0);
    EModelResult {
        r,
        id,
        ie_eff,
        mos: r_to_mos(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn r_to_mos_reference_points() {
        // G.107 Annex B / G.109 Table 1 user satisfaction boundaries.
        assert!(close(r_to_mos(93.2), 4.41, 0.005), "{}", r_to_mos(93.2));
        assert!(close(r_to_mos(90.0), 4.34, 0.005));
        assert!(close(r_to_mos(80.0), 4.02, 0.005));
        assert!(close(r_to_mos(70.0), 3.60, 0.005));
        assert!(close(r_to_mos(60.0), 3.10, 0.005));
        assert!(close(r_to_mos(50.0), 2.58, 0.005));
        assert_eq!(r_to_mos(-5.0), 1.0);
        assert_eq!(r_to_mos(3.0), 1.0);
        assert_eq!(r_to_mos(120.0), 4.5);
        assert_eq!(r_to_mos(f64::NAN), 1.0);
    }

    #[test]
    fn clean_g711_is_about_4_4() {
        let res = evaluate(&EModelInput {
            one_way_delay_ms: 40.0,
            ..EModelInput::default()
        });
        assert_eq!(res.r, 93.2);
        assert!(close(res.mos, 4.41, 0.005), "{res:?}");
    }

    #[test]
    fn codec_table_values() {
        assert_eq!(Codec::G711Plc.impairment().bpl, 25.1);
        assert_eq!(Codec::G711NoPlc.impairment().bpl, 4.3);
        let g729 = Codec::G729a.impairment();
        assert_eq!((g729.ie, g729.bpl), (11.0, 19.0));
        // G.729A without loss: R = 82.2 → MOS ≈ 4.10.
        let res = evaluate(&EModelInput {
            codec: Codec::G729a,
            ..EModelInput::default()
        });
        assert!(close(res.r, 82.2, 1e-9));
        assert!(close(res.mos, 4.10, 0.01), "{res:?}");
        assert_eq!(Codec::from_static_payload_type(8), Some(Codec::G711Plc));
        assert_eq!(Codec::from_encoding_name("pcmu"), Some(Codec::G711Plc));
        assert_eq!(Codec::from_encoding_name("opus"), None);
    }

    #[test]
    fn loss_impairment_follows_eq_7_29() {
        // G.711 + PLC at 1 % random loss: 95 · 1 / 26.1 = 3.64.
        let ie = effective_equipment_impairment(Codec::G711Plc.impairment(), 1.0, 1.0);
        assert!(close(ie, 3.640, 0.001), "{ie}");
        // Without PLC the same loss costs 95 / 5.3 = 17.92.
        let ie = effective_equipment_impairment(Codec::G711NoPlc.impairment(), 1.0, 1.0);
        assert!(close(ie, 17.925, 0.001), "{ie}");
        // Bursty loss hurts more than random loss of the same rate.
        let random = effective_equipment_impairment(Codec::G729a.impairment(), 5.0, 1.0);
        let bursty = effective_equipment_impairment(Codec::G729a.impairment(), 5.0, 2.0);
        assert!(bursty > random);
        // 100 % loss approaches the 95 ceiling.
        let all = effective_equipment_impairment(Codec::G711Plc.impairment(), 100.0, 1.0);
        assert!(all > 75.0 && all < 95.0);
    }

    #[test]
    fn delay_impairment_follows_idd() {
        assert_eq!(delay_impairment(100.0), 0.0);
        assert_eq!(delay_impairment(-3.0), 0.0);
        // Ta = 200 ms: X = 1 → 25·(2^(1/6) − 3·(1 + 3⁻⁶)^(1/6) + 2) ≈ 3.04.
        assert!(
            close(delay_impairment(200.0), 3.04, 0.01),
            "{}",
            delay_impairment(200.0)
        );
        // Ta = 400 ms: X = 2 → ≈ 24.07.
        assert!(
            close(delay_impairment(400.0), 24.07, 0.05),
            "{}",
            delay_impairment(400.0)
        );
        assert!(delay_impairment(800.0) > delay_impairment(400.0));
    }

    #[test]
    fn wideband_scale() {
        let res = evaluate(&EModelInput {
            codec: Codec::G722,
            ..EModelInput::default()
        });
        // (129 − 13) / 1.29 = 89.9
        assert!(close(res.r, 89.92, 0.01), "{res:?}");
        let lossy = evaluate(&EModelInput {
            codec: Codec::G722,
            packet_loss_percent: 5.0,
            ..EModelInput::default()
        });
        assert!(lossy.mos < res.mos);
    }

    #[test]
    fn hostile_inputs_stay_in_range() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1e300, 1e300] {
            let res = evaluate(&EModelInput {
                codec: Codec::Custom {
                    ie: v,
                    bpl: v,
                    wideband: false,
                },
                one_way_delay_ms: v,
                packet_loss_percent: v,
                burst_ratio: v,
                advantage: v,
            });
            assert!((1.0..=4.5).contains(&res.mos), "{v}: {res:?}");
        }
    }
}
