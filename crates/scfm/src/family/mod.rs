//! The model families behind one shape: a [`ModelFamily`] implementation per family, in its own
//! file of this folder, and one registry ([`registry!`]) that makes the runtime enums
//! ([`FamilyKind`], the crate's `Backbone` and the embedder's loaded model) and their dispatch.
//! Nothing outside a family's own file names the family, so a new family is a new file here
//! plus one registry line.
//!
//! | family | tokens | pretraining | fine-tuning head |
//! |---|---|---|---|
//! | Geneformer | V2 rank values | masked LM | BERT pooler + classifier |
//! | scGPT | gene ids + binned values | GEP + GEPC | `cls_decoder` on `<cls>` |
//! | scBERT | bins over 16,906 genes | masked LM over bins | conv → fc1/fc2/fc3 |
//! | xTrimoGene | log-normalised values of 19,264 genes | read-depth-aware masked regression | max-pool → BatchNorm → 2 linear |
//!
//! [`annotate`](crate::annotate), [`pretrain`](crate::pretrain) and [`embed`](crate::embed) are
//! written once over the trait: which tokenizer each family reads, the model of a
//! [`ModelSize`], the checkpoints a run may start from, each family's self-supervised
//! objective and classification head, and how it embeds cells.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use scfm_models::CellModel;
use scfm_train::{Cells, Checkpoint, CheckpointMeta, Objective, StepReport, TrainOptions};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::annotate::{Finetune, Finetuned};
use crate::embed::{EmbedModel, EmbedOptions, Pending, Pooling};
use scfm_tokenize::{SchemeKind, TokenizerSpec};

pub(crate) mod geneformer;
pub(crate) mod scbert;
pub(crate) mod scgpt;
pub(crate) mod xtrimogene;

/// The registry: every family, once. `$callback! { (args) Variant => module::Type, "name" |
/// "alias"…; … }` is called with the list; the macros below make the runtime enums and their
/// dispatch from it. `#[default]` marks the default family.
macro_rules! registry {
    ($callback:ident ! ($($args:tt)*)) => {
        $callback! { ($($args)*)
            #[default]
            Geneformer => geneformer::Geneformer, "geneformer";
            ScGpt => scgpt::ScGpt, "scgpt";
            ScBert => scbert::ScBert, "scbert";
            XTrimoGene => xtrimogene::XTrimoGene, "xtrimogene" | "scfoundation";
        }
    };
}

/// Defines [`FamilyKind`], `Backbone`, `EmbedderModel` and the [`Registered`] impls.
macro_rules! define_families {
    (() $($(#[$attr:meta])* $variant:ident => $module:ident :: $ty:ident, $name:literal $(| $alias:literal)*;)*) => {
        /// A model family: what the command line's `--family` and `--model` take and what
        /// reports and checkpoints record.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
        #[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
        #[serde(rename_all = "lowercase")]
        #[non_exhaustive]
        pub enum FamilyKind {
            $(
                #[doc = concat!("`", $name, "`.")]
                #[cfg_attr(feature = "clap", value(name = $name $(, alias = $alias)*))]
                $(#[$attr])*
                $variant,
            )*
        }

        impl FamilyKind {
            /// Every family, in registry order.
            pub const ALL: &[FamilyKind] = &[$(Self::$variant),*];

            /// The other names the family is known by (`scfoundation` for xTrimoGene).
            pub fn aliases(self) -> &'static [&'static str] {
                match self {
                    $(Self::$variant => &[$($alias),*],)*
                }
            }

            /// The family's name (`geneformer`, `scgpt`, …).
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            /// The family's name as papers write it (`Geneformer`, `scGPT`, …).
            pub fn title(self) -> &'static str {
                match self {
                    $(Self::$variant => <$module::$ty as ModelFamily>::TITLE,)*
                }
            }

            /// The obsm key cell embeddings are written under (`X_scfm_<name>`).
            pub fn obsm_key(self) -> &'static str {
                match self {
                    $(Self::$variant => concat!("X_scfm_", $name),)*
                }
            }

            /// What checkpoints of the family's model with `head` record as their model
            /// (`geneformer-mlm`, `scgpt`, `scbert-classifier`, …).
            pub fn checkpoint_tag(self, head: CheckpointHead) -> &'static str {
                match (self, head) {
                    $(
                        (Self::$variant, CheckpointHead::Pretrained) => {
                            <$module::$ty as ModelFamily>::PRETRAINED_CHECKPOINT
                        }
                        (Self::$variant, CheckpointHead::Classifier) => concat!($name, "-classifier"),
                    )*
                }
            }
        }

        /// A family's pretrained (or fresh) model, before a classification head is put on it.
        // One value per run, moved a handful of times: boxing would only add indirection.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug)]
        pub(crate) enum Backbone<B: Backend> {
            $($variant(<$module::$ty as ModelFamily>::Model<B>),)*
        }

        /// A family's model loaded for embedding, with what the family needs to embed.
        pub(crate) enum EmbedderModel<B: Backend> {
            $($variant(<$module::$ty as ModelFamily>::Embedder<B>),)*
        }

        $(
            impl Registered for $module::$ty {
                const KIND: FamilyKind = FamilyKind::$variant;

                fn backbone<B: Backend>(model: Self::Model<B>) -> Backbone<B> {
                    Backbone::$variant(model)
                }

                fn embedder<B: Backend>(model: Self::Embedder<B>) -> EmbedderModel<B> {
                    EmbedderModel::$variant(model)
                }
            }
        )*
    };
}

