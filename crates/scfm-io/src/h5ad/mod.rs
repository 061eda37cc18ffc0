//! Reading `.h5ad` files (anndata ≥ 0.7 on-disk encoding) chunk by chunk.
//!
//! scfm reads the anndata encoding itself on top of the HDF5 C library, so that every file
//! current Python anndata writes is read (pandas-3 `nullable-string-array` indexes and columns,
//! categoricals with their categories, CSR with unsorted indices, CSC, dense, int and float
//! matrices of any width) and nothing panics on a damaged file.

mod elem;
mod frame;
pub(crate) mod matrix;

use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions, StringArray};
use arrow_schema::{Schema, SchemaRef};
use scfm_core::{CellChunk, CellSource, GeneTable};
use serde::{Deserialize, Serialize};

pub(crate) use elem::{Ctx, Node, join, len_1d, node, open_file, read_strings, str_array_attr, str_attr};
use elem::{encoding_of, int_array_attr};
use frame::Frame;
use matrix::Matrix;
pub use matrix::MatrixLayout;

use crate::error::{IoError, Result};

/// Which matrix of an h5ad file to read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatrixSelector {
    /// `X`.
    #[default]
    X,
    /// `raw/X`, whose genes are `raw/var`.
    Raw,
    /// `layers/NAME`.
    Layer(String),
    /// Raw counts the way CELLxGENE lays files out: `raw/X` when present, otherwise `X`.
    Counts,
}

impl FromStr for MatrixSelector {
    type Err = String;

    /// Parses `X`, `raw`, `counts` or `layer:NAME`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "X" | "x" => Ok(Self::X),
            "raw" | "raw.X" | "raw/X" => Ok(Self::Raw),
            "counts" | "auto" => Ok(Self::Counts),
            _ => match s.strip_prefix("layer:") {
                Some(name) if !name.is_empty() => Ok(Self::Layer(name.to_owned())),
                _ => Err(format!("unknown matrix {s:?}: use X, raw, counts or layer:NAME")),
            },
        }
    }
}

impl fmt::Display for MatrixSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::X => f.write_str("X"),
            Self::Raw => f.write_str("raw"),
            Self::Layer(n) => write!(f, "layer:{n}"),
            Self::Counts => f.write_str("counts"),
        }
    }
}

/// Which obs columns every chunk carries.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObsSelection {
    /// Every column, in the file's column order.
    #[default]
    All,
    /// No columns (cell ids only).
    None,
    /// These columns, in this order.
    Columns(Vec<String>),
}

/// Options for [`H5adSource::open_with`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct H5adOptions {
    /// The matrix to read.
    pub matrix: MatrixSelector,
    /// The obs columns to carry.
    pub obs: ObsSelection,
    /// Reject negative values (use for raw counts). NaN and infinities are always rejected.
    pub require_counts: bool,
}

/// A chunked reader over one matrix of an h5ad file and its obs metadata.
///
/// ```no_run
/// use scfm_core::CellSource;
/// use scfm_io::{H5adOptions, H5adSource, MatrixSelector};
///
/// let opts = H5adOptions { matrix: MatrixSelector::Counts, ..Default::default() };
/// let source = H5adSource::open_with("pbmc.h5ad", &opts)?;
/// for chunk in source.chunks(1024) {
///     let chunk = chunk?;
///     println!("{} cells, {} non-zeros", chunk.n_cells(), chunk.nnz());
/// }
/// # Ok::<(), scfm_io::IoError>(())
/// ```
#[derive(Debug)]
pub struct H5adSource {
    ctx: Ctx,
    file: hdf5::File,
    matrix: Matrix,
    genes: GeneTable,
    obs: Frame,
    selected: Vec<usize>,
    schema: SchemaRef,
}

