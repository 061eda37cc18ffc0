//! Self-supervised pretraining of a model from scratch on an h5ad, 10x or corpus input
//! (`scfm pretrain`), with each family's own objective:
//!
//! - Geneformer: masked LM over V2 rank-value tokens (MODELS.md §2.8);
//! - scGPT: GEP + GEPC, generative with gene- and cell-prompt attention (§3.9) or over masked
//!   values (the integration scripts' MLM);
//! - scBERT: masked LM over expression bins (§1.7).
//!
//! Checkpoints (model, optimiser state, position) go to the output folder every
//! `checkpoint_every` steps and at the end; with `resume` a run continues from the folder's
//! latest checkpoint and ends exactly where the uninterrupted run would. `pretrain.json`
//! records the run. The cells' tokens are held in memory (the counts are not).
//!
//! ```no_run
//! use scfm::pretrain::{PretrainFamily, PretrainOptions, pretrain};
//! let family = PretrainFamily::Geneformer { dictionaries: "vocab/geneformer".into() };
//! let options = PretrainOptions::new(family, "out/pretrain");
//! let device = Default::default();
//! let report = pretrain::<scfm::backend::CpuTrain>("cells.h5ad".as_ref(), &options, &device, &mut |_| {})?;
//! println!("final loss {:.3}", report.final_loss);
//! # Ok::<(), scfm::Error>(())
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use scfm_io::IoError;
use scfm_models::geneformer::Geneformer;
use scfm_models::layers::PerformerShape;
use scfm_models::scbert::{ScBert, ScBertConfig};
use scfm_models::scgpt::{ScGpt, ScGptConfig};
use scfm_tokenize::geneformer::GeneformerVersion;
use scfm_tokenize::mask::{GeneformerMlm, ScBertMask, ScGptValueMask};
use scfm_tokenize::scgpt::ScGptSequence;
use scfm_train::{
    Cells, Checkpoint, CheckpointMeta, MaskedLm, Objective, ScBertMaskedLm, ScGptPretraining, ScGptTask, StepReport,
    TrainOptions,
};
use serde::Serialize;

use crate::Error;
use crate::annotate::{LabelledCells, ModelSize, read_cells};
use crate::pipeline::{GeneformerFiles, Scheme, TieMode};

/// The model family and the upstream files its tokenizer needs.
#[derive(Debug, Clone)]
pub enum PretrainFamily {
    /// Geneformer masked LM over V2 tokens; `dictionaries` holds the gc104M pickles.
    Geneformer {
        /// Folder with the Geneformer V2 dictionaries.
        dictionaries: PathBuf,
    },
    /// scGPT GEP + GEPC over binned values; `vocab` is a scGPT `vocab.json`.
    ScGpt {
        /// The gene vocabulary.
        vocab: PathBuf,
        /// Generative pretraining (else masked values, ratio 0.4).
        generative: bool,
    },
    /// scBERT masked LM over its 16,906-gene panel; `genes` is the ordered gene list.
    ScBert {
        /// The gene list.
        genes: PathBuf,
    },
}

impl PretrainFamily {
    /// The family as checkpoints record it.
    pub fn checkpoint_family(&self) -> &'static str {
        match self {
            Self::Geneformer { .. } => "geneformer-mlm",
            Self::ScGpt { .. } => "scgpt",
            Self::ScBert { .. } => "scbert-mlm",
        }
    }
}

