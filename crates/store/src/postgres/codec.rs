//! Records to and from heplify-server's row shape: `sid`, `create_date`, `protocol_header`
//! (jsonb), `data_header` (jsonb), `raw` (varchar).
//!
//! The HOMER keys are written exactly as heplify-server writes them, so homer-app reads the
//! rows. What HOMER has no key for (HEP version, receive time, the JSON payload of decoded
//! types, payloads that are not UTF-8 text) goes into one extra object,
//! `protocol_header.hepstack`, which homer-app ignores; it makes the round trip exact.
//!
//! The SIP fields are not written there: they are derived again from `raw` when a row is read
//! (the SIP indexer costs ≈ 2 µs, far less than PostgreSQL's jsonb parsing and storage of a
//! second copy: ≈ 15 µs of server CPU per row). Only what the ingest-time index configuration
//! added — the A-leg id (`data_header.callid_aleg`) and custom headers (`hepstack.ch`) — is
//! stored, and a record whose fields would not come back identical that way (a censored body,
//! fields set by other means) keeps its full field set in `hepstack.sip`. Rows written by
//! heplify-server itself (no `hepstack` key) are read back from the HOMER keys alone.

use std::net::IpAddr;

use base64::Engine;
use serde_json::{Map, Value};

use super::schema::{Table, PG_EPOCH_US};
use crate::{CompactString, Profile, Record, SipFields, StoredMessage};

/// heplify-server's default `SIPHeader` list: always written, `""` when absent.
pub(crate) const DEFAULT_SIP_HEADER: [&str; 9] = [
    "ruri_user",
    "ruri_domain",
    "from_user",
    "from_tag",
    "to_user",
    "callid",
    "cseq",
    "method",
    "user_agent",
];

/// Every SIP key hepstack can write, heplify-server's names.
pub(crate) const KNOWN_SIP_HEADER: [&str; 20] = [
    "ruri_user",
    "ruri_domain",
    "from_user",
    "from_domain",
    "from_tag",
    "to_user",
    "to_domain",
    "to_tag",
    "callid",
    "callid_aleg",
    "cseq",
    "method",
    "contact_user",
    "pid_user",
    "auth_user",
    "user_agent",
    "server",
    "content_type",
    "reason",
    "via_branch",
];

/// The value of a heplify-server SIP key.
fn sip_key<'a>(s: &'a SipFields, key: &str) -> Option<&'a str> {
    let v = match key {
        "ruri_user" => &s.ruri_user,
        "ruri_domain" => &s.ruri_domain,
        "from_user" => &s.from_user,
        "from_domain" => &s.from_domain,
        "from_tag" => &s.from_tag,
        "to_user" => &s.to_user,
        "to_domain" => &s.to_domain,
        "to_tag" => &s.to_tag,
        "callid" => &s.call_id,
        "callid_aleg" => &s.aleg_id,
        "cseq" => &s.cseq,
        "method" => return Some(&s.method),
        "contact_user" => &s.contact_user,
        "pid_user" => &s.pid_user,
        "auth_user" => &s.auth_user,
        "user_agent" => &s.user_agent,
        "server" => &s.server,
        "content_type" => &s.content_type,
        "reason" => &s.reason,
        "via_branch" => &s.via_branch,
        _ => return None,
    };
    v.as_deref()
}

/// heplify-server's `proto` label of a non-SIP type.
fn proto_name(hep_type: u8) -> String {
    match hep_type {
        1 => "sip".into(),
        5 => "rtcp".into(),
        34 => "rtpagent".into(),
        35 => "report".into(),
        53 => "dns".into(),
        54 => "isup".into(),
        100 => "log".into(),
        t => format!("hep{t}"),
    }
}

/// One row ready for COPY.
pub(crate) struct Row {
    pub sid: String,
    pub create_date: i64,
    pub protocol_header: String,
    pub data_header: String,
    pub raw: String,
}

