//! Cell-type annotation end to end: labelled h5ad → seeded stratified split → Geneformer
//! rank-value tokens → (optional) masked-LM pretraining on the training cells → fine-tuning →
//! predictions, accuracy and macro-F1 next to a logistic-regression baseline on the same
//! split → predictions and embeddings written into an h5ad copy, confusion-matrix and
//! embedding PNGs, `report.json`.

use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use scfm_core::CellSource;
use scfm_eval::{
    ClassificationReport, CsrMatrix, EmbeddingReport, EmbeddingView, Labels, LogisticRegression,
    LogisticRegressionConfig, argmax_rows, confusion_png, pca_2d, scatter_png, stratified_split,
};
use scfm_io::writeback::{Annotation, annotate_copy};
use scfm_io::{AnySource, IoError, MatrixSelector, ObsSelection, SourceOptions};
use scfm_models::geneformer::{ClassifierPooling, Geneformer, GeneformerClassifier, GeneformerConfig};
use scfm_models::layers::Activation;
use scfm_tokenize::geneformer::GeneformerVersion;
use scfm_tokenize::mask::GeneformerMlm;
use scfm_train::batch::{TokenBatch, truncate_rank_value};
use scfm_train::{
    CellClassifier, Cells, Checkpoint, CheckpointMeta, Classification, MaskedLm, StepReport, TrainOptions,
};
use serde::Serialize;

use crate::Error;
use crate::pipeline::{GeneformerFiles, Prepared, Scheme, prepare_scheme};

/// The model trained by [`annotate`]: a small Geneformer (BERT) over V2 rank-value tokens.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSize {
    /// Hidden size.
    pub d_model: usize,
    /// Encoder layers.
    pub n_layers: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Feed-forward size.
    pub d_ff: usize,
    /// Tokens per cell: `<cls>`, the highest-ranked genes, `<eos>`.
    pub max_len: usize,
}

impl ModelSize {
    /// The Geneformer of this size over a vocabulary of `vocab_size` tokens: V1's layout
    /// (ReLU, post-norm) with dropout 0.02.
    pub fn geneformer(&self, vocab_size: usize) -> GeneformerConfig {
        GeneformerConfig {
            vocab_size,
            d_model: self.d_model,
            n_heads: self.n_heads,
            n_layers: self.n_layers,
            d_ff: self.d_ff,
            max_len: self.max_len,
            activation: Activation::Relu,
            dropout: 0.02,
            attention_dropout: 0.02,
            ..GeneformerConfig::v1_10m()
        }
    }
}

impl Default for ModelSize {
    fn default() -> Self {
        Self { d_model: 128, n_layers: 2, n_heads: 4, d_ff: 256, max_len: 128 }
    }
}

/// Options of [`annotate`].
#[derive(Debug, Clone, Serialize)]
pub struct AnnotateOptions {
    /// The obs column with the cell types.
    pub label: String,
    /// Share of each cell type held out for validation.
    pub validation_fraction: f64,
    /// Seed of the split, initialisation, batches, masking and dropout.
    pub seed: u64,
    /// Geneformer V2 dictionaries (folder with the `*_gc104M.pkl` files).
    pub dictionaries: PathBuf,
    /// Model shape.
    pub model: ModelSize,
    /// What the classification head reads (`mean` learns much faster from scratch than
    /// upstream's `first`).
    pub pooling: ClassifierPooling,
    /// Masked-LM pretraining epochs over the training cells before fine-tuning (0: none).
    pub pretrain_epochs: usize,
    /// Fine-tuning epochs.
    pub finetune_epochs: usize,
    /// Peak learning rate of pretraining.
    pub pretrain_lr: f64,
    /// Peak learning rate of fine-tuning.
    pub finetune_lr: f64,
    /// Cells per batch.
    pub batch_size: usize,
    /// Another labelled h5ad (same gene symbols, same label column) to evaluate on.
    pub test: Option<PathBuf>,
    /// Output folder.
    pub out: PathBuf,
    /// Write training checkpoints into `out/checkpoints` every this many steps.
    pub checkpoint_every: Option<u64>,
    /// Start from this pretrained Geneformer instead of a fresh one: a Hugging Face folder
    /// (`config.json` + `model.safetensors` or `pytorch_model.bin`) or a checkpoint of ours
    /// (`scfm pretrain`'s output folder, or one `step-N` in it). Its shape replaces `model`'s,
    /// except `max_len`, which must fit its position table; `pretrain_epochs` still apply
    /// (0 to go straight to fine-tuning).
    pub init: Option<PathBuf>,
    /// Freeze the embeddings and the first this many encoder layers while fine-tuning.
    pub freeze_layers: usize,
}

