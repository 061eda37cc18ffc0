use std::path::PathBuf;

use thiserror::Error;

/// Errors of the scfm readers and writers. Every variant names the file and, inside HDF5
/// files, the element (`obs/cell_type`, `raw/X/indptr`, …) so that the message is actionable.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum IoError {
    /// The input path does not exist.
    #[error("{path}: no such file or directory")]
    NotFound {
        /// The missing path.
        path: PathBuf,
    },
    /// The file exists but is not an HDF5 file (or is truncated so badly that HDF5 cannot open it).
    #[error("{path}: not a readable HDF5 file (is it truncated, or another format?)")]
    NotHdf5 {
        /// The file.
        path: PathBuf,
    },
    /// A required element is absent.
    #[error("{path}: element {element:?} is missing{hint}")]
    MissingElement {
        /// The file.
        path: PathBuf,
        /// The element path inside the file.
        element: String,
        /// Extra advice, starting with "; " or empty.
        hint: String,
    },
    /// An element uses an encoding scfm does not read.
    #[error("{path}: element {element:?} has unsupported encoding {encoding:?}{hint}")]
    UnsupportedEncoding {
        /// The file.
        path: PathBuf,
        /// The element path inside the file.
        element: String,
        /// The encoding found.
        encoding: String,
        /// Extra advice, starting with "; " or empty.
        hint: String,
    },
    /// The HDF5 library failed on an element (I/O error, corrupt chunk, …).
    #[error("{path}: reading {element:?} failed: {source}")]
    Hdf5 {
        /// The file.
        path: PathBuf,
        /// The element path inside the file.
        element: String,
        /// The HDF5 error.
        #[source]
        source: hdf5::Error,
    },
    /// A matrix's stored arrays are inconsistent (indptr, indices, shape).
    #[error("{path}: matrix {element:?} is corrupt: {reason}")]
    InvalidMatrix {
        /// The file.
        path: PathBuf,
        /// The matrix element.
        element: String,
        /// What is wrong.
        reason: String,
    },
    /// The matrix holds values that are not allowed (NaN, infinite, or negative where counts
    /// are required).
    #[error("{path}: matrix {element:?} has {what} value {value} at cell {cell}, gene {gene}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The matrix element.
        element: String,
        /// "NaN", "infinite", "negative"…
        what: &'static str,
        /// The value.
        value: f64,
        /// Row (cell) index in the file.
        cell: usize,
        /// Column (gene) index in the file.
        gene: usize,
    },
    /// An element has a data type that cannot be used where it is.
    #[error("{path}: element {element:?} has type {found}, expected {expected}")]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The element path inside the file.
        element: String,
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: String,
    },
    /// Two elements that must agree in length do not.
    #[error("{path}: element {element:?} has {found} entries, expected {expected} ({what})")]
    LengthMismatch {
        /// The file.
        path: PathBuf,
        /// The element path inside the file.
        element: String,
        /// What the expected length is (e.g. "one per cell").
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Found length.
        found: usize,
    },
    /// The matrix has no cells or no genes.
    #[error("{path}: matrix {element:?} is empty ({n_cells} cells × {n_genes} genes)")]
    EmptyMatrix {
        /// The file.
        path: PathBuf,
        /// The matrix element.
        element: String,
        /// Number of cells.
        n_cells: usize,
        /// Number of genes.
        n_genes: usize,
    },
    /// A gene table could not be built (duplicate gene ids, …).
    #[error("{path}: gene table {element:?}: {source}")]
    Genes {
        /// The file.
        path: PathBuf,
        /// The element holding the gene ids.
        element: String,
        /// The underlying problem.
        #[source]
        source: scfm_core::CoreError,
    },
    /// A requested obs column does not exist.
    #[error("{path}: no obs column {column:?} (available: {available})")]
    UnknownColumn {
        /// The file.
        path: PathBuf,
        /// The requested column.
        column: String,
        /// Comma-separated list of the columns present.
        available: String,
    },
    /// Two inputs of one corpus disagree (genes, obs schema).
    #[error("{path}: {reason}")]
    Incompatible {
        /// The input that does not fit.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// A text format (Matrix Market, TSV) is malformed.
    #[error("{path}:{line}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// An obs filter expression is invalid or does not fit the data.
    #[error("filter {expr:?}: {reason}")]
    Filter {
        /// The expression.
        expr: String,
        /// What is wrong.
        reason: String,
    },
    /// A corpus folder is not a complete corpus.
    #[error("{path}: not a valid scfm corpus: {reason}")]
    Corpus {
        /// The corpus folder or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An operating-system I/O error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An Arrow error while writing or reading shards.
    #[error("{path}: arrow: {source}")]
    Arrow {
        /// The shard.
        path: PathBuf,
        /// The Arrow error.
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// An internal invariant of a chunk was broken by the data.
    #[error("{path}: {source}")]
    Chunk {
        /// The file.
        path: PathBuf,
        /// The chunk error.
        #[source]
        source: scfm_core::CoreError,
    },
}

/// Result alias of this crate.
pub type Result<T, E = IoError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> IoError {
    let path = path.into();
    move |source| IoError::Io { path, source }
}
