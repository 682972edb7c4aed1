//! Voice-quality reports from three sources, reduced to one [`QosSample`] shape:
//!
//! * **RTCP** (HEP type 5): the record's `payload_json` in the HOMER / rtpengine shape, read
//!   by [`payload::rtcp::from_json`] and assessed by [`payload::quality::assess`] (jitter from
//!   the RTP clock rate, fraction lost, cumulative lost, RTT by RFC 3550 §6.4.1 from LSR/DLSR
//!   and the report's capture time, E-model MOS); RTCP-XR VoIP Metrics blocks (RFC 3611 §4.7)
//!   in the same report give loss + discard rate, round-trip delay and the reporter's MOS.
//! * **X-RTP-Stat** / **P-RTP-Stat** SIP headers (end-of-call summaries in BYE or its 200 OK,
//!   sent by Cisco/Linksys/Grandstream phones, FreeSWITCH, Avaya, Ribbon SBCs):
//!   `PS=…;OS=…;PR=…;OR=…;PL=…;JI=…;LA=…;DU=…;EN=…;DE=…` — packets sent / received, packets
//!   lost, jitter (ms), latency (ms), duration (s). Separators `;` or `,`; unknown keys ignored.
//! * **vq-rtcpxr** bodies (RFC 6035, SIP PUBLISH `application/vq-rtcpxr`): lines
//!   `PacketLoss:NLR=… JDR=…`, `Delay:RTD=… ESD=… IAJ=…`, `QualityEst:… MOSLQ=… MOSCQ=…`.
//!
//! MOS without a reported value comes from the ITU-T G.107 E-model (`payload::emodel`) with
//! Ppl = loss % and Ta = one-way delay (RTT/2, or the reported latency), codec G.711 + PLC.
//!
//! Parsers are bounded: at most [`MAX_QOS_INPUT`] bytes and [`MAX_FIELDS`] fields are read.

use payload::emodel::{self, Codec, EModelInput};
use payload::quality::{self, QualityOptions};

/// Longest header value / body the parsers look at; the rest is ignored.
pub const MAX_QOS_INPUT: usize = 8192;
/// Most `key=value` fields read from one header or body.
pub const MAX_FIELDS: usize = 64;

/// Where a QoS sample came from (the `source` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QosSource {
    /// RTCP SR/RR report block.
    Rtcp,
    /// RTCP-XR VoIP Metrics block.
    RtcpXr,
    /// X-RTP-Stat / P-RTP-Stat SIP header.
    XRtpStat,
    /// RFC 6035 vq-rtcpxr body.
    VqRtcpxr,
}

impl QosSource {
    /// All sources, in label order.
    pub const ALL: [QosSource; 4] = [
        QosSource::Rtcp,
        QosSource::RtcpXr,
        QosSource::XRtpStat,
        QosSource::VqRtcpxr,
    ];
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            QosSource::Rtcp => "rtcp",
            QosSource::RtcpXr => "rtcp_xr",
            QosSource::XRtpStat => "x_rtp_stat",
            QosSource::VqRtcpxr => "vq_rtcpxr",
        }
    }
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// One quality observation of one media stream direction.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct QosSample {
    /// Interarrival jitter, milliseconds.
    pub jitter_ms: Option<f64>,
    /// Loss since the previous report (RTCP) or over the call (summaries), 0..=1.
    pub loss_fraction: Option<f64>,
    /// Packets lost, cumulative for the stream (RTCP) or for the call (summaries).
    pub cumulative_lost: Option<i64>,
    /// Round-trip time, milliseconds, when derivable.
    pub rtt_ms: Option<f64>,
    /// MOS (reported, or E-model).
    pub mos: Option<f64>,
    /// Stream identity for cumulative-loss deltas (RTCP: reporter and source SSRC).
    #[serde(skip)]
    pub stream: Option<(u32, u32)>,
}

/// Samples from an RTCP report in HOMER JSON (HEP type 5 `payload_json`). `time_us` is the
/// capture time, used as the arrival time for RTT.
pub fn from_rtcp_json(
    json: &[u8],
    time_us: i64,
    clock_rate_hz: u32,
) -> Vec<(QosSource, QosSample)> {
    match payload::rtcp::from_json(json) {
        Ok(report) => from_rtcp_report(&report, time_us, clock_rate_hz),
        Err(_) => Vec::new(),
    }
}

