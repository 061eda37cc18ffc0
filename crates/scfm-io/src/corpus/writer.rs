use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, ListArray, RecordBatch, StringArray, UInt32Array};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use scfm_core::{CellChunk, GeneTable};

use super::manifest::{Manifest, ShardInfo, SourceInfo};
use super::shard::{ShardFormat, ShardWriter};
use super::{CELL_ID, COUNTS, GENE_INDEX, MANIFEST_FILE, SCHEMA_VERSION};
use crate::error::{IoError, Result, io_err};

/// Where cells go: a corpus writer, or anything else that consumes chunks.
pub trait CellSink {
    /// Appends cells.
    ///
    /// # Errors
    /// Storage errors, or a chunk whose genes or obs schema differ from the sink's.
    fn write_chunk(&mut self, chunk: &CellChunk) -> Result<()>;

    /// Completes the output and describes it.
    ///
    /// # Errors
    /// Storage errors.
    fn finish(self) -> Result<Manifest>;
}

/// Options of a [`CorpusWriter`].
#[derive(Debug, Clone)]
pub struct CorpusWriterOptions {
    /// Cells per shard file.
    pub shard_cells: usize,
    /// File format of the shards.
    pub format: ShardFormat,
    /// Which matrix the values come from, recorded in the manifest.
    pub matrix: String,
    /// Input files, recorded in the manifest.
    pub sources: Vec<SourceInfo>,
    /// The filter applied, recorded in the manifest.
    pub filter: Option<String>,
}

impl Default for CorpusWriterOptions {
    fn default() -> Self {
        Self { shard_cells: 100_000, format: ShardFormat::ArrowIpc, matrix: "X".into(), sources: vec![], filter: None }
    }
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: blake3::Hasher,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

struct OpenShard {
    name: String,
    tmp: PathBuf,
    writer: ShardWriter<Hashing<BufWriter<File>>>,
    n_cells: usize,
    nnz: u64,
    batches: Vec<usize>,
}

/// Writes a corpus of Arrow IPC shards; see the [module documentation](super).
///
/// ```no_run
/// use scfm_core::CellSource;
/// use scfm_io::H5adSource;
/// use scfm_io::corpus::{CellSink, CorpusWriter, CorpusWriterOptions};
///
/// let source = H5adSource::open("pbmc.h5ad")?;
/// let mut out = CorpusWriter::create("pbmc-corpus", source.genes().clone(), source.obs_schema(),
///                                    CorpusWriterOptions::default())?;
/// for chunk in source.chunks(4096) {
///     out.write_chunk(&chunk?)?;
/// }
/// let manifest = out.finish()?;
/// assert_eq!(manifest.n_cells, source.n_cells());
/// # Ok::<(), scfm_io::IoError>(())
/// ```
pub struct CorpusWriter {
    dir: PathBuf,
    syncer: Option<Syncer>,
    genes: GeneTable,
    obs_schema: SchemaRef,
    schema: SchemaRef,
    opts: CorpusWriterOptions,
    current: Option<OpenShard>,
    shards: Vec<ShardInfo>,
    integer_values: bool,
}

/// Makes finished shards durable (fsync, then rename into place) on a background thread, so
/// that the disk write-back of one shard overlaps with writing the next.
struct Syncer {
    tx: std::sync::mpsc::Sender<(File, PathBuf, PathBuf)>,
    handle: std::thread::JoinHandle<Result<()>>,
}

impl Syncer {
    fn start() -> Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<(File, PathBuf, PathBuf)>();
        let handle = std::thread::Builder::new()
            .name("scfm-sync".into())
            .spawn(move || {
                for (file, tmp, dest) in rx {
                    file.sync_all().map_err(io_err(&tmp))?;
                    std::fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
                }
                Ok(())
            })
            .map_err(io_err("scfm-sync thread"))?;
        Ok(Self { tx, handle })
    }

    /// Waits until every shard handed over is durable and in place.
    fn finish(self) -> Result<()> {
        drop(self.tx);
        self.handle.join().expect("the sync thread does not panic")
    }
}

impl std::fmt::Debug for CorpusWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorpusWriter").field("dir", &self.dir).field("shards", &self.shards.len()).finish()
    }
}

/// The shard schema: the fixed columns, then the obs columns.
pub(crate) fn shard_schema(obs: &Schema) -> SchemaRef {
    let mut fields = vec![
        Field::new(CELL_ID, DataType::Utf8, false),
        Field::new(GENE_INDEX, DataType::List(Arc::new(Field::new_list_field(DataType::UInt32, false))), false),
        Field::new(COUNTS, DataType::List(Arc::new(Field::new_list_field(DataType::Float32, false))), false),
    ];
    fields.extend(obs.fields().iter().map(|f| f.as_ref().clone()));
    Arc::new(Schema::new(fields))
}

