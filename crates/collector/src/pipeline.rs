//! The per-packet pipeline: decode → auth → inflate → dedup → header rules → enrich into a
//! [`store::Record`] → method rules / censoring → hand-off to the writers.
//!
//! Everything here runs on the receive threads (UDP) and connection tasks (TCP/TLS) and is
//! synchronous and cheap: each packet is decoded once (zero-copy), its SIP indexed once with the
//! shared [`sip::Indexer`], and the only allocations are the record's own fields.
//!
//! Dedup runs before enrichment (it needs only the payload and the addresses), so duplicates
//! cost no SIP parsing; the outcome is the same as deduplicating after enrichment.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use payload::Parsed;
use store::{Profile, Record, RecordHint, SipFields};

use ingest::AuthKey;

use crate::config::PipelineConfig;
use crate::dedup::{fingerprint, Deduplicator};
use crate::metrics::{InvalidKind, Metrics, Transport};
use crate::rules::{DiscardRule, Rules};
use crate::writer::{Ingress, ParsedRtcp};

pub use ingest::now_us;

/// What became of one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Enriched and handed to the writers (queue, or spool when the queue is full).
    Accepted,
    /// Not decodable.
    Invalid(InvalidKind),
    /// Missing or wrong auth key.
    AuthFailed,
    /// Seen within the dedup window.
    Duplicate,
    /// Removed by a rule.
    Discarded(DiscardRule),
}

/// Turns decoded HEP packets into [`Record`]s.
#[derive(Debug, Clone)]
pub struct Enricher {
    /// Configured with A-leg and custom headers only (see
    /// [`PipelineConfig::indexer_config`]), so it yields the default indexer's fields apart
    /// from those two, which is what [`RecordHint::sip_from_raw`] promises.
    indexer: sip::Indexer,
    rules: Rules,
    max_inflated: usize,
}

/// Result of [`Enricher::enrich`].
#[derive(Debug)]
pub enum Enriched {
    /// The record to store, with its RTCP payload parsed (type 5) for the KPI observer and
    /// what the store may take for granted about it.
    Record(Box<Record>, ParsedRtcp, RecordHint),
    /// A SIP method rule matched.
    Discarded(DiscardRule),
}

impl Enricher {
    /// Builds the enricher (compiles the SIP indexer configuration and the rules).
    pub fn new(cfg: &PipelineConfig) -> Result<Enricher, sip::ConfigError> {
        Ok(Enricher {
            indexer: sip::Indexer::new(cfg.indexer_config())?,
            rules: Rules::new(&cfg.rules),
            max_inflated: cfg.max_inflated_bytes,
        })
    }

    /// The rules in force.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The packet's payload: chunk 0x000f as is, else chunk 0x0010 inflated within the cap.
    pub fn payload<'a>(&self, packet: &hep::HepPacket<'a>) -> Result<Cow<'a, [u8]>, InvalidKind> {
        if let Some(p) = packet.payload {
            return Ok(Cow::Borrowed(p));
        }
        if packet.payload_compressed.is_some() {
            return packet
                .inflate_payload(self.max_inflated)
                .map(Cow::Owned)
                .map_err(|e| InvalidKind::of(&e));
        }
        Err(InvalidKind::NoPayload)
    }

    /// Builds the record for a decoded packet whose payload is `payload`, applying the SIP
    /// method rules (discard, censor).
    pub fn enrich(
        &self,
        packet: &hep::HepPacket<'_>,
        payload: &[u8],
        received_us: i64,
    ) -> Enriched {
        let hep_type = packet.proto_type.unwrap_or(0);
        let src_ip = packet.src_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let dst_ip = packet.dst_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let capture_id = packet.capture_id_normalized().unwrap_or(0);
        let node = match packet.node_name {
            Some(n) if !n.is_empty() => String::from_utf8_lossy(n).into_owned(),
            _ => capture_id.to_string(),
        };
        let hep_correlation = packet
            .correlation_id
            .filter(|c| !c.is_empty())
            .map(|c| String::from_utf8_lossy(c).into_owned());

        let mut raw_len = payload.len();
        let mut hint = RecordHint::default();
        let (sip, payload_json, profile, rtcp) = if hep_type == payload::proto::SIP {
            let msg = self.indexer.index(payload);
            let rule_method = msg.cseq_method().or_else(|| msg.method());
            let mut censored = false;
            if self.rules.has_method_rules() {
                if let Some(m) = rule_method {
                    if self.rules.discards_method(m.as_bytes()) {
                        return Enriched::Discarded(DiscardRule::Method);
                    }
                    if self.rules.censors_method(m.as_bytes()) {
                        censored = true;
                        raw_len = msg.header_len.min(payload.len());
                    }
                }
            }
            // `raw` is the whole payload this indexer read, so the store's re-derivation would
            // give these very fields.
            hint.sip_from_raw = !censored;
            let profile = msg
                .cseq_method()
                .map(|m| Profile::from_cseq_method(&m.to_str_lossy()))
                .unwrap_or_default();
            (
                Some(SipFields::from_message(&msg, !censored)),
                None,
                profile,
                None,
            )
        } else {
            let (json, rtcp) = payload_json(hep_type, payload);
            (None, json, Profile::Default, rtcp)
        };

        let call_id = sip.as_ref().and_then(|s| s.call_id.as_deref());
        let correlation_id = hep_correlation
            .or_else(|| {
                sip.as_ref()
                    .and_then(|s| s.aleg_id.as_deref().map(String::from))
            })
            .or_else(|| call_id.map(String::from));
        let sid = match (call_id, &correlation_id) {
            (Some(c), _) => c.to_string(),
            (None, Some(c)) => c.clone(),
            (None, None) => String::new(),
        };
        let time_us = packet
            .timestamp_micros()
            .and_then(|t| i64::try_from(t).ok())
            .unwrap_or(received_us);
        let ip_family = packet.ip_family.unwrap_or(match src_ip {
            IpAddr::V4(_) => hep::FAMILY_IPV4,
            IpAddr::V6(_) => hep::FAMILY_IPV6,
        });
        Enriched::Record(
            Box::new(Record {
                time_us,
                received_us,
                hep_type,
                hep_version: packet.version,
                ip_family,
                ip_proto: packet.ip_proto.unwrap_or(0),
                src_ip,
                src_port: packet.src_port.unwrap_or(0),
                dst_ip,
                dst_port: packet.dst_port.unwrap_or(0),
                capture_id,
                node: Some(node),
                correlation_id,
                sid,
                profile,
                sip,
                payload_json,
                raw: payload.get(..raw_len).unwrap_or(payload).to_vec(),
            }),
            rtcp,
            hint,
        )
    }
}

