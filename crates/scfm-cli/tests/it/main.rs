//! Integration tests of the embedding and annotation pipelines (`scfm embed`, `scfm finetune`,
//! `scfm eval`) on real data.

mod embed;
mod families;
mod finetune;
mod pretrain;

use std::path::PathBuf;

pub fn data(rel: &str) -> PathBuf {
    let dir = std::env::var_os("SCFM_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let p = dir.join(rel);
    assert!(p.exists(), "data file {} is missing (set SCFM_DATA_DIR)", p.display());
    p
}
