//! The KPI engine (`kpi` crate) as an [`Output`]: SIP messages for RFC 6076 tracking and
//! counters, RTCP reports (type 5 `payload_json`), X-RTP-Stat / P-RTP-Stat headers and
//! vq-rtcpxr bodies for QoS, and every record for the per-type HEP counter.
//!
//! The receiving thread keeps of each accepted record only what the engine reads (a
//! [`KpiItem`]: times, node, addresses, the SIP keys; the raw message only for a BYE or a
//! vq-rtcpxr PUBLISH, which may carry quality reports) and queues it; the engine runs on its
//! own thread (`out-kpi`), which feeds the queue in batches, lets idle time pass every
//! [`TICK`] (timeouts fire while no traffic arrives) and is the only one to do the engine's
//! housekeeping. So KPIs neither slow ingest nor wait for the store: they count what the
//! pipeline accepted, whether or not the store is up, and a burst the engine cannot keep up
//! with is shed and counted (`hepstack_output_dropped_total{output="kpi",reason="queue_full"}`).
//!
//! Receive threads queue their records in their own receive order, and their items
//! interleave in the queue: SIP messages still pass the engine's reorder buffer
//! ([`kpi::Feeder::sip`]), which tracks them in receive-stamp order. RTCP reports the pipeline
//! parsed are used as they are; only records without one have their JSON parsed again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kpi::qos::{self, QosSource};
use kpi::{Kpi, SipEvent};
use store::{CompactString, Record};

use crate::output::{QueueSettings, QueuedOutput, Sink};
use crate::writer::ParsedRtcp;

/// Longest interval between two passes of the engine's housekeeping.
pub const TICK: Duration = Duration::from_millis(250);

/// What the KPI engine keeps of an accepted record.
#[derive(Debug)]
pub struct KpiItem {
    hep_type: u8,
    time_us: i64,
    received_us: i64,
    node: CompactString,
    src: SocketAddr,
    dst: SocketAddr,
    body: KpiBody,
}

#[derive(Debug)]
enum KpiBody {
    /// Counted by HEP type only.
    Count,
    Sip(Box<KpiSip>),
    /// The pipeline's parse of the report, or its JSON to parse on the engine's thread.
    Rtcp(ParsedRtcp, Option<Box<str>>),
}

#[derive(Debug)]
struct KpiSip {
    method: Option<CompactString>,
    status: Option<u16>,
    call_id: CompactString,
    cseq_num: u32,
    cseq_method: CompactString,
    via_branch: Option<CompactString>,
    to_tag: Option<CompactString>,
    /// The raw message, kept only where quality reports travel (see [`qos_carrier`]).
    raw: Option<Box<[u8]>>,
    /// A vq-rtcpxr PUBLISH.
    vq_report: bool,
}

/// Whether a SIP message may carry a quality report: end-of-call summaries travel in BYE and
/// its answer, RFC 6035 reports in PUBLISH. Other messages are not scanned.
fn qos_carrier(sip: &store::SipFields) -> (bool, bool) {
    let bye = sip.cseq_method.as_deref() == Some("BYE");
    // PUBLISH first: most messages carry a Content-Type, few are PUBLISH.
    let vq = sip.is_request
        && sip.method == "PUBLISH"
        && sip
            .content_type
            .as_deref()
            .is_some_and(|c| contains_ignore_ascii_case(c, "vq-rtcpxr"));
    (bye, vq)
}

impl KpiItem {
    /// What the engine needs of `r` (`rtcp`: the pipeline's parse of its report, if any).
    pub fn of(r: &Record, rtcp: &ParsedRtcp) -> KpiItem {
        let body = match (r.hep_type, &r.sip, &r.payload_json) {
            (1, Some(sip), _) => {
                let (bye, vq) = qos_carrier(sip);
                KpiBody::Sip(Box::new(KpiSip {
                    method: sip.is_request.then(|| sip.method.clone()),
                    status: sip.status,
                    call_id: sip.call_id.clone().unwrap_or_default(),
                    cseq_num: cseq_number(sip.cseq.as_deref()),
                    cseq_method: sip.cseq_method.clone().unwrap_or_default(),
                    via_branch: sip.via_branch.clone(),
                    to_tag: sip.to_tag.clone(),
                    raw: (bye || vq).then(|| r.raw.clone().into_boxed_slice()),
                    vq_report: vq,
                }))
            }
            (5, _, Some(json)) => match rtcp {
                Some(report) => KpiBody::Rtcp(Some(report.clone()), None),
                None => KpiBody::Rtcp(None, Some(json.as_str().into())),
            },
            _ => KpiBody::Count,
        };
        KpiItem {
            hep_type: r.hep_type,
            time_us: r.time_us,
            received_us: r.received_us,
            node: CompactString::from(r.node.as_deref().unwrap_or("unknown")),
            src: SocketAddr::new(r.src_ip, r.src_port),
            dst: SocketAddr::new(r.dst_ip, r.dst_port),
            body,
        }
    }
}

