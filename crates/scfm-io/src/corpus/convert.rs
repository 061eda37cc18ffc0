use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use scfm_core::{CellChunk, CellSource};

use super::manifest::{Manifest, SourceInfo, file_blake3};
use super::writer::{CellSink, CorpusWriter, CorpusWriterOptions};
use crate::error::{IoError, Result, io_err};
use crate::filter::ObsFilter;
use crate::h5ad::{MatrixSelector, ObsSelection};
use crate::source::{AnySource, SourceOptions};

/// Options of [`convert`].
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Which matrix of h5ad inputs to convert.
    pub matrix: MatrixSelector,
    /// Which obs columns to keep.
    pub obs: ObsSelection,
    /// Keep only the cells this filter accepts.
    pub filter: Option<ObsFilter>,
    /// Cells per shard.
    pub shard_cells: usize,
    /// Shard file format.
    pub format: super::ShardFormat,
    /// Cells read per step (bounds memory).
    pub chunk_cells: usize,
    /// Reject negative values.
    pub require_counts: bool,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        Self {
            matrix: MatrixSelector::X,
            obs: ObsSelection::All,
            filter: None,
            shard_cells: 100_000,
            format: super::ShardFormat::ArrowIpc,
            chunk_cells: 4096,
            require_counts: false,
        }
    }
}

/// Where a conversion stands, reported after every chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvertProgress {
    /// Index of the input being read.
    pub input: usize,
    /// Cells read so far over all inputs.
    pub cells_done: usize,
    /// Cells in all inputs.
    pub cells_total: usize,
    /// Cells written so far (after filtering).
    pub cells_kept: usize,
}

