//! End-to-end jobs that compose the crates: read any input, tokenize, write a dataset.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use scfm_core::CellSource;
use scfm_core::arrow_array::cast::AsArray;
use scfm_core::arrow_array::types::Float64Type;
use scfm_core::arrow_array::{
    ArrayRef, Float32Array, Int16Array, Int32Array, Int64Array, ListArray, RecordBatch, UInt8Array, UInt32Array,
};
use scfm_core::arrow_buffer::{OffsetBuffer, ScalarBuffer};
use scfm_core::arrow_schema::{DataType, Field, Schema};
use scfm_io::hf::HfDatasetWriter;
use scfm_io::{AnySource, IoError, MatrixSelector, ObsSelection, SourceOptions};
use scfm_tokenize::{IdWidth, PreparedTokenizer, SequentialTokenizer, TokenizeError, TokenizedCell, TokenizerInput};
use serde::Serialize;

use crate::Error;

/// How scGPT breaks ties between equal quantile edges (see [`scfm_tokenize::scgpt::TieBreak`]).
pub use scfm_tokenize::scgpt::ScGptTies as TieMode;
pub use scfm_tokenize::{SchemeKind, SchemeOptions, TokenizerSpec};

/// What to do with input genes the model does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum UnknownGenePolicy {
    /// Leave them out and report how many were mapped (upstream behaviour).
    #[default]
    Skip,
    /// Refuse the input.
    Error,
}

/// Options of [`tokenize`].
#[derive(Debug, Clone)]
pub struct TokenizeOptions {
    /// Matrix of h5ad inputs (raw counts).
    pub matrix: MatrixSelector,
    /// Unknown genes: skip (and count) or error.
    pub unknown_genes: UnknownGenePolicy,
    /// GENCODE gene table (Ensembl id → symbol) for symbol-based schemes on Ensembl-only
    /// inputs.
    pub gene_table: Option<PathBuf>,
    /// Obs columns copied into the dataset.
    pub obs_columns: Vec<String>,
    /// Cells read per step; at most `threads + 1` chunks are in flight (512 cells keep a
    /// 20k-gene Geneformer run on two threads under 150 MB; see `docs/benchmarks.md`).
    pub chunk_cells: usize,
    /// Tokenizer threads, each tokenizing whole chunks (the reader and the writer are two
    /// more); `None`: one per available core. Output is identical for any number.
    pub threads: Option<usize>,
}

impl Default for TokenizeOptions {
    fn default() -> Self {
        Self {
            matrix: MatrixSelector::Counts,
            unknown_genes: UnknownGenePolicy::Skip,
            gene_table: None,
            obs_columns: vec![],
            chunk_cells: 512,
            threads: None,
        }
    }
}

/// What a tokenization did; also saved as `scfm_tokenizer.json` next to the dataset.
#[derive(Debug, Clone, Serialize)]
pub struct TokenizeReport {
    /// The scheme (`geneformer-v2`, `scgpt`, …).
    pub scheme: &'static str,
    /// The tokenizer with its files and settings, as a value ([`TokenizerSpec`]).
    pub spec: TokenizerSpec,
    /// The scheme's settings and files.
    pub settings: serde_json::Value,
    /// The input.
    pub input: PathBuf,
    /// Cells read.
    pub cells_in: usize,
    /// Cells written (Geneformer drops cells without a vocabulary gene, scBERT cells below its
    /// 200-gene minimum, as upstream).
    pub cells_out: usize,
    /// Genes in the input.
    pub genes_in: usize,
    /// Input genes that map to the model's genes.
    pub genes_mapped: usize,
}

/// xTrimoGene datasets: the list column of the gene positions of [`COUNTS`].
pub const COUNT_POSITIONS: &str = "count_positions";
/// xTrimoGene datasets: the list column of each cell's raw counts on the model's gene
/// positions ([`COUNT_POSITIONS`]), what read-depth-aware pretraining down-samples.
pub const COUNTS: &str = "counts";