impl AnnotateOptions {
    /// Defaults for the data folder `data` (the shared folder with `vocab/geneformer/`).
    pub fn with_data_dir(data: &Path, out: &Path) -> Self {
        Self {
            label: "trueLabel".into(),
            validation_fraction: 0.2,
            seed: 42,
            dictionaries: data.join("vocab/geneformer"),
            model: ModelSize::default(),
            pooling: ClassifierPooling::Mean,
            pretrain_epochs: 1,
            finetune_epochs: 6,
            pretrain_lr: 1e-3,
            finetune_lr: 1e-3,
            batch_size: 16,
            test: None,
            out: out.to_owned(),
            checkpoint_every: None,
            init: None,
            freeze_layers: 0,
        }
    }
}

/// Scores of one method on one set of cells.
#[derive(Debug, Clone, Serialize)]
pub struct MethodScores {
    /// The fine-tuned model.
    pub model: ClassificationReport,
    /// Logistic regression on log1p(CP10k) counts.
    pub baseline: ClassificationReport,
}

/// What [`annotate`] wrote into `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct AnnotateReport {
    /// The input.
    pub input: PathBuf,
    /// Options used.
    pub options: AnnotateOptions,
    /// Cell types (sorted).
    pub classes: Vec<String>,
    /// Cells used for training and validation.
    pub train_cells: usize,
    /// Held-out cells.
    pub validation_cells: usize,
    /// Input genes mapped to the Geneformer vocabulary.
    pub genes_mapped: usize,
    /// Model parameters.
    pub parameters: usize,
    /// Mean loss of the last 20 pretraining steps, when pretrained.
    pub pretrain_final_loss: Option<f64>,
    /// Mean loss of the last 20 fine-tuning steps.
    pub finetune_final_loss: f64,
    /// Scores on the validation cells.
    pub validation: MethodScores,
    /// Scores on the test file, when given.
    pub test: Option<MethodScores>,
    /// Embedding metrics of the model's pooled embeddings (what its head reads) on the validation cells.
    pub validation_embedding: EmbeddingReport,
    /// Seconds per stage.
    pub seconds: Vec<(String, f64)>,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// Progress of [`annotate`].
#[derive(Debug, Clone, Copy)]
pub enum Stage<'a> {
    /// A stage starts (its name).
    Start(&'static str),
    /// A training step of the stage.
    Step(&'static str, &'a StepReport),
}

/// The labelled cells of one file, as the pipeline uses them.
#[derive(Debug, Clone)]
pub struct LabelledCells {
    /// Tokens per cell in the scheme's layout (Geneformer V2: `<cls>`, top-ranked genes,
    /// `<eos>`).
    pub tokens: Vec<Vec<u32>>,
    /// One value per token for the value-based schemes (scGPT's bins), else `None`.
    pub values: Option<Vec<Vec<f32>>>,
    /// Raw counts.
    pub counts: CsrMatrix,
    /// Cell-type label per cell.
    pub labels: Vec<String>,
    /// The file's gene ids.
    pub genes: Vec<String>,
    /// Genes mapped to the vocabulary.
    pub genes_mapped: usize,
    /// Cells in the file (kept or not).
    pub cells_in: usize,
}

/// Reads the cells of `path` that have a label in obs column `label` and at least one
/// vocabulary gene, tokenized for Geneformer V2 with the dictionaries in `dictionaries` and
/// truncated to `max_len` tokens.
///
/// # Errors
/// Unreadable files, missing dictionaries or label column, non-count matrices.
pub fn read_labelled_cells(
    path: &Path,
    label: &str,
    dictionaries: &Path,
    max_len: usize,
) -> Result<LabelledCells, Error> {
    let files = GeneformerFiles::find(dictionaries, GeneformerVersion::V2)?;
    read_labelled_cells_with(path, label, &Scheme::Geneformer { version: GeneformerVersion::V2, files }, max_len)
}

