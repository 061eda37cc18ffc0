use proptest::prelude::*;
use scfm_core::{CellChunk, CellSource, GeneTable};
use scfm_io::corpus::{CellSink, ConvertOptions, CorpusReader, CorpusWriter, CorpusWriterOptions, convert};
use scfm_io::{H5adOptions, H5adSource, IoError, MatrixSelector, ObsFilter, ObsSelection};

use crate::data;

fn all<S: CellSource>(s: &S) -> CellChunk
where
    S::Error: std::fmt::Debug,
{
    s.read_rows(0..s.n_cells()).unwrap()
}

#[test]
fn h5ad_to_corpus_round_trips_matrix_and_obs() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (rel, matrix)) in [
        ("h5ad/pbmc_sorted_train_490.h5ad", MatrixSelector::X),
        ("h5ad/encodings/anndata-0.13_pandas-3/categorical_with_nan.h5ad", MatrixSelector::X),
        ("h5ad/encodings/anndata-0.13_pandas-3/nullable_int.h5ad", MatrixSelector::X),
        ("h5ad/encodings/anndata-0.12_pandas-2/nullable_bool.h5ad", MatrixSelector::X),
        ("h5ad/cxg_heart_320_ensembl.h5ad", MatrixSelector::Raw),
    ]
    .into_iter()
    .enumerate()
    {
        let input = data(rel);
        let out = dir.path().join(format!("c{i}"));
        let opts = ConvertOptions { matrix: matrix.clone(), shard_cells: 150, chunk_cells: 64, ..Default::default() };
        let manifest = convert(std::slice::from_ref(&input), &out, &opts, &mut |_| {}).unwrap();
        let src = H5adSource::open_with(&input, &H5adOptions { matrix, ..Default::default() }).unwrap();
        assert_eq!(manifest.n_cells, src.n_cells(), "{rel}");
        assert_eq!(manifest.shards.len(), src.n_cells().div_ceil(150), "{rel}");
        assert_eq!(manifest.genes, *src.genes(), "{rel}");
        let corpus = CorpusReader::open(&out).unwrap();
        corpus.verify().unwrap();
        assert_eq!(all(&corpus), all(&src), "{rel}");
        // Reading across shard and batch boundaries gives the same cells.
        let mid = corpus.read_rows(100..260).unwrap();
        assert_eq!(mid, src.read_rows(100..260).unwrap(), "{rel}");
        let (bytes, hash) = scfm_io::corpus::file_blake3(&input).unwrap();
        assert_eq!((manifest.sources[0].bytes, &manifest.sources[0].blake3), (bytes, &hash));
    }
}

#[cfg(feature = "parquet")]
#[test]
fn parquet_shards_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let input = data("h5ad/encodings/anndata-0.13_pandas-3/categorical_with_nan.h5ad");
    let opts = ConvertOptions {
        format: scfm_io::corpus::ShardFormat::Parquet,
        shard_cells: 200,
        chunk_cells: 64,
        ..Default::default()
    };
    let manifest = convert(std::slice::from_ref(&input), dir.path(), &opts, &mut |_| {}).unwrap();
    assert!(manifest.shards.iter().all(|s| s.file.ends_with(".parquet")));
    let corpus = CorpusReader::open(dir.path()).unwrap();
    corpus.verify().unwrap();
    let src = H5adSource::open(&input).unwrap();
    assert_eq!(all(&corpus), all(&src));
    assert_eq!(corpus.read_rows(150..330).unwrap(), src.read_rows(150..330).unwrap());
}

