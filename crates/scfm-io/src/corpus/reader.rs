use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt32Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{Schema, SchemaRef};
use scfm_core::{CellChunk, CellSource, GeneTable};

use super::manifest::{Manifest, file_blake3};
use super::shard::read_shard_batch;
use super::writer::shard_schema;
use super::{CELL_ID, COUNTS, GENE_INDEX, MANIFEST_FILE, SCHEMA_VERSION};
use crate::error::{IoError, Result, io_err};
use crate::h5ad::ObsSelection;

/// Reads a corpus written by [`CorpusWriter`](super::CorpusWriter), chunk by chunk.
#[derive(Debug)]
pub struct CorpusReader {
    dir: PathBuf,
    manifest: Manifest,
    schema: SchemaRef,
    obs_schema: SchemaRef,
    obs_cols: Vec<usize>,
    starts: Vec<usize>,
}

impl CorpusReader {
    /// Opens a corpus with every obs column.
    ///
    /// # Errors
    /// See [`CorpusReader::open_with`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, &ObsSelection::All)
    }

    /// Opens a corpus, carrying the selected obs columns.
    ///
    /// # Errors
    /// [`IoError::Corpus`] when the folder has no (or an unreadable) manifest — which is what an
    /// interrupted conversion leaves — or a shard is missing or has the wrong size.
    pub fn open_with(dir: impl AsRef<Path>, obs: &ObsSelection) -> Result<Self> {
        let dir = dir.as_ref().to_owned();
        if !dir.exists() {
            return Err(IoError::NotFound { path: dir });
        }
        let corpus_err = |reason: String| IoError::Corpus { path: dir.clone(), reason };
        let mpath = dir.join(MANIFEST_FILE);
        if !mpath.exists() {
            return Err(corpus_err(format!("no {MANIFEST_FILE} (not a corpus, or an interrupted conversion)")));
        }
        let bytes = std::fs::read(&mpath).map_err(io_err(&mpath))?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| corpus_err(format!("{MANIFEST_FILE} is unreadable: {e}")))?;
        if manifest.format != "scfm-corpus" || manifest.schema_version != SCHEMA_VERSION {
            return Err(corpus_err(format!(
                "format {:?} version {} (this build reads scfm-corpus version {SCHEMA_VERSION})",
                manifest.format, manifest.schema_version
            )));
        }
        if manifest.genes.content_hash() != manifest.gene_hash {
            return Err(corpus_err("the gene table does not match its recorded hash".into()));
        }
        for s in &manifest.shards {
            let p = dir.join(&s.file);
            let len = std::fs::metadata(&p).map_err(|_| corpus_err(format!("shard {} is missing", s.file)))?.len();
            if len != s.bytes {
                return Err(corpus_err(format!("shard {} has {len} bytes, the manifest says {}", s.file, s.bytes)));
            }
            if s.batches.iter().sum::<usize>() != s.n_cells {
                return Err(corpus_err(format!("shard {} batch sizes do not add up", s.file)));
            }
        }
        let schema = shard_schema(&manifest.obs_schema);
        let obs_cols: Vec<usize> = match obs {
            ObsSelection::All => (0..manifest.obs_schema.fields().len()).collect(),
            ObsSelection::None => vec![],
            ObsSelection::Columns(names) => names
                .iter()
                .map(|n| {
                    manifest.obs_schema.index_of(n).map_err(|_| IoError::UnknownColumn {
                        path: dir.clone(),
                        column: n.clone(),
                        available: manifest
                            .obs_schema
                            .fields()
                            .iter()
                            .map(|f| f.name().as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
                })
                .collect::<Result<_>>()?,
        };
        let obs_schema =
            Arc::new(Schema::new(obs_cols.iter().map(|&i| manifest.obs_schema.field(i).clone()).collect::<Vec<_>>()));
        let obs_cols = obs_cols.into_iter().map(|i| i + 3).collect();
        let mut starts = vec![0];
        for s in &manifest.shards {
            starts.push(starts.last().copied().unwrap_or(0) + s.n_cells);
        }
        Ok(Self { dir, manifest, schema, obs_schema, obs_cols, starts })
    }

    /// The corpus manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Recomputes every shard's BLAKE3 hash and compares it with the manifest.
    ///
    /// # Errors
    /// [`IoError::Corpus`] naming the first shard whose content changed.
    pub fn verify(&self) -> Result<()> {
        for s in &self.manifest.shards {
            let (_, hash) = file_blake3(&self.dir.join(&s.file))?;
            if hash != s.blake3 {
                return Err(IoError::Corpus {
                    path: self.dir.clone(),
                    reason: format!("shard {} is corrupt (checksum differs)", s.file),
                });
            }
        }
        Ok(())
    }

    fn read_batch(&self, shard: usize, batch: usize) -> Result<RecordBatch> {
        let info = &self.manifest.shards[shard];
        let path = self.dir.join(&info.file);
        let (schema, b) = read_shard_batch(&path, batch, info.batches[batch])
            .map_err(|source| IoError::Arrow { path: path.clone(), source })?;
        if schema.fields() != self.schema.fields() {
            return Err(IoError::Corpus { path, reason: "shard schema differs from the manifest".into() });
        }
        if b.num_rows() != info.batches[batch] {
            let reason = format!("batch {batch} has {} cells, the manifest says {}", b.num_rows(), info.batches[batch]);
            return Err(IoError::Corpus { path, reason });
        }
        Ok(b)
    }

    fn chunk_of(&self, path: &Path, b: &RecordBatch) -> Result<CellChunk> {
        let bad =
            |what: &str| IoError::Corpus { path: path.to_owned(), reason: format!("column {what} has the wrong type") };
        let ids = b.column_by_name(CELL_ID).and_then(|c| c.as_string_opt::<i32>()).ok_or_else(|| bad(CELL_ID))?;
        let genes = b.column_by_name(GENE_INDEX).and_then(|c| c.as_list_opt::<i32>()).ok_or_else(|| bad(GENE_INDEX))?;
        let counts = b.column_by_name(COUNTS).and_then(|c| c.as_list_opt::<i32>()).ok_or_else(|| bad(COUNTS))?;
        let gv = genes.values().as_primitive_opt::<UInt32Type>().ok_or_else(|| bad(GENE_INDEX))?.values();
        let cv = counts.values().as_primitive_opt::<Float32Type>().ok_or_else(|| bad(COUNTS))?.values();
        let (go, co) = (genes.value_offsets(), counts.value_offsets());
        let mut indptr = Vec::with_capacity(b.num_rows() + 1);
        indptr.push(0);
        let (mut idx, mut val) = (vec![], vec![]);
        for i in 0..b.num_rows() {
            let (g0, g1) = (go[i] as usize, go[i + 1] as usize);
            let (c0, c1) = (co[i] as usize, co[i + 1] as usize);
            if g1 - g0 != c1 - c0 {
                return Err(IoError::Corpus {
                    path: path.to_owned(),
                    reason: format!("cell {i}: gene and count lists differ in length"),
                });
            }
            idx.extend_from_slice(&gv[g0..g1]);
            val.extend_from_slice(&cv[c0..c1]);
            indptr.push(idx.len());
        }
        let cell_ids = (0..ids.len()).map(|i| ids.value(i).to_owned()).collect();
        let obs = b.project(&self.obs_cols).map_err(|source| IoError::Arrow { path: path.to_owned(), source })?;
        let obs = RecordBatch::try_new_with_options(
            self.obs_schema.clone(),
            obs.columns().to_vec(),
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(b.num_rows())),
        )
        .map_err(|source| IoError::Arrow { path: path.to_owned(), source })?;
        CellChunk::from_csr(cell_ids, indptr, idx, val, self.manifest.genes.len())
            .and_then(|c| c.with_obs(obs))
            .map_err(|source| IoError::Chunk { path: path.to_owned(), source })
    }
}

