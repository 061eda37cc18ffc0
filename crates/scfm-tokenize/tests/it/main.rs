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

/// The tokenizer parity fixtures (`.json` paths, sorted) whose names start with `prefix`, in
/// `$SCFM_PARITY_DIR/tokenizers` (default `parity/` in the shared data), with that folder.
/// New fixtures in the same layout are picked up without code changes; finding none fails.
pub fn tokenizer_fixtures(prefix: &str) -> (PathBuf, Vec<PathBuf>) {
    let root = std::env::var_os("SCFM_PARITY_DIR").map(PathBuf::from).unwrap_or_else(|| data("parity"));
    assert!(root.is_dir(), "parity folder {} is missing", root.display());
    let dir = root.join("tokenizers");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(".json")
        })
        .collect();
    fixtures.sort();
    assert!(!fixtures.is_empty(), "no {prefix}* fixture in {}", dir.display());
    (dir, fixtures)
}