/// The SIP fields as a compact JSON object (absent fields left out).
fn sip_json(s: &SipFields) -> Value {
    let mut m = Map::new();
    m.insert("method".into(), s.method.as_str().into());
    m.insert("is_request".into(), s.is_request.into());
    if let Some(st) = s.status {
        m.insert("status".into(), st.into());
    }
    let fields: [(&str, &Option<CompactString>); 20] = [
        ("cseq", &s.cseq),
        ("cseq_method", &s.cseq_method),
        ("call_id", &s.call_id),
        ("ruri_user", &s.ruri_user),
        ("ruri_domain", &s.ruri_domain),
        ("from_user", &s.from_user),
        ("from_domain", &s.from_domain),
        ("from_tag", &s.from_tag),
        ("to_user", &s.to_user),
        ("to_domain", &s.to_domain),
        ("to_tag", &s.to_tag),
        ("contact_user", &s.contact_user),
        ("pid_user", &s.pid_user),
        ("auth_user", &s.auth_user),
        ("user_agent", &s.user_agent),
        ("server", &s.server),
        ("reason", &s.reason),
        ("content_type", &s.content_type),
        ("via_branch", &s.via_branch),
        ("aleg_id", &s.aleg_id),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            m.insert(k.into(), v.as_str().into());
        }
    }
    if !s.custom_headers.is_empty() {
        m.insert("custom_headers".into(), header_pairs(&s.custom_headers));
    }
    if !s.sdp_media.is_empty() {
        m.insert(
            "sdp_media".into(),
            Value::Array(s.sdp_media.iter().map(|v| v.clone().into()).collect()),
        );
    }
    Value::Object(m)
}

/// `[[name, value], …]`.
fn header_pairs(pairs: &[(String, String)]) -> Value {
    Value::Array(
        pairs
            .iter()
            .map(|(k, v)| Value::Array(vec![k.clone().into(), v.clone().into()]))
            .collect(),
    )
}

