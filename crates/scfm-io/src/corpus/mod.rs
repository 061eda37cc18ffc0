//! Sharded corpora: one row per cell (`cell_id`, `gene_index: list<u32>`,
//! `counts: list<f32>`, then the obs columns with their Arrow types, categoricals as
//! dictionaries), in Arrow IPC files (or Parquet, feature `parquet`) plus a JSON manifest.
//!
//! Writes are atomic: shards are written under a temporary name, synced and renamed, and the
//! manifest — the only thing that makes a folder a corpus — is written last the same way. A
//! conversion that dies half-way leaves a folder that [`CorpusReader::open`] refuses.

mod convert;
mod manifest;
mod reader;
mod shard;
mod writer;

/// Shared by the other writers of this crate.
pub(crate) mod writer_support {
    pub(crate) use super::writer::write_atomic;
}

pub use convert::{ConvertOptions, ConvertProgress, convert};
pub use manifest::{Manifest, ShardInfo, SourceInfo, file_blake3};
pub use reader::CorpusReader;
pub use shard::{ShardFormat, write_table};
pub use writer::{CellSink, CorpusWriter, CorpusWriterOptions};

/// Name of the manifest file inside a corpus folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Current corpus schema version.
pub const SCHEMA_VERSION: u32 = 1;
/// Column names of the fixed part of the shard schema.
pub const CELL_ID: &str = "cell_id";
/// Gene positions (into the manifest's gene table) of the stored values.
pub const GENE_INDEX: &str = "gene_index";
/// The stored values (raw counts or whichever matrix was converted).
pub const COUNTS: &str = "counts";
