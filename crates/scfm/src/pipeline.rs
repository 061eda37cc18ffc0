//! End-to-end jobs that compose the crates: read any input, tokenize, write a dataset.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use scfm_core::arrow_array::builder::{Int16Builder, Int32Builder, ListBuilder};
use scfm_core::arrow_array::cast::AsArray;
use scfm_core::arrow_array::types::Float64Type;
use scfm_core::arrow_array::{ArrayRef, Int64Array, RecordBatch};
use scfm_core::arrow_schema::{DataType, Field, Schema};
use scfm_core::{CellSource, GeneIdKind};
use scfm_io::hf::HfDatasetWriter;
use scfm_io::{AnySource, IoError, MatrixSelector, ObsSelection, SourceOptions};
use scfm_tokenize::TokenizeError;
use scfm_tokenize::geneformer::{GeneformerDictionaries, GeneformerTokenizer, GeneformerVersion};
use scfm_tokenize::vocab::string_map;
use serde::Serialize;

use crate::Error;

/// The Geneformer dictionary files of one version, found in a folder by their upstream names.
#[derive(Debug, Clone, Serialize)]
pub struct GeneformerFiles {
    /// `token_dictionary_gc*.pkl`.
    pub token_dictionary: PathBuf,
    /// `gene_median_dictionary_gc*.pkl`.
    pub gene_medians: PathBuf,
    /// `ensembl_mapping_dict_gc*.pkl`.
    pub ensembl_mapping: PathBuf,
    /// `gene_name_id_dict_gc*.pkl` (symbol → Ensembl id), used to map symbol inputs for V1,
    /// whose Ensembl mapping knows no symbols.
    pub gene_name_id: Option<PathBuf>,
}

impl GeneformerFiles {
    /// Finds the files in `dir` (upstream names: `*_gc104M.pkl` for V2, `*_gc30M.pkl` for V1).
    ///
    /// # Errors
    /// [`IoError::MissingElement`] naming the file that is not there.
    pub fn find(dir: &Path, version: GeneformerVersion) -> Result<Self, Error> {
        let suffix = match version {
            GeneformerVersion::V1 => "gc30M",
            GeneformerVersion::V2 => "gc104M",
        };
        let file = |stem: &str| -> Result<PathBuf, Error> {
            let p = dir.join(format!("{stem}_{suffix}.pkl"));
            if p.exists() {
                Ok(p)
            } else {
                Err(IoError::MissingElement {
                    path: dir.to_owned(),
                    element: format!("{stem}_{suffix}.pkl"),
                    hint: format!("; pass the folder holding Geneformer's {version:?} dictionaries"),
                }
                .into())
            }
        };
        Ok(Self {
            token_dictionary: file("token_dictionary")?,
            gene_medians: file("gene_median_dictionary")?,
            ensembl_mapping: file("ensembl_mapping_dict")?,
            gene_name_id: file("gene_name_id_dict").ok(),
        })
    }
}

/// Options of [`tokenize_geneformer`].
#[derive(Debug, Clone)]
pub struct TokenizeOptions {
    /// Matrix of h5ad inputs (raw counts).
    pub matrix: MatrixSelector,
    /// Obs columns copied into the dataset.
    pub obs_columns: Vec<String>,
    /// Cells read per step.
    pub chunk_cells: usize,
}

impl Default for TokenizeOptions {
    fn default() -> Self {
        Self { matrix: MatrixSelector::Counts, obs_columns: vec![], chunk_cells: 2048 }
    }
}

/// What a tokenization did; also saved as `scfm_tokenizer.json` next to the dataset.
#[derive(Debug, Clone, Serialize)]
pub struct TokenizeReport {
    /// `geneformer`.
    pub scheme: &'static str,
    /// `V1` or `V2`.
    pub version: String,
    /// Model input size.
    pub model_input_size: usize,
    /// The dictionaries used.
    pub dictionaries: GeneformerFiles,
    /// The input.
    pub input: PathBuf,
    /// Where `n_counts` came from: the obs column, or the cell totals over all genes.
    pub n_counts_from: &'static str,
    /// Cells read.
    pub cells_in: usize,
    /// Cells written (cells without any vocabulary gene are dropped, as upstream).
    pub cells_out: usize,
    /// Genes in the input.
    pub genes_in: usize,
    /// Input genes mapped to the vocabulary.
    pub genes_mapped: usize,
    /// Whether several inputs were summed into one gene (upstream's collapse branch).
    pub collapsed: bool,
}

