//! Integration tests of the embedding pipeline (`scfm::embed`, behind `scfm embed`) on real
//! data. They live here because the command line is the crate that builds the facade with its
//! `models` feature; the workspace root's tests and its `convert` example stay free of burn.

mod embed;

use std::path::PathBuf;

pub fn data(rel: &str) -> PathBuf {
    let dir = std::env::var_os("SCFM_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let p = dir.join(rel);
    assert!(p.exists(), "data file {} is missing (set SCFM_DATA_DIR)", p.display());
    p
}