impl CorpusWriter {
    /// Starts a corpus in `dir` (created if needed). An existing corpus there stops being
    /// valid immediately (its manifest is removed) and is replaced when [`finish`](CellSink::finish)
    /// succeeds.
    ///
    /// # Errors
    /// [`IoError::Io`] when the folder cannot be prepared; [`IoError::Corpus`] when obs columns
    /// clash with the fixed column names.
    pub fn create(
        dir: impl AsRef<Path>,
        genes: GeneTable,
        obs_schema: SchemaRef,
        opts: CorpusWriterOptions,
    ) -> Result<Self> {
        let dir = dir.as_ref().to_owned();
        if let Some(f) = obs_schema.fields().iter().find(|f| [CELL_ID, GENE_INDEX, COUNTS].contains(&f.name().as_str()))
        {
            return Err(IoError::Corpus {
                path: dir,
                reason: format!("obs column {:?} clashes with a fixed corpus column", f.name()),
            });
        }
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let manifest = dir.join(MANIFEST_FILE);
        if manifest.exists() {
            std::fs::remove_file(&manifest).map_err(io_err(&manifest))?;
        }
        let schema = shard_schema(&obs_schema);
        let opts = CorpusWriterOptions { shard_cells: opts.shard_cells.max(1), ..opts };
        Ok(Self {
            dir,
            syncer: None,
            genes,
            obs_schema,
            schema,
            opts,
            current: None,
            shards: vec![],
            integer_values: true,
        })
    }

    fn open_shard(&mut self) -> Result<&mut OpenShard> {
        if self.current.is_none() {
            let name = format!("shard-{:05}.{}", self.shards.len(), self.opts.format.extension());
            let tmp = self.dir.join(format!("{name}.tmp"));
            let file = File::create(&tmp).map_err(io_err(&tmp))?;
            let sink =
                Hashing { inner: BufWriter::with_capacity(1 << 20, file), hash: blake3::Hasher::new(), bytes: 0 };
            let writer = ShardWriter::create(self.opts.format, sink, &self.schema)
                .map_err(|source| IoError::Arrow { path: tmp.clone(), source })?;
            self.current = Some(OpenShard { name, tmp, writer, n_cells: 0, nnz: 0, batches: vec![] });
        }
        Ok(self.current.as_mut().expect("just opened"))
    }

    fn close_shard(&mut self) -> Result<()> {
        let Some(s) = self.current.take() else { return Ok(()) };
        let arrow = |source| IoError::Arrow { path: s.tmp.clone(), source };
        let hashing = s.writer.finish().map_err(arrow)?;
        let Hashing { inner, hash, bytes } = hashing;
        let file = inner.into_inner().map_err(|e| IoError::Io { path: s.tmp.clone(), source: e.into_error() })?;
        let dest = self.dir.join(&s.name);
        if self.syncer.is_none() {
            self.syncer = Some(Syncer::start()?);
        }
        let syncer = self.syncer.as_ref().expect("started above");
        if syncer.tx.send((file, s.tmp.clone(), dest)).is_err() {
            // The sync thread stopped on an error: collect it.
            return self.syncer.take().map_or(Ok(()), Syncer::finish);
        }
        self.shards.push(ShardInfo {
            file: s.name,
            n_cells: s.n_cells,
            nnz: s.nnz,
            batches: s.batches,
            bytes,
            blake3: hash.finalize().to_hex().to_string(),
        });
        Ok(())
    }