/// `spec`'s tokenizer for `source`'s genes. `gencode`: GENCODE's gene table for symbol-based
/// schemes on Ensembl-only inputs. `with_counts`: xTrimoGene rows carry the aligned raw counts
/// its pretraining down-samples (datasets and training read them; cell embeddings do not).
pub(crate) fn prepare(
    spec: &TokenizerSpec,
    source: &AnySource,
    gencode: Option<&Path>,
    with_counts: bool,
) -> Result<PreparedTokenizer, Error> {
    let has_n_counts = source.obs_schema().index_of("n_counts").is_ok();
    Ok(spec.prepare(&TokenizerInput { genes: source.genes(), gencode, has_n_counts, with_counts })?)
}

/// Tokenizes any input (h5ad, 10x, corpus) with one scheme into a Hugging Face dataset:
/// `input_ids`, `values` (scGPT, xTrimoGene), `length`, and the requested obs columns; the
/// report is saved as `scfm_tokenizer.json` next to the data.
///
/// # Errors
/// Read, vocabulary and write errors; [`TokenizeError::WrongKind`] when no gene maps to the
/// model (wrong species or id kind) or the matrix does not hold integer counts.
pub fn tokenize(
    input: &Path,
    out: &Path,
    scheme: &TokenizerSpec,
    opts: &TokenizeOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<TokenizeReport, Error> {
    let source = AnySource::open(
        input,
        &SourceOptions { matrix: opts.matrix.clone(), obs: ObsSelection::All, require_counts: true },
    )?;
    require_counts(&source, input)?;
    let obs_schema = source.obs_schema();
    let n_counts_col = obs_schema.index_of("n_counts").ok();
    let PreparedTokenizer { tokenizer, unknown_examples, genes_mapped, settings, mut sequential, filter_column } =
        prepare(scheme, &source, opts.gene_table.as_deref(), true)?;
    // Rows whose filter column (Geneformer's optional `filter_pass`) is not 1 are left out.
    let filter_col = filter_column.and_then(|c| obs_schema.index_of(c).ok());
    let layout = tokenizer.layout();
    let (has_values, has_counts) = (layout.values, layout.counts);
    let genes_in = source.genes().len();
    if opts.unknown_genes == UnknownGenePolicy::Error && genes_mapped < genes_in {
        return Err(TokenizeError::UnknownGenes {
            path: input.to_owned(),
            unknown: genes_in - genes_mapped,
            total: genes_in,
            examples: format!("{unknown_examples:?}"),
        }
        .into());
    }
    require_mapped(&source, input, genes_mapped)?;
    let carried: Vec<usize> = opts
        .obs_columns
        .iter()
        .map(|c| {
            obs_schema.index_of(c).map_err(|_| IoError::UnknownColumn {
                path: input.to_owned(),
                column: c.clone(),
                available: obs_schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", "),
            })
        })
        .collect::<Result<_, _>>()?;
    let list_of = |t: DataType| DataType::List(Arc::new(Field::new_list_field(t, true)));
    let mut fields = vec![Field::new("input_ids", list_of(Ids::data_type(layout.ids)), true)];
    if has_values {
        fields.push(Field::new("values", list_of(DataType::Float32), true));
    }
    if has_counts {
        fields.push(Field::new(COUNT_POSITIONS, list_of(DataType::Int32), true));
        fields.push(Field::new(COUNTS, list_of(DataType::Float32), true));
    }
    fields.push(Field::new("length", DataType::Int64, true));
    fields.extend(carried.iter().map(|&i| obs_schema.field(i).clone()));
    let schema = Arc::new(Schema::new(fields));

    let mut writer = HfDatasetWriter::create(out, &schema, 200_000)?;
    let (mut cells_in, mut cells_out) = (0, 0);
    let total_cells = source.n_cells();
    let threads = opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    // A sequential tokenizer (upstream scGPT's legacy NumPy stream) takes every cell in file
    // order: one worker.
    let workers: Vec<Option<&mut Box<dyn SequentialTokenizer>>> = match sequential.as_mut() {
        Some(s) => vec![Some(s)],
        None => (0..threads).map(|_| None).collect(),
    };
    let tokenize_chunk =
        |sequential: &mut Option<&mut Box<dyn SequentialTokenizer>>, base: u64, chunk: scfm_core::CellChunk| {
            let n_counts = n_counts(&chunk, n_counts_col, layout.uses_n_counts);
            // Upstream Geneformer leaves out rows whose `filter_pass` is not 1: they are not tokenized.
            let pass = filter_col.and_then(|i| numeric_f64(chunk.obs().column(i)));
            let passes = |i: usize| pass.as_ref().is_none_or(|p| p[i] == 1.0);
            // Rows are made one at a time and go straight into the batch's flat columns.
            let rows = chunk.cells().enumerate().map(|(i, c)| match sequential {
                Some(s) => {
                    // Every cell draws from the stream, as upstream, before any row is left out.
                    let row = s.tokenize(base + i as u64, c);
                    passes(i).then_some(row)
                }
                None => passes(i).then(|| tokenizer.tokenize(base + i as u64, c, n_counts[i])).flatten(),
            });
            let batch = build_batch(&schema, layout.ids, (has_values, has_counts), rows, &chunk, &carried, out)?;
            Ok((chunk.n_cells(), batch))
        };
    in_file_order(&source, opts.chunk_cells, workers, tokenize_chunk, |(n_in, batch)| {
        cells_out += batch.num_rows();
        writer.write(&batch)?;
        cells_in += n_in;
        progress(cells_in, total_cells);
        Ok(())
    })?;
    writer.finish()?;
    let report = TokenizeReport {
        scheme: scheme.name(),
        spec: scheme.clone(),
        settings,
        input: input.to_owned(),
        cells_in,
        cells_out,
        genes_in,
        genes_mapped,
    };
    let spec = out.join("scfm_tokenizer.json");
    std::fs::write(&spec, serde_json::to_vec_pretty(&report).expect("serializable"))
        .map_err(|source| IoError::Io { path: spec.clone(), source })?;
    Ok(report)
}

