//! Scores predictions stored in a file against its labels: what `scfm eval` runs on the
//! `predictions.h5ad` that fine-tuning writes, or on any h5ad with two label columns.
//!
//! ```no_run
//! let report = scfm::score::score_obs_predictions(
//!     "out/ft/predictions.h5ad".as_ref(),
//!     "trueLabel",
//!     "scfm_prediction",
//!     Some(("scfm_split", "validation")),
//! )?;
//! println!("accuracy {:.3}, macro-F1 {:.3}", report.accuracy, report.macro_f1);
//! # Ok::<(), scfm::Error>(())
//! ```

use std::path::Path;

use scfm_core::CellSource;
use scfm_eval::{ClassificationReport, Labels, confusion_png};
use scfm_io::{AnySource, IoError, MatrixSelector, ObsSelection, SourceOptions};

use crate::Error;

/// Accuracy, macro-F1, per-class scores and the confusion matrix of the obs column
/// `prediction` against the obs column `label` of `input`, over the cells where both are set
/// and, with `subset = Some((column, value))`, where `column` equals `value`. The classes are
/// every label and prediction seen.
///
/// # Errors
/// Unreadable inputs, missing or non-label columns.
pub fn score_obs_predictions(
    input: &Path,
    label: &str,
    prediction: &str,
    subset: Option<(&str, &str)>,
) -> Result<ClassificationReport, Error> {
    let mut columns = vec![label.to_owned(), prediction.to_owned()];
    columns.extend(subset.map(|(column, _)| column.to_owned()));
    let opts = SourceOptions { matrix: MatrixSelector::X, obs: ObsSelection::Columns(columns), require_counts: false };
    let source = AnySource::open(input, &opts)?;
    let (mut truth, mut predicted) = (vec![], vec![]);
    let column = |chunk: &scfm_core::CellChunk, name: &str| {
        chunk.obs_labels(name).map_err(|e| Error::Labels { path: input.to_owned(), reason: e.to_string() })
    };
    for chunk in source.chunks(4096) {
        let chunk = chunk?;
        let (t, p) = (column(&chunk, label)?, column(&chunk, prediction)?);
        let keep: Vec<bool> = match subset {
            Some((name, value)) => column(&chunk, name)?.iter().map(|s| s.as_deref() == Some(value)).collect(),
            None => vec![true; t.len()],
        };
        for ((t, p), k) in t.into_iter().zip(p).zip(keep) {
            if let (Some(t), Some(p), true) = (t, p, k) {
                truth.push(t);
                predicted.push(p);
            }
        }
    }
    let mut all = truth.clone();
    all.extend(predicted.iter().cloned());
    let classes = Labels::from_strings(&all);
    Ok(ClassificationReport::compute(&classes.encode(&truth)?, &classes.encode(&predicted)?, &classes.names)?)
}

/// Writes `report` into `dir` as `eval.json` and `confusion.png` (titled `title`).
///
/// # Errors
/// Write errors.
pub fn write_score(report: &ClassificationReport, dir: &Path, title: &str) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|source| IoError::Io { path: dir.to_owned(), source })?;
    let path = dir.join("eval.json");
    std::fs::write(&path, serde_json::to_vec_pretty(report).expect("reports serialise"))
        .map_err(|source| IoError::Io { path, source })?;
    confusion_png(&dir.join("confusion.png"), &report.confusion, title)?;
    Ok(())
}
