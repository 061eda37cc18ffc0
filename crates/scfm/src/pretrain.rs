//! Self-supervised pretraining of a model from scratch on an h5ad, 10x or corpus input
//! (`scfm pretrain`), with each family's own objective:
//!
//! - Geneformer: masked LM over V2 rank-value tokens (MODELS.md §2.8);
//! - scGPT: GEP + GEPC, generative with gene- and cell-prompt attention (§3.9) or over masked
//!   values (the integration scripts' MLM);
//! - scBERT: masked LM over expression bins (§1.7);
//! - xTrimoGene: read-depth-aware masked regression over its 19,264 genes (§4.10).
//!
//! Checkpoints (model, optimiser state, position) go to the output folder every
//! `checkpoint_every` steps and at the end; with `resume` a run continues from the folder's
//! latest checkpoint and ends exactly where the uninterrupted run would. `pretrain.json`
//! records the run. From an h5ad, 10x or corpus input the cells' tokens are held in memory (the
//! counts are not, except xTrimoGene's, which its objective down-samples). Every family also
//! pretrains from a tokenized dataset (`scfm tokenize --scheme geneformer-v2|scgpt|scbert|xtrimogene`,
//! or Geneformer's own `.dataset` folders): then the cells are read from the memory-mapped
//! Arrow files batch by batch ([`DatasetTokens`]), a corpus of any size trains in bounded
//! memory, and training is bit-identical to the in-memory run on the same tokens.
//!
//! ```no_run
//! use scfm::family::{Family, FamilyKind};
//! use scfm::pretrain::{PretrainOptions, pretrain};
//! let family = Family::new(FamilyKind::Geneformer, "vocab/geneformer");
//! let options = PretrainOptions::new(family, "out/pretrain");
//! let device = Default::default();
//! let report = pretrain::<scfm::backend::CpuTrain>("cells.h5ad".as_ref(), &options, &device, &mut |_| {})?;
//! println!("final loss {:.3}", report.final_loss);
//! # Ok::<(), scfm::Error>(())
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use std::borrow::Cow;

use burn::tensor::backend::AutodiffBackend;
use scfm_io::IoError;
use scfm_io::hf::HfDataset;
use scfm_tokenize::TokenizerSpec;
use scfm_train::batch::truncate_rank_value;
use scfm_train::{Cells, Checkpoint, CheckpointMeta, StepReport, TokenSource, TrainError, TrainOptions};
use serde::Serialize;

use crate::Error;
use crate::annotate::{LabelledCells, ModelSize, read_cells};
use crate::family::{Backbone, Family, PretrainRun};

/// Settings of [`pretrain`].
#[derive(Debug, Clone)]
pub struct PretrainOptions {
    /// Family and tokenizer files.
    pub family: Family,
    /// scGPT: generative pretraining with gene- and cell-prompt attention (else masked values,
    /// ratio 0.4, as the integration scripts).
    pub scgpt_generative: bool,
    /// Model size (see [`ModelSize`] for how each family reads it).
    pub model: ModelSize,
    /// Optimisation (epochs, learning rate, batch size, seed, checkpoint interval); the
    /// checkpoint folder is `out`.
    pub train: TrainOptions,
    /// Output folder: checkpoints and `pretrain.json`.
    pub out: PathBuf,
    /// Continue from the latest checkpoint in `out`.
    pub resume: bool,
}

impl PretrainOptions {
    /// Defaults: the annotation example's model size, 1 epoch, learning rate 1e-3, batch
    /// 16, seed 42, linear decay after 10 % warm-up, a checkpoint every 500 steps, generative
    /// scGPT pretraining.
    pub fn new(family: Family, out: impl Into<PathBuf>) -> Self {
        Self {
            family,
            scgpt_generative: true,
            model: ModelSize::default(),
            train: TrainOptions { lr: 1e-3, batch_size: 16, checkpoint_every: Some(500), ..TrainOptions::default() },
            out: out.into(),
            resume: false,
        }
    }
}