/// Converts h5ad / 10x / corpus inputs into one corpus in `out`, streaming chunk by chunk.
///
/// All inputs must share the same genes (in the same order) and obs columns.
///
/// # Errors
/// Any read error of the inputs, [`IoError::Incompatible`] when inputs disagree, filter
/// errors, write errors. On error no manifest is written, so `out` never looks like a valid
/// corpus.
pub fn convert(
    inputs: &[PathBuf],
    out: &Path,
    opts: &ConvertOptions,
    progress: &mut dyn FnMut(&ConvertProgress),
) -> Result<Manifest> {
    let Some(first_path) = inputs.first() else {
        return Err(IoError::Incompatible { path: out.to_owned(), reason: "no input files given".into() });
    };
    // Read the filter's columns even when they are not kept.
    let read_obs = match (&opts.obs, &opts.filter) {
        (ObsSelection::Columns(cols), Some(f)) => {
            let mut all = cols.clone();
            all.extend(f.columns().into_iter().map(str::to_owned).filter(|c| !cols.contains(c)));
            ObsSelection::Columns(all)
        }
        (ObsSelection::None, Some(f)) => ObsSelection::Columns(f.columns().into_iter().map(str::to_owned).collect()),
        (sel, _) => sel.clone(),
    };
    let sopts = SourceOptions { matrix: opts.matrix.clone(), obs: read_obs, require_counts: opts.require_counts };
    let sources = inputs.iter().map(|p| AnySource::open(p, &sopts)).collect::<Result<Vec<_>>>()?;
    let first = &sources[0];
    let keep: Vec<usize> = match &opts.obs {
        ObsSelection::All => (0..first.obs_schema().fields().len()).collect(),
        ObsSelection::None => vec![],
        ObsSelection::Columns(cols) => (0..cols.len()).collect(),
    };
    let out_schema = std::sync::Arc::new(
        first.obs_schema().project(&keep).map_err(|source| IoError::Arrow { path: first_path.clone(), source })?,
    );
    for (p, s) in inputs.iter().zip(&sources).skip(1) {
        if s.genes() != first.genes() {
            return Err(IoError::Incompatible {
                path: p.clone(),
                reason: format!(
                    "its {} genes differ from the {} genes of {}",
                    s.genes().len(),
                    first.genes().len(),
                    first_path.display()
                ),
            });
        }
        if s.obs_schema().fields() != first.obs_schema().fields() {
            return Err(IoError::Incompatible {
                path: p.clone(),
                reason: format!("its obs columns differ from those of {}", first_path.display()),
            });
        }
    }
    let matrix_label = match (first, &opts.matrix) {
        (AnySource::H5ad(h), _) => h.matrix_element().to_owned(),
        (AnySource::Corpus(c), _) => c.manifest().matrix.clone(),
        _ => "counts".to_owned(),
    };
    let wopts = CorpusWriterOptions {
        shard_cells: opts.shard_cells,
        format: opts.format,
        matrix: matrix_label,
        sources: vec![],
        filter: opts.filter.as_ref().map(|f| f.as_str().to_owned()),
    };
    let mut writer = CorpusWriter::create(out, first.genes().clone(), out_schema.clone(), wopts)?;
    let mut state = ConvertProgress {
        input: 0,
        cells_done: 0,
        cells_total: sources.iter().map(CellSource::n_cells).sum(),
        cells_kept: 0,
    };
    let mut counts = vec![(0usize, 0usize); inputs.len()];
    // Three workers on a 2-core budget: input checksums, reading (HDF5, canonical CSR, filter),
    // and writing (Arrow, shard checksums). The channel holds at most two chunks, so memory
    // stays bounded by the chunk size.
    let hashes = std::thread::scope(|scope| -> Result<Vec<(u64, String)>> {
        let hasher = std::thread::Builder::new()
            .name("scfm-checksum".into())
            .spawn_scoped(scope, || inputs.iter().map(|p| file_blake3(p)).collect::<Result<Vec<_>>>())
            .map_err(io_err(out))?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(usize, usize, CellChunk)>>(2);
        let filter = opts.filter.as_ref();
        let (keep, out_schema) = (&keep, &out_schema);
        let reader = move || {
            for (i, source) in sources.iter().enumerate() {
                for chunk in source.chunks(opts.chunk_cells) {
                    let item = chunk.and_then(|chunk| {
                        let n = chunk.n_cells();
                        let chunk = match filter {
                            Some(f) => {
                                let mask = f.evaluate(chunk.obs())?;
                                chunk
                                    .filter(&mask)
                                    .map_err(|source| IoError::Chunk { path: inputs[i].clone(), source })?
                            }
                            None => chunk,
                        };
                        Ok((i, n, project(chunk, keep, out_schema, &inputs[i])?))
                    });
                    let failed = item.is_err();
                    // A closed channel means the writer gave up; stop reading.
                    if tx.send(item).is_err() || failed {
                        return;
                    }
                }
            }
        };
        std::thread::Builder::new().name("scfm-reader".into()).spawn_scoped(scope, reader).map_err(io_err(out))?;
        for item in rx {
            let (i, n, chunk) = item?;
            let kept = chunk.n_cells();
            writer.write_owned(chunk)?;
            counts[i].0 += n;
            counts[i].1 += kept;
            state.input = i;
            state.cells_done += n;
            state.cells_kept += kept;
            progress(&state);
        }
        hasher.join().expect("checksum thread does not panic")
    })?;
    let source_info = inputs
        .iter()
        .zip(hashes)
        .zip(counts)
        .map(|((p, (bytes, blake3)), (read, kept))| SourceInfo {
            path: p.clone(),
            bytes,
            blake3,
            n_cells_read: read,
            n_cells_kept: kept,
        })
        .collect();
    writer.set_sources(source_info);
    writer.finish()
}

fn project(chunk: CellChunk, keep: &[usize], schema: &arrow_schema::SchemaRef, path: &Path) -> Result<CellChunk> {
    if keep.len() == chunk.obs().num_columns() {
        return Ok(chunk);
    }
    let cols = keep.iter().map(|&i| chunk.obs().column(i).clone()).collect();
    let obs = RecordBatch::try_new_with_options(
        schema.clone(),
        cols,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(chunk.n_cells())),
    )
    .map_err(|source| IoError::Arrow { path: path.to_owned(), source })?;
    chunk.with_obs(obs).map_err(|source| IoError::Chunk { path: path.to_owned(), source })
}
