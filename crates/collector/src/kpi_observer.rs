//! Feeds stored records to the KPI engine (`kpi` crate): SIP messages for RFC 6076 tracking
//! and counters, RTCP reports (type 5 `payload_json`), X-RTP-Stat / P-RTP-Stat headers and
//! vq-rtcpxr bodies for QoS, and every record for the per-type HEP counter.
//!
//! It runs as a [`RecordObserver`] on the writer threads after the store took a batch (and
//! on batches replayed from the spool), so KPIs count exactly what was stored, once. Parallel
//! writers finish batches out of order: SIP messages go through the engine's reorder buffer
//! ([`kpi::Feeder::sip`]), which tracks them in receive order. RTCP
//! reports the pipeline parsed are used as they are; only records without one (replayed from
//! the spool) have their JSON parsed again.

use std::net::SocketAddr;
use std::sync::Arc;

use kpi::qos::{self, QosSource};
use kpi::{Kpi, SipEvent};
use store::Record;

use crate::writer::{ParsedRtcp, RecordObserver};

/// The observer; cheap to clone the inner engine handle for `/metrics` and the API.
#[derive(Debug, Clone)]
pub struct KpiObserver {
    kpi: Arc<Kpi>,
}

impl KpiObserver {
    /// Wraps an engine.
    pub fn new(kpi: Arc<Kpi>) -> KpiObserver {
        KpiObserver { kpi }
    }
}

