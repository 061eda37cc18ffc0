use std::path::PathBuf;

/// Errors of `scfm-eval`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// Two inputs that must describe the same cells do not.
    #[error("{what}: expected {expected} entries, found {found}")]
    Length {
        /// Which input.
        what: &'static str,
        /// The length the other inputs give.
        expected: usize,
        /// Its length.
        found: usize,
    },
    /// An input that cannot be evaluated (too few cells or classes, non-finite values, …).
    #[error("{0}")]
    Invalid(String),
    /// Writing a report or a plot.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn require_len(what: &'static str, expected: usize, found: usize) -> Result<(), EvalError> {
    if expected == found { Ok(()) } else { Err(EvalError::Length { what, expected, found }) }
}
