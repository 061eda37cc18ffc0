use std::path::PathBuf;

/// A tensor that a checkpoint lacks, has in excess, or has with the wrong shape.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TensorProblem {
    /// The model needs the tensor; the checkpoint does not have it.
    Missing { key: String, expected: Vec<usize> },
    /// The checkpoint has a tensor the model does not use (and that is not a documented
    /// ignorable one).
    Unexpected { key: String, shape: Vec<usize> },
    /// The shapes differ.
    Misshaped { key: String, expected: Vec<usize>, found: Vec<usize> },
    /// The tensor's element type cannot be read as the model needs it.
    Dtype { key: String, dtype: String },
}

impl std::fmt::Display for TensorProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing { key, expected } => write!(f, "missing {key} {expected:?}"),
            Self::Unexpected { key, shape } => write!(f, "unexpected {key} {shape:?}"),
            Self::Misshaped { key, expected, found } => {
                write!(f, "{key}: expected shape {expected:?}, found {found:?}")
            }
            Self::Dtype { key, dtype } => write!(f, "{key}: unsupported element type {dtype}"),
        }
    }
}

fn list(problems: &[TensorProblem]) -> String {
    const SHOWN: usize = 12;
    let mut s: Vec<String> = problems.iter().take(SHOWN).map(ToString::to_string).collect();
    if problems.len() > SHOWN {
        s.push(format!("… and {} more", problems.len() - SHOWN));
    }
    s.join("; ")
}

/// Why a checkpoint or its configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a well-formed container of the expected kind.
    #[error("{path}: not a valid {kind}: {reason}")]
    Format { path: PathBuf, kind: &'static str, reason: String },
    /// A configuration file (`config.json`, `args.json`) is malformed or describes something
    /// this family cannot build.
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    /// The checkpoint's tensors do not fit the model the configuration describes.
    #[error("{path}: the checkpoint does not fit the {model} described by its configuration ({} problems): {}", problems.len(), list(problems))]
    Tensors { path: PathBuf, model: String, problems: Vec<TensorProblem> },
    /// A folder holds none of the checkpoint files this family ships.
    #[error("{dir}: none of {expected:?} found")]
    NoCheckpoint { dir: PathBuf, expected: Vec<&'static str> },
}
