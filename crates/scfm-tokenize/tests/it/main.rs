//! scfm-tokenize integration tests (one binary).

mod geneformer;
mod masking;
mod props;
mod safetensors;
mod scbert;
mod scgpt;
mod vocab;
mod xtrimogene;

use std::path::PathBuf;

/// The shared data folder: `SCFM_DATA_DIR`, or `../shared/data` beside the repository.
pub fn data(rel: &str) -> PathBuf {
    let dir = std::env::var_os("SCFM_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let p = dir.join(rel);
    assert!(p.exists(), "data file {} is missing (set SCFM_DATA_DIR)", p.display());
    p
}
