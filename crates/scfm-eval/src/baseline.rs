//! The logistic-regression baseline: multinomial logistic regression with an L2 penalty on
//! log1p-normalised counts, fitted by L-BFGS — scikit-learn's `LogisticRegression(C=1.0)`
//! objective, deterministic.
//!
//! Why not linfa: linfa-logistic, -clustering and -reduction add 41 s to a cold release build
//! (measured 2026-12-07, 2 cores), and their results would still have to be checked against
//! scikit-learn; this one's predictions are (`tests/it/sklearn.rs`). k-means and the PCA of
//! `embedding.rs` stay for the same reason.

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, require_len};

/// A sparse `[cells, features]` matrix in CSR layout.
#[derive(Debug, Clone, PartialEq)]
pub struct CsrMatrix {
    n_cols: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl CsrMatrix {
    /// An empty matrix of `n_cols` columns; add rows with [`Self::push_row`].
    pub fn new(n_cols: usize) -> Self {
        Self { n_cols, indptr: vec![0], indices: vec![], values: vec![] }
    }

    /// Appends a row of (column, value) pairs.
    ///
    /// # Errors
    /// [`EvalError::Invalid`] for a column outside the matrix, a non-finite value, or lengths
    /// that differ.
    pub fn push_row(&mut self, indices: &[u32], values: &[f32]) -> Result<(), EvalError> {
        require_len("row values", indices.len(), values.len())?;
        if let Some(&c) = indices.iter().find(|&&c| c as usize >= self.n_cols) {
            return Err(EvalError::Invalid(format!("column {c} outside a matrix of {} columns", self.n_cols)));
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(EvalError::Invalid(format!("row {} has a non-finite value", self.n_rows())));
        }
        self.indices.extend_from_slice(indices);
        self.values.extend_from_slice(values);
        self.indptr.push(self.indices.len());
        Ok(())
    }

    /// Rows.
    pub fn n_rows(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Columns.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Row `i` as (columns, values).
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let r = self.indptr[i]..self.indptr[i + 1];
        (&self.indices[r.clone()], &self.values[r])
    }

    /// The rows `rows`, in that order.
    pub fn select_rows(&self, rows: &[usize]) -> Self {
        let mut out = Self::new(self.n_cols);
        for &i in rows {
            let (c, v) = self.row(i);
            out.indices.extend_from_slice(c);
            out.values.extend_from_slice(v);
            out.indptr.push(out.indices.len());
        }
        out
    }

    /// Scanpy's `normalize_total(target_sum)` followed by `log1p`: each row scaled to
    /// `target_sum` in total, then `ln(1 + x)`. Rows summing to 0 stay 0.
    pub fn log1p_normalized(&self, target_sum: f64) -> Self {
        let mut out = self.clone();
        for i in 0..self.n_rows() {
            let r = self.indptr[i]..self.indptr[i + 1];
            let total: f64 = self.values[r.clone()].iter().map(|&v| f64::from(v)).sum();
            if total > 0.0 {
                for v in &mut out.values[r] {
                    *v = (f64::from(*v) * target_sum / total).ln_1p() as f32;
                }
            }
        }
        out
    }
}

/// Settings of [`LogisticRegression::fit`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LogisticRegressionConfig {
    /// Inverse L2 strength, as scikit-learn's `C`: the fit minimises
    /// `Σ cross-entropy + ‖W‖² / (2C)` (intercepts unpenalised).
    pub c: f64,
    /// Most L-BFGS iterations.
    pub max_iter: usize,
    /// Stop when the largest gradient entry of the per-cell objective is below this.
    pub tol: f64,
    /// L-BFGS history length.
    pub history: usize,
}

impl Default for LogisticRegressionConfig {
    fn default() -> Self {
        Self { c: 1.0, max_iter: 2000, tol: 1e-9, history: 10 }
    }
}

/// A fitted multinomial logistic regression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticRegression {
    n_features: usize,
    n_classes: usize,
    /// `[features, classes]`, row-major.
    weights: Vec<f64>,
    bias: Vec<f64>,
    /// L-BFGS iterations run.
    pub iterations: usize,
    /// Whether the gradient tolerance was reached.
    pub converged: bool,
}