/// [`read_labelled_cells`] with any tokenization scheme: Geneformer cells are truncated to
/// `max_len` tokens (keeping V2's frame); the other schemes set their own length (scGPT's
/// `ScGptSequence::max_len`, scBERT's and xTrimoGene's gene panels) and `max_len` is unused.
///
/// # Errors
/// Unreadable files, missing vocabulary files or label column, non-count matrices.
pub fn read_labelled_cells_with(
    path: &Path,
    label: &str,
    scheme: &Scheme,
    max_len: usize,
) -> Result<LabelledCells, Error> {
    read_cells(path, Some(label), scheme, max_len, true)
}

/// Reads and tokenizes the cells of `path`: with `label`, only cells labelled in that obs
/// column (and their labels); with `keep_counts`, their raw counts too.
pub(crate) fn read_cells(
    path: &Path,
    label: Option<&str>,
    scheme: &Scheme,
    max_len: usize,
    keep_counts: bool,
) -> Result<LabelledCells, Error> {
    let truncate = match scheme {
        Scheme::Geneformer { version, .. } => Some(*version == GeneformerVersion::V2),
        _ => None,
    };
    let opts = SourceOptions { matrix: MatrixSelector::Counts, obs: ObsSelection::All, require_counts: true };
    let source = AnySource::open(path, &opts)?;
    crate::pipeline::require_counts(&source, path)?;
    let n_counts_col = source.obs_schema().index_of("n_counts").ok();
    let Prepared { cell_fn, genes_mapped, .. } = prepare_scheme(scheme, &source, n_counts_col.is_some(), None)?;
    crate::pipeline::require_mapped(&source, path, genes_mapped)?;
    let mut cells = LabelledCells {
        tokens: vec![],
        values: None,
        counts: CsrMatrix::new(source.genes().len()),
        labels: vec![],
        genes: source.genes().ids().to_vec(),
        genes_mapped,
        cells_in: source.n_cells(),
    };
    let mut key = 0u64;
    for chunk in source.chunks(1024) {
        let chunk = chunk?;
        let mut labels = match label {
            Some(label) => Some(
                chunk
                    .obs_labels(label)
                    .map_err(|e| Error::Incompatible { reason: format!("{}: {e}", path.display()) })?,
            ),
            None => None,
        };
        let n_counts = crate::pipeline::n_counts(&chunk, n_counts_col);
        for (i, n) in n_counts.iter().enumerate() {
            let cell = chunk.cell(i);
            let row = cell_fn(key, cell, *n);
            key += 1;
            // Cells without any vocabulary gene, or without a label when one is asked for,
            // cannot be used.
            let Some((ids, values)) = row else { continue };
            let l = labels.as_mut().map(|ls| ls[i].take());
            if matches!(l, Some(None)) {
                continue;
            }
            if keep_counts {
                cells.counts.push_row(cell.indices, cell.values).map_err(eval_err)?;
            }
            cells.tokens.push(match truncate {
                Some(framed) => truncate_rank_value(&ids, max_len, framed),
                None => ids,
            });
            if let Some(v) = values {
                cells.values.get_or_insert_with(Vec::new).push(v);
            }
            if let Some(Some(l)) = l {
                cells.labels.push(l);
            }
        }
    }
    Ok(cells)
}

/// Loads the Geneformer of `options.init` (a Hugging Face folder or a checkpoint of ours) and
/// checks that it reads the V2 dictionaries' `vocab_size` tokens and `max_len` positions.
fn load_pretrained<B: Backend>(
    dir: &Path,
    vocab_size: usize,
    max_len: usize,
    device: &B::Device,
) -> Result<Geneformer<B>, Error> {
    let model = if dir.join("config.json").is_file() {
        Geneformer::from_hf_dir(dir, device)?
    } else {
        let ckpt = if dir.join("latest").is_file() { Checkpoint::latest(dir)? } else { Checkpoint::open(dir)? };
        ckpt.expect_family("geneformer-mlm")?;
        let config: GeneformerConfig = serde_json::from_value(ckpt.meta.model_config.clone()).map_err(|e| {
            Error::Incompatible { reason: format!("{}: not a Geneformer configuration: {e}", ckpt.path.display()) }
        })?;
        ckpt.load_model(config.init(device), device)?
    };
    let c = &model.config;
    if c.vocab_size != vocab_size {
        return Err(Error::Incompatible {
            reason: format!(
                "{} has a vocabulary of {} tokens; the Geneformer V2 dictionaries have {vocab_size}",
                dir.display(),
                c.vocab_size
            ),
        });
    }
    if c.max_len < max_len {
        return Err(Error::Incompatible {
            reason: format!("{} has {} positions; {max_len} tokens per cell were asked for", dir.display(), c.max_len),
        });
    }
    Ok(model)
}

