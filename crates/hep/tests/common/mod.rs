//! Shared helpers of the integration tests: locating and loading the real sample material.

#![allow(dead_code)] // each test binary uses a different subset of these helpers

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The shared samples directory: `HEPSTACK_SAMPLES`, else `../../../shared/samples` from the
/// crate. A missing directory fails the test with instructions rather than skipping it.
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
        "HEP sample directory {} not found: set HEPSTACK_SAMPLES to the shared samples directory",
        dir.display()
    );
    dir
}

/// Directories (relative to the samples root) holding one HEP message per `.hep` file.
pub const MESSAGE_DIRS: [&str; 5] = [
    "kamailio-hep3-udp/datagrams",
    "kamailio-hep2-udp/datagrams",
    "rtpengine-hep3-rtcp/datagrams",
    "kamailio-hep3-tcp/frames",
    "spec-vectors",
];

/// A sample message: its path relative to the samples root (the oracle's `src.file` key) and
/// its bytes.
pub struct Sample {
    pub key: String,
    pub bytes: Vec<u8>,
}

fn hep_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "hep"))
        .collect();
    files.sort();
    files
}

/// Every `.hep` message of one sample directory, sorted by name.
pub fn samples_in(rel_dir: &str) -> Vec<Sample> {
    let root = samples_dir();
    let files = hep_files(&root.join(rel_dir));
    assert!(!files.is_empty(), "no .hep files in {rel_dir}");
    files
        .into_iter()
        .map(|path| {
            let name = path.file_name().expect("file name").to_string_lossy();
            Sample {
                key: format!("{rel_dir}/{name}"),
                bytes: fs::read(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display())),
            }
        })
        .collect()
}

/// Every sample message of every directory.
pub fn all_samples() -> Vec<Sample> {
    MESSAGE_DIRS.iter().flat_map(|d| samples_in(d)).collect()
}

/// The Python oracle's decode of every sample, keyed by `src.file`.
pub fn oracle() -> HashMap<String, serde_json::Value> {
    let root = samples_dir();
    let mut rows = HashMap::new();
    let mut add = |text: &str| {
        let row: serde_json::Value = serde_json::from_str(text).expect("oracle JSON");
        let key = row["src"]["file"]
            .as_str()
            .expect("oracle row has src.file")
            .to_string();
        rows.insert(key, row);
    };
    for dir in [
        "kamailio-hep3-udp",
        "kamailio-hep2-udp",
        "rtpengine-hep3-rtcp",
        "kamailio-hep3-tcp",
    ] {
        let path = root.join(dir).join("decoded.jsonl");
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .for_each(&mut add);
    }
    for entry in fs::read_dir(root.join("spec-vectors")).expect("spec-vectors directory") {
        let path = entry.expect("directory entry").path();
        if path.to_string_lossy().ends_with(".decoded.json") {
            add(&fs::read_to_string(&path).expect("spec vector decode"));
        }
    }
    rows
}
