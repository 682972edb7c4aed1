//! One decoded HEP message → one JSON object.
//!
//! Shape (fields absent when the message does not carry them):
//! ```text
//! { "src": {...}, "version": 3, "len": 459, "total_len": 459,
//!   "ip_family": 2, "ip_proto": 17, "src_ip": "…", "dst_ip": "…", "src_port": 5060, "dst_port": 5060,
//!   "ts_sec": …, "ts_usec": …, "time": "2026-11-23T10:31:37.253020Z",
//!   "proto_type": 1, "proto_name": "SIP", "capture_id": 2001, "capture_id_normalized": …,
//!   "node_name": "…", "correlation_id": "…", "auth_key": "<redacted>",
//!   "chunks": [ {"off": 6, "vendor": 0, "type": "0x0001", "len": 7, "name": "ip_family", "value": 2}, … ],
//!   "payload": { "kind": "sip", … },
//!   "diagnostics": ["…"] }
//! ```
//! Chunk values: integers as numbers, addresses as strings, text and payloads as UTF-8 strings
//! (`"hex"` instead when the bytes are not valid UTF-8), vendor and unknown chunks as `"hex"`.

use serde_json::{json, Map, Value};

use hep::{Chunk, ChunkValue, HepPacket};

/// What to print.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RenderOptions {
    /// Print the auth key instead of redacting it.
    pub show_auth_key: bool,
    /// Parse and print the payload fields.
    pub payload: bool,
    /// Cap for inflating a compressed payload.
    pub max_inflate: usize,
}

const REDACTED: &str = "<redacted>";

/// Lower-case hex of a byte slice.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Text as a JSON string when it is UTF-8, else as `{"hex": …}`.
fn text(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => json!({ "hex": hex(bytes) }),
    }
}

/// RFC 3339 UTC time with microseconds from a Unix time.
pub(crate) fn rfc3339_micros(sec: u32, usec: u32) -> String {
    let days = i64::from(sec / 86_400);
    let rem = sec % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), valid for every u32 second count.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        usec.min(999_999)
    )
}

fn chunk_json(chunk: &Chunk<'_>, opts: &RenderOptions) -> Value {
    let mut c = Map::new();
    c.insert("off".into(), json!(chunk.offset));
    c.insert("vendor".into(), json!(chunk.vendor));
    c.insert("type".into(), json!(format!("{:#06x}", chunk.type_id)));
    c.insert("len".into(), json!(chunk.len));
    if let Some(name) = chunk.name() {
        c.insert("name".into(), json!(name));
    }
    let is_auth_key = chunk.vendor == 0 && chunk.type_id == hep::chunk_type::AUTH_KEY;
    match chunk.value() {
        ChunkValue::U8(v) => {
            c.insert("value".into(), json!(v));
        }
        ChunkValue::U16(v) => {
            c.insert("value".into(), json!(v));
        }
        ChunkValue::U32(v) => {
            c.insert("value".into(), json!(v));
        }
        ChunkValue::U64(v) => {
            c.insert("value".into(), json!(v));
        }
        ChunkValue::Ipv4(a) => {
            c.insert("value".into(), json!(a.to_string()));
        }
        ChunkValue::Ipv6(a) => {
            c.insert("value".into(), json!(a.to_string()));
        }
        ChunkValue::Text(_) if is_auth_key && !opts.show_auth_key => {
            c.insert("value".into(), json!(REDACTED));
        }
        ChunkValue::Text(b) | ChunkValue::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => {
                c.insert("value".into(), json!(s));
            }
            Err(_) => {
                c.insert("hex".into(), json!(hex(b)));
            }
        },
        ChunkValue::BadLength { expected, got } => {
            c.insert("hex".into(), json!(hex(chunk.body)));
            c.insert(
                "error".into(),
                json!(format!("body is {got} bytes, expected {expected}")),
            );
        }
        ChunkValue::Raw(b) => {
            c.insert("hex".into(), json!(hex(b)));
        }
    }
    if chunk.vendor == 0 && chunk.type_id == hep::chunk_type::PROTO_TYPE {
        if let ChunkValue::U8(v) = chunk.value() {
            c.insert("proto_name".into(), json!(hep::proto_type_name(v)));
        }
    }
    Value::Object(c)
}

