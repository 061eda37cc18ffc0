//! Cell-type annotation end to end: labelled h5ad → seeded stratified split → the chosen
//! family's tokens → (optional) self-supervised pretraining on the training cells →
//! fine-tuning with the family's head → predictions, accuracy and macro-F1 next to a
//! logistic-regression baseline on the same split → predictions and embeddings written into
//! an h5ad copy, confusion-matrix and embedding PNGs, `report.json`.
//!
//! Every family of [`Family`] runs through the same stages; the model starts fresh (of
//! [`ModelSize`]) or from a pretrained one ([`AnnotateOptions::init`]).

use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use scfm_core::CellSource;
use scfm_eval::{
    ClassificationReport, CsrMatrix, EmbeddingReport, EmbeddingView, Labels, LogisticRegression,
    LogisticRegressionConfig, argmax_rows, confusion_png, pca_2d, scatter_png, stratified_split,
};
use scfm_io::writeback::{Annotation, annotate_copy};
use scfm_io::{AnySource, IoError, MatrixSelector, ObsSelection, SourceOptions};
use scfm_models::Pooling;
use scfm_tokenize::geneformer::GeneformerSpec;
use scfm_tokenize::{PreparedTokenizer, TokenizedCell};
use scfm_train::{
    CellClassifier, Cells, CheckpointMeta, Classification, Precision, Predictions, StepReport, TrainOptions,
};
use serde::Serialize;

use crate::Error;
use crate::family::{Backbone, ModelFamily, PretrainRun, with_value};
pub use crate::family::{Family, FamilyKind, ModelSize};
use crate::pipeline::{TokenizerSpec, prepare};

/// Options of [`annotate`].
#[derive(Debug, Clone, Serialize)]
pub struct AnnotateOptions {
    /// The obs column with the cell types.
    pub label: String,
    /// Share of each cell type held out for validation.
    pub validation_fraction: f64,
    /// Seed of the split, initialisation, batches, masking and dropout.
    pub seed: u64,
    /// The model family and its tokenizer files.
    pub family: Family,
    /// Model shape (of a fresh model; a pretrained one keeps its own).
    pub model: ModelSize,
    /// What Geneformer's classification head reads (`mean` learns much faster from scratch
    /// than upstream's `first`); the other families pool as upstream.
    pub pooling: Pooling,
    /// Self-supervised pretraining epochs over the training cells before fine-tuning, with
    /// the family's objective (0: none).
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
    /// Start from this pretrained model of the family instead of a fresh one: an upstream
    /// release (a Hugging Face Geneformer folder, a scGPT folder with `args.json`, `vocab.json`
    /// and `best_model.pt`, scBERT's `.pth`, scFoundation's `models.ckpt`) or a checkpoint of
    /// ours (`scfm pretrain`'s output folder, or one `step-N` in it). Its shape replaces
    /// `model`'s, except `max_len` (Geneformer: it must fit the position table); it must read
    /// the family's vocabulary or gene panel. `pretrain_epochs` still apply (0 to go straight
    /// to fine-tuning).
    pub init: Option<PathBuf>,
    /// Freeze the embeddings and the first this many encoder layers while fine-tuning.
    pub freeze_layers: usize,
    /// fp32, or mixed precision with bf16 passes (GPUs) for pretraining and fine-tuning.
    pub precision: Precision,
}