/// The CSeq number of a `CSeq` header value (`"1 INVITE"` → 1).
fn cseq_number(cseq: Option<&str>) -> u32 {
    cseq.and_then(|c| c.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The engine's side of the output: feeds batches, runs the housekeeping.
#[derive(Debug)]
pub struct KpiSink {
    kpi: Arc<Kpi>,
}

impl KpiSink {
    /// Feeds `kpi`.
    pub fn new(kpi: Arc<Kpi>) -> KpiSink {
        KpiSink { kpi }
    }
}

impl Sink for KpiSink {
    type Item = KpiItem;

    fn write(&mut self, items: &mut Vec<KpiItem>) -> usize {
        feed(&self.kpi, items);
        items.len()
    }

    fn tick(&mut self) {
        self.kpi.tick(crate::pipeline::now_us());
    }

    fn finish(&mut self) {
        self.kpi.flush();
    }
}

/// Starts the KPI output (`out-kpi` thread) over `kpi`, with a queue of `capacity` records.
pub fn kpi_output(kpi: Arc<Kpi>, capacity: usize) -> std::io::Result<QueuedOutput<KpiItem>> {
    QueuedOutput::start(
        "kpi",
        QueueSettings {
            capacity,
            batch: 1024,
            tick: TICK,
        },
        Box::new(|r: &Record, rtcp: &ParsedRtcp| Some(KpiItem::of(r, rtcp))),
        KpiSink::new(kpi),
    )
}

/// Feeds a batch of items to the engine under one lock.
pub fn feed(kpi: &Kpi, items: &[KpiItem]) {
    let mut feeder = kpi.feeder(crate::pipeline::now_us());
    let clock = feeder.rtp_clock_rate_hz();
    for it in items {
        let node = it.node.as_str();
        feeder.hep(node, it.hep_type);
        match &it.body {
            KpiBody::Count => {}
            KpiBody::Sip(sip) => {
                let method = sip.method.as_deref();
                feeder.sip(&SipEvent {
                    time_us: it.time_us,
                    received_us: it.received_us,
                    node,
                    src: it.src,
                    dst: it.dst,
                    method,
                    status: sip.status,
                    call_id: &sip.call_id,
                    cseq_num: sip.cseq_num,
                    cseq_method: &sip.cseq_method,
                    via_branch: sip.via_branch.as_deref(),
                    to_tag: sip.to_tag.as_deref(),
                });
                let mut samples = Vec::new();
                if let Some(raw) = &sip.raw {
                    if sip.cseq_method == "BYE" {
                        for h in ["X-RTP-Stat", "P-RTP-Stat"] {
                            if let Some(s) =
                                qos::find_header(raw, h).and_then(qos::parse_x_rtp_stat)
                            {
                                samples.push((QosSource::XRtpStat, s));
                            }
                        }
                    }
                    if sip.vq_report {
                        if let Some(s) = qos::body(raw).and_then(qos::parse_vq_rtcpxr) {
                            samples.push((QosSource::VqRtcpxr, s));
                        }
                    }
                }
                feeder.qos(it.time_us, it.received_us, node, it.src, it.dst, &samples);
            }
            KpiBody::Rtcp(parsed, json) => {
                let samples = match (parsed, json) {
                    (Some(report), _) => qos::from_rtcp_report(report, it.time_us, clock),
                    (None, Some(json)) => qos::from_rtcp_json(json.as_bytes(), it.time_us, clock),
                    (None, None) => Vec::new(),
                };
                feeder.qos(it.time_us, it.received_us, node, it.src, it.dst, &samples);
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
        let items: Vec<KpiItem> = [
            sip_record("PUBLISH", Some("Application/VQ-RTCPXR"), body),
            // Not PUBLISH, or not vq-rtcpxr: not a report.
            sip_record("MESSAGE", Some("application/vq-rtcpxr"), body),
            sip_record("PUBLISH", Some("application/pidf+xml"), body),
        ]
        .iter()
        .map(|r| KpiItem::of(r, &None))
        .collect();
        feed(&kpi, &items);
        kpi.flush();
        let mut text = String::new();
        kpi.render_prometheus(&mut text);
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
