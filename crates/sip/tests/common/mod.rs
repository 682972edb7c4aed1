//! Shared helpers for the integration tests: locating the real samples.

#![allow(dead_code)] // each test binary uses a different subset of these helpers

pub mod generate;

use std::path::PathBuf;

/// `/work/shared/samples` (or `$HEPSTACK_SAMPLES`). Panics with a clear message when missing:
/// these tests must never pass silently without their data.
pub fn samples_dir() -> PathBuf {
    let dir = std::env::var_os("HEPSTACK_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/samples"
            ))
        });
    assert!(
        dir.is_dir(),
        "sample directory {} not found: set HEPSTACK_SAMPLES to the shared/samples directory",
        dir.display()
    );
    dir
}

/// Every SIP payload (chunk 0x000f of messages whose proto_type is 1) in `<dir>/decoded.jsonl`.
pub fn sip_payloads(dir: &str) -> Vec<Vec<u8>> {
    let path = samples_dir().join(dir).join("decoded.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let record: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1));
        let chunks = record["chunks"].as_array().expect("chunks array");
        let is_sip = chunks
            .iter()
            .any(|c| c["name"] == "proto_type" && c["value"] == 1);
        if !is_sip {
            continue;
        }
        let payload = chunks
            .iter()
            .find(|c| c["type"] == "0x000f")
            .and_then(|c| c["value"].as_str())
            .expect("SIP record with a payload chunk");
        out.push(payload.as_bytes().to_vec());
    }
    assert!(!out.is_empty(), "no SIP payloads in {}", path.display());
    out
}

/// The three payloads copied into `tests/data/` for the benchmark and the unit tests.
pub fn data_file(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/").to_owned() + name;
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}