impl AnnotateOptions {
    /// Defaults for the data folder `data` (the shared folder with `vocab/geneformer/`): a
    /// small Geneformer, one pretraining epoch, six fine-tuning epochs.
    pub fn with_data_dir(data: &Path, out: &Path) -> Self {
        Self {
            label: "trueLabel".into(),
            validation_fraction: 0.2,
            seed: 42,
            family: Family::in_data_dir(FamilyKind::default(), data),
            model: ModelSize::default(),
            pooling: Pooling::Mean,
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
            precision: Precision::Fp32,
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
    /// Cells used for training.
    pub train_cells: usize,
    /// Held-out cells.
    pub validation_cells: usize,
    /// Input cells left out: without a label, or without any model input (no gene of the
    /// vocabulary expressed; scBERT: fewer than 200 of its genes).
    pub excluded_cells: usize,
    /// Input genes mapped to the family's vocabulary or gene panel.
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
    /// Width of the cell embeddings ([`CellClassifier::embed`]: what the head classifies).
    pub embedding_dim: usize,
    /// Embedding metrics of the model's cell embeddings on the validation cells.
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
    /// One value per token for the value-based schemes (scGPT's bins, xTrimoGene's
    /// log-normalised values), else `None`.
    pub values: Option<Vec<Vec<f32>>>,
    /// xTrimoGene: each cell's raw counts on the model's gene positions (what its pretraining
    /// down-samples); `None` for the other schemes.
    pub aligned_counts: Option<AlignedCounts>,
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
    /// The file's row of each kept cell.
    pub rows: Vec<usize>,
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
    let spec = GeneformerSpec::<2>::in_dir(dictionaries)?.at_most(max_len);
    read_labelled_cells_with(path, label, &spec.into())
}

/// [`read_labelled_cells`] with any tokenization scheme, which sets the cells' length
/// (Geneformer's `model_input_size`, scGPT's `max_len`, scBERT's and xTrimoGene's gene panels).
///
/// # Errors
/// Unreadable files, missing vocabulary files or label column, non-count matrices.
pub fn read_labelled_cells_with(path: &Path, label: &str, scheme: &TokenizerSpec) -> Result<LabelledCells, Error> {
    read_cells(path, Some(label), scheme, true)
}

/// Reads and tokenizes the cells of `path`: with `label`, only cells labelled in that obs
/// column (and their labels); with `keep_counts`, their raw counts too.
pub(crate) fn read_cells(
    path: &Path,
    label: Option<&str>,
    scheme: &TokenizerSpec,
    keep_counts: bool,
) -> Result<LabelledCells, Error> {
    let opts = SourceOptions { matrix: MatrixSelector::Counts, obs: ObsSelection::All, require_counts: true };
    let source = AnySource::open(path, &opts)?;
    crate::pipeline::require_counts(&source, path)?;
    let n_counts_col = source.obs_schema().index_of("n_counts").ok();
    let PreparedTokenizer { tokenizer, genes_mapped, .. } = prepare(scheme, &source, None, true)?;
    let layout = tokenizer.layout();
    crate::pipeline::require_mapped(&source, path, genes_mapped)?;
    let mut cells = LabelledCells {
        tokens: vec![],
        values: None,
        aligned_counts: layout.counts.then(AlignedCounts::default),
        counts: CsrMatrix::new(source.genes().len()),
        labels: vec![],
        genes: source.genes().ids().to_vec(),
        genes_mapped,
        cells_in: source.n_cells(),
        rows: vec![],
    };
    // Rows of the file read so far; a cell's row is also the key of its random draws.
    let mut rows_read = 0usize;
    for chunk in source.chunks(1024) {
        let chunk = chunk?;
        let mut labels = match label {
            Some(label) => Some(
                chunk.obs_labels(label).map_err(|e| Error::Labels { path: path.to_owned(), reason: e.to_string() })?,
            ),
            None => None,
        };
        let n_counts = crate::pipeline::n_counts(&chunk, n_counts_col, layout.uses_n_counts);
        for (i, n) in n_counts.iter().enumerate() {
            let cell = chunk.cell(i);
            let row = rows_read;
            rows_read += 1;
            let input = tokenizer.tokenize(row as u64, cell, *n);
            // Cells without any model input (no vocabulary gene; scBERT: too few genes), or
            // without a label when one is asked for, cannot be used.
            let Some(TokenizedCell { ids, values, counts }) = input.filter(|r| !r.ids.is_empty()) else { continue };
            let l = labels.as_mut().map(|ls| ls[i].take());
            if matches!(l, Some(None)) {
                continue;
            }
            if keep_counts {
                cells.counts.push_row(cell.indices, cell.values).map_err(eval_err)?;
            }
            cells.rows.push(row);
            cells.tokens.push(ids);
            if let Some(v) = values {
                cells.values.get_or_insert_with(Vec::new).push(v);
            }
            if let (Some(counts), Some(aligned)) = (counts, cells.aligned_counts.as_mut()) {
                aligned.push(counts);
            }
            if let Some(Some(l)) = l {
                cells.labels.push(l);
            }
        }
    }
    Ok(cells)
}

/// xTrimoGene's pretraining input: each cell's expressed genes as the model's gene positions,
/// ascending, with their raw counts (`XTrimoGeneTokenizer::align_counts`; integer counts are
/// exact in f32 up to 2²⁴).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlignedCounts {
    /// Gene positions per cell.
    pub positions: Vec<Vec<u32>>,
    /// Raw counts per cell, one per position.
    pub counts: Vec<Vec<f32>>,
}

impl AlignedCounts {
    /// Adds a cell from `(position, count)` pairs.
    pub fn push(&mut self, aligned: Vec<(u32, f64)>) {
        let (positions, counts) = aligned.into_iter().map(|(p, c)| (p, c as f32)).unzip();
        self.positions.push(positions);
        self.counts.push(counts);
    }

