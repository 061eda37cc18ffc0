//! `scfm::embed`: ingestion → tokenizer → model on real data, in input order, independent of
//! batching, written to Arrow and into an h5ad copy.

use scfm::backend::Cpu;
use scfm::embed::{EmbedModel, EmbedOptions, Embedder, OutputFormat, Pooling, write_outputs};
use scfm::family::FamilyKind;
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
    let model = EmbedModel::new(FamilyKind::ScGpt, data("parity/models/scgpt/pretrained_tiny"));
    // One cell per forward pass (the budget is below every cell's length) and chunks of 7 cells…
    let alone = EmbedOptions { max_batch_tokens: 1, chunk_cells: 7, ..Default::default() };
    let alone = Embedder::<Cpu>::prepare(&model, alone, &device).unwrap().embed(&input, &mut |_, _| {}).unwrap();
    // …against big padded batches over chunks of 256.
    let mut calls = 0;
    let batched = EmbedOptions { max_batch_tokens: 4096, chunk_cells: 256, threads: Some(2), ..Default::default() };
    let embedder = Embedder::<Cpu>::prepare(&model, batched, &device).unwrap();
    let batched = embedder.embed(&input, &mut |_, _| calls += 1).unwrap();
    assert_eq!(calls, 2, "progress after each chunk");
    // scGPT reads its own vocab.json: another vocabulary is refused, not ignored.
    let other = model.clone().with_vocab(data("vocab/scgpt/default_census_vocab.json"));
    let err = Embedder::<Cpu>::prepare(&other, EmbedOptions::default(), &device).err().expect("refused");
    assert!(err.to_string().contains("own vocab.json"), "{err}");

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
    use scfm::models::geneformer::{EmbeddingLayer, Geneformer};
    let device = Default::default();
    let input = data("h5ad/cxg_heart_320_ensembl.h5ad");
    let checkpoint = data("parity/models/geneformer/v1_10m_shape");
    let dictionaries = data("vocab/geneformer/v1_gc30M");
    let model = EmbedModel::new(FamilyKind::Geneformer, checkpoint.clone()).with_vocab(dictionaries.clone());
    let embedder = Embedder::<Cpu>::prepare(&model, EmbedOptions::default(), &device).unwrap();
    assert_eq!(embedder.model_name(), "geneformer-v1");
    let cells = embedder.embed(&input, &mut |_, _| {}).unwrap();
    assert_eq!((cells.cell_ids.len(), cells.dim), (320, 256));

    // The same cells tokenized into a dataset and run one by one through the model.
    let tmp = tempfile::tempdir().unwrap();
    let scheme = scfm::tokenize::geneformer::GeneformerSpec::<1>::in_dir(&dictionaries).unwrap().into();
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
        let want: Vec<f32> =
            Geneformer::pool(hidden, &[n], Pooling::Mean, false).unwrap().into_data().into_vec().unwrap();
        let got = with_tokens.next().unwrap();
        assert!(max_abs_diff(got, &want) <= 1e-5, "{}", max_abs_diff(got, &want));
    }

    // V1 has no <cls>; a tiny checkpoint cannot hold the real dictionaries' token ids.
    let cls = EmbedOptions { pooling: Some(Pooling::Cls), ..Default::default() };
    let err = Embedder::<Cpu>::prepare(&model, cls, &device).err().unwrap();
    assert!(err.to_string().contains("<cls>"), "{err}");
    let tiny = EmbedModel {
        version: Some(scfm::tokenize::geneformer::GeneformerVersion::V1),
        ..EmbedModel::new(FamilyKind::Geneformer, data("parity/models/geneformer/v1_tiny")).with_vocab(dictionaries)
    };
    let err = Embedder::<Cpu>::prepare(&tiny, EmbedOptions::default(), &device).err().unwrap();
    assert!(matches!(err, scfm::Error::VocabularyMismatch { .. }), "{err}");
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

