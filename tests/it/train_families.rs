//! scGPT and scBERT training on the real 490 sorted-PBMC cells: each pretraining objective
//! learns, the classification heads fine-tune past chance or overfit a batch, generative
//! attention keeps the streams apart, and data a model cannot read is a typed error.

use std::sync::OnceLock;

use scfm::annotate::{AlignedCounts, LabelledCells, read_labelled_cells_with};
use scfm::backend::CpuTrain;
use scfm::burn::module::AutodiffModule;
use scfm::burn::tensor::{Bool, Int, Tensor, TensorData};
use scfm::eval::{ClassificationReport, Labels, argmax_rows, stratified_split};
use scfm::models::layers::PerformerShape;
use scfm::models::scbert::{ScBert, ScBertConfig};
use scfm::models::scgpt::{ScGpt, ScGptConfig};
use scfm::models::xtrimogene::{XTrimoGene, XTrimoGeneClassifier, XTrimoGeneConfig};
use scfm::pipeline::{TieMode, TokenizerSpec};
use scfm::tokenize::mask::{ScBertMask, ScGptValueMask, XTrimoGeneMask};
use scfm::tokenize::scbert::ScBertSpec;
use scfm::tokenize::scgpt::ScGptSequence;
use scfm::tokenize::scgpt::ScGptSpec;
use scfm::tokenize::vocab::{scfoundation_genes, scgpt_vocab};
use scfm::tokenize::xtrimogene::XTrimoGeneSpec;
use scfm::tokenize::xtrimogene::{DepthTarget, XTrimoGeneTokenizer};
use scfm::train::{
    Cells, CheckpointMeta, Classification, DownSampling, ScBertMaskedLm, ScGptPretraining, ScGptTask, ScheduleKind,
    TrainError, TrainOptions, XTrimoGenePretraining, predict, predict_proba, seeded, train,
};

type B = CpuTrain;

/// The 490 cells as scGPT reads them: `<cls>` (value 0, as the annotation tutorial) and at
/// most `max_len − 1` expressed genes (a seeded sample) with their bins.
fn scgpt_cells_of(max_len: usize) -> LabelledCells {
    let sequence = ScGptSequence { cls_value: 0.0, max_len, ..ScGptSequence::zero_shot(0) };
    let vocab = crate::data("vocab/scgpt/default_cellxgene_vocab.json");
    let scheme: TokenizerSpec = ScGptSpec::new(vocab, &sequence, TieMode::Helical).into();
    read_labelled_cells_with(&crate::data("h5ad/pbmc_sorted_train_490.h5ad"), "trueLabel", &scheme).unwrap()
}

/// [`scgpt_cells_of`] 129 tokens, for pretraining.
fn scgpt_cells() -> &'static LabelledCells {
    static CELLS: OnceLock<LabelledCells> = OnceLock::new();
    CELLS.get_or_init(|| scgpt_cells_of(129))
}

/// The 490 cells as scBERT reads them: 16,907 bins each.
fn scbert_cells() -> &'static LabelledCells {
    static CELLS: OnceLock<LabelledCells> = OnceLock::new();
    CELLS.get_or_init(|| {
        let scheme: TokenizerSpec = ScBertSpec::new(crate::data("vocab/scbert/scbert_panglao_genes_16906.txt")).into();
        read_labelled_cells_with(&crate::data("h5ad/pbmc_sorted_train_490.h5ad"), "trueLabel", &scheme).unwrap()
    })
}

fn tiny_scgpt() -> ScGptConfig {
    let vocab = scgpt_vocab(&crate::data("vocab/scgpt/default_cellxgene_vocab.json"), true).unwrap();
    ScGptConfig {
        vocab_size: vocab.id_bound(),
        pad_token_id: vocab.id("<pad>").unwrap() as usize,
        cls_token_id: vocab.id("<cls>").unwrap() as usize,
        d_model: 32,
        n_heads: 2,
        d_ff: 64,
        n_layers: 1,
        n_layers_cls: 2,
        dropout: 0.1,
        ..ScGptConfig::whole_human()
    }
}