    /// The cells as xTrimoGene's pretraining reads them: positions with their counts.
    pub fn cells(&self) -> Cells<'_> {
        Cells::with_values(&self.positions, &self.counts)
    }
}

fn pick<T: Clone>(v: &[T], rows: &[usize]) -> Vec<T> {
    rows.iter().map(|&r| v[r].clone()).collect()
}

impl LabelledCells {
    /// The cells as the models read them.
    pub fn cells(&self) -> Cells<'_> {
        Cells::new(&self.tokens, self.values.as_deref())
    }

    /// The model inputs of the cells `rows` (tokens, values, aligned counts), copied.
    fn inputs(&self, rows: &[usize]) -> CellInputs {
        CellInputs {
            tokens: pick(&self.tokens, rows),
            values: self.values.as_deref().map(|v| pick(v, rows)),
            aligned_counts: self
                .aligned_counts
                .as_ref()
                .map(|a| AlignedCounts { positions: pick(&a.positions, rows), counts: pick(&a.counts, rows) }),
        }
    }

    /// What the pretraining objectives read of all cells: xTrimoGene's aligned counts, the
    /// other families' tokens (with scGPT's values).
    pub(crate) fn pretrain_cells(&self) -> Cells<'_> {
        self.aligned_counts.as_ref().map_or_else(|| self.cells(), AlignedCounts::cells)
    }
}

/// The model inputs of some of the cells of a [`LabelledCells`].
struct CellInputs {
    tokens: Vec<Vec<u32>>,
    values: Option<Vec<Vec<f32>>>,
    aligned_counts: Option<AlignedCounts>,
}

impl CellInputs {
    fn cells(&self) -> Cells<'_> {
        Cells::new(&self.tokens, self.values.as_deref())
    }

    fn pretrain_cells(&self) -> Cells<'_> {
        self.aligned_counts.as_ref().map_or_else(|| self.cells(), AlignedCounts::cells)
    }
}

fn eval_err(e: scfm_eval::EvalError) -> Error {
    Error::Eval(e)
}

