//! The four model families as [`annotate`](crate::annotate) and [`pretrain`](crate::pretrain)
//! build, load and pretrain them: which tokenizer each reads, the model of a [`ModelSize`], the
//! checkpoints a run may start from, and each family's self-supervised objective.
//!
//! | family | tokens | pretraining | fine-tuning head |
//! |---|---|---|---|
//! | Geneformer | V2 rank values | masked LM | BERT pooler + classifier |
//! | scGPT | gene ids + binned values | GEP + GEPC | `cls_decoder` on `<cls>` |
//! | scBERT | bins over 16,906 genes | masked LM over bins | conv → fc1/fc2/fc3 |
//! | xTrimoGene | log-normalised values of 19,264 genes | read-depth-aware masked regression | max-pool → BatchNorm → 2 linear |

use std::path::{Path, PathBuf};

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use scfm_models::geneformer::{Geneformer, GeneformerConfig};
use scfm_models::layers::{Activation, PerformerShape};
use scfm_models::scbert::{ScBert, ScBertConfig};
use scfm_models::scgpt::{ScGpt, ScGptConfig};
use scfm_models::xtrimogene::{Weights, XTrimoGene, XTrimoGeneConfig};
use scfm_tokenize::geneformer::GeneformerVersion;
use scfm_tokenize::mask::{GeneformerMlm, ScBertMask, ScGptValueMask, XTrimoGeneMask};
use scfm_tokenize::scgpt::ScGptSequence;
use scfm_tokenize::xtrimogene::DepthTarget;
use scfm_train::{
    Cells, Checkpoint, CheckpointMeta, DownSampling, MaskedLm, Objective, ScBertMaskedLm, ScGptPretraining, ScGptTask,
    StepReport, TrainOptions, XTrimoGenePretraining,
};
use serde::Serialize;

use crate::Error;
use crate::pipeline::{GeneformerFiles, Scheme, TieMode};

/// A model family and the upstream file its tokenizer reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum Family {
    /// Geneformer (BERT) over V2 rank-value tokens.
    Geneformer {
        /// Folder with the Geneformer V2 dictionaries (`*_gc104M.pkl`).
        dictionaries: PathBuf,
    },
    /// scGPT over gene ids and binned values.
    ScGpt {
        /// A scGPT `vocab.json`.
        vocab: PathBuf,
    },
    /// scBERT (Performer) over the expression bins of its gene panel.
    ScBert {
        /// The ordered gene list (`scbert_panglao_genes_16906.txt` or the gene2vec pickle).
        genes: PathBuf,
    },
    /// xTrimoGene / scFoundation over the log-normalised values of its 19,264 genes.
    XTrimoGene {
        /// `OS_scRNA_gene_index.19264.tsv`.
        genes: PathBuf,
    },
}

impl Family {
    /// The families' names, as [`Self::new`] and the command line take them.
    pub const NAMES: [&str; 4] = ["geneformer", "scgpt", "scbert", "xtrimogene"];

    /// The family called `name` (one of [`Self::NAMES`]) with its tokenizer file `file`.
    ///
    /// # Errors
    /// [`Error::Incompatible`] for an unknown name.
    pub fn new(name: &str, file: impl Into<PathBuf>) -> Result<Self, Error> {
        let file = file.into();
        Ok(match name {
            "geneformer" => Self::Geneformer { dictionaries: file },
            "scgpt" => Self::ScGpt { vocab: file },
            "scbert" => Self::ScBert { genes: file },
            "xtrimogene" => Self::XTrimoGene { genes: file },
            other => {
                return Err(Error::Incompatible {
                    reason: format!("unknown model family {other:?}: use one of {:?}", Self::NAMES),
                });
            }
        })
    }