impl LogisticRegression {
    /// Fits the model to rows of `x` with classes `y` (codes below `n_classes`).
    ///
    /// # Errors
    /// Lengths that differ, no rows, a class code out of range, fewer than 2 classes or `c ≤ 0`.
    pub fn fit(
        x: &CsrMatrix,
        y: &[usize],
        n_classes: usize,
        config: &LogisticRegressionConfig,
    ) -> Result<Self, EvalError> {
        require_len("classes", x.n_rows(), y.len())?;
        if x.n_rows() == 0 || n_classes < 2 || config.c <= 0.0 || !config.c.is_finite() {
            return Err(EvalError::Invalid(format!(
                "logistic regression needs cells ({}), at least 2 classes ({n_classes}) and C > 0 ({})",
                x.n_rows(),
                config.c
            )));
        }
        if let Some(&c) = y.iter().find(|&&c| c >= n_classes) {
            return Err(EvalError::Invalid(format!("class code {c} outside {n_classes} classes")));
        }
        let (p, k) = (x.n_cols, n_classes);
        let lambda = 1.0 / (config.c * x.n_rows() as f64);
        let objective = |theta: &[f64], grad: &mut [f64]| -> f64 { loss_and_gradient(x, y, k, theta, lambda, grad) };
        let mut theta = vec![0.0; p * k + k];
        let (iterations, converged) = lbfgs(&mut theta, objective, config);
        let bias = theta.split_off(p * k);
        Ok(Self { n_features: p, n_classes: k, weights: theta, bias, iterations, converged })
    }

    /// Class probabilities, row-major `[cells, classes]`.
    ///
    /// # Errors
    /// A matrix with another number of features than the fit.
    pub fn predict_proba(&self, x: &CsrMatrix) -> Result<Vec<f32>, EvalError> {
        require_len("features", self.n_features, x.n_cols)?;
        let k = self.n_classes;
        let mut out = Vec::with_capacity(x.n_rows() * k);
        let mut z = vec![0.0; k];
        for i in 0..x.n_rows() {
            logits(x, i, &self.weights, &self.bias, &mut z);
            softmax_in_place(&mut z);
            out.extend(z.iter().map(|&v| v as f32));
        }
        Ok(out)
    }

    /// The most probable class of each row.
    ///
    /// # Errors
    /// As [`Self::predict_proba`].
    pub fn predict(&self, x: &CsrMatrix) -> Result<Vec<usize>, EvalError> {
        Ok(crate::classification::argmax_rows(&self.predict_proba(x)?, self.n_classes))
    }
}

fn logits(x: &CsrMatrix, i: usize, w: &[f64], b: &[f64], z: &mut [f64]) {
    let k = b.len();
    z.copy_from_slice(b);
    let (cols, vals) = x.row(i);
    for (&j, &v) in cols.iter().zip(vals) {
        let row = &w[j as usize * k..(j as usize + 1) * k];
        for (zc, wc) in z.iter_mut().zip(row) {
            *zc += f64::from(v) * wc;
        }
    }
}

/// Softmax in place; returns log-sum-exp of the input.
fn softmax_in_place(z: &mut [f64]) -> f64 {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = z.iter().map(|v| (v - m).exp()).sum();
    z.iter_mut().for_each(|v| *v = (*v - m).exp() / s);
    m + s.ln()
}

/// Mean cross-entropy plus `λ/2 ‖W‖²` and its gradient.
fn loss_and_gradient(x: &CsrMatrix, y: &[usize], k: usize, theta: &[f64], lambda: f64, grad: &mut [f64]) -> f64 {
    let pk = theta.len() - k;
    let (w, b) = theta.split_at(pk);
    grad.iter_mut().for_each(|g| *g = 0.0);
    let n = x.n_rows() as f64;
    let mut loss = 0.0;
    let mut z = vec![0.0; k];
    for (i, &yi) in y.iter().enumerate() {
        logits(x, i, w, b, &mut z);
        let target = z[yi];
        loss += softmax_in_place(&mut z) - target;
        z[yi] -= 1.0;
        let (cols, vals) = x.row(i);
        let (gw, gb) = grad.split_at_mut(pk);
        for (&j, &v) in cols.iter().zip(vals) {
            for (g, r) in gw[j as usize * k..(j as usize + 1) * k].iter_mut().zip(&z) {
                *g += f64::from(v) * r / n;
            }
        }
        gb.iter_mut().zip(&z).for_each(|(g, r)| *g += r / n);
    }
    let mut penalty = 0.0;
    for (g, wv) in grad[..pk].iter_mut().zip(w) {
        *g += lambda * wv;
        penalty += wv * wv;
    }
    loss / n + lambda / 2.0 * penalty
}

