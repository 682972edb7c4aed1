//! Decode every real sample message and compare with the independent Python oracle; re-encode
//! them; feed every prefix.

mod common;

use std::net::IpAddr;

use common::{all_samples, oracle, samples_in};
use hep::{decode, ChunkValue, DecodeError, HepPacket};
use serde_json::Value;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of the oracle's chunk with this type, if the row has one.
fn oracle_chunk(row: &Value, type_id: u16) -> Option<&Value> {
    let wanted = format!("{type_id:#06x}");
    row["chunks"]
        .as_array()?
        .iter()
        .rev() // the last chunk wins, as in the decoder
        .find(|c| c["type"].as_str() == Some(wanted.as_str()))
        .map(|c| &c["value"])
}

fn check_chunk_value(key: &str, value: ChunkValue<'_>, row: &Value) {
    let expected = &row["value"];
    match value {
        ChunkValue::U8(v) => assert_eq!(expected.as_u64(), Some(u64::from(v)), "{key}"),
        ChunkValue::U16(v) => assert_eq!(expected.as_u64(), Some(u64::from(v)), "{key}"),
        ChunkValue::U32(v) => assert_eq!(expected.as_u64(), Some(u64::from(v)), "{key}"),
        ChunkValue::U64(v) => assert_eq!(expected.as_u64(), Some(v), "{key}"),
        ChunkValue::Ipv4(a) => assert_eq!(expected.as_str(), Some(a.to_string().as_str()), "{key}"),
        ChunkValue::Ipv6(a) => assert_eq!(expected.as_str(), Some(a.to_string().as_str()), "{key}"),
        ChunkValue::Text(b) => {
            assert_eq!(
                expected.as_str(),
                Some(&*String::from_utf8_lossy(b)),
                "{key}"
            )
        }
        ChunkValue::Bytes(b) => {
            assert_eq!(
                expected.as_str(),
                Some(&*String::from_utf8_lossy(b)),
                "{key}"
            );
            assert_eq!(row["payload_len"].as_u64(), Some(b.len() as u64), "{key}");
        }
        ChunkValue::BadLength { .. } => assert!(expected.is_object(), "{key}: oracle {expected}"),
        ChunkValue::Raw(b) => assert_eq!(row["hex"].as_str(), Some(hex(b).as_str()), "{key}"),
    }
}

fn check_ip(key: &str, field: Option<IpAddr>, expected: Option<&Value>) {
    assert_eq!(
        field.map(|a| a.to_string()),
        expected.and_then(Value::as_str).map(str::to_string),
        "{key}"
    );
}

fn check_int<T: Into<u64>>(key: &str, what: &str, field: Option<T>, expected: Option<&Value>) {
    assert_eq!(
        field.map(Into::into),
        expected.and_then(Value::as_u64),
        "{key}: {what}"
    );
}

fn check_text(key: &str, what: &str, field: Option<&[u8]>, expected: Option<&Value>) {
    assert_eq!(
        field.map(|b| String::from_utf8_lossy(b).into_owned()),
        expected.and_then(Value::as_str).map(str::to_string),
        "{key}: {what}"
    );
}