/// `write_table`: one table (e.g. cell embeddings) as an Arrow IPC or Parquet file that reads
/// back unchanged; no temporary file is left behind.
#[cfg(feature = "parquet")]
#[test]
fn write_table_writes_parquet_and_arrow_files_that_read_back() {
    use std::sync::Arc;

    use scfm_core::arrow_array::{ArrayRef, Float32Array, RecordBatch, StringArray};
    use scfm_io::corpus::{ShardFormat, write_table};

    let ids: ArrayRef = Arc::new(StringArray::from(vec!["AAAC-1", "AAAG-1", "AACT-1"]));
    let x: ArrayRef = Arc::new(Float32Array::from(vec![0.5, f32::NAN, -2.0]));
    let batch = RecordBatch::try_from_iter([("cell_id", ids), ("x", x)]).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let pq = dir.path().join("t.parquet");
    write_table(&pq, ShardFormat::Parquet, &batch).unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&pq).unwrap())
            .unwrap()
            .build()
            .unwrap();
    let back: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    assert_eq!(back.len(), 1);
    assert_eq!(format!("{:?}", back[0].columns()), format!("{:?}", batch.columns()));

    let ipc = dir.path().join("t.arrow");
    write_table(&ipc, ShardFormat::ArrowIpc, &batch).unwrap();
    let reader = arrow_ipc::reader::FileReader::try_new(std::fs::File::open(&ipc).unwrap(), None).unwrap();
    let back: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    assert_eq!(format!("{:?}", back[0].columns()), format!("{:?}", batch.columns()));

    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["t.arrow", "t.parquet"]);
    // A folder that does not exist: an error naming the path, nothing written.
    let err = write_table(&dir.path().join("missing/t.arrow"), ShardFormat::ArrowIpc, &batch).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn filters_select_cells_while_streaming() {
    let dir = tempfile::tempdir().unwrap();
    let input = data("h5ad/pbmc_sorted_train_490.h5ad");
    let filter = ObsFilter::parse(r#"trueLabel in ["NK", "B"] and nUMI >= 1000"#).unwrap();
    let opts = ConvertOptions {
        filter: Some(filter.clone()),
        obs: ObsSelection::Columns(vec!["cellType".into()]),
        chunk_cells: 50,
        ..Default::default()
    };
    let manifest = convert(std::slice::from_ref(&input), dir.path(), &opts, &mut |_| {}).unwrap();
    // The same selection done on the whole table at once.
    let src = H5adSource::open(&input).unwrap();
    let whole = all(&src);
    let mask = filter.evaluate(whole.obs()).unwrap();
    let expected = whole.filter(&mask).unwrap();
    assert!(expected.n_cells() > 50 && expected.n_cells() < 140, "{} cells", expected.n_cells());
    let corpus = CorpusReader::open(dir.path()).unwrap();
    let got = all(&corpus);
    assert_eq!(got.cell_ids(), expected.cell_ids());
    assert_eq!(got.values(), expected.values());
    assert_eq!(corpus.obs_schema().fields().len(), 1, "only the requested column is kept");
    assert_eq!(manifest.filter.as_deref(), Some(filter.as_str()));
    assert_eq!(manifest.sources[0].n_cells_kept, expected.n_cells());
}

#[test]
fn interrupted_writes_never_look_valid() {
    let dir = tempfile::tempdir().unwrap();
    let src = H5adSource::open(data("h5ad/pbmc_sorted_train_490.h5ad")).unwrap();
    let opts = ConvertOptions { shard_cells: 100, ..Default::default() };
    convert(&[data("h5ad/pbmc_sorted_train_490.h5ad")], dir.path(), &opts, &mut |_| {}).unwrap();
    assert!(CorpusReader::open(dir.path()).is_ok());
    // A new writer in the same folder invalidates the old corpus at once…
    let mut w = CorpusWriter::create(dir.path(), src.genes().clone(), src.obs_schema(), CorpusWriterOptions::default())
        .unwrap();
    w.write_chunk(&src.read_rows(0..10).unwrap()).unwrap();
    // …and dropping it unfinished (a crash) leaves no valid corpus behind.
    drop(w);
    let err = CorpusReader::open(dir.path()).unwrap_err();
    assert!(matches!(err, IoError::Corpus { .. }), "{err}");
    assert!(err.to_string().contains("interrupted"), "{err}");
    // The next successful conversion there leaves no temporaries behind.
    convert(&[data("h5ad/pbmc_sorted_train_490.h5ad")], dir.path(), &opts, &mut |_| {}).unwrap();
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    assert_eq!(names.iter().filter(|n| n.starts_with("shard-")).count(), 5, "{names:?}");
    // A conversion failing on its second input writes no manifest either.
    let bad = dir.path().join("not-hdf5.h5ad");
    std::fs::write(&bad, b"definitely not HDF5").unwrap();
    let out = dir.path().join("out");
    let err = convert(&[data("h5ad/pbmc_sorted_train_490.h5ad"), bad], &out, &opts, &mut |_| {}).unwrap_err();
    assert!(matches!(err, IoError::NotHdf5 { .. }), "{err}");
    assert!(CorpusReader::open(&out).is_err());
}

#[test]
fn corrupted_shards_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    convert(&[data("h5ad/pbmc_sorted_train_490.h5ad")], dir.path(), &ConvertOptions::default(), &mut |_| {}).unwrap();
    let shard = dir.path().join("shard-00000.arrow");
    let mut bytes = std::fs::read(&shard).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&shard, &bytes).unwrap();
    let corpus = CorpusReader::open(dir.path()).unwrap();
    assert!(matches!(corpus.verify(), Err(IoError::Corpus { .. })));
    bytes.truncate(n - 10);
    std::fs::write(&shard, &bytes).unwrap();
    assert!(matches!(CorpusReader::open(dir.path()), Err(IoError::Corpus { .. })));
}

