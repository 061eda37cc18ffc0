//! scfm-io integration tests (one binary): every real file in `../shared/data` is read and
//! compared with what Python anndata / scipy read from it (`fixtures/io/expectations.json`,
//! produced by `scripts/reference/h5ad_expectations.py`).

mod bad_input;
mod corpus;
mod h5ad;
mod tenx;
mod writeback;

use std::path::PathBuf;

/// The shared data folder: `SCFM_DATA_DIR`, or `../shared/data` beside the repository.
/// A missing folder fails the test that needs it.
pub fn data_dir() -> PathBuf {
    let dir = std::env::var_os("SCFM_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    assert!(dir.is_dir(), "shared data folder {} is missing (set SCFM_DATA_DIR)", dir.display());
    dir
}

pub fn data(rel: &str) -> PathBuf {
    let p = data_dir().join(rel);
    assert!(p.exists(), "data file {} is missing", p.display());
    p
}

pub fn expectations() -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/io/expectations.json");
    serde_json::from_slice(&std::fs::read(&p).expect("fixtures/io/expectations.json")).expect("valid JSON")
}

/// Facts computed from all cells of a source, comparable with the Python side.
pub struct Facts {
    pub n_cells: usize,
    pub n_genes: usize,
    pub nnz: usize,
    pub sum: f64,
    pub row_sums: Vec<f64>,
    pub first_cells: scfm_core::CellChunk,
}

pub fn facts<S: scfm_core::CellSource>(s: &S, chunk: usize) -> Facts
where
    S::Error: std::fmt::Debug,
{
    let mut f = Facts {
        n_cells: 0,
        n_genes: s.genes().len(),
        nnz: 0,
        sum: 0.0,
        row_sums: vec![],
        first_cells: s.read_rows(0..5).unwrap(),
    };
    for c in s.chunks(chunk) {
        let c = c.unwrap();
        f.n_cells += c.n_cells();
        f.nnz += c.nnz();
        for cell in c.cells() {
            f.sum += cell.total();
            if f.row_sums.len() < 5 {
                f.row_sums.push(cell.total());
            }
        }
    }
    f
}

/// Compares facts with one `matrix_facts` entry of the expectations.
pub fn check_facts(label: &str, f: &Facts, e: &serde_json::Value) {
    let shape = e["shape"].as_array().unwrap();
    assert_eq!(f.n_cells as u64, shape[0].as_u64().unwrap(), "{label}: cells");
    assert_eq!(f.n_genes as u64, shape[1].as_u64().unwrap(), "{label}: genes");
    assert_eq!(f.nnz as u64, e["nnz"].as_u64().unwrap(), "{label}: non-zeros");
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b.abs().max(1.0);
    let sum = e["sum"].as_f64().unwrap();
    assert!(close(f.sum, sum), "{label}: sum {} vs {sum}", f.sum);
    for (i, r) in e["row_sums"].as_array().unwrap().iter().enumerate() {
        assert!(close(f.row_sums[i], r.as_f64().unwrap()), "{label}: cell {i} total {} vs {r}", f.row_sums[i]);
    }
    for s in e["samples"].as_array().unwrap() {
        let (cell, gene, v) = (s[0].as_u64().unwrap() as usize, s[1].as_u64().unwrap() as u32, s[2].as_f64().unwrap());
        let view = f.first_cells.cell(cell);
        let k =
            view.indices.binary_search(&gene).unwrap_or_else(|_| panic!("{label}: cell {cell} gene {gene} missing"));
        assert_eq!(view.values[k], v as f32, "{label}: value at cell {cell}, gene {gene}");
    }
}
