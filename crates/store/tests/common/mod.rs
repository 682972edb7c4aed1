//! Shared helpers: records from the real samples and hand-built records.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use store::sqlite::{SqliteConfig, SqliteStore};
use store::{Profile, Record, SipFields};

pub const HOUR_US: i64 = 3_600_000_000;
pub const DAY_US: i64 = 86_400_000_000;
/// 2026-11-23T00:00:00Z.
pub const T0: i64 = 1_795_392_000_000_000;

pub fn samples_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/samples")
        .join(name)
}

pub fn open(dir: &Path) -> SqliteStore {
    SqliteStore::open(SqliteConfig {
        data_dir: dir.to_path_buf(),
        ..SqliteConfig::default()
    })
    .unwrap()
}

fn text(t: Option<sip::Text<'_>>) -> Option<store::CompactString> {
    t.map(|t| t.normalized().into())
}

/// A record built from one HEP datagram the way the collector does: HEP fields, the SIP index
/// for SIP payloads, the payload as JSON text for JSON payloads.
pub fn record_from_hep(bytes: &[u8]) -> Record {
    let packet = hep::decode(bytes).unwrap();
    let payload: Vec<u8> = match packet.payload_bytes() {
        Some(p) => p.to_vec(),
        None => packet.inflate_payload(1 << 20).unwrap(),
    };
    let hep_type = packet.proto_type.unwrap_or(0);
    let time_us = packet.timestamp_micros().unwrap() as i64;
    let node = packet
        .node_name
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .or_else(|| packet.capture_id.map(|c| c.to_string()));
    let hep_correlation = packet
        .correlation_id
        .map(|c| String::from_utf8_lossy(c).into_owned());
    let (sip, sid, correlation_id, profile, payload_json) = if hep_type == 1 {
        let msg = sip::index(&payload);
        let call_id = text(msg.call_id).unwrap_or_default();
        let cseq_method = text(msg.cseq_method());
        let fields = SipFields {
            method: match msg.status_code() {
                Some(code) => code.to_string().into(),
                None => text(msg.method()).unwrap_or_default(),
            },
            is_request: msg.is_request(),
            status: msg.status_code(),
            cseq: msg
                .cseq
                .as_ref()
                .map(|c| format!("{} {}", c.number, c.method.normalized()).into()),
            cseq_method: cseq_method.clone(),
            call_id: Some(call_id.clone()),
            ruri_user: text(msg.ruri_user()),
            ruri_domain: text(msg.ruri_domain()),
            from_user: text(msg.from_user()),
            from_domain: text(msg.from_domain()),
            from_tag: text(msg.from_tag()),
            to_user: text(msg.to_user()),
            to_domain: text(msg.to_domain()),
            to_tag: text(msg.to_tag()),
            contact_user: text(msg.contact_user()),
            pid_user: text(msg.pid_user()),
            auth_user: text(msg.auth_user),
            user_agent: text(msg.user_agent),
            server: text(msg.server),
            reason: msg.reason.as_ref().map(|r| r.raw.normalized().into()),
            content_type: text(msg.content_type),
            via_branch: text(msg.via_branch()),
            aleg_id: text(msg.aleg_id),
            custom_headers: Vec::new(),
            sdp_media: msg
                .sdp
                .as_ref()
                .map(|s| {
                    s.media
                        .iter()
                        .map(|m| {
                            let c = m
                                .connection
                                .or(s.connection)
                                .map(|c| c.normalized().into_owned())
                                .unwrap_or_default();
                            format!("{c}:{}", m.port)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        let profile = Profile::from_cseq_method(cseq_method.as_deref().unwrap_or(""));
        let correlation = hep_correlation
            .clone()
            .unwrap_or_else(|| call_id.to_string());
        (
            Some(fields),
            call_id.to_string(),
            Some(correlation),
            profile,
            None,
        )
    } else {
        let json = serde_json::from_slice::<serde_json::Value>(&payload)
            .ok()
            .map(|v| v.to_string());
        let sid = hep_correlation.clone().unwrap_or_default();
        (None, sid, hep_correlation, Profile::Default, json)
    };
    Record {
        time_us,
        received_us: time_us + 100,
        hep_type,
        hep_version: packet.version,
        ip_family: packet.ip_family.unwrap_or(2),
        ip_proto: packet.ip_proto.unwrap_or(17),
        src_ip: packet.src_ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
        src_port: packet.src_port.unwrap_or(0),
        dst_ip: packet.dst_ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
        dst_port: packet.dst_port.unwrap_or(0),
        capture_id: packet.capture_id_normalized().unwrap_or(0),
        node,
        correlation_id,
        sid,
        profile,
        sip,
        payload_json,
        raw: payload,
    }
}

/// Every datagram of a sample directory, in file order.
pub fn sample_records(name: &str) -> Vec<Record> {
    let dir = samples_dir(name).join("datagrams");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| record_from_hep(&std::fs::read(f).unwrap()))
        .collect()
}

/// A SIP record with the given identity; everything else plausible.
pub fn sip_record(
    time_us: i64,
    call_id: &str,
    method: &str,
    status: Option<u16>,
    cseq_method: &str,
) -> Record {
    let is_request = status.is_none();
    let start = match status {
        Some(code) => format!("SIP/2.0 {code} Something"),
        None => format!("{method} sip:bob@example.com SIP/2.0"),
    };
    let raw = format!(
        "{start}\r\nCall-ID: {call_id}\r\nCSeq: 1 {cseq_method}\r\nContent-Length: 0\r\n\r\n"
    );
    Record {
        time_us,
        received_us: time_us + 1,
        hep_type: 1,
        hep_version: 3,
        ip_family: 2,
        ip_proto: 17,
        src_ip: "10.0.0.1".parse().unwrap(),
        src_port: 5060,
        dst_ip: "10.0.0.2".parse().unwrap(),
        dst_port: 5060,
        capture_id: 7,
        node: Some("node-a".into()),
        correlation_id: Some(call_id.into()),
        sid: call_id.into(),
        profile: Profile::from_cseq_method(cseq_method),
        sip: Some(SipFields {
            method: status
                .map(|s| s.to_string())
                .unwrap_or_else(|| method.to_string())
                .into(),
            is_request,
            status,
            cseq: Some(format!("1 {cseq_method}").into()),
            cseq_method: Some(cseq_method.into()),
            call_id: Some(call_id.into()),
            ruri_user: is_request.then(|| "bob".into()),
            from_user: Some("alice".into()),
            to_user: Some("bob".into()),
            ..SipFields::default()
        }),
        payload_json: None,
        raw: raw.into_bytes(),
    }
}

/// A non-SIP record (RTCP, log …) tied to a session.
pub fn event_record(time_us: i64, hep_type: u8, sid: &str, json: &str) -> Record {
    Record {
        time_us,
        received_us: time_us,
        hep_type,
        hep_version: 3,
        ip_family: 2,
        ip_proto: 17,
        src_ip: "10.0.0.9".parse().unwrap(),
        src_port: 9,
        dst_ip: "10.0.0.10".parse().unwrap(),
        dst_port: 10,
        capture_id: 9,
        node: Some("media".into()),
        correlation_id: Some(sid.into()),
        sid: sid.into(),
        profile: Profile::Default,
        sip: None,
        payload_json: Some(json.into()),
        raw: json.as_bytes().to_vec(),
    }
}