#[test]
fn inputs_with_different_genes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = convert(
        &[data("h5ad/pbmc_sorted_train_490.h5ad"), data("h5ad/cellbench_celseq2_5cl.h5ad")],
        dir.path(),
        &ConvertOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, IoError::Incompatible { .. }), "{err}");
}

fn random_chunk() -> impl Strategy<Value = (usize, Vec<Vec<(u32, f32)>>)> {
    (1usize..40).prop_flat_map(|n_genes| {
        let row = proptest::collection::btree_map(0..n_genes as u32, 1u32..1000, 0..n_genes.min(12));
        (
            Just(n_genes),
            proptest::collection::vec(row.prop_map(|m| m.into_iter().map(|(g, v)| (g, v as f32)).collect()), 0..60),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    /// Random sparse matrices, empty rows and columns included, survive write → read.
    #[test]
    fn random_matrices_round_trip((n_genes, rows) in random_chunk(), shard_cells in 1usize..25, chunk in 1usize..30) {
        let mut indptr = vec![0];
        let (mut idx, mut val) = (vec![], vec![]);
        for r in &rows {
            for &(g, v) in r { idx.push(g); val.push(v); }
            indptr.push(idx.len());
        }
        let ids: Vec<String> = (0..rows.len()).map(|i| format!("cell{i}")).collect();
        let full = CellChunk::from_csr(ids, indptr, idx, val, n_genes).unwrap();
        let genes = GeneTable::new((0..n_genes).map(|g| format!("G{g}")).collect()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let opts = CorpusWriterOptions { shard_cells, ..Default::default() };
        let mut w = CorpusWriter::create(dir.path(), genes, full.obs().schema(), opts).unwrap();
        let mut start = 0;
        while start < full.n_cells() {
            let end = (start + chunk).min(full.n_cells());
            let mask: Vec<bool> = (0..full.n_cells()).map(|i| (start..end).contains(&i)).collect();
            w.write_chunk(&full.filter(&mask.into()).unwrap()).unwrap();
            start = end;
        }
        let m = w.finish().unwrap();
        prop_assert_eq!(m.n_cells, rows.len());
        let r = CorpusReader::open(dir.path()).unwrap();
        prop_assert_eq!(r.read_rows(0..rows.len()).unwrap(), full);
    }
}
