//! Shared by the agent's integration tests.

use std::path::{Path, PathBuf};

/// The shared sample material (`HEPSTACK_SAMPLES`, else `../shared/samples` beside the
/// repository).
pub fn samples() -> PathBuf {
    std::env::var_os("HEPSTACK_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/samples"))
}