/// Minimises `f` from `theta` with L-BFGS and a backtracking (Armijo) line search; returns the
/// iterations run and whether the gradient tolerance was met.
fn lbfgs(
    theta: &mut [f64],
    mut f: impl FnMut(&[f64], &mut [f64]) -> f64,
    config: &LogisticRegressionConfig,
) -> (usize, bool) {
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let max_abs = |a: &[f64]| a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let n = theta.len();
    let mut grad = vec![0.0; n];
    let mut value = f(theta, &mut grad);
    let mut history: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = std::collections::VecDeque::new();
    let (mut trial, mut trial_grad) = (vec![0.0; n], vec![0.0; n]);
    for iter in 0..config.max_iter {
        if max_abs(&grad) < config.tol {
            return (iter, true);
        }
        // Two-loop recursion: direction = −H·grad.
        let mut q = grad.clone();
        let mut alphas = Vec::with_capacity(history.len());
        for (s, yv, rho) in history.iter().rev() {
            let a = rho * dot(s, &q);
            q.iter_mut().zip(yv).for_each(|(qi, yi)| *qi -= a * yi);
            alphas.push(a);
        }
        let gamma = history.back().map_or(1.0 / max_abs(&grad).max(1.0), |(s, yv, _)| dot(s, yv) / dot(yv, yv));
        q.iter_mut().for_each(|v| *v *= gamma);
        for ((s, yv, rho), a) in history.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(yv, &q);
            q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
        }
        let mut slope = -dot(&grad, &q);
        if slope >= 0.0 {
            // Not a descent direction: restart from steepest descent.
            history.clear();
            q.clone_from(&grad);
            slope = -dot(&grad, &q);
        }
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..50 {
            trial.iter_mut().zip(theta.iter()).zip(&q).for_each(|((t, x), d)| *t = x - step * d);
            let v = f(&trial, &mut trial_grad);
            if v.is_finite() && v <= value + 1e-4 * step * slope {
                accepted = Some(v);
                break;
            }
            step *= 0.5;
        }
        let Some(next) = accepted else {
            return (iter, false);
        };
        let s: Vec<f64> = trial.iter().zip(theta.iter()).map(|(a, b)| a - b).collect();
        let yv: Vec<f64> = trial_grad.iter().zip(&grad).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &yv);
        theta.copy_from_slice(&trial);
        std::mem::swap(&mut grad, &mut trial_grad);
        let previous = std::mem::replace(&mut value, next);
        if sy > 1e-12 {
            if history.len() == config.history {
                history.pop_front();
            }
            history.push_back((s, yv, 1.0 / sy));
        }
        if (previous - value).abs() <= 64.0 * f64::EPSILON * previous.abs().max(value.abs()).max(1.0) {
            return (iter + 1, max_abs(&grad) < config.tol);
        }
    }
    (config.max_iter, max_abs(&grad) < config.tol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_matches_finite_differences() {
        let mut x = CsrMatrix::new(3);
        x.push_row(&[0, 2], &[1.0, 2.0]).unwrap();
        x.push_row(&[1], &[0.5]).unwrap();
        x.push_row(&[0, 1, 2], &[0.3, -1.0, 0.7]).unwrap();
        let y = [0, 1, 2];
        let theta: Vec<f64> = (0..12).map(|i| (i as f64 * 0.37).sin() * 0.5).collect();
        let mut g = vec![0.0; 12];
        loss_and_gradient(&x, &y, 3, &theta, 0.1, &mut g);
        for i in 0..12 {
            let mut t = theta.clone();
            t[i] += 1e-6;
            let up = loss_and_gradient(&x, &y, 3, &t, 0.1, &mut [0.0; 12]);
            t[i] -= 2e-6;
            let down = loss_and_gradient(&x, &y, 3, &t, 0.1, &mut [0.0; 12]);
            assert!(((up - down) / 2e-6 - g[i]).abs() < 1e-6, "parameter {i}");
        }
    }

    #[test]
    fn separable_classes_are_learned() {
        let mut x = CsrMatrix::new(2);
        let mut y = vec![];
        for i in 0..20 {
            x.push_row(&[(i % 2) as u32], &[1.0 + i as f32 * 0.01]).unwrap();
            y.push(i % 2);
        }
        let m = LogisticRegression::fit(&x, &y, 2, &LogisticRegressionConfig::default()).unwrap();
        assert!(m.converged);
        assert_eq!(m.predict(&x).unwrap(), y);
        assert!(LogisticRegression::fit(&x, &y[..3], 2, &LogisticRegressionConfig::default()).is_err());
    }

    #[test]
    fn normalisation_is_log1p_of_scaled_counts() {
        let mut x = CsrMatrix::new(3);
        x.push_row(&[0, 2], &[1.0, 3.0]).unwrap();
        x.push_row(&[], &[]).unwrap();
        let n = x.log1p_normalized(1e4);
        assert_eq!(n.row(0).1, &[(2500.0f64).ln_1p() as f32, (7500.0f64).ln_1p() as f32]);
        assert!(n.row(1).1.is_empty());
    }
}