/// Samples from an RTCP report already parsed (the collector's pipeline parses every type 5
/// payload once and hands the report on, so the JSON is not parsed a second time).
pub fn from_rtcp_report(
    report: &payload::rtcp::RtcpReport,
    time_us: i64,
    clock_rate_hz: u32,
) -> Vec<(QosSource, QosSample)> {
    let secs = time_us.div_euclid(1_000_000);
    let micros = time_us.rem_euclid(1_000_000) as u32;
    let options = QualityOptions {
        clock_rate_hz,
        arrival_ntp_middle: u64::try_from(secs)
            .ok()
            .map(|s| quality::ntp_middle_32(s, micros)),
        ..QualityOptions::default()
    };
    let q = quality::assess(report, &options);
    let mut out = Vec::with_capacity(q.blocks.len() + q.voip_metrics.len());
    for b in &q.blocks {
        out.push((
            QosSource::Rtcp,
            QosSample {
                jitter_ms: b.jitter_ms,
                loss_fraction: Some(b.fraction_lost_percent / 100.0),
                cumulative_lost: Some(i64::from(b.cumulative_lost)),
                rtt_ms: b.rtt_ms,
                mos: Some(b.mos),
                stream: Some((b.reporter_ssrc, b.source_ssrc)),
            },
        ));
    }
    for v in &q.voip_metrics {
        let rtt = f64::from(v.round_trip_delay_ms);
        out.push((
            QosSource::RtcpXr,
            QosSample {
                jitter_ms: None,
                loss_fraction: Some(((v.loss_percent + v.discard_percent) / 100.0).min(1.0)),
                cumulative_lost: None,
                rtt_ms: (rtt > 0.0).then_some(rtt),
                // Reported MOS outside 1..5 is a producer error: use the E-model instead.
                mos: v
                    .reported_mos_cq
                    .or(v.reported_mos_lq)
                    .filter(|m| (1.0..=5.0).contains(m))
                    .or(Some(v.mos)),
                stream: None,
            },
        ));
    }
    out
}

/// Splits `input` into at most [`MAX_FIELDS`] `KEY=value` pairs separated by any of `seps`.
/// Keys are trimmed; pairs without `=` are skipped.
pub fn fields<'a>(input: &'a str, seps: &'a [char]) -> impl Iterator<Item = (&'a str, &'a str)> {
    let input = truncate(input, MAX_QOS_INPUT);
    input
        .split(move |c: char| seps.contains(&c))
        .filter_map(|f| {
            let (k, v) = f.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (k, v.trim()))
        })
        .take(MAX_FIELDS)
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn num(v: &str) -> Option<f64> {
    let v: f64 = v.trim().parse().ok()?;
    v.is_finite().then_some(v)
}

/// Parses an X-RTP-Stat / P-RTP-Stat header value. `None` when it carries nothing usable.
pub fn parse_x_rtp_stat(value: &str) -> Option<QosSample> {
    let (mut pr, mut pl, mut ji, mut la, mut mos) = (None, None, None, None, None);
    for (k, v) in fields(value, &[';', ',']) {
        match k.to_ascii_uppercase().as_str() {
            "PR" => pr = num(v).filter(|x| *x >= 0.0),
            "PL" => pl = num(v),
            "JI" => ji = num(v).filter(|x| *x >= 0.0),
            "LA" => la = num(v).filter(|x| *x >= 0.0),
            "MOS" | "MOSCQ" | "MOSLQ" => mos = num(v).filter(|x| (1.0..=5.0).contains(x)),
            _ => {}
        }
    }
    if pr.is_none() && pl.is_none() && ji.is_none() && la.is_none() && mos.is_none() {
        return None;
    }
    // PL may be negative with duplicates (like RTCP's cumulative lost); loss fraction uses 0.
    let loss_fraction = match (pr, pl) {
        (Some(r), Some(l)) if r + l.max(0.0) > 0.0 => Some(l.max(0.0) / (r + l.max(0.0))),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    };
    let rtt_ms = la.map(|l| l * 2.0);
    Some(QosSample {
        jitter_ms: ji,
        loss_fraction,
        cumulative_lost: pl.map(|l| l as i64),
        rtt_ms,
        mos: mos.or_else(|| e_model_mos(loss_fraction, la, ji)),
        stream: None,
    })
}