    /// The family called `name` with its tokenizer file where the shared data folder `data`
    /// keeps it (`vocab/geneformer`, `vocab/scgpt/default_cellxgene_vocab.json`,
    /// `vocab/scbert/scbert_panglao_genes_16906.txt`,
    /// `vocab/scfoundation/OS_scRNA_gene_index.19264.tsv`).
    ///
    /// # Errors
    /// [`Error::Incompatible`] for an unknown name.
    pub fn in_data_dir(name: &str, data: &Path) -> Result<Self, Error> {
        let file = match name {
            "geneformer" => "vocab/geneformer",
            "scgpt" => "vocab/scgpt/default_cellxgene_vocab.json",
            "scbert" => "vocab/scbert/scbert_panglao_genes_16906.txt",
            _ => "vocab/scfoundation/OS_scRNA_gene_index.19264.tsv",
        };
        Self::new(name, data.join(file))
    }

    /// The family's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Geneformer { .. } => "geneformer",
            Self::ScGpt { .. } => "scgpt",
            Self::ScBert { .. } => "scbert",
            Self::XTrimoGene { .. } => "xtrimogene",
        }
    }

    /// The tokenizer's file.
    pub fn file(&self) -> &Path {
        match self {
            Self::Geneformer { dictionaries: f } | Self::ScGpt { vocab: f } => f,
            Self::ScBert { genes: f } | Self::XTrimoGene { genes: f } => f,
        }
    }

    /// The family of this family's pretrained models in checkpoints (`geneformer-mlm`,
    /// `scgpt`, `scbert-mlm`, `xtrimogene`).
    pub fn pretrained_checkpoint(&self) -> &'static str {
        match self {
            Self::Geneformer { .. } => "geneformer-mlm",
            Self::ScGpt { .. } => "scgpt",
            Self::ScBert { .. } => "scbert-mlm",
            Self::XTrimoGene { .. } => "xtrimogene",
        }
    }

    /// The tokenizer for `backbone`'s model: Geneformer V2; scGPT with the model's bins and
    /// `<cls>` value (the pad value, as upstream's pretraining), `max_len` tokens, ties broken
    /// as helical does; scBERT's panel; xTrimoGene with T = S (`f1`).
    pub(crate) fn scheme<B: Backend>(
        &self,
        backbone: &Backbone<B>,
        max_len: usize,
        seed: u64,
    ) -> Result<Scheme, Error> {
        Ok(match (self, backbone) {
            (Self::Geneformer { dictionaries }, _) => Scheme::Geneformer {
                version: GeneformerVersion::V2,
                files: GeneformerFiles::find(dictionaries, GeneformerVersion::V2)?,
            },
            (Self::ScGpt { vocab }, Backbone::ScGpt(m)) => {
                let c = &m.config;
                let sequence = ScGptSequence {
                    max_len,
                    seed: seed as u32,
                    n_bins: c.n_bins,
                    cls_value: c.pad_value,
                    ..ScGptSequence::zero_shot(c.cls_token_id as u32)
                };
                Scheme::ScGpt { vocab: vocab.clone(), sequence, ties: TieMode::Helical }
            }
            (Self::ScBert { genes }, _) => Scheme::ScBert { genes: genes.clone() },
            (Self::XTrimoGene { genes }, _) => {
                Scheme::XTrimoGene { genes: genes.clone(), target: DepthTarget::Fold(1.0) }
            }
            (Self::ScGpt { .. }, _) => {
                return Err(incompatible(format!("a {} backbone cannot read scGPT's tokens", backbone.name())));
            }
        })
    }

    /// What checkpoints record of the tokenizer.
    pub(crate) fn tokenizer_json(&self, max_len: usize) -> serde_json::Value {
        match self {
            Self::Geneformer { dictionaries } => {
                serde_json::json!({"scheme": "geneformer-v2", "max_len": max_len, "dictionaries": dictionaries})
            }
            Self::ScGpt { vocab } => {
                serde_json::json!({"scheme": "scgpt", "max_len": max_len, "vocab": vocab, "cls_value": "pad_value", "ties": "helical"})
            }
            Self::ScBert { genes } => serde_json::json!({"scheme": "scbert", "genes": genes}),
            Self::XTrimoGene { genes } => serde_json::json!({"scheme": "xtrimogene", "genes": genes, "target": "f1"}),
        }
    }
}