registry!(define_families!());

/// Defines the dispatch macros over the registry (`$d` is `$`, for the inner macros' own
/// metavariables):
/// - `with_kind!(kind, F => expr)`: `expr` for the family `kind`, with `F` its
///   [`ModelFamily`] type;
/// - `with_value!(Enum, value, m, F => expr)`: `match` over a registry enum (`Backbone`,
///   `EmbedderModel`), `expr` with `m` the family's value in `value` and `F` its type.
macro_rules! define_dispatch {
    (($d:tt) $($(#[$attr:meta])* $variant:ident => $module:ident :: $ty:ident, $name:literal $(| $alias:literal)*;)*) => {
        macro_rules! with_kind {
            ($d kind:expr, $d F:ident => $d body:expr) => {
                match $d kind {
                    $($crate::family::FamilyKind::$variant => {
                        type $d F = $crate::family::$module::$ty;
                        $d body
                    })*
                }
            };
        }

        macro_rules! with_value {
            ($d enum:ident, $d value:expr, $d m:ident, $d F:ident => $d body:expr) => {
                match $d value {
                    $($crate::family::$d enum::$variant($d m) => {
                        type $d F = $crate::family::$module::$ty;
                        $d body
                    })*
                }
            };
        }
    };
}

registry!(define_dispatch!($));

pub(crate) use {with_kind, with_value};

impl std::fmt::Display for FamilyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for FamilyKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL.iter().copied().find(|k| k.name() == s || k.aliases().contains(&s)).ok_or_else(|| Error::Unknown {
            what: "model family",
            name: s.to_owned(),
            expected: Self::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", "),
        })
    }
}

/// Which heads a checkpoint's model carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckpointHead {
    /// The family's pretraining heads ([`pretrain`](crate::pretrain::pretrain)'s output).
    Pretrained,
    /// A classification head (the fine-tuning stage of [`annotate`](crate::annotate::annotate)).
    Classifier,
}

/// What a checkpoint of ours holds: a family's model and its heads, read from the model its
/// metadata records (`CheckpointMeta::family`: `geneformer-mlm`, `scgpt-classifier`, …)
/// through the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckpointModel {
    /// The family.
    pub family: FamilyKind,
    /// Its heads.
    pub head: CheckpointHead,
}

impl CheckpointModel {
    /// The family's pretrained model.
    pub fn pretrained(family: FamilyKind) -> Self {
        Self { family, head: CheckpointHead::Pretrained }
    }

    /// The checkpoint at `checkpoint`'s model, read from its metadata.
    ///
    /// # Errors
    /// [`Error::Unknown`] for a model no registered family writes.
    pub fn of(checkpoint: &Checkpoint) -> Result<Self, Error> {
        checkpoint.meta.family.parse()
    }

