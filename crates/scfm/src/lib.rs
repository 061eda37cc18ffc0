//! # scfm — single-cell foundation models in Rust
//!
//! One facade over scfm's crates; depend on the single crates when you need only one part.
//!
//! | crate | what it does |
//! | --- | --- |
//! | [`core`] (`scfm-core`) | gene tables, CSR cell chunks with obs metadata, the `CellSource` trait |
//! | [`io`] (`scfm-io`) | h5ad / 10x readers, sharded Arrow corpora, obs filters, h5ad write-back |
//! | [`tokenize`] (`scfm-tokenize`) | upstream vocabulary files (safe pickle reader), the four tokenizers |
//! | `models` (`scfm-models`, feature `models`) | burn models loading the released checkpoints (Geneformer, scGPT) |
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
    /// Files that do not fit together (a tokenizer vocabulary and a checkpoint, a model and
    /// an option).
    #[error("{reason}")]
    Incompatible {
        /// What does not fit.
        reason: String,
    },
}