/// Settings of [`pretrain`].
#[derive(Debug, Clone)]
pub struct PretrainOptions {
    /// Family and files.
    pub family: PretrainFamily,
    /// Model size (for scBERT, `d_model` is the Performer width and `max_len` is unused: it
    /// reads its whole panel; for scGPT `max_len` counts `<cls>`).
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
    /// 16, seed 42, linear decay after 10 % warm-up, a checkpoint every 500 steps.
    pub fn new(family: PretrainFamily, out: impl Into<PathBuf>) -> Self {
        Self {
            family,
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
    /// Checkpoint family (`geneformer-mlm`, `scgpt`, `scbert-mlm`).
    pub family: String,
    /// Cells trained on.
    pub cells: usize,
    /// Cells in the input.
    pub cells_in: usize,
    /// Input genes the tokenizer maps.
    pub genes_mapped: usize,
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
    let start = Instant::now();
    let m = &options.model;
    let seed = options.train.seed;
    let mut train = options.train.clone();
    train.checkpoint_dir = Some(options.out.clone());
    std::fs::create_dir_all(&options.out).map_err(|source| IoError::Io { path: options.out.clone(), source })?;
    let resume = if options.resume {
        let ckpt = Checkpoint::latest(&options.out)?;
        ckpt.expect_family(options.family.checkpoint_family())?;
        Some(ckpt)
    } else {
        None
    };
    let run = Run { options, train: &train, resume: resume.as_ref(), device };
    let (cells, parameters, losses) = match &options.family {
        PretrainFamily::Geneformer { dictionaries } => {
            let files = GeneformerFiles::find(dictionaries, GeneformerVersion::V2)?;
            let vocab_size = scfm_tokenize::vocab::geneformer_token_dictionary(&files.token_dictionary)?.id_bound();
            let scheme = Scheme::Geneformer { version: GeneformerVersion::V2, files };
            let cells = read_cells(input, None, &scheme, m.max_len, false)?;
            let config = m.geneformer(vocab_size);
            let model: Geneformer<B> = scfm_train::seeded(device, seed, || config.init(device));
            let objective =
                MaskedLm { cells: &cells.tokens, masker: GeneformerMlm::new(vocab_size as u32, seed as u32) };
            let tokenizer =
                serde_json::json!({"scheme": "geneformer-v2", "max_len": m.max_len, "dictionaries": dictionaries});
            let (parameters, losses) = run.go(model, &objective, &config, tokenizer, progress)?;
            (cells, parameters, losses)
        }
        PretrainFamily::ScGpt { vocab, generative } => {
            let v = scfm_tokenize::vocab::scgpt_vocab(vocab, true)?;
            let id = |t: &str| {
                v.id(t).map(|i| i as usize).ok_or_else(|| Error::Incompatible {
                    reason: format!("{}: the vocabulary has no {t}", vocab.display()),
                })
            };
            let config = ScGptConfig {
                vocab_size: v.id_bound(),
                pad_token_id: id("<pad>")?,
                cls_token_id: id("<cls>")?,
                d_model: m.d_model,
                n_heads: m.n_heads,
                d_hid: m.d_ff,
                n_layers: m.n_layers,
                max_seq_len: m.max_len,
                ..ScGptConfig::whole_human()
            };
            // Pretraining's `<cls>` carries the pad value (−2), as upstream.
            let sequence = ScGptSequence { max_len: m.max_len, seed: seed as u32, ..ScGptSequence::zero_shot(0) };
            let scheme = Scheme::ScGpt { vocab: vocab.clone(), sequence, ties: TieMode::Helical };
            let cells = read_cells(input, None, &scheme, m.max_len, false)?;
            let values = cells.values.as_deref().unwrap_or_default();
            let model: ScGpt<B> = scfm_train::seeded(device, seed, || config.init(device));
            let task = if *generative {
                ScGptTask::generative(seed as u32)
            } else {
                ScGptTask::MaskedValues { masker: ScGptValueMask::new(0.4, seed as u32) }
            };
            let objective = ScGptPretraining { cells: Cells::with_values(&cells.tokens, values), task, gepc: true };
            let tokenizer = serde_json::json!({"scheme": "scgpt", "max_len": m.max_len, "vocab": vocab, "cls_value": -2.0, "ties": "helical"});
            let (parameters, losses) = run.go(model, &objective, &config, tokenizer, progress)?;
            (cells, parameters, losses)
        }
        PretrainFamily::ScBert { genes } => {
            let scheme = Scheme::ScBert { genes: genes.clone() };
            let cells = read_cells(input, None, &scheme, m.max_len, false)?;
            let dim_head = m.d_model / m.n_heads.max(1);
            let config = ScBertConfig {
                seq_len: cells.tokens.first().map_or(ScBertConfig::released().seq_len, Vec::len),
                performer: PerformerShape {
                    dim: m.d_model,
                    depth: m.n_layers,
                    heads: m.n_heads,
                    dim_head,
                    nb_features: PerformerShape::default_nb_features(dim_head),
                    ff_dim: m.d_ff,
                    qkv_bias: false,
                },
                ..ScBertConfig::released()
            };
            let model: ScBert<B> = scfm_train::seeded(device, seed, || config.init(device, seed));
            let objective = ScBertMaskedLm { cells: &cells.tokens, masker: ScBertMask::new(seed as u32) };
            let tokenizer = serde_json::json!({"scheme": "scbert", "genes": genes});
            let (parameters, losses) = run.go(model, &objective, &config, tokenizer, progress)?;
            (cells, parameters, losses)
        }
    };
    let LabelledCells { tokens, genes_mapped, cells_in, .. } = cells;
    let tail = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let report = PretrainReport {
        family: options.family.checkpoint_family().into(),
        cells: tokens.len(),
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
    let json = serde_json::to_vec_pretty(&report).map_err(|e| Error::Incompatible { reason: e.to_string() })?;
    std::fs::write(&path, json).map_err(|source| IoError::Io { path, source })?;
    Ok(report)
}

/// One training run of [`pretrain`], generic over the family's model and objective.
struct Run<'a, B: AutodiffBackend> {
    options: &'a PretrainOptions,
    train: &'a TrainOptions,
    resume: Option<&'a Checkpoint>,
    device: &'a B::Device,
}

impl<B: AutodiffBackend> Run<'_, B> {
    /// Trains and returns the parameter count and the loss of every step.
    fn go<M: AutodiffModule<B>, O: Objective<B, M>>(
        &self,
        model: M,
        objective: &O,
        config: &impl Serialize,
        tokenizer: serde_json::Value,
        progress: &mut dyn FnMut(&StepReport),
    ) -> Result<(usize, Vec<f64>), Error> {
        let parameters = model.num_params();
        let meta = CheckpointMeta {
            family: self.options.family.checkpoint_family().into(),
            model_config: serde_json::to_value(config).map_err(|e| Error::Incompatible { reason: e.to_string() })?,
            tokenizer,
            classes: vec![],
        };
        let mut losses = vec![];
        scfm_train::train(model, objective, self.train, &meta, self.resume, self.device, &mut |s| {
            losses.push(s.loss);
            progress(s);
        })?;
        Ok((parameters, losses))
    }
}