/// What [`pretrain`] did (also written to `pretrain.json`).
#[derive(Debug, Clone, Serialize)]
pub struct PretrainReport {
    /// Checkpoint family (`geneformer-mlm`, `scgpt`, `scbert-mlm`, `xtrimogene`).
    pub family: String,
    /// Cells trained on.
    pub cells: usize,
    /// Cells in the input.
    pub cells_in: usize,
    /// Input genes the tokenizer maps (`None` for a tokenized dataset without scfm's
    /// `scfm_tokenizer.json`).
    pub genes_mapped: Option<usize>,
    /// Model parameters.
    pub parameters: usize,
    /// Optimiser steps of this call.
    pub steps: u64,
    /// Mean loss of the first steps of this call (up to 10).
    pub first_loss: f64,
    /// Mean loss of the last steps of this call (up to 10).
    pub final_loss: f64,
    /// Wall-clock seconds (tokenization included).
    pub seconds: f64,
    /// The final checkpoint.
    pub checkpoint: PathBuf,
}

/// Pretrains the family's model on the cells of `input`; see the module docs.
///
/// # Errors
/// Unreadable input or vocabulary files, no mapped genes, invalid settings, checkpoint
/// errors (among them resuming a checkpoint of another family).
pub fn pretrain<B: AutodiffBackend>(
    input: &Path,
    options: &PretrainOptions,
    device: &B::Device,
    progress: &mut dyn FnMut(&StepReport),
) -> Result<PretrainReport, Error> {
    pretrain_data_parallel::<B>(input, options, std::slice::from_ref(device), progress)
}

/// [`pretrain`] data parallel over `devices` ([`scfm_train::train_data_parallel`]): the model
/// lives on the first device, every batch is split over all of them. One device is
/// [`pretrain`] exactly.
///
/// # Errors
/// As [`pretrain`]; an empty `devices` is [`Error::NoDevice`].
pub fn pretrain_data_parallel<B: AutodiffBackend>(
    input: &Path,
    options: &PretrainOptions,
    devices: &[B::Device],
    progress: &mut dyn FnMut(&StepReport),
) -> Result<PretrainReport, Error> {
    let device = crate::family::model_device::<B>(devices)?;
    let start = Instant::now();
    let m = &options.model;
    let mut train = options.train.clone();
    train.checkpoint_dir = Some(options.out.clone());
    std::fs::create_dir_all(&options.out).map_err(|source| IoError::Io { path: options.out.clone(), source })?;
    let family = &options.family;
    let resume = if options.resume {
        let ckpt = Checkpoint::latest(&options.out)?;
        crate::family::CheckpointModel::pretrained(family.kind()).expect_in(&ckpt)?;
        Some(ckpt)
    } else {
        None
    };
    let backbone = Backbone::<B>::fresh(family, m, train.seed, device)?;
    let parameters = backbone.num_params();
    let dataset =
        if HfDataset::is_dataset(input) { Some(DatasetTokens::open(input, family, m.max_len)?) } else { None };
    let meta = CheckpointMeta {
        family: family.pretrained_checkpoint().into(),
        model_config: backbone.config_json(),
        tokenizer: dataset.as_ref().map_or_else(|| family.tokenizer_json(m.max_len), DatasetTokens::tokenizer_json),
        classes: vec![],
    };
    let run = PretrainRun {
        train: &train,
        meta,
        resume: resume.as_ref(),
        scgpt_generative: options.scgpt_generative,
        devices,
    };
    let (losses, cells, cells_in, genes_mapped) = if let Some(dataset) = dataset {
        let (_, losses) = run.run(backbone, Cells::streamed(&dataset), progress)?;
        (losses, dataset.n_cells(), dataset.cells_in, dataset.genes_mapped)
    } else {
        let scheme = family.scheme(&backbone, m.max_len, train.seed)?;
        let cells = read_cells(input, None, &scheme, false)?;
        let (_, losses) = run.run(backbone, cells.pretrain_cells(), progress)?;
        let LabelledCells { tokens, genes_mapped, cells_in, .. } = cells;
        (losses, tokens.len(), cells_in, Some(genes_mapped))
    };
    let tail = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let report = PretrainReport {
        family: family.pretrained_checkpoint().into(),
        cells,
        cells_in,
        genes_mapped,
        parameters,
        steps: losses.len() as u64,
        first_loss: tail(&losses[..losses.len().min(10)]),
        final_loss: tail(&losses[losses.len().saturating_sub(10)..]),
        seconds: start.elapsed().as_secs_f64(),
        checkpoint: Checkpoint::latest_path(&options.out)?,
    };
    let path = options.out.join("pretrain.json");
    let json = serde_json::to_vec_pretty(&report).expect("reports serialise");
    std::fs::write(&path, json).map_err(|source| IoError::Io { path, source })?;
    Ok(report)
}