/// The first `n` genes of scFoundation's gene index as a TSV of the same format.
fn scfoundation_panel(n: usize, dir: &std::path::Path) -> std::path::PathBuf {
    let full = std::fs::read_to_string(data("vocab/scfoundation/OS_scRNA_gene_index.19264.tsv")).unwrap();
    let path = dir.join("genes.tsv");
    std::fs::write(&path, full.lines().take(n + 1).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    path
}

#[test]
fn xtrimogene_embeddings_match_the_dense_upstream_input_path() {
    use scfm::models::xtrimogene::{EncoderInput, Weights, XTrimoGene};
    let device = Default::default();
    let tmp = tempfile::tempdir().unwrap();
    let input = data("h5ad/pbmc_sorted_train_490.h5ad");
    let checkpoint = data("parity/models/scfoundation/mae_autobin_tiny/models.ckpt");
    // The tiny fixture's 60 genes are the first 60 of the real index.
    let genes = scfoundation_panel(60, tmp.path());
    let target = "t4".parse().unwrap();
    let model = EmbedModel {
        weights: Weights::Cell,
        depth_target: target,
        ..EmbedModel::new(FamilyKind::XTrimoGene, checkpoint.clone()).with_vocab(genes)
    };
    let batched = EmbedOptions { chunk_cells: 100, ..Default::default() };
    let cells = Embedder::<Cpu>::prepare(&model, batched, &device).unwrap().embed(&input, &mut |_, _| {}).unwrap();
    let alone = EmbedOptions { max_batch_tokens: 1, chunk_cells: 490, ..Default::default() };
    let alone = Embedder::<Cpu>::prepare(&model, alone, &device).unwrap().embed(&input, &mut |_, _| {}).unwrap();
    assert_eq!((cells.dim, cells.report.cells), (128, 490));
    assert!((1..=60).contains(&cells.report.genes_mapped), "{:?}", cells.report);
    assert!(max_abs_diff(&cells.values, &alone.values) <= 1e-5, "padding leaks into the pooling");
    let nan_rows = cells.values.chunks(128).filter(|r| r.iter().all(|v| v.is_nan())).count();
    assert_eq!(nan_rows, cells.report.cells_without_tokens);
    assert!(nan_rows < 490, "{:?}", cells.report);

    // Independently: the dense input vector get_embedding.py builds (counts aligned by symbol,
    // ln1p(c / total · 1e4) in f64, T = 4, S = log10(total)), gathered as upstream does.
    let net = XTrimoGene::<Cpu>::from_checkpoint(&checkpoint, Weights::Cell, &device).unwrap();
    let panel = scfm::tokenize::vocab::scfoundation_genes(&tmp.path().join("genes.tsv")).unwrap();
    let h5 = H5adSource::open(&input).unwrap();
    let symbols = h5.genes().symbols().unwrap_or(h5.genes().ids()).to_vec();
    let chunk = h5.read_rows(0..490).unwrap();
    let mut checked = 0;
    for i in (0..490).step_by(37) {
        let cell = chunk.cell(i);
        let mut counts = vec![0f64; 60];
        for (&g, &v) in cell.indices.iter().zip(cell.values) {
            if let Some(p) = panel.iter().position(|s| *s == symbols[g as usize]) {
                counts[p] += f64::from(v);
            }
        }
        let total: f64 = counts.iter().sum();
        if !counts.iter().any(|&c| c > 0.0) {
            continue;
        }
        let mut dense: Vec<f32> = counts.iter().map(|c| (c / total * 1e4).ln_1p() as f32).collect();
        dense.extend([4.0, total.log10() as f32]);
        let x = EncoderInput::gather(&[&dense], 62, 103.0);
        let (v, p, m) = x.tensors::<Cpu>(&device);
        let want: Vec<f32> = XTrimoGene::cell_embeddings(net.encode(v, p, m), &x.lengths, Pooling::All)
            .unwrap()
            .into_data()
            .into_vec()
            .unwrap();
        assert!(max_abs_diff(&cells.values[i * 128..(i + 1) * 128], &want) <= 1e-5, "cell {i}");
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} cells express a panel gene");
}

#[test]
fn scbert_embeddings_run_one_cell_per_pass_over_the_full_panel() {
    use scfm::models::checkpoint::write_safetensors;
    use scfm::models::scbert::ScBert;
    let device = Default::default();
    let tmp = tempfile::tempdir().unwrap();
    // A random scBERT with the release's 16,907 positions but a tiny width (dim 8, one layer
    // of 2 heads × 4, 5 random features), written as a safetensors state dict.
    let (n, d, inner, ff, m) = (16_907usize, 8usize, 8usize, 32usize, 5usize);
    let mut state = 1u64;
    let mut rnd = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.5
            })
            .collect()
    };
    let l = "performer.net.layers.0";
    let mut tensors = vec![
        ("token_emb.weight".to_owned(), vec![7, d], rnd(7 * d)),
        ("pos_emb.emb.weight".to_owned(), vec![n, d], rnd(n * d)),
        (format!("{l}.0.fn.fast_attention.projection_matrix"), vec![m, 4], rnd(m * 4)),
        (format!("{l}.0.fn.to_out.weight"), vec![d, inner], rnd(d * inner)),
        (format!("{l}.0.fn.to_out.bias"), vec![d], rnd(d)),
        (format!("{l}.1.fn.fn.w1.weight"), vec![ff, d], rnd(ff * d)),
        (format!("{l}.1.fn.fn.w1.bias"), vec![ff], rnd(ff)),
        (format!("{l}.1.fn.fn.w2.weight"), vec![d, ff], rnd(d * ff)),
        (format!("{l}.1.fn.fn.w2.bias"), vec![d], rnd(d)),
        ("to_out.weight".to_owned(), vec![7, d], rnd(7 * d)),
        ("to_out.bias".to_owned(), vec![7], rnd(7)),
    ];
    for q in ["to_q", "to_k", "to_v"] {
        tensors.push((format!("{l}.0.fn.{q}.weight"), vec![inner, d], rnd(inner * d)));
    }
    for norm in [format!("{l}.0.norm"), format!("{l}.1.norm"), "norm".to_owned()] {
        tensors.push((format!("{norm}.weight"), vec![d], vec![1.0; d]));
        tensors.push((format!("{norm}.bias"), vec![d], vec![0.0; d]));
    }
    let checkpoint = tmp.path().join("scbert_tiny.safetensors");
    write_safetensors(&checkpoint, &tensors).unwrap();

    let input = data("h5ad/pbmc_sorted_train_490.h5ad");
    let genes = data("vocab/scbert/scbert_panglao_genes_16906.txt");
    let model = EmbedModel::new(FamilyKind::ScBert, checkpoint.clone()).with_vocab(genes.clone());
    // A big token budget still runs one cell per pass (FAVOR+ couples batch-mates).
    let opts = EmbedOptions { max_batch_tokens: 1 << 20, chunk_cells: 200, ..Default::default() };
    let cells = Embedder::<Cpu>::prepare(&model, opts, &device).unwrap().embed(&input, &mut |_, _| {}).unwrap();
    let r = &cells.report;
    assert_eq!((cells.dim, r.cells), (8, 490));
    assert_eq!(r.batches, r.cells - r.cells_without_tokens, "one cell per forward pass");
    assert_eq!(r.tokens, r.batches * n);
    let nan_rows = cells.values.chunks(8).filter(|row| row.iter().all(|v| v.is_nan())).count();
    assert_eq!(nan_rows, r.cells_without_tokens, "cells under 200 panel genes are NaN rows");

    // The same cell through the tokenizer and the model directly.
    let net = ScBert::<Cpu>::from_file(&checkpoint, &device).unwrap();
    let tok = scfm::tokenize::scbert::ScBertTokenizer::new(scfm::tokenize::vocab::gene_list(&genes).unwrap());
    let h5 = H5adSource::open(&input).unwrap();
    let plan = tok.plan(h5.genes());
    let chunk = h5.read_rows(0..490).unwrap();
    let i = (0..490).find(|&i| !cells.values[i * 8].is_nan()).unwrap();
    let ids: Vec<i64> = tok.tokenize(&plan, chunk.cell(i)).unwrap().into_iter().map(i64::from).collect();
    let ids = scfm::models::checkpoint::int_tensor::<Cpu, 2>(ids, [1, n], &device);
    let want: Vec<f32> = ScBert::cell_embeddings(net.encode(ids)).into_data().into_vec().unwrap();
    assert!(max_abs_diff(&cells.values[i * 8..(i + 1) * 8], &want) <= 1e-6);

    // A gene list of another panel size does not fit the checkpoint's positions.
    let short = tmp.path().join("short.txt");
    std::fs::write(&short, "CD3E\nCD4\n").unwrap();
    let wrong = EmbedModel::new(FamilyKind::ScBert, checkpoint).with_vocab(short);
    let e = Embedder::<Cpu>::prepare(&wrong, EmbedOptions::default(), &device).err().expect("refused");
    assert!(e.to_string().contains("16907 positions"), "{e}");
}

#[test]
fn a_checkpoint_that_cannot_be_read_is_one_clear_message() {
    // A folder where scBERT's .pth file is expected: the file's I/O error names the path and the
    // OS's reason once (the error's cause repeats the reason; the command line leaves it out).
    let folder = data("parity/models/scbert/pretrain_tiny");
    let out = tempfile::tempdir().unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_scfm"))
        .arg("embed")
        .arg(data("h5ad/pbmc_sorted_train_490.h5ad"))
        .arg("-o")
        .arg(out.path())
        .args(["--model", "scbert", "--checkpoint"])
        .arg(&folder)
        .arg("--genes")
        .arg(data("vocab/scbert/scbert_panglao_genes_16906.txt"))
        .output()
        .unwrap();
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    let reason = std::fs::read(&folder).expect_err("a folder is not a readable file").to_string();
    assert!(stderr.contains(&folder.display().to_string()), "{stderr}");
    assert_eq!(stderr.matches(&reason).count(), 1, "{stderr}");
}