    /// The record batch of a chunk; the CSR buffers move into Arrow without copying.
    fn batch(&self, chunk: CellChunk) -> Result<RecordBatch> {
        let arrow = |source| IoError::Arrow { path: self.dir.clone(), source };
        let (cell_ids, indptr, indices, values, obs) = chunk.into_parts();
        let offsets: Vec<i32> = indptr.iter().map(|&p| p as i32).collect();
        if indptr.last().is_some_and(|&p| p > i32::MAX as usize) {
            return Err(IoError::Corpus {
                path: self.dir.clone(),
                reason: "a chunk holds more than 2^31 values: use smaller chunks".into(),
            });
        }
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        let genes = ListArray::try_new(
            Arc::new(Field::new_list_field(DataType::UInt32, false)),
            offsets.clone(),
            Arc::new(UInt32Array::from(indices)),
            None,
        )
        .map_err(arrow)?;
        let counts = ListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Float32, false)),
            offsets,
            Arc::new(Float32Array::from(values)),
            None,
        )
        .map_err(arrow)?;
        let mut cols: Vec<ArrayRef> =
            vec![Arc::new(StringArray::from_iter_values(&cell_ids)), Arc::new(genes), Arc::new(counts)];
        cols.extend(obs.columns().iter().cloned());
        RecordBatch::try_new(self.schema.clone(), cols).map_err(arrow)
    }

    /// Appends cells it owns (no copy of the values); see [`CellSink::write_chunk`].
    ///
    /// # Errors
    /// As [`CellSink::write_chunk`].
    pub fn write_owned(&mut self, chunk: CellChunk) -> Result<()> {
        if chunk.n_genes() != self.genes.len() || chunk.obs().schema().fields() != self.obs_schema.fields() {
            return Err(IoError::Corpus {
                path: self.dir.clone(),
                reason: "a chunk's genes or obs columns differ from the corpus's".into(),
            });
        }
        // Whole numbers: every f32 of magnitude ≥ 2^24 is one; below, compare with a cast.
        self.integer_values &=
            chunk.values().iter().all(|&v| v >= 0.0 && (v >= 16_777_216.0 || v == (v as i32) as f32));
        let mut chunk = chunk;
        while chunk.n_cells() > 0 {
            let room = self.opts.shard_cells - self.current.as_ref().map_or(0, |s| s.n_cells);
            let (part, rest) = if chunk.n_cells() <= room {
                let empty = CellChunk::empty(chunk.n_genes(), chunk.obs().schema());
                (chunk, empty)
            } else {
                let head: Vec<bool> = (0..chunk.n_cells()).map(|i| i < room).collect();
                let tail: Vec<bool> = head.iter().map(|h| !h).collect();
                let chunk_err = |source| IoError::Chunk { path: self.dir.clone(), source };
                (chunk.filter(&head.into()).map_err(chunk_err)?, chunk.filter(&tail.into()).map_err(chunk_err)?)
            };
            let (n_cells, nnz) = (part.n_cells(), part.nnz() as u64);
            let batch = self.batch(part)?;
            let shard = self.open_shard()?;
            shard.writer.write(&batch).map_err(|source| IoError::Arrow { path: shard.tmp.clone(), source })?;
            shard.n_cells += n_cells;
            shard.nnz += nnz;
            shard.batches.push(n_cells);
            if shard.n_cells >= self.opts.shard_cells {
                self.close_shard()?;
            }
            chunk = rest;
        }
        Ok(())
    }
}

impl CorpusWriter {
    /// Records the input files in the manifest (conversions fill in cell counts at the end).
    pub fn set_sources(&mut self, sources: Vec<SourceInfo>) {
        self.opts.sources = sources;
    }
}

impl CellSink for CorpusWriter {
    fn write_chunk(&mut self, chunk: &CellChunk) -> Result<()> {
        self.write_owned(chunk.clone())
    }

    fn finish(mut self) -> Result<Manifest> {
        self.close_shard()?;
        if let Some(syncer) = self.syncer.take() {
            syncer.finish()?;
        }
        let manifest = Manifest {
            format: "scfm-corpus".into(),
            schema_version: SCHEMA_VERSION,
            created_by: format!("scfm-io {}", env!("CARGO_PKG_VERSION")),
            n_cells: self.shards.iter().map(|s| s.n_cells).sum(),
            nnz: self.shards.iter().map(|s| s.nnz).sum(),
            matrix: self.opts.matrix.clone(),
            integer_values: self.integer_values,
            gene_hash: self.genes.content_hash(),
            gene_id_kind: self.genes.id_kind(),
            genes: self.genes.clone(),
            obs_schema: self.obs_schema.as_ref().clone(),
            shards: self.shards.clone(),
            sources: self.opts.sources.clone(),
            filter: self.opts.filter.clone(),
        };
        // Remove shards of an earlier corpus in this folder that the new one does not use.
        let keep: Vec<&str> = self.shards.iter().map(|s| s.file.as_str()).collect();
        for e in std::fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let p = e.map_err(io_err(&self.dir))?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // Shards of an earlier corpus, and temporaries an interrupted run left behind.
            let is_shard = name.ends_with(".arrow") || name.ends_with(".parquet") || name.ends_with(".tmp");
            if name.starts_with("shard-") && is_shard && !keep.contains(&name) {
                std::fs::remove_file(&p).map_err(io_err(&p))?;
            }
        }
        write_atomic(
            &self.dir.join(MANIFEST_FILE),
            &serde_json::to_vec_pretty(&manifest).expect("manifest serializes"),
        )?;
        Ok(manifest)
    }
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent()
        && let Ok(d) = File::open(dir)
    {
        // Persist the rename; not all platforms allow syncing a directory.
        let _ = d.sync_all();
    }
    Ok(())
}