/// The cells of a tokenized dataset (a Hugging Face `save_to_disk` folder, as `scfm tokenize`
/// writes it) as a family's pretraining ([`Self::open`]) or its models and classification
/// heads ([`Self::open_model_input`]) read them, from the memory-mapped Arrow files one cell at
/// a time; only the list offsets are held in memory.
///
/// | family | scheme | ids | values |
/// | --- | --- | --- | --- |
/// | Geneformer | `geneformer-v2` (or Geneformer's own datasets) | `input_ids`, cut to `max_len` the way Geneformer's tokenizer cuts them (the highest-ranked genes, `<cls>` … `<eos>` kept) | — |
/// | scGPT | `scgpt` | `input_ids` | `values` (bins) |
/// | scBERT | `scbert` | `input_ids` (bins) | — |
/// | xTrimoGene, pretraining | `xtrimogene` | `count_positions` | `counts` (raw, down-sampled by the objective) |
/// | xTrimoGene, model input | `xtrimogene` | `input_ids` (encoder positions, T and S) | `values` |
///
/// Fine-tuning from a dataset streams too: `scfm tokenize --obs LABEL` carries the labels,
/// [`Self::labels`] reads them, and `scfm_train::Subset` views a training split.
///
/// The scheme comes from `scfm_tokenizer.json`; a dataset without one is taken for a Geneformer
/// V2 dataset. When the vocabulary file recorded there still exists it must equal the family's.
#[derive(Debug)]
pub struct DatasetTokens {
    data: HfDataset,
    ids: &'static str,
    values: Option<&'static str>,
    /// Geneformer: cut cells to this many tokens.
    truncate: Option<usize>,
    lengths: Vec<usize>,
    max_token: Option<u32>,
    /// What checkpoints record of the tokenizer.
    tokenizer: serde_json::Value,
    /// Cells the tokenizer read (from `scfm_tokenizer.json`; else the dataset's rows).
    pub cells_in: usize,
    /// Input genes the tokenizer mapped (from `scfm_tokenizer.json`).
    pub genes_mapped: Option<usize>,
}

impl DatasetTokens {
    /// Opens the dataset in `dir` for `family`'s pretraining and reads every cell once: ids are
    /// integers without nulls or negative values, values float32 without nulls, one per id. So
    /// reading them during training cannot fail.
    ///
    /// # Errors
    /// Unreadable or malformed datasets; a dataset tokenized with another scheme or another
    /// vocabulary file than `family`'s; an empty dataset.
    pub fn open(dir: &Path, family: &Family, max_len: usize) -> Result<Self, Error> {
        Self::open_for(dir, family, max_len, true)
    }

    /// Opens the dataset in `dir` as `family`'s models read it (classification, embeddings),
    /// checked as [`Self::open`] checks it; only xTrimoGene reads other columns than for
    /// pretraining (its encoder input instead of the raw counts).
    ///
    /// # Errors
    /// As [`Self::open`].
    pub fn open_model_input(dir: &Path, family: &Family, max_len: usize) -> Result<Self, Error> {
        Self::open_for(dir, family, max_len, false)
    }

    /// The string column `column` of every cell (`None` at nulls), e.g. cell-type labels that
    /// `scfm tokenize --obs` carried.
    ///
    /// # Errors
    /// An unknown or non-string column.
    pub fn labels(&self, column: &str) -> Result<Vec<Option<String>>, Error> {
        Ok(self.data.strings(column)?)
    }

