//! Helpers shared by the integration tests: locating the real samples and reading the oracle's
//! decoded.jsonl files.

#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

use std::path::PathBuf;

use serde_json::Value;

/// The shared samples directory: `$HEPSTACK_SAMPLES`, else `../../../shared/samples` from the
/// crate. Panics with a clear message when it is missing, so the tests fail instead of skipping.
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
        "sample directory {} is missing: set HEPSTACK_SAMPLES to the shared/samples directory",
        dir.display()
    );
    dir
}

/// Reads a file under the samples directory, failing the test with its path if it cannot.
pub fn read_sample(relative: &str) -> Vec<u8> {
    let path = samples_dir().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every (proto_type, payload text) pair in a decoded.jsonl oracle file.
pub fn oracle_payloads(relative: &str) -> Vec<(u64, String)> {
    let text = String::from_utf8(read_sample(relative)).expect("decoded.jsonl is UTF-8");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("oracle line is JSON");
            let chunks = v["chunks"].as_array().expect("chunks array");
            let field = |name: &str| {
                chunks
                    .iter()
                    .find(|c| c["name"] == name)
                    .map(|c| c["value"].clone())
                    .unwrap_or_else(|| panic!("no {name} chunk in {line}"))
            };
            let proto = field("proto_type").as_u64().expect("numeric proto_type");
            let payload = field("payload")
                .as_str()
                .expect("payload decoded as text")
                .to_owned();
            (proto, payload)
        })
        .collect()
}