/// Parses an RFC 6035 vq-rtcpxr report body. `None` when it carries nothing usable.
pub fn parse_vq_rtcpxr(body: &str) -> Option<QosSample> {
    let (mut nlr, mut jdr, mut rtd, mut iaj, mut moscq, mut moslq) =
        (None, None, None, None, None, None);
    let mut seen = 0usize;
    for line in truncate(body, MAX_QOS_INPUT).lines() {
        let Some((_, rest)) = line.split_once(':') else {
            continue;
        };
        for (k, v) in fields(rest, &[' ', '\t']) {
            seen += 1;
            if seen > MAX_FIELDS * 4 {
                break;
            }
            match k {
                "NLR" => nlr = num(v).filter(|x| (0.0..=100.0).contains(x)),
                "JDR" => jdr = num(v).filter(|x| (0.0..=100.0).contains(x)),
                "RTD" => rtd = num(v).filter(|x| *x >= 0.0),
                "IAJ" => iaj = num(v).filter(|x| *x >= 0.0),
                "MOSCQ" => moscq = num(v).filter(|x| (1.0..=5.0).contains(x)),
                "MOSLQ" => moslq = num(v).filter(|x| (1.0..=5.0).contains(x)),
                _ => {}
            }
        }
    }
    let loss_fraction = match (nlr, jdr) {
        (None, None) => None,
        (n, j) => Some(((n.unwrap_or(0.0) + j.unwrap_or(0.0)) / 100.0).min(1.0)),
    };
    if loss_fraction.is_none()
        && rtd.is_none()
        && iaj.is_none()
        && moscq.is_none()
        && moslq.is_none()
    {
        return None;
    }
    Some(QosSample {
        jitter_ms: iaj,
        loss_fraction,
        cumulative_lost: None,
        rtt_ms: rtd,
        mos: moscq
            .or(moslq)
            .or_else(|| e_model_mos(loss_fraction, rtd.map(|r| r / 2.0), iaj)),
        stream: None,
    })
}

/// The E-model MOS of a report without one of its own, with the jitter buffer's share of the
/// delay ([`quality::effective_delay_ms`]) like the RTCP reports'.
fn e_model_mos(loss: Option<f64>, one_way_ms: Option<f64>, jitter_ms: Option<f64>) -> Option<f64> {
    let loss = loss?;
    let r = emodel::evaluate(&EModelInput {
        codec: Codec::default(),
        one_way_delay_ms: quality::effective_delay_ms(one_way_ms, jitter_ms),
        packet_loss_percent: (loss * 100.0).clamp(0.0, 100.0),
        burst_ratio: 1.0,
        advantage: 0.0,
    });
    Some(r.mos)
}

/// Finds the value of header `name` (case-insensitive, first occurrence) in the header block
/// of a SIP message, reading at most [`MAX_QOS_INPUT`] bytes of headers.
pub fn find_header<'a>(raw: &'a [u8], name: &str) -> Option<&'a str> {
    let head = &raw[..raw.len().min(MAX_QOS_INPUT * 8)];
    let mut lines = head.split(|b| *b == b'\n');
    lines.next()?; // start line
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (k, v) = line.split_at(colon);
        if k.trim_ascii().eq_ignore_ascii_case(name.as_bytes()) {
            return std::str::from_utf8(&v[1..]).ok().map(str::trim);
        }
    }
    None
}