    fn open_for(dir: &Path, family: &Family, max_len: usize, pretraining: bool) -> Result<Self, Error> {
        let columns = family.dataset_columns(pretraining, max_len)?;
        let (expected, vocab, ids, values, truncate) =
            (columns.scheme, columns.vocab, columns.ids, columns.values, columns.truncate);
        let incompatible = |reason: String| Error::BadDataset { dataset: dir.to_owned(), reason };
        let (mut cells_in, mut genes_mapped, mut settings) = (None, None, serde_json::Value::Null);
        let spec = dir.join("scfm_tokenizer.json");
        if spec.is_file() {
            let bytes = std::fs::read(&spec).map_err(|source| IoError::Io { path: spec.clone(), source })?;
            let report: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| Error::BadDataset { dataset: spec.clone(), reason: e.to_string() })?;
            // The tokenizer as a value (datasets of 2026-12-07 on), else as older reports name it.
            let (found, recorded) = match report.get("spec") {
                Some(value) => {
                    let spec: TokenizerSpec = serde_json::from_value(value.clone()).map_err(|e| Error::BadDataset {
                        dataset: spec.clone(),
                        reason: format!("not a tokenizer spec: {e}"),
                    })?;
                    (spec.name().to_owned(), Some(spec.vocabulary().to_owned()))
                }
                None => {
                    let settings = &report["settings"];
                    let recorded =
                        [&settings["vocab"], &settings["genes"], &settings["dictionaries"]["token_dictionary"]]
                            .into_iter()
                            .find_map(|v| v.as_str().map(PathBuf::from));
                    (report["scheme"].as_str().unwrap_or_default().to_owned(), recorded)
                }
            };
            if found != expected.name() {
                return Err(Error::SchemeMismatch {
                    dataset: dir.to_owned(),
                    found,
                    expected,
                    reader: format!("{} pretraining", family.pretrained_checkpoint()),
                });
            }
            if let Some(recorded) = recorded.filter(|p| p.is_file())
                && !same_file_contents(&recorded, &vocab)?
            {
                return Err(incompatible(format!(
                    "tokenized with {}, which differs from the family's {}",
                    recorded.display(),
                    vocab.display()
                )));
            }
            cells_in = report["cells_in"].as_u64().map(|n| n as usize);
            genes_mapped = report["genes_mapped"].as_u64().map(|n| n as usize);
            settings = report["settings"].clone();
        } else if !columns.accepts_unknown_scheme {
            return Err(incompatible(format!(
                "no scfm_tokenizer.json: {} reads only datasets of a known scheme; tokenize with `scfm tokenize --scheme {expected}`",
                family.kind().title()
            )));
        }
        let data = HfDataset::open(dir)?;
        if data.is_empty() {
            return Err(incompatible("the dataset holds no cells".into()));
        }
        let mut max_token = None;
        for row in 0..data.len() {
            let cell = data.ids(ids, row)?;
            let cell = cut(cell, truncate);
            max_token = max_token.max(cell.iter().max().copied());
            if let Some(column) = values {
                let n = data.floats(column, row)?.len();
                if n != cell.len() {
                    return Err(incompatible(format!("row {row} has {} {ids} but {n} {column}", cell.len())));
                }
            }
        }
        let lengths = data.list_lengths(ids)?.into_iter().map(|l| truncate.map_or(l, |m| l.min(m))).collect();
        let tokenizer = serde_json::json!({
            "scheme": expected.name(), "dataset": dir, "settings": settings, "max_len": truncate,
        });
        Ok(Self {
            tokenizer,
            cells_in: cells_in.unwrap_or(data.len()),
            genes_mapped,
            data,
            ids,
            values,
            truncate,
            lengths,
            max_token,
        })
    }

    /// What checkpoints record of the tokenizer: the scheme, the dataset folder, the settings
    /// from its `scfm_tokenizer.json` and Geneformer's cut.
    pub fn tokenizer_json(&self) -> serde_json::Value {
        self.tokenizer.clone()
    }
}

/// A cell's ids as training reads them: Geneformer's cut to `truncate` tokens (the
/// highest-ranked genes, V2's `<cls>` … `<eos>` frame kept), the other families' as stored.
fn cut(ids: Vec<u32>, truncate: Option<usize>) -> Vec<u32> {
    match truncate {
        Some(max_len) => truncate_rank_value(ids, max_len, true),
        None => ids,
    }
}

/// Whether two files hold the same bytes.
fn same_file_contents(a: &Path, b: &Path) -> Result<bool, Error> {
    let read = |p: &Path| std::fs::read(p).map_err(|source| IoError::Io { path: p.to_owned(), source });
    Ok(read(a)? == read(b)?)
}

impl TokenSource for DatasetTokens {
    fn n_cells(&self) -> usize {
        self.data.len()
    }
    fn lengths(&self) -> Vec<usize> {
        self.lengths.clone()
    }
    fn tokens(&self, cell: usize) -> Cow<'_, [u32]> {
        let ids = self.data.ids(self.ids, cell).expect("every cell was read when the dataset was opened");
        Cow::Owned(cut(ids, self.truncate))
    }
    fn has_values(&self) -> bool {
        self.values.is_some()
    }
    fn values(&self, cell: usize) -> Option<Cow<'_, [f32]>> {
        let column = self.values?;
        Some(Cow::Owned(self.data.floats(column, cell).expect("every cell was read when the dataset was opened")))
    }
    fn max_token(&self) -> Option<u32> {
        self.max_token
    }
    /// Checked when the dataset was opened.
    fn check_values(&self) -> Result<(), TrainError> {
        Ok(())
    }
}
