//! Integration tests of scfm-models: forward parity against the upstream fixtures
//! (`SCFM_PARITY_DIR`, default `../shared/data/parity`) and import errors.

mod geneformer;

use std::path::PathBuf;

pub type B = burn::backend::Flex;

/// The parity root: `SCFM_PARITY_DIR` or `../shared/data/parity` beside the workspace.
pub fn parity_dir() -> PathBuf {
    std::env::var_os("SCFM_PARITY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/parity"))
}

/// Every fixture folder of one model family; fails when there is none.
pub fn model_fixtures(family: &str) -> Vec<PathBuf> {
    let dir = parity_dir().join("models").join(family);
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("parity fixtures {}: {e} (set SCFM_PARITY_DIR)", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("meta.json").is_file())
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no fixture folder in {}", dir.display());
    found
}

/// `max |got − want| ≤ 1e-5 · max(1, max |want|)`, the fixtures' tolerance.
#[track_caller]
pub fn assert_close(name: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    let (mut worst, mut at) = (0f32, 0);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let d = (g - w).abs();
        if d > worst || d.is_nan() {
            (worst, at) = (if d.is_nan() { f32::INFINITY } else { d }, i);
        }
    }
    assert!(
        worst <= 1e-5 * scale,
        "{name}: max |diff| {worst:e} at {at} (got {}, want {}) > 1e-5 × {scale}",
        got[at],
        want[at]
    );
}