    /// Refuses `checkpoint` unless it holds this model.
    ///
    /// # Errors
    /// [`Error::CheckpointMismatch`] naming both models; [`Error::Unknown`] as [`Self::of`].
    pub fn expect_in(self, checkpoint: &Checkpoint) -> Result<(), Error> {
        let found = Self::of(checkpoint)?;
        if found == self {
            return Ok(());
        }
        Err(Error::CheckpointMismatch { path: checkpoint.path.clone(), found, expected: self })
    }
}

impl std::fmt::Display for CheckpointModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.family.checkpoint_tag(self.head))
    }
}

impl std::str::FromStr for CheckpointModel {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let heads = [CheckpointHead::Pretrained, CheckpointHead::Classifier];
        let all = || FamilyKind::ALL.iter().flat_map(move |&family| heads.map(|head| Self { family, head }));
        all().find(|m| m.to_string() == s).ok_or_else(|| Error::Unknown {
            what: "checkpoint model",
            name: s.to_owned(),
            expected: all().map(|m| m.to_string()).collect::<Vec<_>>().join(", "),
        })
    }
}

/// What the registry adds to each [`ModelFamily`]: its [`FamilyKind`] and the runtime enums'
/// variants.
pub(crate) trait Registered: ModelFamily {
    /// The family's entry in the registry.
    const KIND: FamilyKind;
    /// `model` as a `Backbone`.
    fn backbone<B: Backend>(model: Self::Model<B>) -> Backbone<B>;
    /// `model` as an `EmbedderModel`.
    fn embedder<B: Backend>(model: Self::Embedder<B>) -> EmbedderModel<B>;
}

/// Where a family's training cells come from in a tokenized dataset (`scfm tokenize` output).
#[derive(Debug, Clone)]
pub(crate) struct DatasetColumns {
    /// The scheme the dataset must have been tokenized with.
    pub scheme: SchemeKind,
    /// The vocabulary file the dataset's tokenizer must have read.
    pub vocab: PathBuf,
    /// The list column of token ids.
    pub ids: &'static str,
    /// The list column of one value per id, if the family reads values.
    pub values: Option<&'static str>,
    /// Cut cells to this many tokens (the family's own cut; Geneformer).
    pub truncate: Option<usize>,
    /// A dataset without `scfm_tokenizer.json` is taken for this family's (Geneformer's own
    /// `.dataset` folders).
    pub accepts_unknown_scheme: bool,
}

impl DatasetColumns {
    /// Cells of `scheme` (tokenized from `vocab`) in the list columns `ids` and `values`,
    /// read as they are.
    pub(crate) fn new(scheme: SchemeKind, vocab: PathBuf, ids: &'static str, values: Option<&'static str>) -> Self {
        Self { scheme, vocab, ids, values, truncate: None, accepts_unknown_scheme: false }
    }
}

/// One model family: its tokenizer files, models, objectives, head and embeddings. Every
/// family implements it in its own file of this folder; the registry dispatches to it.
pub(crate) trait ModelFamily {
    /// The model before a classification head (encoder and pretraining heads).
    type Model<B: Backend>: CellModel<B> + std::fmt::Debug;
    /// A model loaded for embedding, with what the family needs to embed (Geneformer: its
    /// tokenizer version).
    type Embedder<B: Backend>;

    /// The name as papers write it (`Geneformer`).
    const TITLE: &'static str;
    /// What the tokenizer's file is called in reports (`dictionaries`, `vocab`, `genes`).
    const FILE_FIELD: &'static str;
    /// The tokenizer's file in the shared data folder.
    const DEFAULT_FILE: &'static str;
    /// The family recorded in checkpoints of its pretrained models (`geneformer-mlm`).
    const PRETRAINED_CHECKPOINT: &'static str;

    /// The tokenizer for `model` over the family's `file`, `max_len` tokens per cell.
    fn scheme<B: Backend>(
        file: &Path,
        model: &Self::Model<B>,
        max_len: usize,
        seed: u64,
    ) -> Result<TokenizerSpec, Error>;

    /// What checkpoints record of the tokenizer.
    fn tokenizer_json(file: &Path, max_len: usize) -> serde_json::Value;

    /// A fresh model of `size` for the family's `file`, every parameter drawn under `seed`.
    fn fresh<B: Backend>(file: &Path, size: &ModelSize, seed: u64, device: &B::Device)
    -> Result<Self::Model<B>, Error>;