/// The pairs of [`header_pairs`] under key `k`.
fn pairs_of(m: &Map<String, Value>, k: &str) -> Vec<(String, String)> {
    m.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| {
                    let p = p.as_array()?;
                    Some((
                        p.first()?.as_str()?.to_string(),
                        p.get(1)?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// SIP fields derived from the stored raw message, plus what the ingest-time index
/// configuration added: the A-leg id from `data_header`, custom headers from the extension.
fn sip_from_raw(raw: &[u8], dh: &Map<String, Value>, ext: &Map<String, Value>) -> SipFields {
    let mut s = SipFields::from_message(&sip::index(raw), true);
    s.aleg_id = get_str(dh, "callid_aleg").map(CompactString::from);
    s.custom_headers = pairs_of(ext, "ch");
    s
}

fn get_str(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(Value::as_str).map(str::to_string)
}

fn compact(m: &Map<String, Value>, k: &str) -> Option<CompactString> {
    m.get(k).and_then(Value::as_str).map(CompactString::from)
}

fn sip_from_json(m: &Map<String, Value>) -> SipFields {
    let pairs = |k: &str| pairs_of(m, k);
    SipFields {
        method: compact(m, "method").unwrap_or_default(),
        is_request: m
            .get("is_request")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        status: m
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok()),
        cseq: compact(m, "cseq"),
        cseq_method: compact(m, "cseq_method"),
        call_id: compact(m, "call_id"),
        ruri_user: compact(m, "ruri_user"),
        ruri_domain: compact(m, "ruri_domain"),
        from_user: compact(m, "from_user"),
        from_domain: compact(m, "from_domain"),
        from_tag: compact(m, "from_tag"),
        to_user: compact(m, "to_user"),
        to_domain: compact(m, "to_domain"),
        to_tag: compact(m, "to_tag"),
        contact_user: compact(m, "contact_user"),
        pid_user: compact(m, "pid_user"),
        auth_user: compact(m, "auth_user"),
        user_agent: compact(m, "user_agent"),
        server: compact(m, "server"),
        reason: compact(m, "reason"),
        content_type: compact(m, "content_type"),
        via_branch: compact(m, "via_branch"),
        aleg_id: compact(m, "aleg_id"),
        custom_headers: pairs("custom_headers"),
        sdp_media: m
            .get("sdp_media")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// heplify-server's ISUP `data_header` from the JSON payload: `cic, dpc, opc, msg_name,
/// called_number, calling_number, callid` (`callid` = `min(opc,dpc):max(opc,dpc):cic`).
fn isup_header(json: &Value, m: &mut Map<String, Value>) {
    let int = |k: &str| json.get(k).and_then(Value::as_i64).unwrap_or(0);
    let num = |k: &str| {
        json.get(k)
            .and_then(|v| v.get("num"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (cic, dpc, opc) = (int("cic"), int("dpc"), int("opc"));
    m.insert("cic".into(), cic.into());
    m.insert("dpc".into(), dpc.into());
    m.insert("opc".into(), opc.into());
    m.insert(
        "msg_name".into(),
        json.get("msg_name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .into(),
    );
    m.insert("called_number".into(), num("called_number").into());
    m.insert("calling_number".into(), num("calling_number").into());
    m.insert(
        "callid".into(),
        format!("{}:{}:{cic}", opc.min(dpc), opc.max(dpc)).into(),
    );
}

/// Builds the row for a record. `sip_header` is the list of SIP keys always written.
pub(crate) fn encode(r: &Record, table: &Table, sip_header: &[String]) -> Row {
    let mut ph = Map::new();
    ph.insert("protocolFamily".into(), r.ip_family.into());
    ph.insert("protocol".into(), r.ip_proto.into());
    ph.insert("srcIp".into(), r.src_ip.to_string().into());
    ph.insert("dstIp".into(), r.dst_ip.to_string().into());
    ph.insert("srcPort".into(), r.src_port.into());
    ph.insert("dstPort".into(), r.dst_port.into());
    ph.insert("timeSeconds".into(), r.time_us.div_euclid(1_000_000).into());
    ph.insert(
        "timeUseconds".into(),
        r.time_us.rem_euclid(1_000_000).into(),
    );
    ph.insert("payloadType".into(), r.hep_type.into());
    ph.insert("captureId".into(), r.capture_id.to_string().into());
    if let Some(c) = &r.correlation_id {
        ph.insert("correlation_id".into(), c.clone().into());
    }
    let mut ext = Map::new();
    ext.insert("v".into(), r.hep_version.into());
    ext.insert("rcv".into(), r.received_us.into());
    let table_profile = match table.no {
        0 => Profile::Call,
        1 => Profile::Registration,
        _ => Profile::Default,
    };
    if r.profile != table_profile {
        ext.insert("pr".into(), r.profile.as_str().into());
    }
    let mut dh = Map::new();
    match &r.sip {
        Some(s) => {
            for key in sip_header {
                dh.insert(key.clone(), sip_key(s, key).unwrap_or("").into());
            }
            if let Some(a) = &s.aleg_id {
                dh.insert("callid_aleg".into(), a.as_str().into());
            }
            for (k, v) in &s.custom_headers {
                dh.entry(k.clone()).or_insert_with(|| v.clone().into());
            }
            if let Some(n) = &r.node {
                dh.insert("node".into(), n.clone().into());
            }
            if !s.custom_headers.is_empty() {
                ext.insert("ch".into(), header_pairs(&s.custom_headers));
            }
            if sip_from_raw(&r.raw, &dh, &ext) != *s {
                ext.remove("ch");
                ext.insert("sip".into(), sip_json(s));
            }
        }
        None => {
            dh.insert("node".into(), r.node.clone().unwrap_or_default().into());
            dh.insert("proto".into(), proto_name(r.hep_type).into());
            if r.node.is_none() {
                ext.insert("nonode".into(), true.into());
            }
            if table.is_sip() {
                // A SIP table without SIP fields: do not derive them when reading.
                ext.insert("nosip".into(), true.into());
            }
            if table.kind == super::schema::Kind::Isup {
                if let Some(v) = r
                    .payload_json
                    .as_deref()
                    .and_then(|j| serde_json::from_str::<Value>(j).ok())
                {
                    isup_header(&v, &mut dh);
                }
            }
        }
    }
    let raw_text = std::str::from_utf8(&r.raw)
        .ok()
        .filter(|t| !t.contains('\0'));
    let raw = match raw_text {
        Some(t) => t.to_string(),
        None => {
            ext.insert(
                "raw64".into(),
                base64::engine::general_purpose::STANDARD
                    .encode(&r.raw)
                    .into(),
            );
            String::from_utf8_lossy(&r.raw).replace('\0', "\u{fffd}")
        }
    };
    if let Some(j) = &r.payload_json {
        if raw_text == Some(j.as_str()) {
            ext.insert("jr".into(), true.into());
        } else if j.contains('\0') {
            // jsonb cannot hold U+0000.
            ext.insert(
                "json64".into(),
                base64::engine::general_purpose::STANDARD.encode(j).into(),
            );
        } else {
            ext.insert("json".into(), j.clone().into());
        }
        if serde_json::from_str::<serde::de::IgnoredAny>(j).is_ok() {
            ext.insert("jv".into(), true.into());
        }
    }
    ph.insert("hepstack".into(), Value::Object(ext));
    Row {
        sid: r.sid.clone(),
        create_date: r.time_us,
        protocol_header: Value::Object(ph).to_string(),
        data_header: Value::Object(dh).to_string(),
        raw,
    }
}

/// Appends one tuple of a binary COPY (`sid, create_date, protocol_header, data_header, raw`).
pub(crate) fn copy_binary_tuple(row: &Row, out: &mut Vec<u8>) {
    out.extend_from_slice(&5i16.to_be_bytes());
    let mut field = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    field(row.sid.as_bytes());
    field(&(row.create_date - PG_EPOCH_US).to_be_bytes());
    let jsonb = |text: &str, out: &mut Vec<u8>| {
        out.extend_from_slice(&((text.len() + 1) as i32).to_be_bytes());
        out.push(1);
        out.extend_from_slice(text.as_bytes());
    };
    jsonb(&row.protocol_header, out);
    jsonb(&row.data_header, out);
    out.extend_from_slice(&(row.raw.len() as i32).to_be_bytes());
    out.extend_from_slice(row.raw.as_bytes());
}

/// Signature, flags and header extension of a binary COPY stream.
pub(crate) const COPY_BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// End-of-data marker of a binary COPY stream.
pub(crate) const COPY_BINARY_TRAILER: &[u8] = &(-1i16).to_be_bytes();

/// Appends `text` escaped for the text COPY format.
fn copy_text_field(text: &str, out: &mut Vec<u8>) {
    for b in text.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

/// Appends one line of a text COPY (the other format, kept for the benchmark comparison).
pub(crate) fn copy_text_line(row: &Row, out: &mut Vec<u8>) {
    copy_text_field(&row.sid, out);
    out.push(b'\t');
    out.extend_from_slice(timestamp_text(row.create_date).as_bytes());
    out.push(b'\t');
    copy_text_field(&row.protocol_header, out);
    out.push(b'\t');
    copy_text_field(&row.data_header, out);
    out.push(b'\t');
    copy_text_field(&row.raw, out);
    out.push(b'\n');
}

/// ISO 8601 with microseconds in UTC.
fn timestamp_text(time_us: i64) -> String {
    let days = time_us.div_euclid(super::schema::DAY_US);
    let rem = time_us.rem_euclid(super::schema::DAY_US);
    let (y, m, d) = super::schema::civil_from_days(days);
    let secs = rem / 1_000_000;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06}+00",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        rem % 1_000_000
    )
}

/// A row read back. `id` is already the API id.
pub(crate) fn decode(
    id: i64,
    table: &Table,
    sid: String,
    time_us: i64,
    ph: &Value,
    dh: &Value,
    raw: String,
) -> StoredMessage {
    let empty = Map::new();
    let ph = ph.as_object().unwrap_or(&empty);
    let dh = dh.as_object().unwrap_or(&empty);
    let ext = ph.get("hepstack").and_then(Value::as_object);
    let num = |k: &str| ph.get(k).and_then(Value::as_u64).unwrap_or(0);
    let ip = |k: &str| {
        ph.get(k)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<IpAddr>().ok())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]))
    };
    let capture = ph.get("captureId").and_then(|v| match v {
        Value::String(s) => s.parse::<u32>().ok(),
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        _ => None,
    });
    let hep_type = u8::try_from(num("payloadType")).unwrap_or(0);
    let table_profile = match table.no {
        0 => Profile::Call,
        1 => Profile::Registration,
        _ => Profile::Default,
    };
    let (raw, payload_json, sip, node, profile, hep_version, received_us) = match ext {
        Some(x) => {
            let raw = match x.get("raw64").and_then(Value::as_str) {
                Some(b) => base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .unwrap_or_else(|_| raw.into_bytes()),
                None => raw.into_bytes(),
            };
            let payload_json = if x.get("jr").is_some() {
                String::from_utf8(raw.clone()).ok()
            } else if let Some(b) = x.get("json64").and_then(Value::as_str) {
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .ok()
                    .and_then(|v| String::from_utf8(v).ok())
            } else {
                get_str(x, "json")
            };
            let sip = match x.get("sip").and_then(Value::as_object) {
                Some(fields) => Some(sip_from_json(fields)),
                None if table.is_sip() && x.get("nosip").is_none() => {
                    Some(sip_from_raw(&raw, dh, x))
                }
                None => None,
            };
            let node = if x.get("nonode").is_some() {
                None
            } else {
                get_str(dh, "node")
            };
            let profile = match x.get("pr").and_then(Value::as_str) {
                Some("call") => Profile::Call,
                Some("registration") => Profile::Registration,
                Some(_) => Profile::Default,
                None => table_profile,
            };
            let v = x
                .get("v")
                .and_then(Value::as_u64)
                .and_then(|v| u8::try_from(v).ok())
                .unwrap_or(3);
            let rcv = x.get("rcv").and_then(Value::as_i64).unwrap_or(time_us);
            (raw, payload_json, sip, node, profile, v, rcv)
        }
        None => {
            // Written by heplify-server: rebuild what the HOMER keys hold.
            let sip = table.is_sip().then(|| heplify_sip(raw.as_bytes(), dh));
            let node = get_str(dh, "node")
                .filter(|n| !n.is_empty())
                .or_else(|| capture.map(|c| c.to_string()));
            let payload_json = if table.is_sip() {
                None
            } else {
                serde_json::from_str::<Value>(&raw)
                    .ok()
                    .map(|_| raw.clone())
            };
            (
                raw.into_bytes(),
                payload_json,
                sip,
                node,
                table_profile,
                3,
                time_us,
            )
        }
    };
    let record = Record {
        time_us,
        received_us,
        hep_type,
        hep_version,
        ip_family: u8::try_from(num("protocolFamily")).unwrap_or(0),
        ip_proto: u8::try_from(num("protocol")).unwrap_or(0),
        src_ip: ip("srcIp"),
        src_port: u16::try_from(num("srcPort")).unwrap_or(0),
        dst_ip: ip("dstIp"),
        dst_port: u16::try_from(num("dstPort")).unwrap_or(0),
        capture_id: capture.unwrap_or(0),
        node,
        correlation_id: get_str(ph, "correlation_id"),
        sid,
        profile,
        sip,
        payload_json,
        raw,
    };
    StoredMessage { id, record }
}

/// SIP fields of a row written by heplify-server (no hepstack extension): derived from the
/// raw message as hepstack indexes it (heplify-server's `data_header` holds only some of the
/// fields, e.g. no contact user or SDP media), with its A-leg id; from the `data_header` keys
/// when the raw text is not a SIP message.
fn heplify_sip(raw: &[u8], dh: &Map<String, Value>) -> SipFields {
    let mut derived = SipFields::from_message(&sip::index(raw), true);
    if derived.call_id.is_some() && !derived.method.is_empty() {
        derived.aleg_id = compact(dh, "callid_aleg").filter(|v| !v.is_empty());
        return derived;
    }
    heplify_keys(dh)
}

/// SIP fields from a heplify-server `data_header`'s keys alone.
fn heplify_keys(dh: &Map<String, Value>) -> SipFields {
    let s = |k: &str| compact(dh, k).filter(|v| !v.is_empty());
    let method = compact(dh, "method").unwrap_or_default();
    let status = method.parse::<u16>().ok();
    let cseq = s("cseq");
    SipFields {
        is_request: status.is_none(),
        status,
        cseq_method: cseq
            .as_deref()
            .and_then(|c| c.split_whitespace().nth(1))
            .map(CompactString::from),
        cseq,
        call_id: s("callid"),
        ruri_user: s("ruri_user"),
        ruri_domain: s("ruri_domain"),
        from_user: s("from_user"),
        from_domain: s("from_domain"),
        from_tag: s("from_tag"),
        to_user: s("to_user"),
        to_domain: s("to_domain"),
        to_tag: s("to_tag"),
        contact_user: s("contact_user"),
        pid_user: s("pid_user"),
        auth_user: s("auth_user"),
        user_agent: s("user_agent"),
        server: s("server"),
        reason: s("reason"),
        content_type: s("content_type"),
        via_branch: s("via_branch"),
        aleg_id: s("callid_aleg"),
        custom_headers: Vec::new(),
        sdp_media: Vec::new(),
        method,
    }
}

/// Cursor of a message page: `(time_us, id)` of the last row returned.
pub(crate) fn message_cursor(time_us: i64, id: i64) -> String {
    format!("pm{:x}.{:x}", time_us as u64, id as u64)
}

fn parse_hex(s: &str) -> Option<i64> {
    u64::from_str_radix(s, 16).ok().map(|v| v as i64)
}

/// Parses a [`message_cursor`].
pub(crate) fn parse_message_cursor(s: &str) -> Option<(i64, i64)> {
    let (t, id) = s.strip_prefix("pm")?.split_once('.')?;
    Some((parse_hex(t)?, parse_hex(id)?))
}

/// Cursor of a call page: start time and Call-ID of the last call returned.
pub(crate) fn call_cursor(start_us: i64, call_id: &str) -> String {
    let mut s = format!("pc{:x}.", start_us as u64);
    for b in call_id.bytes() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Parses a [`call_cursor`].
pub(crate) fn parse_call_cursor(s: &str) -> Option<(i64, String)> {
    let (t, id) = s.strip_prefix("pc")?.split_once('.')?;
    if id.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..id.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(id.get(i..i + 2)?, 16).ok())
        .collect();
    Some((parse_hex(t)?, String::from_utf8(bytes?).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::schema::TABLES;

    const INVITE: &[u8] = b"INVITE sip:1001@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:1001@example.com>\r\nCall-ID: c1@h\r\nCSeq: 1 INVITE\r\nX-CID: aleg-1\r\nX-Site: ams\r\nContent-Type: application/sdp\r\nContent-Length: 55\r\n\r\nv=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\nv=0\r\n";

    fn sip_record(sip: SipFields) -> Record {
        Record {
            time_us: 1_700_000_000_000_000,
            received_us: 1_700_000_000_000_100,
            hep_type: 1,
            hep_version: 3,
            ip_family: 2,
            ip_proto: 17,
            src_ip: "10.0.0.1".parse().expect("ip"),
            src_port: 5060,
            dst_ip: "10.0.0.2".parse().expect("ip"),
            dst_port: 5060,
            capture_id: 7,
            node: Some("7".into()),
            correlation_id: Some("aleg-1".into()),
            sid: "c1@h".into(),
            profile: Profile::Call,
            sip: Some(sip),
            payload_json: None,
            raw: INVITE.to_vec(),
        }
    }

    fn round_trip(r: &Record) -> (Value, Record) {
        let table = &TABLES[0];
        let row = encode(r, table, &DEFAULT_SIP_HEADER.map(String::from));
        let ph: Value = serde_json::from_str(&row.protocol_header).expect("json");
        let dh: Value = serde_json::from_str(&row.data_header).expect("json");
        let back = decode(1, table, row.sid, row.create_date, &ph, &dh, row.raw).record;
        (ph, back)
    }

    #[test]
    fn sip_fields_are_derived_from_raw_unless_they_differ() {
        // As the collector indexes it, with an A-leg id and a custom header from its config.
        let mut fields = SipFields::from_message(&sip::index(INVITE), true);
        assert!(!fields.sdp_media.is_empty());
        fields.aleg_id = Some("aleg-1".into());
        fields.custom_headers = vec![("X-Site".into(), "ams".into())];
        let r = sip_record(fields.clone());
        let (ph, back) = round_trip(&r);
        assert!(
            ph["hepstack"].get("sip").is_none(),
            "derived, not stored: {ph}"
        );
        assert_eq!(back, r);

        // A censored body keeps no media addresses: not derivable, so stored.
        fields.sdp_media.clear();
        let r = sip_record(fields);
        let (ph, back) = round_trip(&r);
        assert!(ph["hepstack"]["sip"].is_object(), "{ph}");
        assert!(ph["hepstack"].get("ch").is_none(), "{ph}");
        assert_eq!(back, r);

        // A SIP-table row without SIP fields stays without.
        let mut r = sip_record(SipFields::default());
        r.sip = None;
        let (_, back) = round_trip(&r);
        assert_eq!(back.sip, None);
    }

    #[test]
    fn cursors_round_trip() {
        for (t, id) in [
            (0, 0),
            (-5, 17),
            (i64::MAX, i64::MAX),
            (i64::MIN, 3),
            (-1, -1),
        ] {
            assert_eq!(parse_message_cursor(&message_cursor(t, id)), Some((t, id)));
        }
        for (t, c) in [(1, "abc@h"), (-9, ""), (5, "ünï")] {
            assert_eq!(
                parse_call_cursor(&call_cursor(t, c)),
                Some((t, c.to_string()))
            );
        }
        for bad in [
            "", "pm", "pm1", "pmx.1", "pc1.0", "pc1.zz", "pc.", "pm1.2.3",
        ] {
            assert!(parse_message_cursor(bad).is_none(), "{bad}");
            assert!(parse_call_cursor(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn text_copy_escapes() {
        let mut out = Vec::new();
        copy_text_field("a\tb\\c\nd\re", &mut out);
        assert_eq!(out, b"a\\tb\\\\c\\nd\\re");
        assert_eq!(timestamp_text(-1), "1969-12-31 23:59:59.999999+00");
    }
}
