//! # scfm — single-cell foundation models in Rust
//!
//! One facade over scfm's crates; depend on the single crates when you need only one part.
//!
//! | crate | what it does |
//! | --- | --- |
//! | [`core`] (`scfm-core`) | gene tables, CSR cell chunks with obs metadata, the `CellSource` trait |
//! | [`io`] (`scfm-io`) | h5ad / 10x readers, sharded Arrow corpora, obs filters, h5ad write-back |
//! | [`tokenize`] (`scfm-tokenize`) | upstream vocabulary files (safe pickle reader); tokenizers to come |
//!
//! ## Features
//! - `parquet`: Parquet corpus shards (`ConvertOptions::format`, `scfm convert --format parquet`).
//! - `static-hdf5`: build HDF5 from source (needs CMake ≥ 3.26) instead of linking the system
//!   `libhdf5` (Debian/Ubuntu: `apt-get install libhdf5-dev`).
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

pub use scfm_core as core;
pub use scfm_io as io;
pub use scfm_tokenize as tokenize;

pub mod pipeline;

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
}