    /// The upstream release at `path` ([`CellModel::from_upstream`]).
    fn from_upstream<B: Backend>(path: &Path, device: &B::Device) -> Result<Self::Model<B>, Error> {
        Ok(<Self::Model<B> as CellModel<B>>::from_upstream(path, device)?)
    }

    /// A model of the configuration a checkpoint of ours recorded, for its weights to be
    /// loaded into.
    fn from_config<B: Backend>(config: serde_json::Value, device: &B::Device) -> serde_json::Result<Self::Model<B>> {
        let config = serde_json::from_value(config)?;
        Ok(<Self::Model<B> as CellModel<B>>::init(&config, 0, device))
    }

    /// Checks that `model` (read from `path`) reads the tokens of `file`, `max_len` per cell.
    fn check<B: Backend>(model: &Self::Model<B>, file: &Path, path: &Path, max_len: usize) -> Result<(), Error>;

    /// The model's configuration as checkpoints record it.
    fn config_json<B: Backend>(model: &Self::Model<B>) -> serde_json::Value {
        serde_json::to_value(model.config()).expect("model configurations serialise")
    }

    /// Trains `model` with the family's self-supervised objective.
    fn pretrain<B: AutodiffBackend>(
        run: &PretrainRun<'_, B>,
        model: Self::Model<B>,
        cells: Cells<'_>,
        progress: &mut dyn FnMut(&StepReport),
    ) -> Result<(Self::Model<B>, Vec<f64>), Error>;

    /// Puts the family's head of `n_classes` on `model` (drawn under `head_seed`) and runs
    /// the fine-tuning stage with it.
    fn finetune<B: AutodiffBackend>(
        stage: &Finetune<'_, B>,
        model: Self::Model<B>,
        n_classes: usize,
        head_seed: u64,
        progress: &mut dyn FnMut(&StepReport),
    ) -> Result<Finetuned, Error>;

    /// The columns of a tokenized dataset the family trains on (`pretraining`: its objective's
    /// input; else its model input).
    fn dataset_columns(file: &Path, pretraining: bool, max_len: usize) -> Result<DatasetColumns, Error>;

    /// Loads `model` for embedding, with its tokenizer.
    fn load_embedder<B: Backend>(
        model: &EmbedModel,
        opts: &EmbedOptions,
        device: &B::Device,
    ) -> Result<(Self::Embedder<B>, TokenizerSpec), Error>;

    /// The poolings the loaded model supports, its default first, and why others are not.
    fn poolings<B: Backend>(model: &Self::Embedder<B>) -> (&'static [Pooling], &'static str);

    /// Whether embeddings are L2-normalised unless asked otherwise (upstream's default).
    const L2_NORMALIZE: bool = false;

    /// The embedding size under `pooling`.
    fn embedding_dim<B: Backend>(model: &Self::Embedder<B>, pooling: Pooling) -> usize;

    /// Whether the model can embed a cell of these tokens (a cell it cannot gets NaN).
    fn embeds<B: Backend>(_model: &Self::Embedder<B>, _pooling: Pooling, _cell: &Pending) -> bool {
        true
    }

    /// The most cells per forward pass (`None`: as many as the token budget allows).
    const MAX_CELLS_PER_PASS: Option<usize> = None;

    /// One forward pass over `batch` padded to `len` tokens: `[cells, dim]` embeddings.
    fn embed_batch<B: Backend>(
        model: &Self::Embedder<B>,
        batch: &[Pending],
        len: usize,
        pooling: Pooling,
        opts: &EmbedOptions,
        device: &B::Device,
    ) -> Result<Tensor<B, 2>, Error>;
}

/// A model family and the upstream file its tokenizer reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    kind: FamilyKind,
    file: PathBuf,
}

/// Reports record a family as `{"name": …, "<file field>": …}`.
impl Serialize for Family {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("name", self.kind.name())?;
        map.serialize_entry(with_kind!(self.kind, F => F::FILE_FIELD), &self.file)?;
        map.end()
    }
}

impl Family {
    /// The family `kind` with its tokenizer file `file`: the Geneformer V2 dictionaries'
    /// folder, a scGPT `vocab.json`, scBERT's gene list, xTrimoGene's gene index TSV.
    pub fn new(kind: FamilyKind, file: impl Into<PathBuf>) -> Self {
        Self { kind, file: file.into() }
    }

