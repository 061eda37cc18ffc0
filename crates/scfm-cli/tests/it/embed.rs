//! `scfm::embed`: ingestion → tokenizer → model on real data, in input order, independent of
//! batching, written to Arrow and into an h5ad copy.

use scfm::backend::Cpu;
use scfm::embed::{EmbedModel, EmbedOptions, Embedder, OutputFormat, Pooling, write_outputs};
use scfm::io::H5adSource;
use scfm::prelude::CellSource;

use crate::data;

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .filter(|(x, y)| !(x.is_nan() && y.is_nan()))
        .map(|(x, y)| if x.is_nan() || y.is_nan() { f32::INFINITY } else { (x - y).abs() })
        .fold(0.0, f32::max)
}

#[test]
fn scgpt_embeddings_keep_cell_order_and_do_not_depend_on_batching() {
    let device = Default::default();
    let input = data("h5ad/pbmc_sorted_train_490.h5ad");
    let model = EmbedModel::ScGpt { checkpoint: data("parity/models/scgpt/pretrained_tiny") };
    // One cell per forward pass (the budget is below every cell's length) and chunks of 7 cells…
    let alone = EmbedOptions { max_batch_tokens: 1, chunk_cells: 7, ..Default::default() };
    let alone = Embedder::<Cpu>::prepare(&model, alone, &device).unwrap().embed(&input, &mut |_, _| {}).unwrap();
    // …against big padded batches over chunks of 256.
    let mut calls = 0;
    let batched = EmbedOptions { max_batch_tokens: 4096, chunk_cells: 256, threads: Some(2), ..Default::default() };
    let embedder = Embedder::<Cpu>::prepare(&model, batched, &device).unwrap();
    let batched = embedder.embed(&input, &mut |_, _| calls += 1).unwrap();
    assert_eq!(calls, 2, "progress after each chunk");

    let h5 = H5adSource::open(&input).unwrap();
    assert_eq!(batched.cell_ids.len(), h5.n_cells());
    assert_eq!(batched.cell_ids, alone.cell_ids);
    assert_eq!(batched.dim, 32);
    let r = &batched.report;
    assert!(r.batches < alone.report.batches && r.padded_tokens > r.tokens, "{r:?}");
    assert_eq!((r.cells, r.genes_in), (490, 8846));
    // The tiny vocabulary knows 40 genes: some cells express none of them and get NaN rows.
    assert!(r.genes_mapped > 0 && r.genes_mapped <= 40, "{r:?}");
    let nan_rows = batched.values.chunks(32).filter(|row| row.iter().all(|v| v.is_nan())).count();
    assert_eq!(nan_rows, r.cells_without_tokens);
    assert!(nan_rows < 490);
    let diff = max_abs_diff(&batched.values, &alone.values);
    assert!(diff <= 1e-5, "batched vs one cell at a time: {diff}");
    // scGPT's embed_data returns L2-normalised CLS embeddings.
    for row in batched.values.chunks(32).filter(|row| !row[0].is_nan()) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }

    // Written to Arrow and into a copy of the h5ad, which Python opens (checked once by
    // scripts/check_embed_outputs.py); here read back through scfm-io and arrow.
    let tmp = tempfile::tempdir().unwrap();
    let out = write_outputs(&batched, &input, tmp.path(), OutputFormat::Arrow).unwrap();
    let copy = H5adSource::open(out.h5ad.as_ref().unwrap()).unwrap();
    assert!(copy.obsm_keys().unwrap().contains(&"X_scfm_scgpt".to_owned()));
    let obsm = copy.read_obsm("X_scfm_scgpt", 0..490).unwrap();
    assert_eq!(obsm.dim, 32);
    let obsm: Vec<f32> = obsm.values.iter().map(|&v| v as f32).collect();
    assert_eq!(max_abs_diff(&obsm, &batched.values), 0.0);
    let reader = arrow_ipc::reader::FileReader::try_new(std::fs::File::open(&out.table).unwrap(), None).unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 490);
    let schema = batches[0].schema();
    assert_eq!(schema.field(0).name(), "cell_id");
    assert_eq!(schema.field(1).name(), "embedding");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&out.report).unwrap()).unwrap();
    assert_eq!(report["cells"], 490);

    // Writing over the input itself is refused.
    let err = write_outputs(&batched, &input, input.parent().unwrap(), OutputFormat::Arrow).unwrap_err();
    assert!(err.to_string().contains("overwrite"), "{err}");
}

