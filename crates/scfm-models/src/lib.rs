//! The single-cell foundation models in [burn], generic over the backend, with loaders for the
//! checkpoint files users download.
//!
//! - [`layers`]: the shared building blocks (multi-head self-attention with key-padding mask,
//!   post-norm encoder layer); every family is built from them.
//! - [`geneformer`]: Geneformer V1/V2 (a BERT encoder with its masked-LM head), loaded from a
//!   Hugging Face folder, and its cell embeddings.
//! - [`scgpt`]: scGPT's `TransformerModel` (expression, MVC and classification decoders),
//!   loaded from a released folder (`args.json` + `vocab.json` + `best_model.pt`).
//! - [`checkpoint`]: readers of the tensor containers (safetensors, PyTorch zip pickles) and the strict key
//!   bookkeeping every import goes through: a missing, unexpected or mis-shaped tensor is an
//!   [`ImportError`] that names it.
//!
//! Library code never picks a backend; the `scfm` facade and the command line do.

pub mod checkpoint;
pub mod cpu;
mod error;
pub mod geneformer;
pub mod layers;
mod pooling;
pub mod scbert;
pub mod scgpt;
mod torch;
pub mod xtrimogene;

pub use error::{ImportError, TensorProblem};
pub use pooling::{Pooling, UnsupportedPooling};