/// The body of a SIP message (after the first empty line), if any.
pub fn body(raw: &[u8]) -> Option<&str> {
    let pos = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let b = &raw[pos + 4..];
    (!b.is_empty()).then(|| std::str::from_utf8(&b[..b.len().min(MAX_QOS_INPUT)]).ok())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn in_range(s: &QosSample) -> bool {
        [s.jitter_ms, s.rtt_ms]
            .into_iter()
            .flatten()
            .all(|v| v.is_finite() && v >= 0.0)
            && s.loss_fraction.map_or(true, |l| (0.0..=1.0).contains(&l))
            && s.mos.map_or(true, |m| (1.0..=5.0).contains(&m))
    }

    proptest! {
        #[test]
        fn parsers_never_panic_on_arbitrary_text(text in "\\PC{0,300}") {
            if let Some(s) = parse_x_rtp_stat(&text) { prop_assert!(in_range(&s)); }
            if let Some(s) = parse_vq_rtcpxr(&text) { prop_assert!(in_range(&s)); }
            let _ = find_header(text.as_bytes(), "X-RTP-Stat");
            let _ = body(text.as_bytes());
        }

        #[test]
        fn x_rtp_stat_fields_in_any_order(pr in 0u32..1_000_000, pl in 0u32..100_000, ji in 0u32..1000, la in 0u32..2000, sep in prop::sample::select(vec![";", ","])) {
            let mut fields = [format!("PR={pr}"), format!("PL={pl}"), format!("JI={ji}"), format!("LA={la}"), "EN=PCMA".to_string()];
            fields.reverse();
            let s = parse_x_rtp_stat(&fields.join(sep)).unwrap();
            prop_assert!(in_range(&s));
            prop_assert_eq!(s.jitter_ms, Some(f64::from(ji)));
            prop_assert_eq!(s.rtt_ms, Some(f64::from(la) * 2.0));
            prop_assert_eq!(s.cumulative_lost, Some(i64::from(pl)));
            if pr + pl > 0 {
                prop_assert!((s.loss_fraction.unwrap() - f64::from(pl) / f64::from(pr + pl)).abs() < 1e-12);
            }
        }

        #[test]
        fn arbitrary_bytes_as_rtcp_json(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            for (_, s) in from_rtcp_json(&bytes, 1_700_000_000_000_000, 8000) {
                prop_assert!(in_range(&s));
            }
        }
    }

    #[test]
    fn x_rtp_stat_summary() {
        let s = parse_x_rtp_stat(
            "PS=1000;OS=160000;PR=950;OR=152000;PL=50;JI=12;LA=40;DU=20;EN=PCMU;DE=PCMU",
        )
        .unwrap();
        assert_eq!(s.jitter_ms, Some(12.0));
        assert!((s.loss_fraction.unwrap() - 0.05).abs() < 1e-9);
        assert_eq!(s.cumulative_lost, Some(50));
        assert_eq!(s.rtt_ms, Some(80.0));
        let mos = s.mos.unwrap();
        assert!(mos > 1.0 && mos < 4.0, "{mos}");
        // Comma separators (P-RTP-Stat) and no loss at all.
        let s = parse_x_rtp_stat("PS=10,PR=10,PL=0,JI=1").unwrap();
        assert_eq!(s.loss_fraction, Some(0.0));
        assert!(s.mos.unwrap() > 4.3);
        assert_eq!(parse_x_rtp_stat("EN=PCMU;DE=PCMU"), None);
        assert_eq!(parse_x_rtp_stat(""), None);
    }

    #[test]
    fn vq_rtcpxr_body() {
        let body = "VQSessionReport: CallTerm\r\nCallID: 123@x\r\nLocalMetrics:\r\n\
            Timestamps:START=2004-10-10T18:23:43Z STOP=2004-10-01T18:26:02Z\r\n\
            PacketLoss:NLR=5.0 JDR=2.0\r\nDelay:RTD=200 ESD=140 IAJ=2\r\n\
            QualityEst:RLQ=90 RCQ=85 EXTRI=90 MOSLQ=3.4 MOSCQ=3.3\r\n";
        let s = parse_vq_rtcpxr(body).unwrap();
        assert!((s.loss_fraction.unwrap() - 0.07).abs() < 1e-9);
        assert_eq!(s.rtt_ms, Some(200.0));
        assert_eq!(s.jitter_ms, Some(2.0));
        assert_eq!(s.mos, Some(3.3));
        assert_eq!(parse_vq_rtcpxr("nothing here"), None);
    }

    #[test]
    fn header_lookup() {
        let raw = b"BYE sip:a@b SIP/2.0\r\nCall-ID: x\r\nx-rtp-stat: PR=1;PL=0\r\n\r\nbody";
        assert_eq!(find_header(raw, "X-RTP-Stat"), Some("PR=1;PL=0"));
        assert_eq!(find_header(raw, "P-RTP-Stat"), None);
        assert_eq!(body(raw), Some("body"));
    }

    #[test]
    fn rtcp_json_from_rtpengine_sample() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/samples/rtpengine-hep3-rtcp/decoded.jsonl"
        );
        let Ok(text) = std::fs::read_to_string(dir) else {
            eprintln!("SKIP: sample {dir} missing");
            return;
        };
        let mut samples = 0;
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let chunks = v["chunks"].as_array().unwrap();
            let payload = chunks.iter().find(|c| c["name"] == "payload");
            let Some(p) = payload.and_then(|p| p["value"].as_str()) else {
                continue;
            };
            for (src, s) in from_rtcp_json(p.as_bytes(), 1_700_000_000_000_000, 8000) {
                samples += 1;
                if src == QosSource::Rtcp {
                    assert!(s.jitter_ms.is_some());
                    let mos = s.mos.unwrap();
                    assert!((1.0..=4.5).contains(&mos));
                }
            }
        }
        assert!(samples > 0, "no RTCP samples decoded");
    }
}
