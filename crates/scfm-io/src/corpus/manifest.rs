use std::io::Read;
use std::path::{Path, PathBuf};

use scfm_core::{GeneIdKind, GeneTable};
use serde::{Deserialize, Serialize};

use crate::error::{Result, io_err};

/// The description of a corpus, stored as `manifest.json` next to its shards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `"scfm-corpus"`.
    pub format: String,
    /// Layout version (see [`SCHEMA_VERSION`](super::SCHEMA_VERSION)).
    pub schema_version: u32,
    /// The program that wrote the corpus.
    pub created_by: String,
    /// Cells in all shards.
    pub n_cells: usize,
    /// Stored non-zero values in all shards.
    pub nnz: u64,
    /// Which matrix the values came from (`X`, `raw`, `layer:counts`, …).
    pub matrix: String,
    /// Whether every stored value is a non-negative integer.
    pub integer_values: bool,
    /// The genes that `gene_index` refers to.
    pub genes: GeneTable,
    /// [`GeneTable::content_hash`] of `genes`.
    pub gene_hash: String,
    /// What kind of ids the gene table holds.
    pub gene_id_kind: GeneIdKind,
    /// The obs columns, with their exact Arrow types (categoricals as dictionaries).
    pub obs_schema: arrow_schema::Schema,
    /// The shard files, in cell order.
    pub shards: Vec<ShardInfo>,
    /// The input files.
    pub sources: Vec<SourceInfo>,
    /// The obs filter applied while converting, if any.
    pub filter: Option<String>,
}

/// One shard file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// File name inside the corpus folder.
    pub file: String,
    /// Cells in the shard.
    pub n_cells: usize,
    /// Non-zero values in the shard.
    pub nnz: u64,
    /// Cells in each record batch, in order.
    pub batches: Vec<usize>,
    /// File size in bytes.
    pub bytes: u64,
    /// BLAKE3 of the file, hex (`b3sum FILE` prints the same).
    pub blake3: String,
}

/// One input file of a corpus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// Path as given.
    pub path: PathBuf,
    /// Size in bytes (all files, for a folder).
    pub bytes: u64,
    /// BLAKE3, hex (of the concatenated files, in name order, for a folder).
    pub blake3: String,
    /// Cells read from it.
    pub n_cells_read: usize,
    /// Cells kept after filtering.
    pub n_cells_kept: usize,
}

/// Size and BLAKE3 hash (hex) of a file, or of all files in a folder in name order.
///
/// # Errors
/// [`IoError::Io`](crate::IoError::Io) when a file cannot be read.
pub fn file_blake3(path: &Path) -> Result<(u64, String)> {
    let mut files = vec![];
    if path.is_dir() {
        for e in std::fs::read_dir(path).map_err(io_err(path))? {
            let p = e.map_err(io_err(path))?.path();
            if p.is_file() {
                files.push(p);
            }
        }
        files.sort();
    } else {
        files.push(path.to_owned());
    }
    let mut h = blake3::Hasher::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for f in files {
        let mut r = std::fs::File::open(&f).map_err(io_err(&f))?;
        loop {
            let n = r.read(&mut buf).map_err(io_err(&f))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            h.update(&buf[..n]);
        }
    }
    Ok((total, h.finalize().to_hex().to_string()))
}