/// Refuses a matrix whose first 200 cells hold non-integer values (every tokenizer needs raw
/// counts).
pub(crate) fn require_counts(source: &AnySource, input: &Path) -> Result<(), Error> {
    let probe = source.read_rows(0..source.n_cells().min(200))?;
    if let Some(v) = probe.values().iter().find(|v| v.fract() != 0.0) {
        return Err(TokenizeError::WrongKind {
            path: input.to_owned(),
            expected: "raw integer counts (choose them with --matrix counts, raw or layer:NAME)",
            found: format!("non-integer values such as {v} in the selected matrix"),
        }
        .into());
    }
    Ok(())
}

/// Refuses an input none of whose genes the model knows (wrong species or id kind).
pub(crate) fn require_mapped(source: &AnySource, input: &Path, genes_mapped: usize) -> Result<(), Error> {
    if genes_mapped == 0 {
        let ids = source.genes().ids();
        return Err(TokenizeError::WrongKind {
            path: input.to_owned(),
            expected: "genes that the model's vocabulary knows (human Ensembl ids or symbols)",
            found: format!("none of its {} genes (e.g. {:?})", ids.len(), ids.iter().take(3).collect::<Vec<_>>()),
        }
        .into());
    }
    Ok(())
}

/// The record batch of one chunk's tokenized cells (cells without tokens are left out).
fn build_batch(
    schema: &Arc<Schema>,
    ids: IdWidth,
    (has_values, has_counts): (bool, bool),
    rows: impl Iterator<Item = Option<TokenizedCell>>,
    chunk: &scfm_core::CellChunk,
    carried: &[usize],
    out: &Path,
) -> Result<RecordBatch, Error> {
    let mut keep = vec![];
    let (mut offsets, mut count_offsets) = (vec![0i32], vec![0i32]);
    // Room for every expressed gene and two specials per cell: one allocation in most schemes.
    let room = chunk.nnz() + 2 * chunk.n_cells();
    let mut flat_ids = Ids::with_capacity(ids, room);
    let mut flat_values = Vec::with_capacity(if has_values { room } else { 0 });
    let mut lengths = vec![];
    let (mut count_positions, mut counts) = (vec![], vec![]);
    for (i, row) in rows.enumerate() {
        let Some(row) = row.filter(|r| !r.ids.is_empty()) else { continue };
        keep.push(i as u32);
        lengths.push(row.ids.len() as i64);
        flat_ids.extend(&row.ids);
        flat_values.extend(row.values.into_iter().flatten());
        for (p, c) in row.counts.into_iter().flatten() {
            count_positions.push(p as i32);
            counts.push(c as f32);
        }
        offsets.push(flat_ids.len() as i32);
        count_offsets.push(counts.len() as i32);
    }
    let arrow = |source| IoError::Arrow { path: out.to_owned(), source };
    let ids = flat_ids.into_array();
    // The columns in the schema's order: ids, values, count positions and counts (where the
    // scheme has them), length; the carried obs columns follow. List items are nullable fields
    // named as Arrow names list items, as `tokenize` declares them.
    let list = |offsets: &[i32], values: ArrayRef| -> Result<ArrayRef, Error> {
        let item = Arc::new(Field::new_list_field(values.data_type().clone(), true));
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets.to_vec()));
        Ok(Arc::new(ListArray::try_new(item, offsets, values, None).map_err(arrow)?))
    };
    let mut cols = vec![list(&offsets, ids)?];
    if has_values {
        cols.push(list(&offsets, Arc::new(Float32Array::from(flat_values)))?);
    }
    if has_counts {
        cols.push(list(&count_offsets, Arc::new(Int32Array::from(count_positions)))?);
        cols.push(list(&count_offsets, Arc::new(Float32Array::from(counts)))?);
    }
    cols.push(Arc::new(Int64Array::from(lengths)));
    let take = UInt32Array::from(keep);
    for &c in carried {
        cols.push(scfm_core::arrow_select::take::take(chunk.obs().column(c), &take, None).map_err(arrow)?);
    }
    Ok(RecordBatch::try_new(schema.clone(), cols).map_err(arrow)?)
}

