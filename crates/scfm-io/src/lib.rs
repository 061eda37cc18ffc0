//! Streaming readers and writers for single-cell expression data.
//!
//! - [`H5adSource`]: `.h5ad` files written by anndata ≥ 0.7 (X, raw/X, layers; CSR, CSC or
//!   dense; any integer or float type), obs metadata as Arrow columns.
//! - [`TenxH5Source`], [`MtxSource`]: Cell Ranger v2/v3 `.h5` files and Matrix Market folders.
//! - [`corpus`]: sharded Arrow IPC corpora with a JSON manifest, written atomically and read back
//!   as a [`CellSource`](scfm_core::CellSource).
//! - [`ObsFilter`]: metadata filters such as `tissue == "blood" and disease == "normal"`.
//! - [`hf`]: tokenized datasets in the Hugging Face `datasets` `save_to_disk` layout.
//! - [`writeback`]: embeddings and predictions written into a copy of an h5ad file.
//!
//! Every reader streams: memory depends on the chunk size, not on the file (exceptions are
//! documented on the type: CSC matrices and Matrix Market text are transposed in memory).

pub mod corpus;
mod error;
mod filter;
mod h5ad;
pub mod hf;
pub mod inspect;
mod source;
mod tenx;
pub mod writeback;

pub use error::{IoError, Result};
pub use filter::ObsFilter;
pub use h5ad::{H5adOptions, H5adSource, MatrixLayout, MatrixSelector, ObsSelection, Obsm};
pub use source::{AnySource, SourceOptions};
pub use tenx::{MtxSource, TenxH5Source};