#[test]
fn geneformer_embeddings_on_ensembl_counts_match_a_direct_forward_pass() {
    use scfm::models::geneformer::{CellPooling, EmbeddingLayer, Geneformer};
    let device = Default::default();
    let input = data("h5ad/cxg_heart_320_ensembl.h5ad");
    let checkpoint = data("parity/models/geneformer/v1_10m_shape");
    let dictionaries = data("vocab/geneformer/v1_gc30M");
    let model =
        EmbedModel::Geneformer { checkpoint: checkpoint.clone(), dictionaries: dictionaries.clone(), version: None };
    let embedder = Embedder::<Cpu>::prepare(&model, EmbedOptions::default(), &device).unwrap();
    assert_eq!(embedder.model_name(), "geneformer-v1");
    let cells = embedder.embed(&input, &mut |_, _| {}).unwrap();
    assert_eq!((cells.cell_ids.len(), cells.dim), (320, 256));

    // The same cells tokenized into a dataset and run one by one through the model.
    let tmp = tempfile::tempdir().unwrap();
    let scheme = scfm::pipeline::Scheme::Geneformer {
        version: scfm::tokenize::geneformer::GeneformerVersion::V1,
        files: scfm::pipeline::GeneformerFiles::find(&dictionaries, scfm::tokenize::geneformer::GeneformerVersion::V1)
            .unwrap(),
    };
    let report = scfm::pipeline::tokenize(&input, tmp.path(), &scheme, &Default::default(), &mut |_, _| {}).unwrap();
    assert_eq!(report.cells_out + cells.report.cells_without_tokens, 320);
    let rows = input_ids_int16(tmp.path());
    let gf = Geneformer::<Cpu>::from_hf_dir(&checkpoint, &device).unwrap();
    let mut with_tokens = cells.values.chunks(256).filter(|r| !r[0].is_nan());
    for ids in rows.iter().take(5) {
        let n = ids.len();
        let t = scfm::models::checkpoint::int_tensor::<Cpu, 2>(
            ids.iter().map(|&i| i64::from(i)).collect(),
            [1, n],
            &device,
        );
        let padded = scfm::burn::tensor::Tensor::<Cpu, 2, scfm::burn::tensor::Bool>::from_data(
            scfm::burn::tensor::TensorData::new(vec![false; n], [1, n]),
            &device,
        );
        let enc = gf.encode(t, padded, false);
        let hidden = enc.hidden_states[gf.hidden_index(EmbeddingLayer::Penultimate)].clone();
        let want: Vec<f32> = Geneformer::pool(hidden, &[n], CellPooling::Mean { exclude_specials: false })
            .into_data()
            .into_vec()
            .unwrap();
        let got = with_tokens.next().unwrap();
        assert!(max_abs_diff(got, &want) <= 1e-5, "{}", max_abs_diff(got, &want));
    }

    // V1 has no <cls>; a tiny checkpoint cannot hold the real dictionaries' token ids.
    let cls = EmbedOptions { pooling: Some(Pooling::Cls), ..Default::default() };
    let err = Embedder::<Cpu>::prepare(&model, cls, &device).err().unwrap();
    assert!(err.to_string().contains("<cls>"), "{err}");
    let tiny = EmbedModel::Geneformer {
        checkpoint: data("parity/models/geneformer/v1_tiny"),
        dictionaries,
        version: Some(scfm::tokenize::geneformer::GeneformerVersion::V1),
    };
    let err = Embedder::<Cpu>::prepare(&tiny, EmbedOptions::default(), &device).err().unwrap();
    assert!(matches!(err, scfm::Error::Incompatible { .. }), "{err}");
}

/// The `input_ids` of a Geneformer V1 dataset (int16 lists), in order.
fn input_ids_int16(dir: &std::path::Path) -> Vec<Vec<i16>> {
    use scfm::core::arrow_array::cast::AsArray;
    use scfm::core::arrow_array::types::Int16Type;
    let f = std::fs::File::open(dir.join("data-00000-of-00001.arrow")).unwrap();
    let mut out = vec![];
    for b in arrow_ipc::reader::StreamReader::try_new(f, None).unwrap().map(Result::unwrap) {
        let list = b.column(0).as_list::<i32>();
        out.extend((0..b.num_rows()).map(|i| list.value(i).as_primitive::<Int16Type>().values().to_vec()));
    }
    out
}