impl H5adSource {
    /// Opens `X` with every obs column.
    ///
    /// # Errors
    /// See [`H5adSource::open_with`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, &H5adOptions::default())
    }

    /// Opens the selected matrix and obs columns.
    ///
    /// # Errors
    /// A missing file, a non-HDF5 file, a missing or unsupported element, inconsistent shapes,
    /// duplicate gene ids or an unknown obs column, each naming the file and element.
    pub fn open_with(path: impl AsRef<Path>, opts: &H5adOptions) -> Result<Self> {
        let path = path.as_ref();
        let ctx = Ctx::new(path);
        let file = open_file(path)?;
        let root: hdf5::Group = ctx.h5("/", file.as_group())?;
        let selector = resolve_counts(&root, &opts.matrix);
        let (m_el, var_el) = match &selector {
            MatrixSelector::X | MatrixSelector::Counts => ("X".to_owned(), "var"),
            MatrixSelector::Raw => ("raw/X".to_owned(), "raw/var"),
            MatrixSelector::Layer(n) => (format!("layers/{n}"), "var"),
        };
        let obs = Frame::open(&ctx, &root, "obs")?;
        let mut matrix = open_matrix(&ctx, &root, &m_el)?;
        matrix.require_non_negative = opts.require_counts;
        if matrix.n_rows == 0 || matrix.n_cols == 0 {
            return Err(IoError::EmptyMatrix {
                path: path.to_owned(),
                element: m_el,
                n_cells: matrix.n_rows,
                n_genes: matrix.n_cols,
            });
        }
        if obs.n_rows != matrix.n_rows {
            return Err(IoError::LengthMismatch {
                path: path.to_owned(),
                element: "obs".into(),
                what: "one obs row per matrix row",
                expected: matrix.n_rows,
                found: obs.n_rows,
            });
        }
        let genes = read_genes(&ctx, &root, var_el, matrix.n_cols)?;
        let selected = select_columns(&ctx, &obs, &opts.obs)?;
        let schema = Arc::new(Schema::new(selected.iter().map(|&i| obs.columns[i].field()).collect::<Vec<_>>()));
        Ok(Self { ctx, file, matrix, genes, obs, selected, schema })
    }

    /// The file this source reads.
    pub fn path(&self) -> &Path {
        &self.ctx.path
    }

    /// The matrix element read (`X`, `raw/X`, `layers/counts`).
    pub fn matrix_element(&self) -> &str {
        &self.matrix.element
    }

    /// How the matrix is stored.
    pub fn layout(&self) -> MatrixLayout {
        self.matrix.layout()
    }

    /// The stored number type of the matrix (`int32`, `float32`, …).
    pub fn dtype(&self) -> &'static str {
        self.matrix.dtype.name()
    }

    /// Names of every obs column in the file (not only the selected ones).
    pub fn obs_column_names(&self) -> Vec<String> {
        self.obs.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// Stored entries of a sparse matrix, including explicit zeros.
    pub fn stored_nnz(&self) -> Option<usize> {
        self.matrix.stored_nnz()
    }

    /// The keys of `obsm` (embeddings and other per-cell matrices), sorted.
    ///
    /// # Errors
    /// [`IoError::Hdf5`] when the group cannot be listed.
    pub fn obsm_keys(&self) -> Result<Vec<String>> {
        if !self.file.link_exists("obsm") {
            return Ok(vec![]);
        }
        let g = self.ctx.h5("obsm", self.file.group("obsm"))?;
        let mut keys = self.ctx.h5("obsm", g.member_names())?;
        keys.sort();
        Ok(keys)
    }

    /// Reads rows of the dense matrix `obsm[key]`, losslessly as f64.
    ///
    /// # Errors
    /// [`IoError::MissingElement`] for an unknown key (listing the keys present),
    /// [`IoError::UnsupportedEncoding`] for dataframe or sparse entries, and a
    /// [`IoError::LengthMismatch`] when the matrix does not have one row per cell.
    pub fn read_obsm(&self, key: &str, rows: Range<usize>) -> Result<Obsm> {
        let el = format!("obsm/{key}");
        let keys = self.obsm_keys()?;
        if !keys.iter().any(|k| k == key) {
            return Err(self.ctx.missing(&el, &format!("; obsm keys present: {}", keys.join(", "))));
        }
        let g = self.ctx.h5("obsm", self.file.group("obsm"))?;
        let ds = match node(&self.ctx, &g, "obsm", key)? {
            Some(Node::Dataset(ds)) => ds,
            _ => {
                let enc = self.file.group(&el).ok().and_then(|g| encoding_of(&g)).unwrap_or_else(|| "group".into());
                return Err(self.ctx.unsupported(&el, &enc, "; only dense obsm matrices are read"));
            }
        };
        let shape = ds.shape();
        let (n, dim) = match shape[..] {
            [n] => (n, 1),
            [n, d] => (n, d),
            _ => return Err(self.ctx.wrong_type(&el, "a 1-D or 2-D array", shape)),
        };
        if n != self.n_cells() {
            return Err(IoError::LengthMismatch {
                path: self.ctx.path.clone(),
                element: el,
                what: "one row per cell",
                expected: self.n_cells(),
                found: n,
            });
        }
        elem::num_kind(&self.ctx, &el, &ds, "a numeric matrix")?;
        let rows = rows.start.min(n)..rows.end.min(n);
        if rows.is_empty() {
            return Ok(Obsm { dim, values: vec![] });
        }
        let values = if shape.len() == 1 {
            self.ctx.h5(&el, ds.read_slice_1d::<f64, _>(rows))?.into_raw_vec_and_offset().0
        } else {
            self.ctx.h5(&el, ds.read_slice_2d::<f64, _>((rows, ..)))?.into_raw_vec_and_offset().0
        };
        Ok(Obsm { dim, values })
    }
}

