use std::path::PathBuf;

/// Errors of `scfm-train`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// Reading or writing a checkpoint file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint's tensors or optimiser state do not load.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint folder.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A checkpoint of another model family, vocabulary or class set than the run expects.
    #[error("checkpoint {path} does not fit: {what} is {found}, expected {expected}")]
    Mismatch {
        /// The checkpoint folder.
        path: PathBuf,
        /// What differs (family, vocabulary size, classes).
        what: &'static str,
        /// What the run expects.
        expected: String,
        /// What the checkpoint has.
        found: String,
    },
    /// Settings or data that cannot be trained on.
    #[error("{0}")]
    Invalid(String),
    /// A model checkpoint that does not import.
    #[error(transparent)]
    Import(#[from] scfm_models::ImportError),
}
