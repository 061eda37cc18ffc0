//! # scfm — single-cell foundation models in Rust
//!
//! One facade over scfm's crates; depend on the single crates when you need only one part.
//!
//! | crate | what it does |
//! | --- | --- |
//! | [`core`] (`scfm-core`) | gene tables, CSR cell chunks with obs metadata, the `CellSource` trait |
//! | [`io`] (`scfm-io`) | h5ad / 10x readers, sharded Arrow corpora, obs filters, h5ad write-back |
//! | [`tokenize`] (`scfm-tokenize`) | upstream vocabulary files (safe pickle reader), the tokenizers of Geneformer V1/V2, scGPT, scBERT and xTrimoGene |
//! | `models` (`scfm-models`, feature `models`) | burn models loading the released checkpoints (Geneformer, scGPT, scBERT, xTrimoGene/scFoundation) |
//! | [`eval`] (`scfm-eval`) | accuracy, macro-F1, kNN/ARI/NMI/silhouette, the logistic-regression baseline, PNG plots |
//! | `train` (`scfm-train`, feature `models`) | batching, objectives, fine-tuning, checkpoints and resume |
//! | `annotate` (feature `models`) | the cell-type annotation pipeline of `cargo run --release --example annotate` |
//! | `embed` (feature `models`) | cell embeddings of any input with a released model, written to Arrow/Parquet and h5ad |
//!
//! ## Features
//! - `parquet`: Parquet corpus shards (`ConvertOptions::format`, `scfm convert --format parquet`).
//! - `static-hdf5`: build HDF5 from source (needs CMake ≥ 3.26) instead of linking the system
//!   `libhdf5` (Debian/Ubuntu: `apt-get install libhdf5-dev`).
//! - `models`: the model zoo ([`models`]) with burn's CPU backend ([`backend::Cpu`]).
//! - `cuda`, `wgpu`: GPU backends ([`backend::Cuda`], [`backend::Wgpu`]); they imply `models`.
//!
//! ## Example: convert an h5ad file into a corpus, keeping blood cells only
//!
//! ```no_run
//! use scfm::prelude::*;
//!
//! let opts = ConvertOptions {
//!     matrix: MatrixSelector::Counts,
//!     filter: Some(ObsFilter::parse(r#"tissue == "blood""#)?),
//!     ..Default::default()
//! };
//! let manifest = convert(&["cells.h5ad".into()], "corpus".as_ref(), &opts, &mut |_| {})?;
//! println!("{} cells in {} shards", manifest.n_cells, manifest.shards.len());
//! # Ok::<(), scfm::Error>(())
//! ```

/// burn itself, at the version scfm is built with (for `Backend` bounds and devices).
#[cfg(feature = "models")]
pub use burn;
pub use scfm_core as core;
pub use scfm_eval as eval;
pub use scfm_io as io;
#[cfg(feature = "models")]
pub use scfm_models as models;
pub use scfm_tokenize as tokenize;
#[cfg(feature = "models")]
pub use scfm_train as train;

/// The burn backends scfm is built and tested with (library crates stay generic over
/// `B: Backend`; programs pick one here).
#[cfg(feature = "models")]
pub mod backend {
    /// burn's default CPU backend (burn-flex): the fastest CPU inference among burn 0.21's CPU
    /// backends on transformer shapes (docs/benchmarks.md).
    pub type Cpu = burn::backend::Flex;
    /// The CPU backend with automatic differentiation, for training.
    pub type CpuTrain = burn::backend::Autodiff<Cpu>;
    /// NVIDIA GPUs (CUDA), fp32.
    #[cfg(feature = "cuda")]
    pub type Cuda = burn::backend::Cuda;
    /// NVIDIA GPUs (CUDA) with bf16 weights and activations: for inference (`scfm embed
    /// --precision bf16`); reductions such as softmax and layer norm run in bf16 too, so
    /// embeddings differ from fp32 at the 1e-2 relative level.
    #[cfg(feature = "cuda")]
    pub type CudaBf16 = burn::backend::Cuda<burn::tensor::bf16>;
    /// The CUDA backend with automatic differentiation, for training (fp32).
    #[cfg(feature = "cuda")]
    pub type CudaTrain = burn::backend::Autodiff<Cuda>;
    /// GPUs through wgpu, fp32.
    #[cfg(feature = "wgpu")]
    pub type Wgpu = burn::backend::Wgpu;
    /// The wgpu backend with automatic differentiation, for training (fp32).
    #[cfg(feature = "wgpu")]
    pub type WgpuTrain = burn::backend::Autodiff<Wgpu>;
}