/// The searchable JSON form of a non-SIP payload. JSON payloads (RTCP JSON, DNS JSON, event
/// reports) are kept byte-for-byte; binary RTCP becomes the HOMER RTCP JSON shape, so both RTCP
/// forms are searched alike; binary DNS and log lines become their decoded form. Payloads that
/// fail their decoder or are opaque binary get none (the raw bytes are stored regardless).
/// An RTCP report comes back parsed as well, for the KPI observer.
fn payload_json(hep_type: u8, payload: &[u8]) -> (Option<String>, ParsedRtcp) {
    let as_received = || {
        std::str::from_utf8(payload)
            .ok()
            .map(|s| s.trim().to_owned())
    };
    match payload::parse(hep_type, payload) {
        Parsed::Rtcp {
            format: payload::RtcpFormat::Json,
            report,
        } => (as_received(), Some(Arc::new(report))),
        Parsed::Json(_) => (as_received(), None),
        Parsed::Rtcp { report, .. } => (
            Some(payload::rtcp::to_json(&report).to_string()),
            Some(Arc::new(report)),
        ),
        Parsed::Dns(message) => (serde_json::to_string(&message).ok(), None),
        Parsed::Log(record) => (serde_json::to_string(&record).ok(), None),
        Parsed::Binary(_) | Parsed::Invalid { .. } | Parsed::NotHandled { .. } => (None, None),
    }
}

/// The shared per-packet pipeline: one per collector, used by every receive thread and task.
pub struct Pipeline {
    enricher: Enricher,
    dedup: Deduplicator,
    metrics: Arc<Metrics>,
    ingress: Arc<Ingress>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Assembles the pipeline.
    pub(crate) fn new(
        cfg: &PipelineConfig,
        metrics: Arc<Metrics>,
        ingress: Arc<Ingress>,
    ) -> Result<Pipeline, sip::ConfigError> {
        Ok(Pipeline {
            enricher: Enricher::new(cfg)?,
            dedup: Deduplicator::new(
                Duration::from_millis(cfg.dedup_window_ms),
                cfg.dedup_max_entries,
            ),
            metrics,
            ingress,
        })
    }

    /// Whether the writers are behind (see `Ingress::congested`).
    pub(crate) fn ingress_congested(&self) -> bool {
        self.ingress.congested()
    }