/// The CSeq number of a `CSeq` header value (`"1 INVITE"` → 1).
fn cseq_number(cseq: Option<&str>) -> u32 {
    cseq.and_then(|c| c.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl RecordObserver for KpiObserver {
    fn on_stored(&self, records: &[Record]) {
        self.feed(records, &[]);
    }

    fn on_stored_parsed(&self, records: &[Record], rtcp: &[ParsedRtcp]) {
        self.feed(records, rtcp);
    }
}

impl KpiObserver {
    /// Feeds a stored batch; `rtcp[i]`, where present, is record `i`'s parsed RTCP report.
    fn feed(&self, records: &[Record], rtcp: &[ParsedRtcp]) {
        let mut feeder = self.kpi.feeder(crate::pipeline::now_us());
        let clock = feeder.rtp_clock_rate_hz();
        for (i, r) in records.iter().enumerate() {
            let node = r.node.as_deref().unwrap_or("unknown");
            feeder.hep(node, r.hep_type);
            let src = SocketAddr::new(r.src_ip, r.src_port);
            let dst = SocketAddr::new(r.dst_ip, r.dst_port);
            match (r.hep_type, &r.sip, &r.payload_json) {
                (1, Some(sip), _) => {
                    let method = sip.is_request.then_some(sip.method.as_str());
                    let cseq_method = sip.cseq_method.as_deref().unwrap_or("");
                    feeder.sip(&SipEvent {
                        time_us: r.time_us,
                        received_us: r.received_us,
                        node,
                        src,
                        dst,
                        method,
                        status: sip.status,
                        call_id: sip.call_id.as_deref().unwrap_or(""),
                        cseq_num: cseq_number(sip.cseq.as_deref()),
                        cseq_method,
                        via_branch: sip.via_branch.as_deref(),
                        to_tag: sip.to_tag.as_deref(),
                    });
                    // End-of-call summaries travel in BYE and its answer; RFC 6035 reports
                    // in PUBLISH. Other messages are not scanned.
                    let mut samples = Vec::new();
                    if cseq_method == "BYE" {
                        for h in ["X-RTP-Stat", "P-RTP-Stat"] {
                            if let Some(s) =
                                qos::find_header(&r.raw, h).and_then(qos::parse_x_rtp_stat)
                            {
                                samples.push((QosSource::XRtpStat, s));
                            }
                        }
                    }
                    // PUBLISH first: most messages carry a Content-Type, few are PUBLISH.
                    if method == Some("PUBLISH")
                        && sip
                            .content_type
                            .as_deref()
                            .is_some_and(|c| contains_ignore_ascii_case(c, "vq-rtcpxr"))
                    {
                        if let Some(s) = qos::body(&r.raw).and_then(qos::parse_vq_rtcpxr) {
                            samples.push((QosSource::VqRtcpxr, s));
                        }
                    }
                    feeder.qos(r.time_us, r.received_us, node, src, dst, &samples);
                }
                (5, _, Some(json)) => {
                    let samples = match rtcp.get(i) {
                        Some(Some(report)) => qos::from_rtcp_report(report, r.time_us, clock),
                        _ => qos::from_rtcp_json(json.as_bytes(), r.time_us, clock),
                    };
                    feeder.qos(r.time_us, r.received_us, node, src, dst, &samples);
                }
                _ => {}
            }
        }
    }
}

/// Whether `needle` (lower case) occurs in `haystack`, ignoring ASCII case.
fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored SIP record of `method` with `content_type` and `body`.
    fn sip_record(method: &str, content_type: Option<&str>, body: &str) -> Record {
        let raw = format!(
            "{method} sip:collector@example.com SIP/2.0\r\nCall-ID: vq-1\r\nCSeq: 1 {method}\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        Record {
            time_us: 1_700_000_000_000_000,
            received_us: 1_700_000_000_000_000,
            hep_type: 1,
            hep_version: 3,
            ip_family: 2,
            ip_proto: 17,
            src_ip: [10, 0, 0, 1].into(),
            src_port: 5060,
            dst_ip: [10, 0, 0, 2].into(),
            dst_port: 5060,
            capture_id: 1,
            node: Some("n1".into()),
            correlation_id: None,
            sid: "vq-1".into(),
            profile: store::Profile::Default,
            sip: Some(store::SipFields {
                method: method.into(),
                is_request: true,
                call_id: Some("vq-1".into()),
                cseq: Some(format!("1 {method}").into()),
                cseq_method: Some(method.into()),
                content_type: content_type.map(Into::into),
                ..Default::default()
            }),
            payload_json: None,
            raw: raw.into_bytes(),
        }
    }

    #[test]
    fn vq_rtcpxr_reports_in_publish_are_counted_whatever_the_content_type_case() {
        let body = "VQSessionReport: CallTerm\r\nLocalMetrics:\r\n\
            PacketLoss:NLR=5.0 JDR=2.0\r\nDelay:RTD=200 ESD=140 IAJ=2\r\n\
            QualityEst:MOSLQ=3.4 MOSCQ=3.3\r\n";
        let kpi = Arc::new(
            Kpi::new(kpi::KpiConfig {
                reorder_window_ms: 0,
                ..Default::default()
            })
            .expect("config"),
        );
        let observer = KpiObserver::new(kpi.clone());
        observer.on_stored(&[
            sip_record("PUBLISH", Some("Application/VQ-RTCPXR"), body),
            // Not PUBLISH, or not vq-rtcpxr: not a report.
            sip_record("MESSAGE", Some("application/vq-rtcpxr"), body),
            sip_record("PUBLISH", Some("application/pidf+xml"), body),
        ]);
        kpi.flush();
        let mut text = String::new();
        kpi.render_prometheus(crate::pipeline::now_us(), &mut text);
        let reports: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("hepstack_qos_reports_total{") && l.contains("vq_rtcpxr"))
            .collect();
        assert!(!reports.is_empty(), "{text}");
        assert!(reports.iter().all(|l| l.ends_with(" 1")), "{reports:?}");
    }

    #[test]
    fn content_types_match_whatever_their_case() {
        assert!(contains_ignore_ascii_case(
            "application/VQ-RTCPXR",
            "vq-rtcpxr"
        ));
        assert!(contains_ignore_ascii_case(
            "application/vq-rtcpxr; x=1",
            "vq-rtcpxr"
        ));
        assert!(!contains_ignore_ascii_case("application/sdp", "vq-rtcpxr"));
        assert!(!contains_ignore_ascii_case("vq", "vq-rtcpxr"));
    }

    #[test]
    fn cseq_numbers() {
        assert_eq!(cseq_number(Some("1 INVITE")), 1);
        assert_eq!(cseq_number(Some("  4711   BYE")), 4711);
        assert_eq!(cseq_number(Some("x BYE")), 0);
        assert_eq!(cseq_number(None), 0);
    }
}