fn eval_err(e: scfm_eval::EvalError) -> Error {
    Error::Incompatible { reason: e.to_string() }
}

/// Runs the annotation pipeline on `input` (see the module docs) and writes into
/// `options.out`: `report.json`, `predictions.h5ad` (input copy with `obs["scfm_prediction"]`,
/// `obs["scfm_split"]` and `obsm["X_scfm_geneformer"]`), `confusion_model.png`,
/// `confusion_baseline.png`, `embedding_pca.png`.
///
/// # Errors
/// Unreadable inputs, a missing label column, a test file with other classes or genes, write
/// errors.
pub fn annotate<B: AutodiffBackend>(
    input: &Path,
    options: &AnnotateOptions,
    device: &B::Device,
    progress: &mut dyn FnMut(Stage<'_>),
) -> Result<AnnotateReport, Error> {
    let mut seconds = vec![];
    let mut clock = std::time::Instant::now();
    let mut lap = |name: &str, seconds: &mut Vec<(String, f64)>| {
        seconds.push((name.to_owned(), clock.elapsed().as_secs_f64()));
        clock = std::time::Instant::now();
    };
    let out = &options.out;
    std::fs::create_dir_all(out).map_err(|source| IoError::Io { path: out.clone(), source })?;
    progress(Stage::Start("tokenize"));
    let files = GeneformerFiles::find(&options.dictionaries, GeneformerVersion::V2)?;
    let vocab_size = scfm_tokenize::vocab::geneformer_token_dictionary(&files.token_dictionary)?.id_bound();
    // A pretrained model is checked against the dictionaries before any work is done.
    let pretrained = match &options.init {
        Some(dir) => Some(load_pretrained::<B>(dir, vocab_size, options.model.max_len, device)?),
        None => None,
    };
    let scheme = Scheme::Geneformer { version: GeneformerVersion::V2, files };
    let cells = read_labelled_cells_with(input, &options.label, &scheme, options.model.max_len)?;
    let classes = Labels::from_strings(&cells.labels);
    if classes.n_classes() < 2 {
        return Err(Error::Incompatible {
            reason: format!(
                "{}: obs column {:?} has {} class(es); need 2 or more",
                input.display(),
                options.label,
                classes.n_classes()
            ),
        });
    }
    let (train, valid) =
        stratified_split(&classes.codes, options.validation_fraction, options.seed).map_err(eval_err)?;
    let test = match &options.test {
        Some(path) => {
            let t = read_labelled_cells_with(path, &options.label, &scheme, options.model.max_len)?;
            if t.genes != cells.genes {
                return Err(Error::Incompatible {
                    reason: format!(
                        "{}: its genes differ from {}'s (same gene symbols in the same order needed)",
                        path.display(),
                        input.display()
                    ),
                });
            }
            let codes = classes
                .encode(&t.labels)
                .map_err(|e| Error::Incompatible { reason: format!("{}: {e}", path.display()) })?;
            Some((t, codes))
        }
        None => None,
    };
    lap("tokenize", &mut seconds);

    // The baseline.
    progress(Stage::Start("baseline"));
    let features = cells.counts.log1p_normalized(1e4);
    let y_train: Vec<usize> = train.iter().map(|&i| classes.codes[i]).collect();
    let lr = LogisticRegression::fit(
        &features.select_rows(&train),
        &y_train,
        classes.n_classes(),
        &LogisticRegressionConfig::default(),
    )
    .map_err(eval_err)?;
    let score = |truth: &[usize], predicted: &[usize]| {
        ClassificationReport::compute(truth, predicted, &classes.names).map_err(eval_err)
    };
    let y_valid: Vec<usize> = valid.iter().map(|&i| classes.codes[i]).collect();
    let baseline_valid = score(&y_valid, &lr.predict(&features.select_rows(&valid)).map_err(eval_err)?)?;
    let baseline_test = match &test {
        Some((t, codes)) => Some(score(codes, &lr.predict(&t.counts.log1p_normalized(1e4)).map_err(eval_err)?)?),
        None => None,
    };
    lap("baseline", &mut seconds);

    // The model.
    let m = &options.model;
    let mut encoder: Geneformer<B> = match pretrained {
        Some(model) => model,
        None => scfm_train::seeded::<B, _>(device, options.seed, || m.geneformer(vocab_size).init(device)),
    };
    let config = encoder.config.clone();
    let train_tokens: Vec<Vec<u32>> = train.iter().map(|&i| cells.tokens[i].clone()).collect();
    let tokenizer =
        serde_json::json!({"scheme": "geneformer-v2", "max_len": m.max_len, "dictionaries": options.dictionaries});
    let base = TrainOptions {
        batch_size: options.batch_size,
        seed: options.seed,
        checkpoint_every: options.checkpoint_every,
        checkpoint_dir: options.checkpoint_every.map(|_| out.join("checkpoints")),
        ..TrainOptions::default()
    };
    // One stage's training options (checkpoints in `checkpoints/<stage>`) and checkpoint meta.
    let stage = |name: &str, epochs: usize, lr: f64, family: &str, classes: &[String]| {
        let opts = TrainOptions {
            epochs,
            lr,
            checkpoint_dir: base.checkpoint_dir.as_ref().map(|d| d.join(name)),
            ..base.clone()
        };
        let meta = CheckpointMeta {
            family: family.into(),
            model_config: serde_json::to_value(&config).unwrap_or_default(),
            tokenizer: tokenizer.clone(),
            classes: classes.to_vec(),
        };
        (opts, meta)
    };
    let mut pretrain_final_loss = None;
    if options.pretrain_epochs > 0 {
        progress(Stage::Start("pretrain"));
        let objective =
            MaskedLm { cells: &train_tokens, masker: GeneformerMlm::new(vocab_size as u32, options.seed as u32) };
        let (opts, meta) = stage("pretrain", options.pretrain_epochs, options.pretrain_lr, "geneformer-mlm", &[]);
        let mut losses = vec![];
        encoder = scfm_train::train(encoder, &objective, &opts, &meta, None, device, &mut |s| {
            losses.push(s.loss);
            progress(Stage::Step("pretrain", s));
        })?;
        pretrain_final_loss = Some(tail_mean(&losses));
        lap("pretrain", &mut seconds);
    }
    progress(Stage::Start("finetune"));
    let head_seed = scfm_train::derive_seed(options.seed, 3, 0);
    let model = scfm_train::seeded::<B, _>(device, head_seed, || {
        GeneformerClassifier::new(encoder, classes.n_classes(), device)
    })
    .with_pooling(options.pooling)
    .freeze_layers(options.freeze_layers);
    let parameters = burn::module::Module::num_params(&model);
    let objective = Classification { cells: Cells::tokens(&train_tokens), classes: &y_train };
    let (opts, meta) =
        stage("finetune", options.finetune_epochs, options.finetune_lr, "geneformer-classifier", &classes.names);
    let mut losses = vec![];
    let model = scfm_train::train(model, &objective, &opts, &meta, None, device, &mut |s| {
        losses.push(s.loss);
        progress(Stage::Step("finetune", s));
    })?;
    lap("finetune", &mut seconds);

    // Predictions and embeddings of every cell.
    progress(Stage::Start("predict"));
    let model = model.valid();
    let (proba, embeddings) = predict_and_embed::<B::InnerBackend>(&model, &cells.tokens, device);
    let k = classes.n_classes();
    let predicted = argmax_rows(&proba, k);
    let model_valid = score(&y_valid, &valid.iter().map(|&i| predicted[i]).collect::<Vec<_>>())?;
    let model_test = match &test {
        Some((t, codes)) => {
            let (p, _) = predict_and_embed::<B::InnerBackend>(&model, &t.tokens, device);
            Some(score(codes, &argmax_rows(&p, k))?)
        }
        None => None,
    };
    let d = config.d_model;
    let valid_emb: Vec<f32> = valid.iter().flat_map(|&i| embeddings[i * d..(i + 1) * d].iter().copied()).collect();
    let view = EmbeddingView::new(&valid_emb, d).map_err(eval_err)?;
    let validation_embedding = EmbeddingReport::compute(view, &y_valid, None, 15, options.seed).map_err(eval_err)?;
    lap("predict", &mut seconds);

    progress(Stage::Start("write"));
    let mut written = vec![];
    let path = out.join("confusion_model.png");
    confusion_png(&path, &model_valid.confusion, "Geneformer (validation)").map_err(eval_err)?;
    written.push(path);
    let path = out.join("confusion_baseline.png");
    confusion_png(&path, &baseline_valid.confusion, "logistic regression (validation)").map_err(eval_err)?;
    written.push(path);
    let path = out.join("embedding_pca.png");
    scatter_png(&path, &pca_2d(view), &y_valid, &classes.names, "Geneformer embeddings, validation (PCA)")
        .map_err(eval_err)?;
    written.push(path);
    if input.extension().is_some_and(|e| e == "h5ad") && cells.tokens.len() == cells.cells_in {
        let names: Vec<String> = predicted.iter().map(|&c| classes.names[c].clone()).collect();
        let mut split = vec!["train".to_owned(); cells.tokens.len()];
        for &i in &valid {
            split[i] = "validation".into();
        }
        let path = out.join("predictions.h5ad");
        annotate_copy(
            input,
            &path,
            &[
                Annotation::ObsLabels { column: "scfm_prediction", labels: &names },
                Annotation::ObsLabels { column: "scfm_split", labels: &split },
                Annotation::Obsm { key: "X_scfm_geneformer", values: &embeddings, dim: d },
            ],
        )?;
        written.push(path);
    }
    let path = out.join("report.json");
    written.push(path.clone());
    lap("write", &mut seconds);
    let report = AnnotateReport {
        input: input.to_owned(),
        options: options.clone(),
        classes: classes.names.clone(),
        train_cells: train.len(),
        validation_cells: valid.len(),
        genes_mapped: cells.genes_mapped,
        parameters,
        pretrain_final_loss,
        finetune_final_loss: tail_mean(&losses),
        validation: MethodScores { model: model_valid, baseline: baseline_valid },
        test: model_test.zip(baseline_test).map(|(model, baseline)| MethodScores { model, baseline }),
        validation_embedding,
        seconds,
        files: written,
    };
    std::fs::write(&path, serde_json::to_vec_pretty(&report).expect("serialisable"))
        .map_err(|source| IoError::Io { path: path.clone(), source })?;
    Ok(report)
}

fn tail_mean(losses: &[f64]) -> f64 {
    let tail = &losses[losses.len().saturating_sub(20)..];
    tail.iter().sum::<f64>() / tail.len().max(1) as f64
}

/// Class probabilities `[cells, classes]` and pooled embeddings (last layer) `[cells, d]`.
fn predict_and_embed<B: Backend>(
    model: &GeneformerClassifier<B>,
    tokens: &[Vec<u32>],
    device: &B::Device,
) -> (Vec<f32>, Vec<f32>) {
    let lengths: Vec<usize> = tokens.iter().map(Vec::len).collect();
    let pad = model.encoder.config.pad_token_id as u32;
    let rows = scfm_train::in_batches(&lengths, 64, 16_384, |rows| {
        let batch: Vec<&[u32]> = rows.iter().map(|&r| tokens[r].as_slice()).collect();
        let (ids, padded) = TokenBatch::pad(&batch, pad).tensors::<B>(device);
        let hidden = model.encoder.hidden_state(ids, padded.clone(), model.encoder.config.n_layers);
        let emb = model.pool(hidden, padded);
        let probs = burn::tensor::activation::softmax(model.head(emb.clone()), 1);
        let (k, d) = (probs.dims()[1], emb.dims()[1]);
        let p = probs.into_data().convert::<f32>().into_vec::<f32>().unwrap_or_default();
        let e = emb.into_data().convert::<f32>().into_vec::<f32>().unwrap_or_default();
        p.chunks(k).zip(e.chunks(d)).map(|(p, e)| (p.to_vec(), e.to_vec())).collect()
    });
    let mut proba = vec![];
    let mut emb = vec![];
    for (p, e) in rows {
        proba.extend(p);
        emb.extend(e);
    }
    (proba, emb)
}
