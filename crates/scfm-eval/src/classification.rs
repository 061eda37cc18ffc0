//! Scores of a cell-type annotation: accuracy, macro-F1, per-class precision and recall, the
//! confusion matrix.

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, require_len};

/// Class names and each cell's class code, built from per-cell label strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labels {
    /// The distinct labels, sorted.
    pub names: Vec<String>,
    /// Each cell's index into `names`.
    pub codes: Vec<usize>,
}

impl Labels {
    /// Codes the per-cell labels; classes are the distinct labels in sorted order.
    pub fn from_strings<S: AsRef<str>>(labels: &[S]) -> Self {
        let mut names: Vec<String> = labels.iter().map(|s| s.as_ref().to_owned()).collect();
        names.sort_unstable();
        names.dedup();
        let codes =
            labels.iter().map(|s| names.binary_search_by(|n| n.as_str().cmp(s.as_ref())).unwrap_or(0)).collect();
        Self { names, codes }
    }

    /// Codes `labels` against these classes; a label outside them is an error naming it.
    ///
    /// # Errors
    /// [`EvalError::Invalid`] for a label the classes do not have.
    pub fn encode<S: AsRef<str>>(&self, labels: &[S]) -> Result<Vec<usize>, EvalError> {
        labels
            .iter()
            .map(|s| {
                self.names.binary_search_by(|n| n.as_str().cmp(s.as_ref())).map_err(|_| {
                    EvalError::Invalid(format!("label {:?} is not one of the classes {:?}", s.as_ref(), self.names))
                })
            })
            .collect()
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.names.len()
    }
}

/// Counts of (true class, predicted class) pairs: `counts[t][p]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// Class names, rows (true) and columns (predicted) in this order.
    pub classes: Vec<String>,
    /// `counts[true][predicted]`.
    pub counts: Vec<Vec<u64>>,
}

/// Precision, recall and F1 of one class (one-vs-rest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    /// The class.
    pub class: String,
    /// Of the cells predicted as this class, the fraction that are (0 when none is predicted).
    pub precision: f64,
    /// Of the cells of this class, the fraction predicted as it.
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Cells of this class.
    pub support: u64,
}

/// Accuracy, macro-F1 and per-class scores of predictions against true classes, with the
/// conventions of scikit-learn's `classification_report` (`zero_division=0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    /// Cells scored.
    pub cells: u64,
    /// Fraction of cells whose prediction is their class.
    pub accuracy: f64,
    /// Unweighted mean of the per-class F1 over the classes present in the truth or the
    /// predictions.
    pub macro_f1: f64,
    /// Mean of the per-class F1 weighted by support.
    pub weighted_f1: f64,
    /// One entry per class.
    pub per_class: Vec<ClassScores>,
    /// The confusion matrix.
    pub confusion: ConfusionMatrix,
}

impl ClassificationReport {
    /// Scores `predicted` against `truth` (class codes into `classes`).
    ///
    /// # Errors
    /// [`EvalError::Length`] when the two differ in length, [`EvalError::Invalid`] for no cells or
    /// a code outside `classes`.
    pub fn compute(truth: &[usize], predicted: &[usize], classes: &[String]) -> Result<Self, EvalError> {
        require_len("predicted classes", truth.len(), predicted.len())?;
        if truth.is_empty() {
            return Err(EvalError::Invalid("no cells to score".into()));
        }
        let k = classes.len();
        let mut counts = vec![vec![0u64; k]; k];
        for (&t, &p) in truth.iter().zip(predicted) {
            if t >= k || p >= k {
                return Err(EvalError::Invalid(format!("class code {} outside the {k} classes", t.max(p))));
            }
            counts[t][p] += 1;
        }
        let n = truth.len() as u64;
        let correct: u64 = (0..k).map(|c| counts[c][c]).sum();
        let mut per_class = Vec::with_capacity(k);
        let (mut f1_sum, mut weighted, mut present) = (0.0, 0.0, 0usize);
        for c in 0..k {
            let tp = counts[c][c];
            let support: u64 = counts[c].iter().sum();
            let predicted_c: u64 = counts.iter().map(|row| row[c]).sum();
            let precision = ratio(tp, predicted_c);
            let recall = ratio(tp, support);
            let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
            if support > 0 || predicted_c > 0 {
                f1_sum += f1;
                present += 1;
            }
            weighted += f1 * support as f64;
            per_class.push(ClassScores { class: classes[c].clone(), precision, recall, f1, support });
        }
        Ok(Self {
            cells: n,
            accuracy: correct as f64 / n as f64,
            macro_f1: f1_sum / present.max(1) as f64,
            weighted_f1: weighted / n as f64,
            per_class,
            confusion: ConfusionMatrix { classes: classes.to_vec(), counts },
        })
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The index of the largest value of each row of a row-major `[n, k]` score matrix (first
/// one on ties; NaN never wins).
pub fn argmax_rows(scores: &[f32], k: usize) -> Vec<usize> {
    scores
        .chunks(k.max(1))
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) })
                .0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(k: usize) -> Vec<String> {
        (0..k).map(|c| format!("c{c}")).collect()
    }

    #[test]
    fn scores_match_a_hand_count() {
        // truth 0 0 1 1 2, predicted 0 1 1 1 0
        let r = ClassificationReport::compute(&[0, 0, 1, 1, 2], &[0, 1, 1, 1, 0], &names(3)).unwrap();
        assert_eq!(r.accuracy, 3.0 / 5.0);
        assert_eq!(r.confusion.counts, vec![vec![1, 1, 0], vec![0, 2, 0], vec![1, 0, 0]]);
        let p: Vec<f64> = r.per_class.iter().map(|c| c.precision).collect();
        let rc: Vec<f64> = r.per_class.iter().map(|c| c.recall).collect();
        assert_eq!(p, vec![0.5, 2.0 / 3.0, 0.0]);
        assert_eq!(rc, vec![0.5, 1.0, 0.0]);
        let f1_1 = 2.0 * (2.0 / 3.0) / (2.0 / 3.0 + 1.0);
        assert!((r.macro_f1 - (0.5 + f1_1) / 3.0).abs() < 1e-12);
        assert!((r.weighted_f1 - (0.5 * 2.0 + f1_1 * 2.0) / 5.0).abs() < 1e-12);
    }

    #[test]
    fn absent_classes_do_not_count_in_macro_f1() {
        let r = ClassificationReport::compute(&[0, 1], &[0, 1], &names(4)).unwrap();
        assert_eq!(r.macro_f1, 1.0);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(ClassificationReport::compute(&[0], &[0, 1], &names(2)), Err(EvalError::Length { .. })));
        assert!(ClassificationReport::compute(&[], &[], &names(2)).is_err());
        assert!(ClassificationReport::compute(&[0], &[5], &names(2)).is_err());
    }

    #[test]
    fn labels_code_in_sorted_order() {
        let l = Labels::from_strings(&["NK", "B", "NK", "Monocyte"]);
        assert_eq!(l.names, vec!["B", "Monocyte", "NK"]);
        assert_eq!(l.codes, vec![2, 0, 2, 1]);
        assert!(l.encode(&["T"]).is_err());
        assert_eq!(argmax_rows(&[0.1, 0.9, f32::NAN, 0.5, 0.5, 0.2], 3), vec![1, 0]);
    }
}
