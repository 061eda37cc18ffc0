//! Integration tests of scfm-models: forward parity against the upstream fixtures
//! (`SCFM_PARITY_DIR`, default `../shared/data/parity`) and import errors.

mod cell_model;
mod geneformer;
mod scbert;
mod scgpt;
mod xtrimogene;

use std::path::PathBuf;

pub type B = burn::backend::Flex;

/// The parity root: `SCFM_PARITY_DIR` or `../shared/data/parity` beside the workspace.
pub fn parity_dir() -> PathBuf {
    std::env::var_os("SCFM_PARITY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/parity"))
}

/// Every fixture folder of one model family under the parity root; fails when there is none.
/// Parity tests run over these: other roots (`SCFM_PARITY_DIR`) bring other fixtures.
pub fn model_fixtures(family: &str) -> Vec<PathBuf> {
    fixtures_in(&parity_dir(), family)
}

/// The fixture folder `name` of `family` as the shared data folder ships it (`SCFM_DATA_DIR`,
/// default `../shared/data`), whatever `SCFM_PARITY_DIR` says: the material of tests that
/// need one particular checkpoint (import errors, renamed keys), not parity tests.
pub fn public_fixture(family: &str, name: &str) -> PathBuf {
    let data = std::env::var_os("SCFM_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let dir = data.join("parity/models").join(family).join(name);
    assert!(dir.join("meta.json").is_file(), "shared fixture {} is missing (set SCFM_DATA_DIR)", dir.display());
    dir
}

fn fixtures_in(root: &std::path::Path, family: &str) -> Vec<PathBuf> {
    let dir = root.join("models").join(family);
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("parity fixtures {}: {e} (set SCFM_PARITY_DIR)", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("meta.json").is_file())
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no fixture folder in {}", dir.display());
    found
}

/// Writes float32 tensors `(name, shape, values)` as a safetensors file (to build checkpoints
/// with renamed, missing or extra keys from a fixture's).
pub fn write_safetensors(path: &std::path::Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    scfm_models::checkpoint::write_safetensors(path, tensors).unwrap();
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

/// Every PyTorch checkpoint of the parity fixtures (HF `.bin`, scGPT `.pt`, scBERT `.pth`,
/// scFoundation `.ckpt`, whose three entries share one config dict through the pickle memo)
/// reads through the restricted reader, with every tensor in its storage.
#[test]
fn torch_checkpoint_parity_every_fixture_reads_without_executing_code() {
    let mut read = 0;
    let models = parity_dir().join("models");
    let mut families: Vec<String> = std::fs::read_dir(&models)
        .unwrap_or_else(|e| panic!("{}: {e}", models.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    families.sort();
    for family in &families {
        for dir in fixtures_in(&parity_dir(), family) {
            for f in std::fs::read_dir(&dir).unwrap() {
                let p = f.unwrap().path();
                let ext = p.extension().and_then(|e| e.to_str()).unwrap_or_default();
                if !["bin", "pt", "pth", "ckpt"].contains(&ext) {
                    continue;
                }
                let file = scfm_models::checkpoint::TensorFile::read_torch(&p).unwrap_or_else(|e| panic!("{e}"));
                let n = file.entries().count();
                assert!(n > 0, "{}: no tensors", p.display());
                for (name, e) in file.entries() {
                    let values =
                        if matches!(e.dtype, scfm_models::checkpoint::DType::F32 | scfm_models::checkpoint::DType::F64)
                        {
                            file.f32(name).map(|v| v.len())
                        } else {
                            file.i64(name).map(|v| v.len())
                        };
                    assert_eq!(values, Some(e.shape.iter().product()), "{}: {name}", p.display());
                }
                eprintln!("{}: {n} tensors", p.display());
                read += 1;
            }
        }
    }
    eprintln!("{read} PyTorch checkpoints read in {} families", families.len());
}
