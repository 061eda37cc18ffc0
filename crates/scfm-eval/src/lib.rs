//! Evaluation of cell annotations and cell embeddings — burn-free.
//!
//! - [`ClassificationReport`]: accuracy, macro-F1, per-class precision/recall/F1 and the
//!   confusion matrix, with scikit-learn's conventions.
//! - [`EmbeddingReport`]: leave-one-out kNN accuracy, ARI and NMI of a k-means clustering,
//!   label silhouette and scIB's batch ASW.
//! - [`LogisticRegression`]: the baseline every model has to beat — multinomial logistic
//!   regression (L2, scikit-learn's `C`) on [`CsrMatrix::log1p_normalized`] counts, fitted by a
//!   deterministic L-BFGS.
//! - [`confusion_png`], [`scatter_png`]: PNG plots (an 8×8 bitmap font, no plotting stack).
//!
//! ```
//! use scfm_eval::{ClassificationReport, Labels};
//!
//! let truth = Labels::from_strings(&["B", "NK", "NK", "B"]);
//! let predicted = truth.encode(&["B", "NK", "B", "B"])?;
//! let report = ClassificationReport::compute(&truth.codes, &predicted, &truth.names)?;
//! assert_eq!(report.accuracy, 0.75);
//! println!("{}", serde_json::to_string_pretty(&report).unwrap());
//! # Ok::<(), scfm_eval::EvalError>(())
//! ```

mod baseline;
mod classification;
mod embedding;
mod error;
mod plot;

pub use baseline::{CsrMatrix, LogisticRegression, LogisticRegressionConfig};
pub use classification::{ClassScores, ClassificationReport, ConfusionMatrix, Labels, argmax_rows};
pub use embedding::{
    EmbeddingReport, EmbeddingView, adjusted_rand_index, batch_asw, kmeans, knn_accuracy, normalized_mutual_info,
    pca_2d, silhouette_samples,
};
pub use error::EvalError;
pub use plot::{confusion_png, scatter_png};

/// Splits cells into training and validation sets with the same class proportions: within
/// each class (in order of code), cells are shuffled with `seed` and the first
/// `round(validation_fraction × size)` go to validation. Returns (training, validation) cell
/// indices, each ascending.
///
/// # Errors
/// [`EvalError::Invalid`] for a fraction outside (0, 1).
pub fn stratified_split(
    classes: &[usize],
    validation_fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>), EvalError> {
    if !(validation_fraction > 0.0 && validation_fraction < 1.0) {
        return Err(EvalError::Invalid(format!("validation fraction {validation_fraction} is not in (0, 1)")));
    }
    let k = classes.iter().max().map_or(0, |m| m + 1);
    let mut rng = scfm_core::SplitMix64::new(seed);
    let (mut train, mut valid) = (vec![], vec![]);
    for class in 0..k {
        let mut members: Vec<usize> = (0..classes.len()).filter(|&i| classes[i] == class).collect();
        for i in (1..members.len()).rev() {
            members.swap(i, rng.below(i + 1));
        }
        let n_valid = (validation_fraction * members.len() as f64).round() as usize;
        valid.extend_from_slice(&members[..n_valid]);
        train.extend_from_slice(&members[n_valid..]);
    }
    train.sort_unstable();
    valid.sort_unstable();
    Ok((train, valid))
}

#[cfg(test)]
mod tests {
    #[test]
    fn split_keeps_proportions_and_is_seeded() {
        let classes: Vec<usize> = (0..100).map(|i| usize::from(i >= 80)).collect();
        let (t, v) = super::stratified_split(&classes, 0.2, 1).unwrap();
        assert_eq!((t.len(), v.len()), (80, 20));
        assert_eq!(v.iter().filter(|&&i| classes[i] == 1).count(), 4);
        assert_eq!(super::stratified_split(&classes, 0.2, 1).unwrap().1, v);
        assert_ne!(super::stratified_split(&classes, 0.2, 2).unwrap().1, v);
        assert!(super::stratified_split(&classes, 1.0, 1).is_err());
    }
}