impl CellSource for CorpusReader {
    type Error = IoError;

    fn genes(&self) -> &GeneTable {
        &self.manifest.genes
    }

    fn n_cells(&self) -> usize {
        self.manifest.n_cells
    }

    fn obs_schema(&self) -> SchemaRef {
        self.obs_schema.clone()
    }

    fn read_rows(&self, rows: Range<usize>) -> Result<CellChunk> {
        let rows = rows.start.min(self.n_cells())..rows.end.min(self.n_cells());
        let mut parts = vec![];
        for (si, shard) in self.manifest.shards.iter().enumerate() {
            let (s0, s1) = (self.starts[si], self.starts[si + 1]);
            if s1 <= rows.start || s0 >= rows.end {
                continue;
            }
            let path = self.dir.join(&shard.file);
            let mut b0 = s0;
            for (bi, &n) in shard.batches.iter().enumerate() {
                let b1 = b0 + n;
                if b1 > rows.start && b0 < rows.end {
                    let batch = self.read_batch(si, bi)?;
                    let lo = rows.start.max(b0) - b0;
                    let hi = rows.end.min(b1) - b0;
                    parts.push(self.chunk_of(&path, &batch.slice(lo, hi - lo))?);
                }
                b0 = b1;
            }
        }
        if parts.is_empty() {
            return Ok(CellChunk::empty(self.genes().len(), self.obs_schema.clone()));
        }
        CellChunk::concat(&parts).map_err(|source| IoError::Chunk { path: self.dir.clone(), source })
    }
}
