//! Domain types shared by every scfm crate.
//!
//! The data side of scfm moves cells around as [`CellChunk`]s: a block of consecutive cells
//! stored as compressed sparse rows (CSR) over a [`GeneTable`], together with the cells'
//! metadata (obs) as an Arrow [`RecordBatch`](arrow_array::RecordBatch). Every reader implements
//! [`CellSource`], so tokenizers, writers and evaluators never care where cells come from.
//!
//! This crate is tiny on purpose (Arrow arrays, serde, sha2): everything depends on it.
//!
//! ```
//! use scfm_core::{CellChunk, GeneTable};
//!
//! let genes = GeneTable::new(vec!["CD3E".into(), "MS4A1".into(), "LYZ".into()])?;
//! // Two cells: cell 0 expresses CD3E (5 UMIs) and LYZ (1), cell 1 expresses nothing.
//! let chunk = CellChunk::from_csr(
//!     vec!["AAAC-1".into(), "AAAG-1".into()],
//!     vec![0, 2, 2],
//!     vec![0, 2],
//!     vec![5.0, 1.0],
//!     genes.len(),
//! )?;
//! assert_eq!(chunk.cell(0).indices, &[0, 2]);
//! assert!(chunk.cell(1).is_empty());
//! # Ok::<(), scfm_core::CoreError>(())
//! ```

mod chunk;
mod error;
mod genes;
pub mod pickle;
mod rng;
mod source;
mod strmap;
mod vocab;

pub use chunk::{CellChunk, CellView};
pub use error::CoreError;
pub use genes::{GeneIdKind, GeneTable};
pub use rng::{NumpyPcg64, SplitMix64};
pub use source::{CellSource, Chunks};
pub use strmap::{StrMap, StringMap};
pub use vocab::GeneVocab;

/// Re-exported so that downstream crates name the same Arrow types as this crate.
pub use arrow_array;
pub use arrow_buffer;
pub use arrow_schema;
pub use arrow_select;