/// Runs the annotation pipeline on `input` (see the module docs) and writes into
/// `options.out`: `report.json`, `predictions.h5ad` (input copy with `obs["scfm_prediction"]`,
/// `obs["scfm_split"]` (`train`, `validation`, or `excluded` for cells without a label or
/// without any model input) and `obsm["X_scfm_<family>"]`), `confusion_model.png`,
/// `confusion_baseline.png`, `embedding_pca.png`.
///
/// # Errors
/// Unreadable inputs, a missing label column, a test file with other classes or genes, a
/// pretrained model that does not fit the family's files, write errors.
pub fn annotate<B: AutodiffBackend>(
    input: &Path,
    options: &AnnotateOptions,
    device: &B::Device,
    progress: &mut dyn FnMut(Stage<'_>),
) -> Result<AnnotateReport, Error> {
    annotate_data_parallel::<B>(input, options, std::slice::from_ref(device), progress)
}

/// [`annotate`] with pretraining and fine-tuning data parallel over `devices`
/// ([`scfm_train::train_data_parallel`]): the model lives on the first device, every batch is
/// split over all of them. One device is [`annotate`] exactly.
///
/// # Errors
/// As [`annotate`]; an empty `devices` is [`Error::NoDevice`].
pub fn annotate_data_parallel<B: AutodiffBackend>(
    input: &Path,
    options: &AnnotateOptions,
    devices: &[B::Device],
    progress: &mut dyn FnMut(Stage<'_>),
) -> Result<AnnotateReport, Error> {
    let device = crate::family::model_device::<B>(devices)?;
    let mut seconds = vec![];
    let mut clock = std::time::Instant::now();
    let mut lap = |name: &str, seconds: &mut Vec<(String, f64)>| {
        seconds.push((name.to_owned(), clock.elapsed().as_secs_f64()));
        clock = std::time::Instant::now();
    };
    let out = &options.out;
    std::fs::create_dir_all(out).map_err(|source| IoError::Io { path: out.clone(), source })?;
    progress(Stage::Start("tokenize"));
    let (family, m) = (&options.family, &options.model);
    // A pretrained model is checked against the tokenizer files before any work is done.
    let backbone = match &options.init {
        Some(path) => Backbone::<B>::load(family, path, m.max_len, device)?,
        None => Backbone::fresh(family, m, options.seed, device)?,
    };
    let scheme = family.scheme(&backbone, m.max_len, options.seed)?;
    let cells = read_labelled_cells_with(input, &options.label, &scheme)?;
    let classes = Labels::from_strings(&cells.labels);
    if classes.n_classes() < 2 {
        return Err(Error::TooFewClasses {
            path: input.to_owned(),
            column: options.label.clone(),
            classes: classes.n_classes(),
        });
    }
    let (train, valid) =
        stratified_split(&classes.codes, options.validation_fraction, options.seed).map_err(eval_err)?;
    let test = match &options.test {
        Some(path) => Some(read_test_cells(path, options, &scheme, (input, &cells), &classes)?),
        None => None,
    };
    lap("tokenize", &mut seconds);

    // The baseline.
    progress(Stage::Start("baseline"));
    let y_train: Vec<usize> = train.iter().map(|&i| classes.codes[i]).collect();
    let y_valid: Vec<usize> = valid.iter().map(|&i| classes.codes[i]).collect();
    let score = |truth: &[usize], predicted: &[usize]| {
        ClassificationReport::compute(truth, predicted, &classes.names).map_err(eval_err)
    };
    let (baseline_valid, baseline_test) =
        baseline(&cells, (&train, &y_train), (&valid, &y_valid), test.as_ref(), &classes.names)?;
    lap("baseline", &mut seconds);

    // The model.
    let train_cells = cells.inputs(&train);
    let base = TrainOptions {
        batch_size: options.batch_size,
        seed: options.seed,
        checkpoint_every: options.checkpoint_every,
        checkpoint_dir: options.checkpoint_every.map(|_| out.join("checkpoints")),
        precision: options.precision,
        ..TrainOptions::default()
    };
    // One stage's training options (checkpoints in `checkpoints/<stage>`).
    let stage = |name: &str, epochs: usize, lr: f64| TrainOptions {
        epochs,
        lr,
        checkpoint_dir: base.checkpoint_dir.as_ref().map(|d| d.join(name)),
        ..base.clone()
    };
    let meta = |family: &str, classes: &[String], config: serde_json::Value| CheckpointMeta {
        family: family.into(),
        model_config: config,
        tokenizer: options.family.tokenizer_json(m.max_len),
        classes: classes.to_vec(),
    };
    let mut backbone = backbone;
    let mut pretrain_final_loss = None;
    if options.pretrain_epochs > 0 {
        progress(Stage::Start("pretrain"));
        let opts = stage("pretrain", options.pretrain_epochs, options.pretrain_lr);
        let run = PretrainRun {
            train: &opts,
            meta: meta(family.pretrained_checkpoint(), &[], backbone.config_json()),
            resume: None,
            scgpt_generative: true,
            devices,
        };
        let (trained, losses) =
            run.run(backbone, train_cells.pretrain_cells(), &mut |s| progress(Stage::Step("pretrain", s)))?;
        backbone = trained;
        pretrain_final_loss = Some(tail_mean(&losses));
        lap("pretrain", &mut seconds);
    }
    progress(Stage::Start("finetune"));
    let finetune = Finetune {
        cells: train_cells.cells(),
        classes: &y_train,
        train: stage("finetune", options.finetune_epochs, options.finetune_lr),
        meta: meta("", &classes.names, backbone.config_json()),
        freeze_layers: options.freeze_layers,
        head_pooling: options.pooling,
        all: cells.cells(),
        test: test.as_ref().map(|(t, _)| t.cells()),
        devices,
    };
    let (k, head_seed) = (classes.n_classes(), scfm_train::derive_seed(options.seed, 3, 0));
    let mut step = |s: &StepReport| progress(Stage::Step("finetune", s));
    // Each head is drawn under its own seed (the backbone's parameters exist already).
    let finetuned = with_value!(Backbone, backbone, m, F => F::finetune(&finetune, m, k, head_seed, &mut step)?);
    // `run` trains, then predicts: split its time.
    lap("finetune", &mut seconds);
    if let Some((_, total)) = seconds.pop() {
        seconds.push(("finetune".into(), finetuned.train_seconds));
        seconds.push(("predict".into(), total - finetuned.train_seconds));
    }

    // Scores and embedding metrics.
    progress(Stage::Start("score"));
    let Finetuned { all, test: test_predictions, .. } = finetuned;
    let predicted = argmax_rows(&all.proba, k);
    let model_valid = score(&y_valid, &valid.iter().map(|&i| predicted[i]).collect::<Vec<_>>())?;
    let model_test = match (&test, test_predictions) {
        (Some((_, codes)), Some(p)) => Some(score(codes, &argmax_rows(&p.proba, k))?),
        _ => None,
    };
    let d = all.dim;
    let valid_emb: Vec<f32> = valid.iter().flat_map(|&i| all.embeddings[i * d..(i + 1) * d].iter().copied()).collect();
    let view = EmbeddingView::new(&valid_emb, d).map_err(eval_err)?;
    let validation_embedding = EmbeddingReport::compute(view, &y_valid, None, 15, options.seed).map_err(eval_err)?;
    lap("score", &mut seconds);

    progress(Stage::Start("write"));
    let mut written = vec![];
    let title = family.kind().title();
    let path = out.join("confusion_model.png");
    confusion_png(&path, &model_valid.confusion, &format!("{title} (validation)")).map_err(eval_err)?;
    written.push(path);
    let path = out.join("confusion_baseline.png");
    confusion_png(&path, &baseline_valid.confusion, "logistic regression (validation)").map_err(eval_err)?;
    written.push(path);
    let path = out.join("embedding_pca.png");
    scatter_png(&path, &pca_2d(view), &y_valid, &classes.names, &format!("{title} embeddings, validation (PCA)"))
        .map_err(eval_err)?;
    written.push(path);
    if input.extension().is_some_and(|e| e == "h5ad") {
        let path = out.join("predictions.h5ad");
        write_predictions(
            input,
            &path,
            family.kind().obsm_key(),
            (&cells, &valid),
            &classes.names[..],
            (&predicted, &all),
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
        excluded_cells: cells.cells_in - cells.rows.len(),
        genes_mapped: cells.genes_mapped,
        parameters: finetuned.parameters,
        pretrain_final_loss,
        finetune_final_loss: tail_mean(&finetuned.losses),
        validation: MethodScores { model: model_valid, baseline: baseline_valid },
        test: model_test.zip(baseline_test).map(|(model, baseline)| MethodScores { model, baseline }),
        embedding_dim: d,
        validation_embedding,
        seconds,
        files: written,
    };
    std::fs::write(&path, serde_json::to_vec_pretty(&report).expect("serialisable"))
        .map_err(|source| IoError::Io { path: path.clone(), source })?;
    Ok(report)
}

/// The logistic-regression baseline on log1p CP10k counts: fitted on the training cells,
/// scored on the validation cells and on the test file's.
fn baseline(
    cells: &LabelledCells,
    (train, y_train): (&[usize], &[usize]),
    (valid, y_valid): (&[usize], &[usize]),
    test: Option<&(LabelledCells, Vec<usize>)>,
    class_names: &[String],
) -> Result<(ClassificationReport, Option<ClassificationReport>), Error> {
    let features = cells.counts.log1p_normalized(1e4);
    let config = LogisticRegressionConfig::default();
    let lr = LogisticRegression::fit(&features.select_rows(train), y_train, class_names.len(), &config)?;
    let score = |truth: &[usize], predicted: &[usize]| ClassificationReport::compute(truth, predicted, class_names);
    let valid_scores = score(y_valid, &lr.predict(&features.select_rows(valid))?)?;
    let test_scores = match test {
        Some((t, codes)) => Some(score(codes, &lr.predict(&t.counts.log1p_normalized(1e4))?)?),
        None => None,
    };
    Ok((valid_scores, test_scores))
}

/// The labelled cells of the test file `path`, tokenized with `scheme`, and their class codes;
/// its genes must be those of the input (`input`, read into `cells`) in the same order.
fn read_test_cells(
    path: &Path,
    options: &AnnotateOptions,
    scheme: &TokenizerSpec,
    (input, cells): (&Path, &LabelledCells),
    classes: &Labels,
) -> Result<(LabelledCells, Vec<usize>), Error> {
    let t = read_labelled_cells_with(path, &options.label, scheme)?;
    if t.genes != cells.genes {
        return Err(Error::GenesDiffer { path: path.to_owned(), reference: input.to_owned() });
    }
    let codes =
        classes.encode(&t.labels).map_err(|e| Error::Labels { path: path.to_owned(), reason: e.to_string() })?;
    Ok((t, codes))
}

/// A copy of `input` at `path` with each cell's predicted class (`scfm_prediction`), its split
/// (`scfm_split`: train, validation, or excluded for cells the model could not read, whose
/// prediction is empty and embedding NaN) and its embedding (`obsm[key]`).
fn write_predictions(
    input: &Path,
    path: &Path,
    key: &str,
    (cells, valid): (&LabelledCells, &[usize]),
    class_names: &[String],
    (predicted, all): (&[usize], &Predictions),
) -> Result<(), Error> {
    let (n, d) = (cells.cells_in, all.dim);
    let (mut names, mut split, mut embeddings) =
        (vec![String::new(); n], vec!["excluded".to_owned(); n], vec![f32::NAN; n * d]);
    for (i, &row) in cells.rows.iter().enumerate() {
        names[row] = class_names[predicted[i]].clone();
        split[row] = "train".into();
        embeddings[row * d..(row + 1) * d].copy_from_slice(&all.embeddings[i * d..(i + 1) * d]);
    }
    for &i in valid {
        split[cells.rows[i]] = "validation".into();
    }
    annotate_copy(
        input,
        path,
        &[
            Annotation::ObsLabels { column: "scfm_prediction", labels: &names },
            Annotation::ObsLabels { column: "scfm_split", labels: &split },
            Annotation::Obsm { key, values: &embeddings, dim: d },
        ],
    )?;
    Ok(())
}

fn tail_mean(losses: &[f64]) -> f64 {
    let tail = &losses[losses.len().saturating_sub(20)..];
    tail.iter().sum::<f64>() / tail.len().max(1) as f64
}

/// Cells per forward pass and padded tokens per forward pass when predicting.
const PREDICT_BATCH: (usize, usize) = (64, 1 << 16);

/// The fine-tuning stage, the same for every family's classifier.
pub(crate) struct Finetune<'a, B: AutodiffBackend> {
    cells: Cells<'a>,
    classes: &'a [usize],
    train: TrainOptions,
    /// Checkpoint meta; its family is the classifier's.
    meta: CheckpointMeta,
    freeze_layers: usize,
    /// What a head that pools reads ([`AnnotateOptions::pooling`]).
    pub(crate) head_pooling: Pooling,
    /// Cells to predict after training: all input cells, and the test file's.
    all: Cells<'a>,
    test: Option<Cells<'a>>,
    /// The first holds the model; more train data parallel.
    devices: &'a [B::Device],
}

/// What [`Finetune::run`] produced.
pub(crate) struct Finetuned {
    parameters: usize,
    losses: Vec<f64>,
    /// Seconds of training (the rest of the call predicted).
    train_seconds: f64,
    all: Predictions,
    test: Option<Predictions>,
}

impl<B: AutodiffBackend> Finetune<'_, B> {
    /// Builds a head with `make` on the model's device, every new parameter drawn under
    /// `head_seed` (the backbone's exist already), then [`Self::run`]s it.
    pub(crate) fn run_head<M>(
        &self,
        head_seed: u64,
        make: impl FnOnce(&B::Device) -> M,
        progress: &mut dyn FnMut(&StepReport),
    ) -> Result<Finetuned, Error>
    where
        M: CellClassifier<B> + AutodiffModule<B>,
        M::InnerModule: CellClassifier<B::InnerBackend>,
    {
        self.run(self.head(head_seed, make), progress)
    }

    /// A head built with `make` on the model's device, every new parameter drawn under
    /// `head_seed` (the backbone's exist already).
    pub(crate) fn head<M: burn::module::Module<B>>(&self, head_seed: u64, make: impl FnOnce(&B::Device) -> M) -> M {
        let device = &self.devices[0];
        scfm_train::seeded(device, head_seed, || make(device))
    }

    /// Freezes, trains and predicts with `model`.
    pub(crate) fn run<M>(&self, model: M, progress: &mut dyn FnMut(&StepReport)) -> Result<Finetuned, Error>
    where
        M: CellClassifier<B> + AutodiffModule<B>,
        M::InnerModule: CellClassifier<B::InnerBackend>,
    {
        let model = model.freeze_layers(self.freeze_layers);
        let parameters = model.num_params();
        let objective = Classification { cells: self.cells, classes: self.classes };
        let meta = CheckpointMeta { family: model.family().into(), ..self.meta.clone() };
        let mut losses = vec![];
        let started = std::time::Instant::now();
        let model =
            scfm_train::train_data_parallel(model, &objective, &self.train, &meta, None, self.devices, &mut |s| {
                losses.push(s.loss);
                progress(s);
            })?;
        let train_seconds = started.elapsed().as_secs_f64();
        let model = model.valid();
        let (batch, tokens) = PREDICT_BATCH;
        let predict = |cells| scfm_train::predict(&model, cells, batch, tokens, &self.devices[0]);
        let all = predict(self.all)?;
        let test = self.test.map(predict).transpose()?;
        Ok(Finetuned { parameters, losses, train_seconds, all, test })
    }
}