/// Rows of an obsm matrix: `values.len() / dim` rows of `dim` columns, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Obsm {
    /// Columns.
    pub dim: usize,
    /// Row-major values.
    pub values: Vec<f64>,
}

impl CellSource for H5adSource {
    type Error = IoError;

    fn genes(&self) -> &GeneTable {
        &self.genes
    }

    fn n_cells(&self) -> usize {
        self.matrix.n_rows
    }

    fn obs_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn read_rows(&self, rows: Range<usize>) -> Result<CellChunk> {
        let rows = rows.start.min(self.n_cells())..rows.end.min(self.n_cells());
        let (indptr, indices, values) = self.matrix.read_rows(&self.ctx, rows.clone())?;
        let ids = self.obs.index(&self.ctx, rows.clone())?;
        let cols: Vec<ArrayRef> =
            self.selected.iter().map(|&i| self.obs.columns[i].read(&self.ctx, rows.clone())).collect::<Result<_>>()?;
        let obs = RecordBatch::try_new_with_options(
            self.schema.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(rows.len())),
        )
        .map_err(|source| IoError::Arrow { path: self.ctx.path.clone(), source })?;
        let chunk = CellChunk::from_csr(ids, indptr, indices, values, self.genes.len())
            .and_then(|c| c.with_obs(obs))
            .map_err(|source| IoError::Chunk { path: self.ctx.path.clone(), source })?;
        Ok(chunk)
    }
}

fn resolve_counts(root: &hdf5::Group, sel: &MatrixSelector) -> MatrixSelector {
    match sel {
        MatrixSelector::Counts if root.link_exists("raw") && root.group("raw").is_ok_and(|g| g.link_exists("X")) => {
            MatrixSelector::Raw
        }
        MatrixSelector::Counts => MatrixSelector::X,
        other => other.clone(),
    }
}

/// Opens an anndata matrix element (sparse group or dense dataset).
pub(crate) fn open_matrix(ctx: &Ctx, root: &hdf5::Group, element: &str) -> Result<Matrix> {
    let (parent_path, name) = element.rsplit_once('/').unwrap_or(("", element));
    let parent = if parent_path.is_empty() {
        root.clone()
    } else {
        if !root.link_exists(parent_path) {
            return Err(ctx.missing(element, &matrix_hint(root)));
        }
        ctx.h5(parent_path, root.group(parent_path))?
    };
    match node(ctx, &parent, parent_path, name)? {
        None => Err(ctx.missing(element, &matrix_hint(root))),
        Some(Node::Dataset(ds)) => Matrix::dense(ctx, element, ds),
        Some(Node::Group(g)) => {
            let enc = encoding_of(&g);
            let by_row = match enc.as_deref() {
                Some("csr_matrix") => true,
                Some("csc_matrix") => false,
                Some(other) => return Err(ctx.unsupported(element, other, "")),
                None if str_attr(&g, "h5sparse_format").is_some() => {
                    return Err(ctx.unsupported(
                        element,
                        "h5sparse (anndata < 0.7)",
                        "; re-save the file with a current anndata",
                    ));
                }
                None => return Err(ctx.unsupported(element, "none", "; a group without encoding-type")),
            };
            let shape = int_array_attr(ctx, element, &g, "shape")?;
            let [r, c] = shape[..] else {
                return Err(ctx.invalid(element, format!("shape attribute {shape:?} is not 2-D")));
            };
            if r < 0 || c < 0 {
                return Err(ctx.invalid(element, format!("negative shape {shape:?}")));
            }
            let ds = |n: &str| match node(ctx, &g, element, n)? {
                Some(Node::Dataset(d)) => Ok(d),
                _ => Err(ctx.missing(&join(element, n), "")),
            };
            Matrix::sparse(ctx, element, (ds("data")?, ds("indices")?, ds("indptr")?), (r as usize, c as usize), by_row)
        }
    }
}