/// Tokenizes any input with Geneformer into a Hugging Face dataset (`input_ids`, `length`,
/// and the requested obs columns), as upstream `TranscriptomeTokenizer.tokenize_data` does.
///
/// # Errors
/// Read, dictionary and write errors; [`TokenizeError::WrongKind`] when no gene maps to the
/// vocabulary (wrong species or id kind).
pub fn tokenize_geneformer(
    input: &Path,
    out: &Path,
    version: GeneformerVersion,
    files: &GeneformerFiles,
    opts: &TokenizeOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<TokenizeReport, Error> {
    let dicts = GeneformerDictionaries::load(&files.token_dictionary, &files.gene_medians, &files.ensembl_mapping)?;
    let tokenizer = GeneformerTokenizer::new(version, dicts);
    let source = AnySource::open(
        input,
        &SourceOptions { matrix: opts.matrix.clone(), obs: ObsSelection::All, require_counts: true },
    )?;
    let mut genes = source.genes().ids().to_vec();
    if version == GeneformerVersion::V1
        && source.genes().id_kind() == GeneIdKind::Symbol
        && let Some(p) = &files.gene_name_id
    {
        let names = string_map(p)?;
        genes = genes.iter().map(|g| names.get(g).cloned().unwrap_or_else(|| g.clone())).collect();
    }
    let plan = tokenizer.plan(&genes);
    if plan.mapped_inputs == 0 {
        return Err(TokenizeError::WrongKind {
            path: input.to_owned(),
            expected: "genes that Geneformer's vocabulary knows (human Ensembl ids or symbols)",
            found: format!("none of its {} genes (e.g. {:?})", genes.len(), genes.iter().take(3).collect::<Vec<_>>()),
        }
        .into());
    }
    let obs_schema = source.obs_schema();
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
    let n_counts_col = obs_schema.index_of("n_counts").ok();
    let item = if version == GeneformerVersion::V1 { DataType::Int16 } else { DataType::Int32 };
    let mut fields = vec![
        Field::new("input_ids", DataType::List(Arc::new(Field::new_list_field(item.clone(), true))), true),
        Field::new("length", DataType::Int64, true),
    ];
    fields.extend(carried.iter().map(|&i| obs_schema.field(i).clone()));
    let schema = Schema::new(fields);
    let mut writer = HfDatasetWriter::create(out, &schema, 200_000)?;
    let (mut cells_in, mut cells_out) = (0, 0);
    let total_cells = source.n_cells();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| -> Result<(), Error> {
        // Reading (HDF5 decompression, canonical CSR) overlaps with tokenizing and writing.
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let source = &source;
        scope.spawn(move || {
            for chunk in source.chunks(opts.chunk_cells) {
                let failed = chunk.is_err();
                if tx.send(chunk).is_err() || failed {
                    return;
                }
            }
        });
        for chunk in rx {
            let chunk = chunk?;
            let n_counts: Vec<f64> = match n_counts_col.and_then(|i| numeric_f64(chunk.obs().column(i))) {
                Some(v) => v,
                None => chunk.cells().map(|c| c.total()).collect(),
            };
            let tokens = par_map(chunk.n_cells(), threads, |i| tokenizer.tokenize(&plan, chunk.cell(i), n_counts[i]));
            let (mut keep, mut lengths) = (vec![], vec![]);
            let mut ids32 = ListBuilder::new(Int32Builder::new());
            let mut ids16 = ListBuilder::new(Int16Builder::new());
            for (i, tok) in tokens.into_iter().enumerate() {
                let Some(tok) = tok else { continue };
                keep.push(i);
                lengths.push(tok.input_ids.len() as i64);
                if version == GeneformerVersion::V1 {
                    ids16.values().extend(tok.input_ids.iter().map(|&t| Some(t as i16)));
                    ids16.append(true);
                } else {
                    ids32.values().extend(tok.input_ids.iter().map(|&t| Some(t as i32)));
                    ids32.append(true);
                }
            }
            let ids: ArrayRef =
                if version == GeneformerVersion::V1 { Arc::new(ids16.finish()) } else { Arc::new(ids32.finish()) };
            let take = scfm_core::arrow_array::UInt32Array::from(keep.iter().map(|&i| i as u32).collect::<Vec<_>>());
            let mut cols: Vec<ArrayRef> = vec![ids, Arc::new(Int64Array::from(lengths))];
            for &c in &carried {
                cols.push(
                    scfm_core::arrow_select::take::take(chunk.obs().column(c), &take, None)
                        .map_err(|source| IoError::Arrow { path: out.to_owned(), source })?,
                );
            }
            let batch = RecordBatch::try_new(Arc::new(Schema::new(schema.fields().clone())), cols)
                .map_err(|source| IoError::Arrow { path: out.to_owned(), source })?;
            writer.write(&batch)?;
            cells_in += chunk.n_cells();
            cells_out += keep.len();
            progress(cells_in, total_cells);
        }
        Ok(())
    })?;
    writer.finish()?;
    let report = TokenizeReport {
        scheme: "geneformer",
        version: format!("{version:?}"),
        model_input_size: version.model_input_size(),
        dictionaries: files.clone(),
        input: input.to_owned(),
        n_counts_from: if n_counts_col.is_some() { "obs column n_counts" } else { "cell totals over all input genes" },
        cells_in,
        cells_out,
        genes_in: genes.len(),
        genes_mapped: plan.mapped_inputs,
        collapsed: plan.collapsed,
    };
    let spec = out.join("scfm_tokenizer.json");
    std::fs::write(&spec, serde_json::to_vec_pretty(&report).expect("serializable"))
        .map_err(|source| IoError::Io { path: spec.clone(), source })?;
    Ok(report)
}

/// `f(0..n)` on up to `threads` scoped threads (contiguous slices, results in order).
fn par_map<T: Send>(n: usize, threads: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    if threads <= 1 || n < 64 {
        return (0..n).map(&f).collect();
    }
    let per = n.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .step_by(per)
            .map(|start| {
                let f = &f;
                s.spawn(move || (start..(start + per).min(n)).map(f).collect::<Vec<T>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("tokenizer threads do not panic")).collect()
    })
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
        DataType::Float64 => conv!(Float64Type),
        DataType::Float32 => conv!(Float32Type),
        DataType::Int64 => conv!(Int64Type),
        DataType::Int32 => conv!(Int32Type),
        DataType::UInt64 => conv!(UInt64Type),
        DataType::UInt32 => conv!(UInt32Type),
        _ => None,
    }
}