/// The size of a model trained from scratch. Each family reads it its own way: Geneformer's
/// BERT and scGPT's encoder directly; scBERT's Performer (`d_model` wide, heads of
/// `d_model / n_heads`); xTrimoGene's encoder and its Performer decoder alike.
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
    /// Tokens per cell: Geneformer's `<cls>`, the highest-ranked genes and `<eos>`; scGPT's
    /// `<cls>` and a sample of the expressed genes. scBERT and xTrimoGene read their whole gene
    /// panels and ignore it.
    pub max_len: usize,
}

impl Default for ModelSize {
    fn default() -> Self {
        Self { d_model: 128, n_layers: 2, n_heads: 4, d_ff: 256, max_len: 128 }
    }
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

    /// The scGPT of this size (whole-human layout: MVC decoder, flag embedding, 51 bins) over
    /// a vocabulary of `vocab_size` tokens with `<pad>` and `<cls>` at `pad` and `cls`.
    pub fn scgpt(&self, vocab_size: usize, pad: usize, cls: usize) -> ScGptConfig {
        ScGptConfig {
            vocab_size,
            pad_token_id: pad,
            cls_token_id: cls,
            d_model: self.d_model,
            n_heads: self.n_heads,
            d_hid: self.d_ff,
            n_layers: self.n_layers,
            max_seq_len: self.max_len,
            ..ScGptConfig::whole_human()
        }
    }

    fn performer(&self, qkv_bias: bool) -> PerformerShape {
        let dim_head = self.d_model / self.n_heads.max(1);
        PerformerShape {
            dim: self.d_model,
            depth: self.n_layers,
            heads: self.n_heads,
            dim_head,
            nb_features: PerformerShape::default_nb_features(dim_head),
            ff_dim: self.d_ff,
            qkv_bias,
        }
    }

    /// The scBERT of this size over `seq_len` positions (the gene panel and the trailing slot).
    pub fn scbert(&self, seq_len: usize) -> ScBertConfig {
        ScBertConfig { seq_len, performer: self.performer(false), ..ScBertConfig::released() }
    }

    /// The xTrimoGene of this size over `n_genes` genes (+ T and S), encoder and decoder alike.
    pub fn xtrimogene(&self, n_genes: usize) -> XTrimoGeneConfig {
        XTrimoGeneConfig {
            seq_len: n_genes + 2,
            encoder_dim: self.d_model,
            encoder_depth: self.n_layers,
            encoder_heads: self.n_heads,
            encoder_ff_dim: self.d_ff,
            decoder: self.performer(true),
            ..XTrimoGeneConfig::released()
        }
    }
}

/// A family's pretrained (or fresh) model, before a classification head is put on it.
// One value per run, moved a handful of times: boxing would only add indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Backbone<B: Backend> {
    Geneformer(Geneformer<B>),
    ScGpt(ScGpt<B>),
    ScBert(ScBert<B>),
    XTrimoGene(XTrimoGene<B>),
}

/// The vocabulary size, `<pad>` and `<cls>` ids of a scGPT `vocab.json` (specials appended
/// as the release does).
fn scgpt_ids(vocab: &Path) -> Result<(usize, usize, usize), Error> {
    let v = scfm_tokenize::vocab::scgpt_vocab(vocab, true)?;
    let id = |t: &str| {
        v.id(t)
            .map(|i| i as usize)
            .ok_or_else(|| Error::Incompatible { reason: format!("{}: the vocabulary has no {t}", vocab.display()) })
    };
    Ok((v.id_bound(), id("<pad>")?, id("<cls>")?))
}

fn incompatible(reason: String) -> Error {
    Error::Incompatible { reason }
}