fn matrix_hint(root: &hdf5::Group) -> String {
    let mut present = vec![];
    if root.link_exists("X") {
        present.push("X".to_owned());
    }
    if root.group("raw").is_ok_and(|g| g.link_exists("X")) {
        present.push("raw".to_owned());
    }
    if let Ok(layers) = root.group("layers") {
        for n in layers.member_names().unwrap_or_default() {
            present.push(format!("layer:{n}"));
        }
    }
    if present.is_empty() {
        "; the file has no expression matrix at all".into()
    } else {
        format!("; matrices present: {}", present.join(", "))
    }
}

/// The gene table of a var dataframe: its index as ids, `feature_name` (CELLxGENE) as symbols.
fn read_genes(ctx: &Ctx, root: &hdf5::Group, var_el: &str, n_cols: usize) -> Result<GeneTable> {
    let var = Frame::open(ctx, root, var_el)?;
    if var.n_rows != n_cols {
        return Err(IoError::LengthMismatch {
            path: ctx.path.clone(),
            element: var_el.to_owned(),
            what: "one var row per matrix column",
            expected: n_cols,
            found: var.n_rows,
        });
    }
    let ids = var.index(ctx, 0..n_cols)?;
    let genes_err = |source| IoError::Genes { path: ctx.path.clone(), element: format!("{var_el}/_index"), source };
    let genes = GeneTable::new(ids).map_err(genes_err)?;
    match var.column("feature_name") {
        Some(col) => {
            let arr = col.read(ctx, 0..n_cols)?;
            let symbols = strings_of(&arr);
            genes.with_symbols(symbols).map_err(genes_err)
        }
        None => Ok(genes),
    }
}

/// Renders a string or dictionary-of-strings array as strings (nulls as empty).
pub(crate) fn strings_of(arr: &ArrayRef) -> Vec<String> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int32Type;
    if let Some(s) = arr.as_string_opt::<i32>() {
        return (0..s.len()).map(|i| if s.is_null(i) { String::new() } else { s.value(i).to_owned() }).collect();
    }
    if let Some(d) = arr.as_dictionary_opt::<Int32Type>()
        && let Some(vals) = d.values().as_any().downcast_ref::<StringArray>()
    {
        return d.keys().iter().map(|k| k.map(|k| vals.value(k as usize).to_owned()).unwrap_or_default()).collect();
    }
    vec![String::new(); arr.len()]
}

fn select_columns(ctx: &Ctx, obs: &Frame, sel: &ObsSelection) -> Result<Vec<usize>> {
    match sel {
        ObsSelection::All => Ok((0..obs.columns.len()).collect()),
        ObsSelection::None => Ok(vec![]),
        ObsSelection::Columns(names) => names
            .iter()
            .map(|n| {
                obs.columns.iter().position(|c| &c.name == n).ok_or_else(|| IoError::UnknownColumn {
                    path: ctx.path.clone(),
                    column: n.clone(),
                    available: obs.column_list(),
                })
            })
            .collect(),
    }
}

/// Reads a whole small 1-D integer dataset (e.g. a 10x `shape`).
pub(crate) fn read_num_all(ctx: &Ctx, element: &str, ds: &hdf5::Dataset) -> Result<Vec<i64>> {
    let n = len_1d(ctx, element, ds)?;
    let v = elem::read_num(ctx, element, ds, 0..n)?;
    v.to_u64()
        .map(|v| v.into_iter().map(|x| x as i64).collect())
        .map_err(|(i, x)| ctx.invalid(element, format!("entry {i} is {x}")))
}