    /// Processes one HEP message received over `transport` at `received_us` (wall clock) /
    /// `now` (monotonic, for dedup). Every packet is counted exactly once.
    pub fn process(
        &self,
        bytes: &[u8],
        transport: Transport,
        auth: Option<&AuthKey>,
        received_us: i64,
        now: Instant,
    ) -> Outcome {
        let packet = match hep::decode(bytes) {
            Ok(p) => p,
            Err(e) => {
                let kind = InvalidKind::of(&e);
                self.metrics.packet_undecodable(transport, kind);
                return Outcome::Invalid(kind);
            }
        };
        let hep_type = packet.proto_type.unwrap_or(0);
        // The node label: chunk 0x0013, else the capture id; formatted without allocating for
        // the common (numeric) case.
        let mut id_buf = itoa_buf();
        let node_label: Cow<'_, str> = match packet.node_name {
            Some(n) if !n.is_empty() => String::from_utf8_lossy(n),
            _ => Cow::Borrowed(format_u32(
                packet.capture_id_normalized().unwrap_or(0),
                &mut id_buf,
            )),
        };
        self.metrics
            .packet_received(transport, hep_type, &node_label);
        if let Some(key) = auth {
            if !key.matches(packet.auth_key) {
                self.metrics.auth_failed();
                return Outcome::AuthFailed;
            }
        }
        let payload = match self.enricher.payload(&packet) {
            Ok(p) => p,
            Err(kind) => {
                self.metrics.invalid(kind, 1);
                return Outcome::Invalid(kind);
            }
        };
        let src = packet.src_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let dst = packet.dst_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let fp = fingerprint(
            src,
            packet.src_port.unwrap_or(0),
            dst,
            packet.dst_port.unwrap_or(0),
            &payload,
        );
        // Without a HEP timestamp the packet was captured when it arrived.
        let captured_us = packet
            .timestamp_micros()
            .unwrap_or(u64::try_from(received_us).unwrap_or(0));
        if self.dedup.is_duplicate(fp, captured_us, now) {
            self.metrics.deduplicated();
            return Outcome::Duplicate;
        }
        if let Some(rule) = self.enricher.rules.check_header(hep_type, src, dst) {
            self.metrics.discarded(rule);
            return Outcome::Discarded(rule);
        }
        match self.enricher.enrich(&packet, &payload, received_us) {
            Enriched::Discarded(rule) => {
                self.metrics.discarded(rule);
                Outcome::Discarded(rule)
            }
            Enriched::Record(record, rtcp, hint) => {
                self.ingress.submit(*record, rtcp, hint);
                Outcome::Accepted
            }
        }
    }
}

fn itoa_buf() -> [u8; 10] {
    [0; 10]
}