fn check_v3(key: &str, bytes: &[u8], packet: &HepPacket<'_>, row: &Value) {
    assert_eq!(row["version"], 3, "{key}");
    assert_eq!(packet.version, 3, "{key}");
    assert_eq!(
        row["total_len"].as_u64(),
        Some(packet.raw.len() as u64),
        "{key}"
    );
    assert_eq!(
        row["datagram_len"].as_u64(),
        Some(bytes.len() as u64),
        "{key}"
    );
    assert!(row.get("error").is_none(), "{key}: oracle reports an error");
    if row.get("warning").is_some() {
        assert!(!packet.diagnostics.is_empty(), "{key}");
    } else {
        assert!(
            packet.diagnostics.is_empty(),
            "{key}: {:?}",
            packet.diagnostics
        );
    }

    let expected_chunks = row["chunks"].as_array().expect("chunks array");
    let chunks: Vec<_> = packet.chunks().collect();
    assert_eq!(chunks.len(), expected_chunks.len(), "{key}: chunk count");
    for (chunk, expected) in chunks.iter().zip(expected_chunks) {
        let at = format!("{key} chunk at {}", chunk.offset);
        assert_eq!(expected["off"].as_u64(), Some(chunk.offset as u64), "{at}");
        assert_eq!(
            expected["vendor"].as_u64(),
            Some(u64::from(chunk.vendor)),
            "{at}"
        );
        assert_eq!(
            expected["type"].as_str(),
            Some(format!("{:#06x}", chunk.type_id).as_str()),
            "{at}"
        );
        assert_eq!(expected["len"].as_u64(), Some(u64::from(chunk.len)), "{at}");
        assert_eq!(chunk.body.len() + 6, usize::from(chunk.len), "{at}");
        // 0x0013 and 0x0029 carry composite names in the oracle (their meaning swapped in rev. 36).
        if chunk.vendor == 0 && ![0x13, 0x29].contains(&chunk.type_id) {
            assert_eq!(expected["name"].as_str(), chunk.name(), "{at}");
        }
        check_chunk_value(&at, chunk.value(), expected);
        if let Some(name) = expected["proto_name"].as_str() {
            let ChunkValue::U8(proto) = chunk.value() else {
                panic!("{at}: proto_type is not a u8");
            };
            assert_eq!(hep::proto_type_name(proto), name, "{at}");
        }
    }

    // The typed fields agree with the chunks.
    let c = |t: u16| oracle_chunk(row, t);
    check_int(key, "ip_family", packet.ip_family, c(0x01));
    check_int(key, "ip_proto", packet.ip_proto, c(0x02));
    check_ip(key, packet.src_ip, c(0x03).or(c(0x05)));
    check_ip(key, packet.dst_ip, c(0x04).or(c(0x06)));
    check_int(key, "src_port", packet.src_port, c(0x07));
    check_int(key, "dst_port", packet.dst_port, c(0x08));
    check_int(key, "ts_sec", packet.ts_sec, c(0x09));
    check_int(key, "ts_usec", packet.ts_usec, c(0x0a));
    check_int(key, "proto_type", packet.proto_type, c(0x0b));
    check_int(key, "capture_id", packet.capture_id, c(0x0c));
    check_text(key, "auth_key", packet.auth_key, c(0x0e));
    check_text(key, "payload", packet.payload, c(0x0f));
    check_text(key, "correlation_id", packet.correlation_id, c(0x11));
    check_text(key, "node_name", packet.node_name, c(0x13));
}

fn check_v2(key: &str, packet: &HepPacket<'_>, row: &Value) {
    assert_eq!(
        row["version"].as_u64(),
        Some(u64::from(packet.version)),
        "{key}"
    );
    check_int(key, "family", packet.ip_family, row.get("family"));
    check_int(key, "ip_proto", packet.ip_proto, row.get("ip_proto"));
    check_int(key, "src_port", packet.src_port, row.get("src_port"));
    check_int(key, "dst_port", packet.dst_port, row.get("dst_port"));
    check_ip(key, packet.src_ip, row.get("src_ip"));
    check_ip(key, packet.dst_ip, row.get("dst_ip"));
    check_int(key, "ts_sec_le", packet.ts_sec, row.get("ts_sec_le"));
    check_int(key, "ts_usec_le", packet.ts_usec, row.get("ts_usec_le"));
    check_int(
        key,
        "capture_id_le",
        packet.capture_id,
        row.get("capture_id_le"),
    );
    check_text(key, "payload", packet.payload, row.get("payload"));
    let payload_len = packet.payload.map(|p| p.len() as u64);
    assert_eq!(payload_len, row["payload_len"].as_u64(), "{key}");
    assert!(packet.diagnostics.is_empty(), "{key}");
    assert_eq!(packet.chunks().count(), 0, "{key}");
}

#[test]
fn every_sample_matches_the_oracle() {
    let oracle = oracle();
    let samples = all_samples();
    // 305 + 43 + 6 + 46 + 1 messages, and the oracle decoded each exactly once.
    assert_eq!(samples.len(), 401);
    assert_eq!(oracle.len(), samples.len());
    let mut versions = [0usize; 4];
    for sample in &samples {
        let row = oracle
            .get(&sample.key)
            .unwrap_or_else(|| panic!("{}: no oracle row", sample.key));
        let packet = decode(&sample.bytes).unwrap_or_else(|e| panic!("{}: {e}", sample.key));
        versions[usize::from(packet.version)] += 1;
        if packet.version == 3 {
            check_v3(&sample.key, &sample.bytes, &packet, row);
        } else {
            check_v2(&sample.key, &packet, row);
        }
    }
    assert_eq!(versions, [0, 0, 43, 358]);
}