#[cfg(feature = "models")]
pub mod annotate;
#[cfg(feature = "models")]
pub mod embed;
#[cfg(feature = "models")]
pub mod family;
pub mod pipeline;
#[cfg(feature = "models")]
pub mod pretrain;
pub mod score;

/// The types most programs need.
pub mod prelude {
    pub use scfm_core::{CellChunk, CellSource, CellView, GeneIdKind, GeneTable, GeneVocab};
    pub use scfm_io::corpus::{CellSink, ConvertOptions, CorpusReader, CorpusWriter, convert};
    pub use scfm_io::{AnySource, H5adOptions, H5adSource, MatrixSelector, ObsFilter, ObsSelection, SourceOptions};

    pub use crate::Error;
}

/// Any error of the scfm crates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing data.
    #[error(transparent)]
    Io(#[from] scfm_io::IoError),
    /// Invalid domain values.
    #[error(transparent)]
    Core(#[from] scfm_core::CoreError),
    /// Vocabularies and tokenizers.
    #[error(transparent)]
    Tokenize(#[from] scfm_tokenize::TokenizeError),
    /// Training.
    #[cfg(feature = "models")]
    #[error(transparent)]
    Train(#[from] scfm_train::TrainError),
    /// Checkpoints that do not load.
    #[cfg(feature = "models")]
    #[error(transparent)]
    Model(#[from] scfm_models::ImportError),
    /// A pooling the model does not support.
    #[cfg(feature = "models")]
    #[error(transparent)]
    Pooling(#[from] scfm_models::UnsupportedPooling),
    /// Metrics, baselines and plots.
    #[error(transparent)]
    Eval(#[from] scfm_eval::EvalError),
    /// A name that is not one of the known ones (a model family, a scheme, …).
    #[error("unknown {what} {name:?}: use one of {expected}")]
    Unknown {
        /// What was named.
        what: &'static str,
        /// The name given.
        name: String,
        /// The names known.
        expected: String,
    },
    /// A model of one family where another family's is needed.
    #[cfg(feature = "models")]
    #[error("{what}: a {found} model, where a {expected} one is needed")]
    FamilyMismatch {
        /// Where the model came from (a checkpoint, a backbone).
        what: String,
        /// Its family.
        found: family::FamilyKind,
        /// The family asked for.
        expected: family::FamilyKind,
    },
    /// A checkpoint of another model than the one asked for (another family, or a classifier
    /// where a pretrained model is needed).
    #[cfg(feature = "models")]
    #[error("{}: holds a {found} model, where {expected} is needed", path.display())]
    CheckpointMismatch {
        /// The checkpoint.
        path: std::path::PathBuf,
        /// What it holds.
        found: family::CheckpointModel,
        /// What was asked for.
        expected: family::CheckpointModel,
    },
    /// A checkpoint's recorded configuration is not one of its family's.
    #[cfg(feature = "models")]
    #[error("{}: not a {family} configuration: {reason}", path.display())]
    BadConfig {
        /// The checkpoint.
        path: std::path::PathBuf,
        /// The family it should be.
        family: family::FamilyKind,
        /// What the parser said.
        reason: String,
    },
    /// A model and a tokenizer file with different vocabularies, gene panels or lengths.
    #[error("{} {model_has}; {} {tokenizer_has}", model.display(), tokenizer.display())]
    VocabularyMismatch {
        /// The model's file.
        model: std::path::PathBuf,
        /// What the model reads (`has a vocabulary of 60697 tokens`, …).
        model_has: String,
        /// The tokenizer's file.
        tokenizer: std::path::PathBuf,
        /// What the tokenizer writes.
        tokenizer_has: String,
    },
    /// A tokenized dataset of another scheme than the one asked for.
    #[error("{}: tokenized with the {found:?} scheme; {reader} reads {expected} tokens", dataset.display())]
    SchemeMismatch {
        /// The dataset.
        dataset: std::path::PathBuf,
        /// The scheme it was tokenized with.
        found: String,
        /// The scheme needed.
        expected: scfm_tokenize::SchemeKind,
        /// Who reads it (`geneformer-mlm pretraining`).
        reader: String,
    },
    /// A vocabulary file without a token the model needs.
    #[error("{}: the vocabulary has no {token}", file.display())]
    MissingToken {
        /// The vocabulary.
        file: std::path::PathBuf,
        /// The token.
        token: &'static str,
    },
    /// A training run given no device.
    #[error("no device to train on (devices is empty)")]
    NoDevice,
    /// An option a model needs and was not given.
    #[error("{}: {family} embeddings need {needs} ({option})", checkpoint.display())]
    MissingOption {
        /// The model.
        checkpoint: std::path::PathBuf,
        /// The family as papers write it.
        family: &'static str,
        /// The option (`--vocab`).
        option: &'static str,
        /// What it names.
        needs: String,
    },
    /// An option a model does not take, which would otherwise be silently ignored.
    #[error("{}: {reason}; leave out {option} ({given})", checkpoint.display())]
    UnusedOption {
        /// The model.
        checkpoint: std::path::PathBuf,
        /// The option.
        option: &'static str,
        /// What it was given.
        given: String,
        /// Why the model does not take it.
        reason: &'static str,
    },
    /// A pooling the loaded model cannot apply to its tokens.
    #[error("{pooling:?} pooling does not apply to {scheme}{why}: use one of {allowed:?}")]
    PoolingNotApplicable {
        /// What was asked for.
        pooling: crate::embed::Pooling,
        /// The model's tokens.
        scheme: scfm_tokenize::SchemeKind,
        /// Why, where the tokens say so (` (V1 has no <cls> token)`).
        why: &'static str,
        /// What applies.
        allowed: &'static [crate::embed::Pooling],
    },
    /// A token id outside the checkpoint's vocabulary (a tokenizer of another model).
    #[error("token id {token} is outside the checkpoint's vocabulary of {vocab_size}")]
    TokenOutsideVocabulary {
        /// The token id.
        token: u32,
        /// The checkpoint's vocabulary size.
        vocab_size: usize,
    },
    /// An output that would overwrite its own input.
    #[error("{}: the output would overwrite the input", path.display())]
    OverwritesInput {
        /// The path.
        path: std::path::PathBuf,
    },
    /// A thread pool that could not be started.
    #[error("cannot start {threads} tokenizer threads: {reason}")]
    Threads {
        /// Threads asked for.
        threads: usize,
        /// The system's answer.
        reason: String,
    },
    /// A label column that cannot be read or encoded.
    #[error("{}: {reason}", path.display())]
    Labels {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A label column with fewer than two classes among the usable cells.
    #[error("{}: obs column {column:?} has {classes} class(es); need 2 or more", path.display())]
    TooFewClasses {
        /// The file.
        path: std::path::PathBuf,
        /// The label column.
        column: String,
        /// Classes found.
        classes: usize,
    },
    /// Two files that must have the same genes in the same order do not.
    #[error(
        "{}: its genes differ from {}'s (same gene symbols in the same order needed)",
        path.display(),
        reference.display()
    )]
    GenesDiffer {
        /// The file.
        path: std::path::PathBuf,
        /// The file it must match.
        reference: std::path::PathBuf,
    },
    /// A tokenized dataset that cannot be trained on as it is.
    #[error("{}: {reason}", dataset.display())]
    BadDataset {
        /// The dataset folder (or its `scfm_tokenizer.json`).
        dataset: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Values a backend could not hand back as f32.
    #[error("embeddings could not be read back from the backend: {reason}")]
    TensorData {
        /// The backend's answer.
        reason: String,
    },
}