/// Token ids in the dataset's integer type (the tokenizer's [`IdWidth`]), filled row by row.
enum Ids {
    I16(Vec<i16>),
    U8(Vec<u8>),
    I32(Vec<i32>),
}

impl Ids {
    fn with_capacity(width: IdWidth, capacity: usize) -> Self {
        match width {
            IdWidth::I16 => Self::I16(Vec::with_capacity(capacity)),
            IdWidth::U8 => Self::U8(Vec::with_capacity(capacity)),
            IdWidth::I32 => Self::I32(Vec::with_capacity(capacity)),
        }
    }

    /// The Arrow type of ids of `width`.
    fn data_type(width: IdWidth) -> DataType {
        match width {
            IdWidth::I16 => DataType::Int16,
            IdWidth::U8 => DataType::UInt8,
            IdWidth::I32 => DataType::Int32,
        }
    }

    /// Appends ids, which the scheme's vocabulary size keeps within the type.
    fn extend(&mut self, ids: &[u32]) {
        match self {
            Self::I16(v) => v.extend(ids.iter().map(|&t| t as i16)),
            Self::U8(v) => v.extend(ids.iter().map(|&t| t as u8)),
            Self::I32(v) => v.extend(ids.iter().map(|&t| t as i32)),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::I16(v) => v.len(),
            Self::U8(v) => v.len(),
            Self::I32(v) => v.len(),
        }
    }

    fn into_array(self) -> ArrayRef {
        match self {
            Self::I16(v) => Arc::new(Int16Array::from(v)),
            Self::U8(v) => Arc::new(UInt8Array::from(v)),
            Self::I32(v) => Arc::new(Int32Array::from(v)),
        }
    }
}

