//! `hepstack decode` against the oracle decodes shipped with the samples (`decoded.jsonl`,
//! written by an independent Python decoder): every chunk of every message, in every input
//! form the samples come in (folder of datagrams, `.hepstream`, pcap of the HEP traffic, raw
//! TCP byte stream).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn samples() -> PathBuf {
    std::env::var_os("HEPSTACK_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/samples"))
}

/// Runs `hepstack decode --show-auth-key INPUT` and returns the JSON lines and the exit code.
fn decode(input: &Path) -> (Vec<Value>, i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hepstack"))
        .arg("decode")
        .arg("--show-auth-key")
        .arg(input)
        .output()
        .expect("run hepstack");
    let lines = String::from_utf8(out.stdout)
        .expect("utf-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    (
        lines,
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn oracle(dir: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(samples().join(dir).join("decoded.jsonl")).expect("oracle");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("oracle JSON"))
        .collect()
}

/// The comparable part of a v3 chunk: offset, vendor, type, length and value.
fn chunk_key(c: &Value) -> (Value, Value, Value, Value, Value) {
    (
        c["off"].clone(),
        c["vendor"].clone(),
        c["type"].clone(),
        c["len"].clone(),
        c["value"].clone(),
    )
}

fn assert_v3_matches(what: &str, ours: &[Value], oracle: &[Value]) {
    assert_eq!(ours.len(), oracle.len(), "{what}: message count");
    for (i, (u, o)) in ours.iter().zip(oracle).enumerate() {
        assert_eq!(u["version"], 3, "{what} #{i}: version");
        assert_eq!(u["total_len"], o["total_len"], "{what} #{i}: total_len");
        let uc: Vec<_> = u["chunks"]
            .as_array()
            .expect("chunks")
            .iter()
            .map(chunk_key)
            .collect();
        let oc: Vec<_> = o["chunks"]
            .as_array()
            .expect("chunks")
            .iter()
            .map(chunk_key)
            .collect();
        assert_eq!(uc, oc, "{what} #{i}: chunks");
    }
}

fn assert_v2_matches(what: &str, ours: &[Value], oracle: &[Value]) {
    assert_eq!(ours.len(), oracle.len(), "{what}: message count");
    let pairs = [
        ("src_ip", "src_ip"),
        ("dst_ip", "dst_ip"),
        ("src_port", "src_port"),
        ("dst_port", "dst_port"),
        ("ts_sec_le", "ts_sec"),
        ("ts_usec_le", "ts_usec"),
        ("capture_id_le", "capture_id"),
        ("payload", "payload_text"),
        ("version", "version"),
    ];
    for (i, (u, o)) in ours.iter().zip(oracle).enumerate() {
        for (ok, uk) in pairs {
            assert_eq!(u[uk], o[ok], "{what} #{i}: {ok}");
        }
    }
}

#[test]
fn hep3_udp_every_input_form_matches_the_oracle() {
    let dir = samples().join("kamailio-hep3-udp");
    let expected = oracle("kamailio-hep3-udp");
    assert_eq!(expected.len(), 305);
    for input in ["datagrams", "datagrams.hepstream", "hep-udp9060.pcap"] {
        let (ours, code, err) = decode(&dir.join(input));
        assert_eq!(code, 0, "{input}: {err}");
        assert_v3_matches(input, &ours, &expected);
    }
}

#[test]
fn hep3_tcp_every_input_form_matches_the_oracle() {
    let dir = samples().join("kamailio-hep3-tcp");
    let expected = oracle("kamailio-hep3-tcp");
    assert_eq!(expected.len(), 46);
    for input in [
        "frames",
        "frames.hepstream",
        "tcp-stream-conn1.raw",
        "hep-tcp9060.pcap",
    ] {
        let (ours, code, err) = decode(&dir.join(input));
        assert_eq!(code, 0, "{input}: {err}");
        assert_v3_matches(input, &ours, &expected);
    }
}

#[test]
fn rtpengine_rtcp_matches_the_oracle_and_parses_the_reports() {
    let dir = samples().join("rtpengine-hep3-rtcp");
    let expected = oracle("rtpengine-hep3-rtcp");
    for input in ["datagrams", "datagrams.hepstream", "hep-udp9060.pcap"] {
        let (ours, code, err) = decode(&dir.join(input));
        assert_eq!(code, 0, "{input}: {err}");
        assert_v3_matches(input, &ours, &expected);
        for (i, m) in ours.iter().enumerate() {
            assert_eq!(
                m["payload"]["kind"], "rtcp",
                "{input} #{i}: RTCP JSON understood"
            );
        }
    }
}

#[test]
fn hep2_matches_the_oracle_little_endian_fields() {
    let dir = samples().join("kamailio-hep2-udp");
    let expected = oracle("kamailio-hep2-udp");
    assert_eq!(expected.len(), 43);
    for input in ["datagrams", "datagrams.hepstream", "hep-udp9060.pcap"] {
        let (ours, code, err) = decode(&dir.join(input));
        assert_eq!(code, 0, "{input}: {err}");
        assert_v2_matches(input, &ours, &expected);
    }
}

#[test]
fn spec_vector_matches() {
    let dir = samples().join("spec-vectors");
    let text = std::fs::read_to_string(dir.join("hep3-spec-rev37-example-113B.decoded.json"))
        .expect("oracle");
    let expected: Value = serde_json::from_str(&text).expect("json");
    let (ours, code, err) = decode(&dir.join("hep3-spec-rev37-example-113B.hep"));
    assert_eq!(code, 0, "{err}");
    assert_v3_matches("spec vector", &ours, &[expected]);
}

#[test]
fn sip_fields_are_indexed_in_the_output() {
    let (ours, _, _) = decode(&samples().join("kamailio-hep3-udp/datagrams"));
    let invites = ours
        .iter()
        .filter(|m| m["payload"]["method"] == "INVITE")
        .count();
    assert!(invites > 0, "INVITEs indexed");
    let sip: Vec<_> = ours.iter().filter(|m| m["proto_type"] == 1).collect();
    assert!(sip.len() > 250, "the capture is mostly SIP");
    for m in sip {
        assert_eq!(m["payload"]["kind"], "sip");
        assert!(
            m["payload"]["call_id"].is_string(),
            "every SIP message has a Call-ID: {m}"
        );
    }
}

#[test]
fn auth_key_is_redacted_by_default() {
    // Kamailio's siptrace in the samples sends the capture password `myHep`.
    let input = samples().join("kamailio-hep3-udp/datagrams/000001.hep");
    let out = Command::new(env!("CARGO_BIN_EXE_hepstack"))
        .arg("decode")
        .arg(&input)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("<redacted>"));
    let with_key = decode(&input).0;
    let key = with_key[0]["auth_key"]
        .as_str()
        .expect("key shown with --show-auth-key");
    assert!(
        !text.contains(&format!("\"{key}\"")),
        "the key never appears without the flag"
    );
}

#[test]
fn garbage_and_truncated_inputs_are_reported_not_crashed() {
    let tmp = std::env::temp_dir().join(format!("hepstack-decode-garbage-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("tmp");
    // The 3 bytes that crash heplify-server, a truncated HEP3 header, and random bytes.
    let cases: [(&str, &[u8]); 3] = [
        ("three.hep", &[0x02, 0x10, 0x02]),
        ("short.hep", b"HEP3\x01\x00\x00\x01\x00\x07"),
        (
            "noise.hep",
            &[0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x10, 0x20],
        ),
    ];
    for (name, bytes) in cases {
        let path = tmp.join(name);
        std::fs::write(&path, bytes).expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_hepstack"))
            .arg("decode")
            .arg(&path)
            .output()
            .expect("run");
        assert!(
            out.status.code().is_some(),
            "{name}: exited normally, not by a signal"
        );
        assert_ne!(out.status.code(), Some(101), "{name}: no panic");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
    std::fs::remove_dir_all(&tmp).ok();
}
