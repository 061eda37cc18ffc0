use scfm_core::CellSource;
use scfm_io::H5adSource;
use scfm_io::writeback::{Annotation, annotate_copy};

use crate::data;

#[test]
fn embeddings_and_labels_are_written_to_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let src = data("h5ad/pbmc_sorted_train_490.h5ad");
    let dst = dir.path().join("annotated.h5ad");
    let n = H5adSource::open(&src).unwrap().n_cells();
    let emb: Vec<f32> = (0..n * 3).map(|i| i as f32 * 0.5).collect();
    let labels: Vec<String> = (0..n).map(|i| ["NK", "B", "Monocyte"][i % 3].to_owned()).collect();
    annotate_copy(
        &src,
        &dst,
        &[
            Annotation::Obsm { key: "X_scfm_test", values: &emb, dim: 3 },
            Annotation::ObsLabels { column: "scfm_prediction", labels: &labels },
        ],
    )
    .unwrap();
    // `SCFM_KEEP_WRITEBACK=path` keeps the file for scripts/check_writeback.py.
    if let Some(keep) = std::env::var_os("SCFM_KEEP_WRITEBACK") {
        std::fs::copy(&dst, keep).unwrap();
    }
    // Our own reader sees the new column as a categorical with the right labels…
    let s = H5adSource::open(&dst).unwrap();
    assert!(s.obs_column_names().contains(&"scfm_prediction".to_owned()));
    let chunk = s.read_rows(0..n).unwrap();
    let col = chunk.obs().column_by_name("scfm_prediction").unwrap();
    use arrow_array::cast::AsArray;
    let d = col.as_dictionary::<arrow_array::types::Int32Type>();
    let vals = d.values().as_string::<i32>();
    for (i, k) in d.keys().iter().enumerate() {
        assert_eq!(vals.value(k.unwrap() as usize), labels[i]);
    }
    // …and the embedding is gzip-compressed float32, n × 3, with anndata's encoding attributes.
    let f = hdf5::File::open(&dst).unwrap();
    let ds = f.dataset("obsm/X_scfm_test").unwrap();
    assert_eq!(ds.shape(), vec![n, 3]);
    assert_eq!(ds.read_raw::<f32>().unwrap(), emb);
    assert!(ds.filters().iter().any(|x| matches!(x, hdf5::filters::Filter::Deflate(_))));
    let enc: VarLenUnicodeAttr = ds.attr("encoding-type").unwrap().read_scalar().unwrap();
    assert_eq!(enc.as_str(), "array");
    // Wrong sizes are refused and leave no output behind.
    let bad = dir.path().join("bad.h5ad");
    let err = annotate_copy(&src, &bad, &[Annotation::Obsm { key: "X", values: &emb[..10], dim: 3 }]).unwrap_err();
    assert!(err.to_string().contains("obsm/X"), "{err}");
    assert!(!bad.exists());
}

type VarLenUnicodeAttr = hdf5::types::VarLenUnicode;