    /// The family called `name` (one of [`FamilyKind::ALL`]) with its tokenizer file `file`.
    ///
    /// # Errors
    /// [`Error::Unknown`] for an unknown name.
    pub fn named(name: &str, file: impl Into<PathBuf>) -> Result<Self, Error> {
        Ok(Self::new(name.parse()?, file))
    }

    /// The family `kind` with its tokenizer file where the shared data folder `data` keeps it
    /// (`vocab/geneformer`, `vocab/scgpt/default_cellxgene_vocab.json`,
    /// `vocab/scbert/scbert_panglao_genes_16906.txt`,
    /// `vocab/scfoundation/OS_scRNA_gene_index.19264.tsv`).
    pub fn in_data_dir(kind: FamilyKind, data: &Path) -> Self {
        Self::new(kind, data.join(with_kind!(kind, F => F::DEFAULT_FILE)))
    }

    /// Which family.
    pub fn kind(&self) -> FamilyKind {
        self.kind
    }

    /// The family's name.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// The tokenizer's file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The family of this family's pretrained models in checkpoints (`geneformer-mlm`,
    /// `scgpt`, `scbert-mlm`, `xtrimogene`).
    pub fn pretrained_checkpoint(&self) -> &'static str {
        self.kind.checkpoint_tag(CheckpointHead::Pretrained)
    }

    /// The tokenizer for `backbone`'s model (see each family's [`ModelFamily::scheme`]).
    pub(crate) fn scheme<B: Backend>(
        &self,
        backbone: &Backbone<B>,
        max_len: usize,
        seed: u64,
    ) -> Result<TokenizerSpec, Error> {
        if backbone.kind() != self.kind {
            return Err(Error::FamilyMismatch {
                what: format!("a {} backbone", backbone.kind()),
                found: backbone.kind(),
                expected: self.kind,
            });
        }
        with_value!(Backbone, backbone, m, F => F::scheme(&self.file, m, max_len, seed))
    }

    /// What checkpoints record of the tokenizer.
    pub(crate) fn tokenizer_json(&self, max_len: usize) -> serde_json::Value {
        with_kind!(self.kind, F => F::tokenizer_json(&self.file, max_len))
    }

    /// The dataset columns the family trains on.
    pub(crate) fn dataset_columns(&self, pretraining: bool, max_len: usize) -> Result<DatasetColumns, Error> {
        with_kind!(self.kind, F => F::dataset_columns(&self.file, pretraining, max_len))
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

/// The Performer of `size` (scBERT's encoder, xTrimoGene's decoder): `d_model` wide, heads of
/// `d_model / n_heads`.
pub(crate) fn performer_shape(size: &ModelSize, qkv_bias: bool) -> scfm_models::layers::PerformerShape {
    use scfm_models::layers::PerformerShape;
    let d_head = size.d_model / size.n_heads.max(1);
    PerformerShape {
        d_model: size.d_model,
        n_layers: size.n_layers,
        n_heads: size.n_heads,
        d_head,
        n_features: PerformerShape::default_n_features(d_head),
        d_ff: size.d_ff,
        qkv_bias,
    }
}

impl<B: Backend> Backbone<B> {
    /// The model's family.
    pub(crate) fn kind(&self) -> FamilyKind {
        with_value!(Backbone, self, _m, F => F::KIND)
    }

    /// A fresh model of `size` for `family`'s tokenizer files, every parameter drawn under
    /// `seed`.
    pub(crate) fn fresh(family: &Family, size: &ModelSize, seed: u64, device: &B::Device) -> Result<Self, Error> {
        with_kind!(family.kind, F => Ok(F::backbone(F::fresh(&family.file, size, seed, device)?)))
    }

    /// Loads the pretrained model at `path` and checks it against `family`'s tokenizer files
    /// and the `max_len` tokens per cell asked for. `path` is an upstream release (a Hugging
    /// Face Geneformer folder, a scGPT folder with `args.json`, scBERT's `.pth`, scFoundation's
    /// `models.ckpt`, whose cell-embedding weights are used) or a checkpoint of ours (a
    /// [`pretrain`](crate::pretrain::pretrain) output folder or one `step-N` in it).
    pub(crate) fn load(family: &Family, path: &Path, max_len: usize, device: &B::Device) -> Result<Self, Error> {
        let ours = path.is_dir() && (path.join("latest").is_file() || path.join("state.json").is_file());
        with_kind!(family.kind, F => {
            let model = if ours {
                let ckpt = if path.join("latest").is_file() { Checkpoint::latest(path)? } else { Checkpoint::open(path)? };
                CheckpointModel::pretrained(F::KIND).expect_in(&ckpt)?;
                let config = F::from_config::<B>(ckpt.meta.model_config.clone(), device).map_err(|e| {
                    Error::BadConfig { path: ckpt.path.clone(), family: F::KIND, reason: e.to_string() }
                })?;
                ckpt.load_model(config, device)?
            } else {
                F::from_upstream::<B>(path, device)?
            };
            F::check(&model, &family.file, path, max_len)?;
            Ok(F::backbone(model))
        })
    }

    /// The model's configuration as checkpoints record it.
    pub(crate) fn config_json(&self) -> serde_json::Value {
        with_value!(Backbone, self, m, F => F::config_json(m))
    }

    /// Parameters of the model.
    pub(crate) fn num_params(&self) -> usize {
        with_value!(Backbone, self, m, _F => m.num_params())
    }
}

/// The device that holds the model in a data-parallel run: the first of `devices`.
///
/// # Errors
/// [`Error::NoDevice`] when `devices` is empty.
pub(crate) fn model_device<B: AutodiffBackend>(devices: &[B::Device]) -> Result<&B::Device, Error> {
    devices.first().ok_or(Error::NoDevice)
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
        with_value!(Backbone, backbone, m, F => {
            let (m, losses) = F::pretrain(self, m, cells, progress)?;
            Ok((F::backbone(m), losses))
        })
    }

    /// Trains `model` with `objective` (data parallel over the run's devices).
    pub(crate) fn go<M: burn::module::AutodiffModule<B>, O: Objective<B, M>>(
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
        let scbert = Family::in_data_dir(FamilyKind::ScBert, &data);
        let size = ModelSize { d_model: 8, n_layers: 1, n_heads: 2, d_ff: 16, max_len: 16 };
        let backbone = Backbone::<Cpu>::fresh(&scbert, &size, 0, &Default::default()).unwrap();
        assert_eq!(backbone.kind(), FamilyKind::ScBert);
        for &other in FamilyKind::ALL.iter().filter(|&&k| k != FamilyKind::ScBert) {
            let family = Family::in_data_dir(other, &data);
            let err = family.scheme(&backbone, 16, 0).unwrap_err();
            assert!(
                matches!(err, Error::FamilyMismatch { found: FamilyKind::ScBert, expected, .. } if expected == other),
                "{err}"
            );
            assert!(err.to_string().contains("scbert") && err.to_string().contains(other.name()), "{err}");
        }
    }

    /// Every registered family, on tiny sizes: a fresh model under a seed, one step of its
    /// pretraining objective on real cells, its checkpoint saved and loaded back as the same
    /// model, the tokenizer for it, and a model of another family refused; then the loaded
    /// model fine-tuned with the family's head (encode, classify) and its cell embeddings
    /// scored and written under the family's obsm key.
    #[test]
    fn every_family_pretrains_saves_loads_back_classifies_and_embeds() {
        use crate::annotate::{AnnotateOptions, annotate};
        use crate::backend::CpuTrain;
        use crate::pretrain::{PretrainOptions, pretrain};
        let data = data_dir();
        let input = data.join("h5ad/pbmc_sorted_train_490.h5ad");
        let labelled = data.join("h5ad/scirpy_wu2020_200.h5ad");
        let device = Default::default();
        for &kind in FamilyKind::ALL {
            let out = tempfile::tempdir().unwrap();
            let mut options = PretrainOptions::new(Family::in_data_dir(kind, &data), out.path());
            options.model = ModelSize { d_model: 8, n_layers: 1, n_heads: 2, d_ff: 16, max_len: 16 };
            options.train.stop_after = Some(1);
            options.train.batch_size = 2;
            let report = pretrain::<CpuTrain>(&input, &options, &device, &mut |_| {}).unwrap();
            assert_eq!((report.steps, report.family.as_str()), (1, options.family.pretrained_checkpoint()));
            assert!(report.final_loss.is_finite(), "{kind}: loss {}", report.final_loss);
            let fresh = Backbone::<Cpu>::fresh(&options.family, &options.model, 0, &device).unwrap();
            let loaded = Backbone::<Cpu>::load(&options.family, out.path(), 16, &device).unwrap();
            assert_eq!(loaded.kind(), kind);
            assert_eq!(loaded.config_json(), fresh.config_json(), "{kind}");
            assert_eq!((loaded.num_params(), report.parameters), (fresh.num_params(), fresh.num_params()), "{kind}");
            options.family.scheme(&loaded, 16, 0).unwrap();
            for &other in FamilyKind::ALL.iter().filter(|&&k| k != kind) {
                let family = Family::in_data_dir(other, &data);
                let err = Backbone::<Cpu>::load(&family, out.path(), 16, &device).unwrap_err();
                assert!(
                    matches!(err, Error::CheckpointMismatch { found, expected, .. }
                        if found == CheckpointModel::pretrained(kind) && expected == CheckpointModel::pretrained(other)),
                    "{kind} as {other}: {err}"
                );
                assert!(err.to_string().contains(options.family.pretrained_checkpoint()), "{err}");
            }

            let annotated = tempfile::tempdir().unwrap();
            let mut opts = AnnotateOptions::with_data_dir(&data, annotated.path());
            opts.family = options.family.clone();
            opts.model = options.model.clone();
            opts.init = Some(out.path().to_owned());
            (opts.pretrain_epochs, opts.finetune_epochs, opts.batch_size) = (0, 1, 32);
            // 200 T cells of three sources: the smallest labelled file.
            opts.label = "source".into();
            // Half the cells held out: the fine-tuning epoch is what the test spends its time on.
            opts.validation_fraction = 0.5;
            opts.checkpoint_every = Some(1_000);
            let report = annotate::<CpuTrain>(&labelled, &opts, &device, &mut |_| {}).unwrap();
            // The fine-tuned model's checkpoint names the family's classifier, which the
            // registry reads back; it is not a pretrained backbone.
            let tuned = Checkpoint::latest(&annotated.path().join("checkpoints/finetune")).unwrap();
            let classifier = CheckpointModel { family: kind, head: CheckpointHead::Classifier };
            assert_eq!(CheckpointModel::of(&tuned).unwrap(), classifier, "{kind}");
            let err = Backbone::<Cpu>::load(&options.family, &tuned.path, 16, &device).unwrap_err();
            assert!(matches!(err, Error::CheckpointMismatch { found, .. } if found == classifier), "{kind}: {err}");
            assert!(report.finetune_final_loss.is_finite(), "{kind}: loss {}", report.finetune_final_loss);
            assert_eq!(report.validation.model.cells as usize, report.validation_cells, "{kind}");
            assert!(report.classes.len() >= 2 && report.embedding_dim > 0, "{kind}");
            let written = annotated.path().join("predictions.h5ad");
            assert!(report.files.contains(&written), "{kind}: {:?}", report.files);
            let obsm = scfm_io::H5adSource::open(&written).unwrap().obsm_keys().unwrap();
            assert!(obsm.iter().any(|k| k == kind.obsm_key()), "{kind}: obsm {obsm:?}");
        }
    }

    #[test]
    fn family_names_parse_and_unknown_ones_list_the_registry() {
        for &kind in FamilyKind::ALL {
            assert_eq!(kind.name().parse::<FamilyKind>().unwrap(), kind);
            assert_eq!(kind.obsm_key(), format!("X_scfm_{}", kind.name()));
            let family = Family::in_data_dir(kind, &data_dir());
            let json = serde_json::to_value(&family).unwrap();
            assert_eq!(json["name"], kind.name());
            assert_eq!(json.as_object().unwrap().len(), 2, "{json}");
        }
        let err = "scfoo".parse::<FamilyKind>().unwrap_err().to_string();
        for &kind in FamilyKind::ALL {
            assert!(err.contains(kind.name()), "{err}");
        }
    }
}