/// A one-layer Performer 16 wide (scBERT's encoder, xTrimoGene's decoder).
fn tiny_performer(qkv_bias: bool) -> PerformerShape {
    PerformerShape { d_model: 16, n_layers: 1, n_heads: 2, d_head: 8, n_features: 16, d_ff: 32, qkv_bias }
}

fn tiny_scbert() -> ScBertConfig {
    ScBertConfig { performer: tiny_performer(false), ..ScBertConfig::released() }
}

fn meta(family: &str, config: serde_json::Value, classes: &[String]) -> CheckpointMeta {
    CheckpointMeta {
        family: family.into(),
        model_config: config,
        tokenizer: serde_json::json!({}),
        classes: classes.to_vec(),
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn steps(n: u64, lr: f64) -> TrainOptions {
    TrainOptions {
        epochs: 3,
        batch_size: 16,
        lr,
        warmup_fraction: 0.0,
        schedule: ScheduleKind::Constant,
        stop_after: Some(n),
        ..TrainOptions::default()
    }
}

fn pretrain_scgpt(task: ScGptTask, seed: u64) -> Vec<f64> {
    let device = Default::default();
    let c = scgpt_cells();
    let model: ScGpt<B> = seeded::<B, _>(&device, seed, || tiny_scgpt().init(&device).with_flag_encoder(&device));
    let values = c.values.as_ref().unwrap();
    let objective = ScGptPretraining { cells: Cells::with_values(&c.tokens, values), task, gepc: true };
    let m = meta("scgpt", serde_json::to_value(tiny_scgpt()).unwrap(), &[]);
    let mut losses = vec![];
    train(model, &objective, &steps(30, 3e-3), &m, None, &device, &mut |s| losses.push(s.loss)).unwrap();
    assert_eq!(losses.len(), 30);
    losses
}

#[test]
fn scgpt_generative_pretraining_learns() {
    // Cell-prompt pass from the first epoch, so both passes are exercised.
    let task = ScGptTask::Generative {
        masker: ScGptValueMask::new(0.0, 3),
        gen_probs: vec![0.25, 0.5, 0.75],
        cell_prompt_from_epoch: Some(0),
    };
    let losses = pretrain_scgpt(task, 1);
    // GEP + GEPC + cell prompt of bins 1…50: the untrained model is far off.
    assert!(mean(&losses[25..]) < 0.7 * mean(&losses[..5]), "{losses:?}");
}

#[test]
fn scgpt_masked_value_pretraining_learns() {
    let losses = pretrain_scgpt(ScGptTask::MaskedValues { masker: ScGptValueMask::new(0.4, 5) }, 2);
    assert!(mean(&losses[25..]) < 0.5 * mean(&losses[..5]), "{losses:?}");
}

#[test]
fn generative_attention_keeps_prompt_and_generated_genes_apart() {
    type I = <B as scfm::burn::tensor::backend::AutodiffBackend>::InnerBackend;
    let device = Default::default();
    let model: ScGpt<I> = seeded::<I, _>(&device, 4, || tiny_scgpt().init(&device).with_flag_encoder(&device));
    // One cell: <cls>, 2 prompt genes, 3 generated genes.
    let prompt = [true, true, true, false, false, false];
    let run = |ids: [i64; 6]| {
        let ids = Tensor::<I, 2, Int>::from_data(TensorData::new(ids.to_vec(), [1, 6]), &device);
        let values = Tensor::<I, 2>::from_data(TensorData::new(vec![0.0f32, 3.0, 7.0, 1.0, 2.0, 9.0], [1, 6]), &device);
        let mask = Tensor::<I, 2, Bool>::from_data(TensorData::new(prompt.to_vec(), [1, 6]), &device);
        let blocked = ScGpt::<I>::generative_attention_mask(&prompt, &[false; 6], 1, 6, &device);
        let out = model.encode_generative(ids, values, mask, blocked, None).unwrap().output;
        out.into_data().into_vec::<f32>().unwrap()
    };
    let cls = tiny_scgpt().cls_token_id as i64;
    let a = run([cls, 10, 11, 12, 13, 14]);
    let b = run([cls, 10, 11, 12, 99, 500]);
    let d = 32;
    // The prompt does not see generated genes, nor does a generated gene see the others.
    assert_eq!(a[..4 * d], b[..4 * d]);
    // A generated gene does see itself.
    assert_ne!(a[4 * d..5 * d], b[4 * d..5 * d]);
}

#[test]
fn scgpt_fine_tuning_beats_chance_on_held_out_cells() {
    let c = scgpt_cells();
    let values = c.values.as_ref().unwrap();
    let labels = Labels::from_strings(&c.labels);
    let (train_rows, valid_rows) = stratified_split(&labels.codes, 0.2, 5).unwrap();
    let pick = |rows: &[usize]| -> (Vec<Vec<u32>>, Vec<Vec<f32>>, Vec<usize>) {
        (
            rows.iter().map(|&r| c.tokens[r].clone()).collect(),
            rows.iter().map(|&r| values[r].clone()).collect(),
            rows.iter().map(|&r| labels.codes[r]).collect(),
        )
    };
    let (ids, vals, classes) = pick(&train_rows);
    let device = Default::default();
    let model: ScGpt<B> = seeded::<B, _>(&device, 6, || tiny_scgpt().init(&device).with_classifier(7, &device));
    let opts = TrainOptions { epochs: 6, batch_size: 16, lr: 2e-3, ..TrainOptions::default() };
    let m = meta("scgpt-classifier", serde_json::to_value(tiny_scgpt()).unwrap(), &labels.names);
    let objective = Classification { cells: Cells::with_values(&ids, &vals), classes: &classes };
    let model = train(model, &objective, &opts, &m, None, &device, &mut |_| {}).unwrap();
    let (ids, vals, truth) = pick(&valid_rows);
    let p: Vec<f32> =
        predict_proba(&model.valid(), Cells::with_values(&ids, &vals), 64, 8192, &device).unwrap().concat();
    let report = ClassificationReport::compute(&truth, &argmax_rows(&p, 7), &labels.names).unwrap();
    // Chance is 1/7 ≈ 0.14. From scratch on 392 cells scGPT's `<cls>` classifier is weak:
    // 0.24–0.30 over initial seeds 1…6, and more epochs overfit (Geneformer's rank tokens reach
    // 0.37–0.59 in the same setting). A brief masked-value pretraining on these cells did not
    // help. The bar checks that the head learns at all.
    assert!(report.accuracy > 0.2, "{report:?}");
}

#[test]
fn scbert_masked_lm_learns() {
    let device = Default::default();
    let c = scbert_cells();
    assert!(c.tokens.iter().all(|t| t.len() == 16_907));
    let model: ScBert<B> = seeded::<B, _>(&device, 1, || tiny_scbert().init(&device, 1));
    let objective = ScBertMaskedLm { cells: Cells::tokens(&c.tokens), masker: ScBertMask::new(9) };
    let m = meta("scbert", serde_json::to_value(tiny_scbert()).unwrap(), &[]);
    let mut losses = vec![];
    let opts = TrainOptions { batch_size: 8, max_batch_tokens: 8 * 16_907, ..steps(20, 3e-3) };
    train(model, &objective, &opts, &m, None, &device, &mut |s| losses.push(s.loss)).unwrap();
    // ln 7 ≈ 1.95 at the start; the masked bins (1…5) are far from uniform.
    assert!(mean(&losses[15..]) < mean(&losses[..5]) - 0.3, "{losses:?}");
}

#[test]
fn scbert_head_overfits_one_batch() {
    let c = scbert_cells();
    let labels = Labels::from_strings(&c.labels);
    let rows: Vec<usize> = (0..8).map(|i| i * 55).collect();
    // (8 cells of 4 types, 60 steps.)
    let tokens: Vec<Vec<u32>> = rows.iter().map(|&r| c.tokens[r].clone()).collect();
    let classes: Vec<usize> = rows.iter().map(|&r| labels.codes[r]).collect();
    let device = Default::default();
    let model: ScBert<B> =
        seeded::<B, _>(&device, 2, || tiny_scbert().init(&device, 2).with_classifier(labels.n_classes(), &device));
    let opts = TrainOptions { epochs: 60, batch_size: 8, max_batch_tokens: 8 * 16_907, ..steps(60, 1e-3) };
    let m = meta("scbert-classifier", serde_json::to_value(tiny_scbert()).unwrap(), &labels.names);
    let mut losses = vec![];
    let objective = Classification { cells: Cells::tokens(&tokens), classes: &classes };
    let model = train(model, &objective, &opts, &m, None, &device, &mut |s| losses.push(s.loss)).unwrap();
    assert!(losses[59] < 0.05, "{losses:?}");
    let model = model.valid();
    let p: Vec<f32> = predict_proba(&model, Cells::tokens(&tokens), 8, 1 << 20, &device).unwrap().concat();
    assert_eq!(argmax_rows(&p, labels.n_classes()), classes);
    // `predict` runs the same forward pass and returns the head's fc2 activations (after ReLU)
    // as the cell embeddings.
    let all = predict(&model, Cells::tokens(&tokens), 8, 1 << 20, &device).unwrap();
    let fc2 = model.classifier.as_ref().unwrap().fc2.weight.dims()[1];
    assert_eq!((all.proba, all.n_classes, all.dim), (p, labels.n_classes(), fc2));
    assert_eq!(all.embeddings.len(), 8 * fc2);
    assert!(all.embeddings.iter().all(|&v| v >= 0.0) && all.embeddings.iter().any(|&v| v > 0.0));
}

#[test]
fn data_a_model_cannot_read_is_a_typed_error() {
    let device = Default::default();
    let c = scgpt_cells();
    let classes = vec![0usize; c.tokens.len()];
    let m = meta("x", serde_json::json!({}), &[]);
    let opts = steps(1, 1e-3);
    let invalid = |r: Result<_, TrainError>| matches!(r, Err(TrainError::Invalid(_)));
    // scGPT without values, and scGPT without a classification head.
    let with_head: ScGpt<B> = tiny_scgpt().init(&device).with_classifier(7, &device);
    let no_values = Classification { cells: Cells::tokens(&c.tokens), classes: &classes };
    assert!(invalid(train(with_head, &no_values, &opts, &m, None, &device, &mut |_| {}).map(|_| ())));
    let values = c.values.as_ref().unwrap();
    let full = Classification { cells: Cells::with_values(&c.tokens, values), classes: &classes };
    assert!(invalid(train(tiny_scgpt().init::<B>(&device), &full, &opts, &m, None, &device, &mut |_| {}).map(|_| ())));
    // Generative pretraining without the flag embedding.
    let plain: ScGpt<B> = ScGptConfig { generative: false, ..tiny_scgpt() }.init(&device);
    let generative =
        ScGptPretraining { cells: Cells::with_values(&c.tokens, values), task: ScGptTask::generative(1), gepc: false };
    assert!(invalid(train(plain, &generative, &opts, &m, None, &device, &mut |_| {}).map(|_| ())));
    // scBERT given scGPT's variable-length tokens.
    let scbert: ScBert<B> = tiny_scbert().init(&device, 0).with_classifier(7, &device);
    let short = Classification { cells: Cells::tokens(&c.tokens), classes: &classes };
    assert!(invalid(train(scbert, &short, &opts, &m, None, &device, &mut |_| {}).map(|_| ())));
}

fn tiny_xtrimogene() -> XTrimoGeneConfig {
    XTrimoGeneConfig {
        d_model: 16,
        n_layers: 1,
        n_heads: 2,
        d_ff: 32,
        decoder: tiny_performer(true),
        bin_num: 10,
        ..XTrimoGeneConfig::released()
    }
}

/// The first `n` of the 490 cells' raw counts on scFoundation's 19,264 gene positions.
fn xtrimogene_counts(n: usize) -> Vec<Vec<(u32, f64)>> {
    use scfm::core::CellSource;
    let tokenizer = XTrimoGeneTokenizer::new(
        scfoundation_genes(&crate::data("vocab/scfoundation/OS_scRNA_gene_index.19264.tsv")).unwrap(),
        DepthTarget::Fold(1.0),
    );
    let opts = scfm::io::SourceOptions {
        matrix: scfm::io::MatrixSelector::Counts,
        obs: scfm::io::ObsSelection::None,
        require_counts: true,
    };
    let source = scfm::io::AnySource::open(crate::data("h5ad/pbmc_sorted_train_490.h5ad"), &opts).unwrap();
    let plan = tokenizer.plan(source.genes());
    let chunk = source.chunks(n).next().unwrap().unwrap();
    (0..n).map(|i| tokenizer.align_counts(&plan, chunk.cell(i))).collect()
}

#[test]
fn xtrimogene_read_depth_aware_pretraining_learns() {
    let device = Default::default();
    let mut cells = AlignedCounts::default();
    for cell in xtrimogene_counts(96) {
        cells.push(cell);
    }
    let model: XTrimoGene<B> = seeded::<B, _>(&device, 1, || tiny_xtrimogene().init(&device, 1));
    let objective = XTrimoGenePretraining {
        cells: cells.cells(),
        masker: XTrimoGeneMask::new(3),
        downsample: Some(DownSampling { probability: 0.5, min_fraction: 0.2 }),
    };
    let m = meta("xtrimogene", serde_json::to_value(tiny_xtrimogene()).unwrap(), &[]);
    let opts = TrainOptions { batch_size: 8, max_batch_tokens: 1 << 20, ..steps(20, 3e-3) };
    let mut losses = vec![];
    train(model, &objective, &opts, &m, None, &device, &mut |s| losses.push(s.loss)).unwrap();
    // Masked log-normalised values (≈ 0–6; about two thirds of the scored genes are unexpressed
    // zeros). The tiny model learns the scale within a few steps (1.47 → ≈ 1.15) and keeps
    // improving slowly (≈ 1.1 at step 20).
    assert!(mean(&losses[15..]) < 0.92 * mean(&losses[..5]), "{losses:?}");
}

#[test]
fn xtrimogene_head_overfits_one_batch() {
    let genes = crate::data("vocab/scfoundation/OS_scRNA_gene_index.19264.tsv");
    let scheme: TokenizerSpec = XTrimoGeneSpec::new(genes, DepthTarget::Fold(1.0)).into();
    let c = read_labelled_cells_with(&crate::data("h5ad/pbmc_sorted_train_490.h5ad"), "trueLabel", &scheme).unwrap();
    let labels = Labels::from_strings(&c.labels);
    let rows: Vec<usize> = (0..8).map(|i| i * 55).collect();
    let ids: Vec<Vec<u32>> = rows.iter().map(|&r| c.tokens[r].clone()).collect();
    let values: Vec<Vec<f32>> = rows.iter().map(|&r| c.values.as_ref().unwrap()[r].clone()).collect();
    let classes: Vec<usize> = rows.iter().map(|&r| labels.codes[r]).collect();
    let device = Default::default();
    let model = seeded::<B, _>(&device, 2, || {
        XTrimoGeneClassifier::new(tiny_xtrimogene().init(&device, 2), labels.n_classes(), &device)
    });
    let opts = TrainOptions { epochs: 40, batch_size: 8, max_batch_tokens: 1 << 20, ..steps(40, 3e-3) };
    let m = meta("xtrimogene-classifier", serde_json::to_value(tiny_xtrimogene()).unwrap(), &labels.names);
    let mut losses = vec![];
    let objective = Classification { cells: Cells::with_values(&ids, &values), classes: &classes };
    let model = train(model, &objective, &opts, &m, None, &device, &mut |s| losses.push(s.loss)).unwrap();
    assert!(losses[39] < 0.05, "{losses:?}");
    // Inference uses BatchNorm's running statistics: score on the batch the head trained on.
    let p: Vec<f32> =
        predict_proba(&model.valid(), Cells::with_values(&ids, &values), 8, 1 << 20, &device).unwrap().concat();
    assert_eq!(argmax_rows(&p, labels.n_classes()), classes);
}
