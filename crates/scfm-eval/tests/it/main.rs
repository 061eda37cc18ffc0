//! scfm-eval on real data: the logistic-regression baseline and the metrics against
//! scikit-learn's own outputs on the sorted-PBMC subset (`fixtures/eval/`, written by
//! `scripts/reference/eval_sklearn.py`).

mod sklearn;

use std::path::PathBuf;

/// A file of the shared data folder (`SCFM_DATA_DIR`, default `../shared/data`); missing fails.
pub fn data(rel: &str) -> PathBuf {
    let dir = std::env::var_os("SCFM_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let p = dir.join(rel);
    assert!(p.exists(), "data file {} is missing (set SCFM_DATA_DIR)", p.display());
    p
}