impl<B: Backend> Backbone<B> {
    /// The model's family name, as [`Family::name`] spells it.
    fn name(&self) -> &'static str {
        match self {
            Self::Geneformer(_) => "geneformer",
            Self::ScGpt(_) => "scgpt",
            Self::ScBert(_) => "scbert",
            Self::XTrimoGene(_) => "xtrimogene",
        }
    }

    /// A fresh model of `size` for `family`'s tokenizer files, every parameter drawn under
    /// `seed`.
    pub(crate) fn fresh(family: &Family, size: &ModelSize, seed: u64, device: &B::Device) -> Result<Self, Error> {
        Ok(match family {
            Family::Geneformer { dictionaries } => {
                let files = GeneformerFiles::find(dictionaries, GeneformerVersion::V2)?;
                let vocab_size = scfm_tokenize::vocab::geneformer_token_dictionary(&files.token_dictionary)?.id_bound();
                let config = size.geneformer(vocab_size);
                Self::Geneformer(scfm_train::seeded(device, seed, || config.init(device)))
            }
            Family::ScGpt { vocab } => {
                let (n, pad, cls) = scgpt_ids(vocab)?;
                let config = size.scgpt(n, pad, cls);
                Self::ScGpt(scfm_train::seeded(device, seed, || config.init(device)))
            }
            Family::ScBert { genes } => {
                let config = size.scbert(scfm_tokenize::vocab::gene_list(genes)?.len() + 1);
                Self::ScBert(scfm_train::seeded(device, seed, || config.init(device, seed)))
            }
            Family::XTrimoGene { genes } => {
                let config = size.xtrimogene(scfm_tokenize::vocab::scfoundation_genes(genes)?.len());
                Self::XTrimoGene(scfm_train::seeded(device, seed, || config.init(device, seed)))
            }
        })
    }

    /// Loads the pretrained model at `path` and checks it against `family`'s tokenizer files
    /// and the `max_len` tokens per cell asked for. `path` is an upstream release (a Hugging
    /// Face Geneformer folder, a scGPT folder with `args.json`, scBERT's `.pth`, scFoundation's
    /// `models.ckpt`, whose cell-embedding weights are used) or a checkpoint of ours (a
    /// [`pretrain`](crate::pretrain::pretrain) output folder or one `step-N` in it).
    pub(crate) fn load(family: &Family, path: &Path, max_len: usize, device: &B::Device) -> Result<Self, Error> {
        let ours = path.is_dir() && (path.join("latest").is_file() || path.join("state.json").is_file());
        let model = if ours {
            let ckpt = if path.join("latest").is_file() { Checkpoint::latest(path)? } else { Checkpoint::open(path)? };
            ckpt.expect_family(family.pretrained_checkpoint())?;
            let config = ckpt.meta.model_config.clone();
            let bad = |e: serde_json::Error| {
                incompatible(format!("{}: not a {} configuration: {e}", ckpt.path.display(), family.name()))
            };
            match family {
                Family::Geneformer { .. } => {
                    let c: GeneformerConfig = serde_json::from_value(config).map_err(bad)?;
                    Self::Geneformer(ckpt.load_model(c.init(device), device)?)
                }
                Family::ScGpt { .. } => {
                    let c: ScGptConfig = serde_json::from_value(config).map_err(bad)?;
                    Self::ScGpt(ckpt.load_model(c.init(device), device)?)
                }
                Family::ScBert { .. } => {
                    let c: ScBertConfig = serde_json::from_value(config).map_err(bad)?;
                    Self::ScBert(ckpt.load_model(c.init(device, 0), device)?)
                }
                Family::XTrimoGene { .. } => {
                    let c: XTrimoGeneConfig = serde_json::from_value(config).map_err(bad)?;
                    Self::XTrimoGene(ckpt.load_model(c.init(device, 0), device)?)
                }
            }
        } else {
            match family {
                Family::Geneformer { .. } => Self::Geneformer(Geneformer::from_hf_dir(path, device)?),
                Family::ScGpt { .. } => Self::ScGpt(ScGpt::from_dir(path, device)?),
                Family::ScBert { .. } => Self::ScBert(ScBert::from_file(path, device)?),
                Family::XTrimoGene { .. } => {
                    Self::XTrimoGene(XTrimoGene::from_checkpoint(path, Weights::Cell, device)?)
                }
            }
        };
        model.check(family, path, max_len)?;
        Ok(model)
    }

    /// Checks that the model reads `family`'s tokens: the same vocabulary or gene panel, and
    /// (Geneformer) `max_len` positions.
    fn check(&self, family: &Family, path: &Path, max_len: usize) -> Result<(), Error> {
        let p = path.display();
        match (self, family) {
            (Self::Geneformer(m), Family::Geneformer { dictionaries }) => {
                let files = GeneformerFiles::find(dictionaries, GeneformerVersion::V2)?;
                let n = scfm_tokenize::vocab::geneformer_token_dictionary(&files.token_dictionary)?.id_bound();
                if m.config.vocab_size != n {
                    return Err(incompatible(format!(
                        "{p} has a vocabulary of {} tokens; the Geneformer V2 dictionaries have {n}",
                        m.config.vocab_size
                    )));
                }
                if m.config.max_len < max_len {
                    return Err(incompatible(format!(
                        "{p} has {} positions; {max_len} tokens per cell were asked for",
                        m.config.max_len
                    )));
                }
            }
            (Self::ScGpt(m), Family::ScGpt { vocab }) => {
                let (n, pad, cls) = scgpt_ids(vocab)?;
                let c = &m.config;
                if (c.vocab_size, c.pad_token_id, c.cls_token_id) != (n, pad, cls) {
                    return Err(incompatible(format!(
                        "{p} has a vocabulary of {} tokens (<pad> {}, <cls> {}); {} has {n} (<pad> {pad}, <cls> {cls}): \
                         tokenize with the model's own vocab.json",
                        c.vocab_size,
                        c.pad_token_id,
                        c.cls_token_id,
                        vocab.display()
                    )));
                }
            }
            (Self::ScBert(m), Family::ScBert { genes }) => {
                let n = scfm_tokenize::vocab::gene_list(genes)?.len() + 1;
                if m.config.seq_len != n {
                    return Err(incompatible(format!(
                        "{p} reads {} positions; {} has {} genes (+1 trailing slot = {n})",
                        m.config.seq_len,
                        genes.display(),
                        n - 1
                    )));
                }
            }
            (Self::XTrimoGene(m), Family::XTrimoGene { genes }) => {
                let n = scfm_tokenize::vocab::scfoundation_genes(genes)?.len();
                if m.config.n_genes() != n {
                    return Err(incompatible(format!(
                        "{p} reads {} genes; {} has {n}",
                        m.config.n_genes(),
                        genes.display()
                    )));
                }
            }
            (model, family) => {
                return Err(incompatible(format!("{p} holds a {} model, not a {} one", model.name(), family.name())));
            }
        }
        Ok(())
    }

    /// The model's configuration as checkpoints record it.
    pub(crate) fn config_json(&self) -> serde_json::Value {
        let value = match self {
            Self::Geneformer(m) => serde_json::to_value(&m.config),
            Self::ScGpt(m) => serde_json::to_value(&m.config),
            Self::ScBert(m) => serde_json::to_value(&m.config),
            Self::XTrimoGene(m) => serde_json::to_value(&m.config),
        };
        value.expect("model configurations serialise")
    }

    /// Parameters of the model.
    pub(crate) fn num_params(&self) -> usize {
        match self {
            Self::Geneformer(m) => m.num_params(),
            Self::ScGpt(m) => m.num_params(),
            Self::ScBert(m) => m.num_params(),
            Self::XTrimoGene(m) => m.num_params(),
        }
    }
}