/// A decoded message as JSON.
pub(crate) fn packet(p: &HepPacket<'_>, src: Value, opts: &RenderOptions) -> Value {
    let mut m = Map::new();
    m.insert("src".into(), src);
    m.insert("version".into(), json!(p.version));
    m.insert("len".into(), json!(p.raw.len()));
    if p.version == 3 {
        if let Some(&[hi, lo]) = p.raw.get(4..6) {
            m.insert("total_len".into(), json!(u16::from_be_bytes([hi, lo])));
        }
    }
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    put("ip_family", p.ip_family.map(|v| json!(v)));
    put("ip_proto", p.ip_proto.map(|v| json!(v)));
    put("src_ip", p.src_ip.map(|v| json!(v.to_string())));
    put("dst_ip", p.dst_ip.map(|v| json!(v.to_string())));
    put("src_port", p.src_port.map(|v| json!(v)));
    put("dst_port", p.dst_port.map(|v| json!(v)));
    put("ts_sec", p.ts_sec.map(|v| json!(v)));
    put("ts_usec", p.ts_usec.map(|v| json!(v)));
    put(
        "time",
        p.ts_sec
            .map(|s| json!(rfc3339_micros(s, p.ts_usec.unwrap_or(0)))),
    );
    put("proto_type", p.proto_type.map(|v| json!(v)));
    put(
        "proto_name",
        p.proto_type.map(|v| json!(hep::proto_type_name(v))),
    );
    put("capture_id", p.capture_id.map(|v| json!(v)));
    if p.capture_id_normalized() != p.capture_id {
        put(
            "capture_id_normalized",
            p.capture_id_normalized().map(|v| json!(v)),
        );
    }
    put("keepalive_timer", p.keepalive_timer.map(|v| json!(v)));
    put("node_name", p.node_name.map(text));
    put("correlation_id", p.correlation_id.map(text));
    put("vlan_id", p.vlan_id.map(|v| json!(v)));
    put("src_mac", p.src_mac.map(|v| json!(mac(v))));
    put("dst_mac", p.dst_mac.map(|v| json!(mac(v))));
    put("eth_type", p.eth_type.map(|v| json!(v)));
    put("tcp_flags", p.tcp_flags.map(|v| json!(v)));
    put("ip_tos", p.ip_tos.map(|v| json!(v)));
    put("mos", p.mos.map(|v| json!(v)));
    put("r_factor", p.r_factor.map(|v| json!(v)));
    put("geo_location", p.geo_location.map(text));
    put("jitter", p.jitter.map(|v| json!(v)));
    put("transaction_type", p.transaction_type.map(text));
    put("payload_json_keys", p.payload_json_keys.map(text));
    put("tags_values", p.tags_values.map(text));
    put("tag_type", p.tag_type.map(|v| json!(v)));
    put("event_type", p.event_type.map(|v| json!(v)));
    put("group_id", p.group_id.map(text));
    put(
        "auth_key",
        p.auth_key.map(|k| {
            if opts.show_auth_key {
                text(k)
            } else {
                json!(REDACTED)
            }
        }),
    );
    if p.version == 3 {
        let chunks: Vec<Value> = p.chunks().map(|c| chunk_json(&c, opts)).collect();
        m.insert("chunks".into(), Value::Array(chunks));
    } else if let Some(payload) = p.payload {
        m.insert("payload_len".into(), json!(payload.len()));
        m.insert("payload_text".into(), text(payload));
    }
    if opts.payload {
        if let Some(v) = super::payload_fields(p, opts.max_inflate) {
            m.insert("payload".into(), v);
        }
    }
    if !p.diagnostics.is_empty() {
        let d: Vec<Value> = p.diagnostics.iter().map(|d| json!(d.to_string())).collect();
        m.insert("diagnostics".into(), Value::Array(d));
    }
    Value::Object(m)
}

/// A message that failed to decode.
pub(crate) fn error(src: Value, bytes: &[u8], err: &hep::DecodeError) -> Value {
    let head = bytes.get(..32).unwrap_or(bytes);
    json!({ "src": src, "error": err.to_string(), "len": bytes.len(), "head_hex": hex(head) })
}

/// A MAC address from the u64 chunk form (the low 48 bits).
fn mac(v: u64) -> String {
    let b = v.to_be_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[2], b[3], b[4], b[5], b[6], b[7]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_like_rfc3339() {
        assert_eq!(rfc3339_micros(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339_micros(1_313_440_459, 120_000),
            "2011-08-15T20:34:19.120000Z"
        );
        assert_eq!(
            rfc3339_micros(951_782_400, 1),
            "2000-02-29T00:00:00.000001Z"
        );
        assert_eq!(
            rfc3339_micros(u32::MAX, 999_999),
            "2106-02-07T06:28:15.999999Z"
        );
    }

    #[test]
    fn hex_and_mac() {
        assert_eq!(hex(&[0x00, 0xab, 0x10]), "00ab10");
        assert_eq!(mac(0x0000_0011_2233_4455), "00:11:22:33:44:55");
    }
}
