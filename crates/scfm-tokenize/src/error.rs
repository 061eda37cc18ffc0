use std::path::PathBuf;

use thiserror::Error;

use crate::pickle::PickleError;

/// Errors of the tokenizers and their vocabulary readers.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TokenizeError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A pickle is corrupt, truncated, or asks for something the restricted reader refuses.
    #[error("{path}: {source}")]
    Pickle {
        /// The file.
        path: PathBuf,
        /// Where and why.
        #[source]
        source: PickleError,
    },
    /// A JSON vocabulary is malformed.
    #[error("{path}: {reason}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A text vocabulary (TSV, one gene per line) is malformed.
    #[error("{path}:{line}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The file is a valid vocabulary file, but of another kind than the one asked for (a gene
    /// median dictionary passed as a token dictionary, …).
    #[error("{path}: expected {expected}, found {found}")]
    WrongKind {
        /// The file.
        path: PathBuf,
        /// What was asked for.
        expected: &'static str,
        /// What the file holds.
        found: String,
    },
    /// Input genes the model does not know, under the `error` policy.
    #[error(
        "{path}: {unknown} of {total} genes are not in the model's vocabulary (e.g. {examples}); use the skip policy to leave them out"
    )]
    UnknownGenes {
        /// The input.
        path: PathBuf,
        /// How many are unknown.
        unknown: usize,
        /// Genes in the input.
        total: usize,
        /// A few of them.
        examples: String,
    },
    /// The vocabulary breaks an invariant (duplicate tokens or ids).
    #[error("{path}: {source}")]
    Vocab {
        /// The file.
        path: PathBuf,
        /// The problem.
        #[source]
        source: scfm_core::CoreError,
    },
    /// A folder holds none of the files a scheme reads.
    #[error("{dir}: no {file}{hint}")]
    MissingFile {
        /// The folder.
        dir: PathBuf,
        /// The file names looked for.
        file: String,
        /// What to pass instead.
        hint: String,
    },
    /// A scheme's setting cannot be used (an unknown scheme name, a malformed read-depth
    /// target).
    #[error("{what} {value:?}: expected {expected}")]
    BadSetting {
        /// Which setting.
        what: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: String,
    },
    /// A special token the tokenizer needs is not in the vocabulary.
    #[error("the {vocabulary} has no {token} token")]
    MissingToken {
        /// The token (`<cls>`, `<eos>`, …).
        token: String,
        /// Which vocabulary.
        vocabulary: &'static str,
    },
}