/// The device that holds the model in a data-parallel run: the first of `devices`.
///
/// # Errors
/// [`Error::Incompatible`] when `devices` is empty.
pub(crate) fn model_device<B: AutodiffBackend>(devices: &[B::Device]) -> Result<&B::Device, Error> {
    devices.first().ok_or_else(|| Error::Incompatible { reason: "no device to train on (devices is empty)".into() })
}

/// One pretraining run: options, checkpoint meta, where to resume from.
pub(crate) struct PretrainRun<'a, B: AutodiffBackend> {
    pub train: &'a TrainOptions,
    pub meta: CheckpointMeta,
    pub resume: Option<&'a Checkpoint>,
    /// scGPT: generative pretraining (else masked values, ratio 0.4).
    pub scgpt_generative: bool,
    /// Where to train: the first device holds the model; more devices train data parallel.
    pub devices: &'a [B::Device],
}

impl<B: AutodiffBackend> PretrainRun<'_, B> {
    /// Trains `backbone` with its family's objective on `cells` (tokens, with scGPT's binned
    /// values; xTrimoGene's gene positions with their raw counts), in memory or streamed;
    /// returns the trained model and the loss of every step.
    pub(crate) fn run(
        &self,
        backbone: Backbone<B>,
        cells: Cells<'_>,
        progress: &mut dyn FnMut(&StepReport),
    ) -> Result<(Backbone<B>, Vec<f64>), Error> {
        let seed = self.train.seed as u32;
        Ok(match backbone {
            Backbone::Geneformer(m) => {
                let masker = GeneformerMlm::new(m.config.vocab_size as u32, seed);
                let (m, losses) = self.go(m, &MaskedLm { cells, masker }, progress)?;
                (Backbone::Geneformer(m), losses)
            }
            Backbone::ScGpt(mut m) => {
                let task = if self.scgpt_generative {
                    if m.flag_encoder.is_none() {
                        let device = &self.devices[0];
                        m = scfm_train::seeded(device, self.train.seed, || m.with_flag_encoder(device));
                    }
                    ScGptTask::generative(seed)
                } else {
                    ScGptTask::MaskedValues { masker: ScGptValueMask::new(0.4, seed) }
                };
                let objective = ScGptPretraining { cells, task, gepc: true };
                let (m, losses) = self.go(m, &objective, progress)?;
                (Backbone::ScGpt(m), losses)
            }
            Backbone::ScBert(m) => {
                let objective = ScBertMaskedLm { cells, masker: ScBertMask::new(seed) };
                let (m, losses) = self.go(m, &objective, progress)?;
                (Backbone::ScBert(m), losses)
            }
            Backbone::XTrimoGene(m) => {
                let objective = XTrimoGenePretraining {
                    cells,
                    masker: XTrimoGeneMask::new(seed),
                    downsample: Some(DownSampling::default()),
                };
                let (m, losses) = self.go(m, &objective, progress)?;
                (Backbone::XTrimoGene(m), losses)
            }
        })
    }

    pub(crate) fn go<M: AutodiffModule<B>, O: Objective<B, M>>(
        &self,
        model: M,
        objective: &O,
        progress: &mut dyn FnMut(&StepReport),
    ) -> Result<(M, Vec<f64>), Error> {
        let mut losses = vec![];
        let model = scfm_train::train_data_parallel(
            model,
            objective,
            self.train,
            &self.meta,
            self.resume,
            self.devices,
            &mut |s| {
                losses.push(s.loss);
                progress(s);
            },
        )?;
        Ok((model, losses))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::backend::Cpu;

    /// The shared data folder: `SCFM_DATA_DIR`, or `../shared/data` beside the repository.
    fn data_dir() -> PathBuf {
        std::env::var_os("SCFM_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
    }

    #[test]
    fn a_backbone_of_another_family_is_refused_by_name() {
        let data = data_dir();
        let scbert = Family::in_data_dir("scbert", &data).unwrap();
        let size = ModelSize { d_model: 8, n_layers: 1, n_heads: 2, d_ff: 16, max_len: 16 };
        let backbone = Backbone::<Cpu>::fresh(&scbert, &size, 0, &Default::default()).unwrap();
        for other in ["scgpt", "xtrimogene"] {
            let family = Family::in_data_dir(other, &data).unwrap();
            let err = backbone.check(&family, Path::new("ckpt"), 16).unwrap_err().to_string();
            assert!(err.contains("ckpt holds a scbert model, not a") && err.contains(other), "{err}");
        }
        let scgpt = Family::in_data_dir("scgpt", &data).unwrap();
        let err = scgpt.scheme(&backbone, 16, 0).unwrap_err().to_string();
        assert!(err.contains("a scbert backbone cannot read scGPT's tokens"), "{err}");
    }
}