#[test]
fn kamailio_hep3_fields() {
    let samples = samples_in("kamailio-hep3-udp/datagrams");
    let first = decode(&samples[0].bytes).unwrap();
    assert_eq!(first.capture_id, Some(2001));
    assert_eq!(first.auth_key, Some(&b"myHep"[..]));
    assert_eq!(hep::proto_type_name(first.proto_type.unwrap()), "SIP");
    assert!(first.payload.unwrap().starts_with(b"REGISTER sip:"));
    let logs = samples
        .iter()
        .filter(|s| decode(&s.bytes).unwrap().proto_type == Some(100))
        .count();
    assert_eq!(logs, 23, "hlog() messages (type 100)");
}

#[test]
fn rtpengine_correlation_id() {
    for sample in samples_in("rtpengine-hep3-rtcp/datagrams") {
        let p = decode(&sample.bytes).unwrap();
        assert_eq!(p.proto_type, Some(5), "{}", sample.key);
        assert_eq!(p.capture_id, Some(2003), "{}", sample.key);
        assert!(p
            .correlation_id
            .is_some_and(|c| c.starts_with(b"rtpe-call-")));
        assert!(p.payload.unwrap().starts_with(b"{"));
    }
}

#[test]
fn samples_survive_encode_and_decode() {
    let mut byte_identical = 0;
    for sample in all_samples() {
        let key = &sample.key;
        let packet = decode(&sample.bytes).unwrap();
        let message = packet.to_message();
        let wire = message
            .encode_to_vec()
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        let again = decode(&wire).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(again.version, 3, "{key}");
        assert!(again.diagnostics.is_empty(), "{key}");
        assert_eq!(again.to_message(), message, "{key}");
        assert_eq!(again.payload, packet.payload, "{key}");
        assert_eq!(again.timestamp_micros(), packet.timestamp_micros(), "{key}");
        if packet.version == 3 {
            // Where the producer used the canonical order, the encoding is the original byte
            // for byte: the encoder writes what Kamailio writes.
            let order = |p: &HepPacket<'_>| -> Vec<(u16, u16)> {
                p.chunks().map(|c| (c.vendor, c.type_id)).collect()
            };
            if order(&packet) == order(&again) {
                assert_eq!(wire, sample.bytes, "{key}");
                byte_identical += 1;
            }
        }
    }
    // Kamailio's siptrace messages (282 UDP + 43 TCP) and the spec example.
    assert_eq!(byte_identical, 326);
}

#[test]
fn every_prefix_errors_or_decodes_partially() {
    for sample in all_samples() {
        let full = decode(&sample.bytes).unwrap();
        for n in 0..sample.bytes.len() {
            let prefix = &sample.bytes[..n];
            match decode(prefix) {
                Ok(p) => {
                    // Only a HEPv1/v2 prefix past the fixed header decodes: the payload is cut.
                    assert!(full.version < 3, "{} prefix {n} decoded", sample.key);
                    assert_eq!(p.src_port, full.src_port);
                    assert_eq!(
                        p.payload.map(<[u8]>::len),
                        full.payload.map(|b| b.len() - (sample.bytes.len() - n))
                    );
                }
                Err(DecodeError::TooShort { .. } | DecodeError::BadTotalLength { .. }) => {}
                // A HEPv1/v2 prefix cut before its payload shows the SIP start line's first
                // token and space is not taken for HEP (the only check v1/v2 allow).
                Err(DecodeError::NotHep)
                    if full.version < 3
                        && n <= sample.bytes.len() - full.payload.map_or(0, <[u8]>::len) + 33 => {}
                Err(other) => panic!("{} prefix {n}: unexpected {other}", sample.key),
            }
        }
    }
}

#[test]
fn hep3_message_with_trailing_bytes_in_a_datagram() {
    let mut bytes = samples_in("spec-vectors").remove(0).bytes;
    bytes.extend_from_slice(&[0u8; 7]);
    let p = decode(&bytes).unwrap();
    assert_eq!(p.raw.len(), 113);
    assert_eq!(
        p.diagnostics,
        vec![hep::Diagnostic::TrailingBytes { count: 7 }]
    );
    assert_eq!(p.payload, Some(&b"INVITE sip:bob"[..]));
}
