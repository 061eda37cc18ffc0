//! scGPT's per-cell value binning (`scgpt.preprocess.binning`, 51 bins), exactly.
//!
//! A cell's non-zero values get quantile edges `np.quantile(nz, linspace(0, 1, n_bins − 1))`
//! (NumPy's linear method, f64), then `left = #edges ≤ x`, `right = #edges < x` and
//! `bin = ceil(u·(right − left) + left)`: a value between edges gets its bin, a value equal to a
//! run of equal edges (common with integer counts) gets a *random* bin among
//! `right+1 ..= left`. Where `u` comes from is a [`TieBreak`]; zeros stay 0.

use crate::rng::{NumpyLegacy, NumpyPcg64};

/// Where the uniform draws that break ties between equal quantile edges come from.
#[derive(Debug, Clone)]
pub enum TieBreak {
    /// u = 0 for every value: a value on a run of equal edges gets the run's highest bin
    /// (`left`). Deterministic and independent of cell order.
    Deterministic,
    /// NumPy's legacy global RNG after `np.random.seed(seed)`, consumed value by value across
    /// cells in the order they are binned: upstream scGPT's draws when cells are binned in the
    /// same order in one process (its DataLoader workers make this irreproducible upstream).
    NumpyLegacy(Box<NumpyLegacy>),
    /// `np.random.default_rng(42)` fresh for every cell, as helical's scGPT does: deterministic
    /// and independent of cell order.
    HelicalPcg64,
}

impl TieBreak {
    /// Upstream scGPT's legacy stream after `np.random.seed(seed)`.
    pub fn numpy_legacy(seed: u32) -> Self {
        Self::NumpyLegacy(Box::new(NumpyLegacy::new(seed)))
    }
}

/// The quantile edges of sorted values: NumPy's `quantile(method="linear")` at
/// `linspace(0, 1, n_edges)`, in f64.
///
/// # Panics
/// When `sorted` is empty or `n_edges < 2`.
pub fn quantile_edges(sorted: &[f64], n_edges: usize) -> Vec<f64> {
    assert!(!sorted.is_empty() && n_edges >= 2);
    let n = sorted.len();
    let step = 1.0 / (n_edges - 1) as f64;
    (0..n_edges)
        .map(|k| {
            let q = if k == n_edges - 1 { 1.0 } else { k as f64 * step };
            // NumPy's linear method: virtual index (n − 1)·q.
            let h = (n - 1) as f64 * q;
            let lo = h.floor().clamp(0.0, (n - 1) as f64);
            let gamma = h - lo;
            let lo = lo as usize;
            let hi = (lo + 1).min(n - 1);
            let (a, b) = (sorted[lo], sorted[hi]);
            let d = b - a;
            if gamma >= 0.5 { b - d * (1.0 - gamma) } else { a + d * gamma }
        })
        .collect()
}

/// `(np.digitize(x, edges), np.digitize(x, edges, right=True))` for ascending edges:
/// the numbers of edges `≤ x` and `< x`.
pub fn digitize(x: f64, edges: &[f64]) -> (usize, usize) {
    (edges.partition_point(|&e| e <= x), edges.partition_point(|&e| e < x))
}

/// Bins one cell's values (zeros stay 0, non-zeros get 1 ..= n_bins − 1).
///
/// # Panics
/// When `n_bins < 3`.
pub fn bin_cell(values: &[f32], n_bins: usize, tie: &mut TieBreak) -> Vec<u8> {
    assert!((3..=256).contains(&n_bins));
    let nz: Vec<f64> = values.iter().filter(|&&v| v != 0.0).map(|&v| f64::from(v)).collect();
    let mut out = vec![0u8; values.len()];
    if nz.is_empty() {
        return out;
    }
    let mut sorted = nz.clone();
    sorted.sort_by(f64::total_cmp);
    let edges = quantile_edges(&sorted, n_bins - 1);
    let mut helical = matches!(tie, TieBreak::HelicalPcg64).then(|| NumpyPcg64::new(42));
    let mut k = 0;
    for (slot, &v) in out.iter_mut().zip(values) {
        if v == 0.0 {
            continue;
        }
        let (left, right) = digitize(nz[k], &edges);
        k += 1;
        let u = match tie {
            TieBreak::Deterministic => 0.0,
            TieBreak::NumpyLegacy(g) => g.next_f64(),
            TieBreak::HelicalPcg64 => helical.as_mut().expect("set above").next_f64(),
        };
        let (l, r) = (left as f64, right as f64);
        *slot = (u * (r - l) + l).ceil() as u8;
    }
    out
}