/// Runs `work` on the chunks of `source` on one thread per entry of `workers` (each with its
/// own state), while one more thread reads the next chunks, and hands the results to `sink` in
/// file order. `work` gets the index of the chunk's first cell.
///
/// Not a rayon parallel iterator: the chunks come one at a time from a reader thread and must
/// reach the writer in file order with at most `workers + 1` in memory, and scGPT's legacy
/// stream needs its one worker to keep its state across chunks; a `par_bridge` would neither
/// bound the chunks in flight nor keep their order.
///
/// Whole chunks go to the workers, so each keeps its per-thread buffers warm and builds its
/// own output; a chunk is read, worked on and written by three different threads at once.
/// At most `workers + 1` chunks are in flight (being read, queued, worked on, or waiting for
/// their turn to be written), so memory is bounded by the chunk size, not by the number of
/// cells. The first error, in file order, is returned; the threads then stop.
pub(crate) fn in_file_order<W: Send, T: Send>(
    source: &AnySource,
    chunk_cells: usize,
    workers: Vec<W>,
    work: impl Fn(&mut W, u64, scfm_core::CellChunk) -> Result<T, Error> + Sync,
    mut sink: impl FnMut(T) -> Result<(), Error>,
) -> Result<(), Error> {
    use std::panic::AssertUnwindSafe;
    use std::sync::mpsc::sync_channel;
    use std::sync::{Mutex, PoisonError};
    let window = workers.len() + 1;
    let (chunk_tx, chunk_rx) = sync_channel(workers.len());
    let chunk_rx = Arc::new(Mutex::new(chunk_rx));
    // One permit per chunk in flight: the reader takes one per chunk, the writer gives it back.
    let (permit_tx, permit_rx) = sync_channel(window);
    for _ in 0..window {
        permit_tx.send(()).expect("the permit channel holds the whole window");
    }
    let (done_tx, done_rx) = sync_channel::<(usize, std::thread::Result<Result<T, Error>>)>(window);
    let work = &work;
    // `move`: the scope's own ends of the channels close as soon as it returns, early on an
    // error too, so the reader and the workers see closed channels and stop.
    std::thread::scope(move |scope| {
        scope.spawn(move || {
            let mut first = 0u64;
            for (seq, chunk) in source.chunks(chunk_cells).enumerate() {
                if permit_rx.recv().is_err() {
                    return;
                }
                let n = chunk.as_ref().map_or(0, |c| c.n_cells());
                let failed = chunk.is_err();
                // A closed channel means the workers stopped; stop reading.
                if chunk_tx.send((seq, first, chunk)).is_err() || failed {
                    return;
                }
                first += n as u64;
            }
        });
        for mut state in workers {
            let (chunk_rx, done_tx) = (chunk_rx.clone(), done_tx.clone());
            scope.spawn(move || {
                loop {
                    let next = chunk_rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok((seq, first, chunk)) = next else { return };
                    // A panic is handed to the writer, which re-raises it.
                    let out = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        chunk.map_err(Error::from).and_then(|chunk| work(&mut state, first, chunk))
                    }));
                    if done_tx.send((seq, out)).is_err() {
                        return;
                    }
                }
            });
        }
        drop((chunk_rx, done_tx));
        let mut waiting = std::collections::BTreeMap::new();
        let mut next = 0;
        for (seq, out) in done_rx {
            waiting.insert(seq, out);
            while let Some(out) = waiting.remove(&next) {
                sink(out.unwrap_or_else(|panic| std::panic::resume_unwind(panic))?)?;
                next += 1;
                // The reader may have finished: a refused permit is fine.
                let _ = permit_tx.send(());
            }
        }
        Ok(())
    })
}

/// Each cell's `n_counts`: the obs column `col` when there is one (Geneformer's convention), else
/// the cell's total over all input genes.
pub(crate) fn n_counts(chunk: &scfm_core::CellChunk, col: Option<usize>, used: bool) -> Vec<f64> {
    if !used {
        return vec![f64::NAN; chunk.n_cells()];
    }
    match col.and_then(|i| numeric_f64(chunk.obs().column(i))) {
        Some(v) => v,
        None => chunk.cells().map(|c| c.total()).collect(),
    }
}

/// A numeric obs column as f64 (nulls as NaN); `None` for other types.
fn numeric_f64(col: &ArrayRef) -> Option<Vec<f64>> {
    use scfm_core::arrow_array::Array;
    use scfm_core::arrow_array::types::{Float32Type, Int32Type, Int64Type, UInt32Type, UInt64Type};
    macro_rules! conv {
        ($t:ty) => {{
            let a = col.as_primitive::<$t>();
            Some((0..a.len()).map(|i| if a.is_null(i) { f64::NAN } else { a.value(i) as f64 }).collect())
        }};
    }
    match col.data_type() {
        DataType::Boolean => {
            let a = col.as_boolean();
            Some((0..a.len()).map(|i| if a.is_null(i) { f64::NAN } else { f64::from(u8::from(a.value(i))) }).collect())
        }
        DataType::Float64 => conv!(Float64Type),
        DataType::Float32 => conv!(Float32Type),
        DataType::Int64 => conv!(Int64Type),
        DataType::Int32 => conv!(Int32Type),
        DataType::UInt64 => conv!(UInt64Type),
        DataType::UInt32 => conv!(UInt32Type),
        _ => None,
    }
}