/// Formats `n` into `buf` as decimal ASCII without allocating.
fn format_u32(mut n: u32, buf: &mut [u8; 10]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        let mut b = itoa_buf();
        assert_eq!(format_u32(0, &mut b), "0");
        let mut b = itoa_buf();
        assert_eq!(format_u32(2001, &mut b), "2001");
        let mut b = itoa_buf();
        assert_eq!(format_u32(u32::MAX, &mut b), "4294967295");
    }

    fn hep(payload: &[u8], proto: u8) -> Vec<u8> {
        hep::HepMessage {
            ip_family: Some(hep::FAMILY_IPV4),
            ip_proto: Some(17),
            src_ip: Some("10.0.0.1".parse().expect("ip")),
            dst_ip: Some("10.0.0.2".parse().expect("ip")),
            src_port: Some(5060),
            dst_port: Some(5070),
            ts_sec: Some(1_700_000_000),
            ts_usec: Some(5),
            proto_type: Some(proto),
            capture_id: Some(7),
            payload: Some(payload.to_vec()),
            ..Default::default()
        }
        .encode_to_vec()
        .expect("encode")
    }

    /// Enriches one HEP packet received at `received_us`; the test fails if a rule discards it.
    fn enrich_record(
        e: &Enricher,
        wire: &[u8],
        received_us: i64,
    ) -> (Box<Record>, ParsedRtcp, RecordHint) {
        let p = hep::decode(wire).expect("decode");
        match e.enrich(&p, p.payload.expect("payload"), received_us) {
            Enriched::Record(r, rtcp, hint) => (r, rtcp, hint),
            _ => panic!("discarded"),
        }
    }

    /// A-leg and custom header `X-CID`, plus `rest`.
    fn x_cid_config(rest: PipelineConfig) -> PipelineConfig {
        PipelineConfig {
            aleg_headers: vec![sip::AlegRule::header("X-CID")],
            custom_headers: vec!["X-CID".into()],
            ..rest
        }
    }

    const MESSAGE: &[u8] = b"MESSAGE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\nCall-ID: m1@x\r\nCSeq: 1 MESSAGE\r\nX-CID: aleg-1\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nsecret";

    #[test]
    fn enrich_sip_with_aleg_and_censor() {
        let cfg = x_cid_config(PipelineConfig {
            rules: crate::config::RulesConfig {
                censor_body_methods: vec!["message".into()],
                ..Default::default()
            },
            ..Default::default()
        });
        let e = Enricher::new(&cfg).expect("enricher");
        let (r, rtcp, hint) = enrich_record(&e, &hep(MESSAGE, 1), 42);
        // Censored: the stored raw lost its body, so no promise about it.
        assert!(!hint.sip_from_raw);
        assert_eq!(r.time_us, 1_700_000_000_000_005);
        assert_eq!(r.received_us, 42);
        assert_eq!(r.sid, "m1@x");
        assert_eq!(r.correlation_id.as_deref(), Some("aleg-1"));
        assert_eq!(r.node.as_deref(), Some("7"));
        assert_eq!(r.profile, Profile::Default);
        let sip = r.sip.as_ref().expect("sip");
        assert_eq!(sip.method, "MESSAGE");
        assert_eq!(sip.cseq.as_deref(), Some("1 MESSAGE"));
        assert_eq!(sip.from_user.as_deref(), Some("alice"));
        assert_eq!(sip.custom_headers, vec![("X-CID".into(), "aleg-1".into())]);
        assert!(r.raw.ends_with(b"\r\n\r\n"), "body censored");
        assert!(!r.raw.windows(6).any(|w| w == b"secret"));
        assert!(r.payload_json.is_none());
        assert!(rtcp.is_none());
    }

    /// The fields of `r` as the store would derive them from its raw message.
    fn derived_from_raw(r: &Record) -> SipFields {
        let sip = r.sip.as_ref().expect("sip");
        let mut derived = SipFields::from_message(&sip::index(&r.raw), true);
        derived.aleg_id = sip.aleg_id.clone();
        derived.custom_headers = sip.custom_headers.clone();
        derived
    }

    #[test]
    fn sip_records_promise_what_their_raw_message_yields() {
        // With A-leg and custom headers configured, an uncensored message gets the promise,
        // and it holds.
        let cfg = x_cid_config(PipelineConfig::default());
        let e = Enricher::new(&cfg).expect("enricher");
        let (r, _, hint) = enrich_record(&e, &hep(MESSAGE, 1), 1);
        assert!(hint.sip_from_raw);
        assert_eq!(r.sip.as_ref(), Some(&derived_from_raw(&r)));
        assert_eq!(
            r.sip.as_ref().and_then(|s| s.aleg_id.as_deref()),
            Some("aleg-1")
        );

        // The promise rests on this: the ingest configuration sets nothing else of the indexer.
        assert_eq!(
            sip::IndexerConfig {
                custom_headers: Vec::new(),
                aleg_headers: Vec::new(),
                ..cfg.indexer_config()
            },
            sip::IndexerConfig::default()
        );

        // Not SIP: nothing to promise.
        let (_, _, hint) = enrich_record(&e, &hep(br#"{"ssrc":1,"type":201}"#, 5), 1);
        assert_eq!(hint, RecordHint::default());
    }

    #[test]
    fn enrich_non_sip() {
        let e = Enricher::new(&PipelineConfig::default()).expect("enricher");
        let json = br#"{"ssrc":1,"type":201}"#;
        let mut msg = hep::decode(&hep(json, 5)).expect("decode").to_message();
        msg.correlation_id = Some(b"call-9".to_vec());
        msg.node_name = Some(b"rtpengine".to_vec());
        let (r, _, _) = enrich_record(&e, &msg.encode_to_vec().expect("encode"), 0);
        assert_eq!(r.sid, "call-9");
        assert_eq!(r.correlation_id.as_deref(), Some("call-9"));
        assert_eq!(r.node.as_deref(), Some("rtpengine"));
        assert_eq!(r.payload_json.as_deref(), Some(r#"{"ssrc":1,"type":201}"#));
        assert!(r.sip.is_none());
        let (r, _, _) = enrich_record(&e, &hep(b"ERROR: boom\n", 100), 0);
        let v: serde_json::Value =
            serde_json::from_str(r.payload_json.as_deref().expect("json")).expect("valid");
        assert_eq!(v["text"], "ERROR: boom");
        assert_eq!(r.sid, "");
    }

    #[test]
    fn method_discard() {
        let cfg = PipelineConfig {
            rules: crate::config::RulesConfig {
                discard_methods: vec!["MESSAGE".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        let e = Enricher::new(&cfg).expect("enricher");
        let wire = hep(MESSAGE, 1);
        let p = hep::decode(&wire).expect("decode");
        assert!(matches!(
            e.enrich(&p, p.payload.expect("payload"), 0),
            Enriched::Discarded(DiscardRule::Method)
        ));
    }
}
