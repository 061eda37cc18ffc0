//! Quality of cell embeddings: kNN label transfer, clustering agreement (ARI, NMI of k-means),
//! silhouette of the labels and batch mixing (scIB's batch ASW), and a 2-D PCA for plots.

use serde::{Deserialize, Serialize};

use scfm_core::SplitMix64;

use crate::error::{EvalError, require_len};

/// Row-major `[cells, dim]` embeddings, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddingView<'a> {
    values: &'a [f32],
    dim: usize,
}

impl<'a> EmbeddingView<'a> {
    /// Views `values` as rows of `dim`.
    ///
    /// # Errors
    /// [`EvalError::Invalid`] when `dim` is 0, does not divide the length, or a value is not
    /// finite (a NaN row of a cell without embedding has to be left out first).
    pub fn new(values: &'a [f32], dim: usize) -> Result<Self, EvalError> {
        if dim == 0 || !values.len().is_multiple_of(dim) {
            return Err(EvalError::Invalid(format!("{} values are not rows of {dim}", values.len())));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(EvalError::Invalid(format!("cell {} has a non-finite embedding value", i / dim)));
        }
        Ok(Self { values, dim })
    }

    /// Number of cells.
    pub fn n_cells(&self) -> usize {
        self.values.len() / self.dim
    }

    /// Embedding size.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Cell `i`'s embedding.
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    fn distance(&self, i: usize, j: usize) -> f64 {
        self.row(i).iter().zip(self.row(j)).map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2)).sum::<f64>().sqrt()
    }

    /// Distances from cell `i` to every cell.
    fn distances_from(&self, i: usize) -> Vec<f64> {
        (0..self.n_cells()).map(|j| self.distance(i, j)).collect()
    }
}

/// Leave-one-out k-nearest-neighbour accuracy (Euclidean): each cell gets the majority label
/// of its `k` nearest other cells; a tie goes to the tied label met first in order of
/// distance.
///
/// # Errors
/// Lengths that differ, `k` = 0 or not fewer than the cells.
pub fn knn_accuracy(emb: EmbeddingView<'_>, labels: &[usize], k: usize) -> Result<f64, EvalError> {
    let n = emb.n_cells();
    require_len("labels", n, labels.len())?;
    if k == 0 || k >= n {
        return Err(EvalError::Invalid(format!("k = {k} neighbours needs more than {k} cells (have {n})")));
    }
    let n_classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut correct = 0usize;
    for i in 0..n {
        let d = emb.distances_from(i);
        let mut order: Vec<usize> = (0..n).filter(|&j| j != i).collect();
        order.select_nth_unstable_by(k - 1, |&a, &b| d[a].total_cmp(&d[b]).then(a.cmp(&b)));
        let mut nearest = order[..k].to_vec();
        nearest.sort_by(|&a, &b| d[a].total_cmp(&d[b]).then(a.cmp(&b)));
        let mut votes = vec![0usize; n_classes];
        for &j in &nearest {
            votes[labels[j]] += 1;
        }
        let best = *votes.iter().max().unwrap_or(&0);
        let winner = nearest.iter().map(|&j| labels[j]).find(|&c| votes[c] == best).unwrap_or(0);
        correct += usize::from(winner == labels[i]);
    }
    Ok(correct as f64 / n as f64)
}

/// Per-cell silhouette widths (scikit-learn's `silhouette_samples`, Euclidean): `(b − a) /
/// max(a, b)` with `a` the mean distance to the cell's own group and `b` the smallest mean
/// distance to another group; 0 for a cell alone in its group.
///
/// # Errors
/// Lengths that differ, fewer than 2 groups.
pub fn silhouette_samples(emb: EmbeddingView<'_>, groups: &[usize]) -> Result<Vec<f64>, EvalError> {
    let n = emb.n_cells();
    require_len("groups", n, groups.len())?;
    let k = groups.iter().max().map_or(0, |m| m + 1);
    let mut sizes = vec![0usize; k];
    for &g in groups {
        sizes[g] += 1;
    }
    if sizes.iter().filter(|&&s| s > 0).count() < 2 {
        return Err(EvalError::Invalid("a silhouette needs at least 2 groups".into()));
    }
    Ok((0..n)
        .map(|i| {
            let own = groups[i];
            if sizes[own] < 2 {
                return 0.0;
            }
            let mut sums = vec![0.0f64; k];
            for (j, d) in emb.distances_from(i).into_iter().enumerate() {
                sums[groups[j]] += d;
            }
            let a = sums[own] / (sizes[own] - 1) as f64;
            let b = (0..k)
                .filter(|&g| g != own && sizes[g] > 0)
                .map(|g| sums[g] / sizes[g] as f64)
                .fold(f64::INFINITY, f64::min);
            let m = a.max(b);
            if m > 0.0 { (b - a) / m } else { 0.0 }
        })
        .collect())
}

/// scIB's batch ASW (`silhouette_batch`): within each label, the silhouette of the cells with
/// respect to their batches, taken as `1 − |s|` and averaged per label, then over labels. 1 =
/// batches perfectly mixed, 0 = separated. Labels present in a single batch are skipped.
///
/// # Errors
/// Lengths that differ, no label seen in two batches.
pub fn batch_asw(emb: EmbeddingView<'_>, labels: &[usize], batches: &[usize]) -> Result<f64, EvalError> {
    let n = emb.n_cells();
    require_len("labels", n, labels.len())?;
    require_len("batches", n, batches.len())?;
    let n_labels = labels.iter().max().map_or(0, |m| m + 1);
    let mut scores = vec![];
    for label in 0..n_labels {
        let members: Vec<usize> = (0..n).filter(|&i| labels[i] == label).collect();
        let mut seen: Vec<usize> = members.iter().map(|&i| batches[i]).collect();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() < 2 {
            continue;
        }
        let values: Vec<f32> = members.iter().flat_map(|&i| emb.row(i).iter().copied()).collect();
        let sub = EmbeddingView { values: &values, dim: emb.dim };
        let groups: Vec<usize> = members.iter().map(|&i| seen.binary_search(&batches[i]).unwrap_or(0)).collect();
        let s = silhouette_samples(sub, &groups)?;
        scores.push(s.iter().map(|v| 1.0 - v.abs()).sum::<f64>() / s.len() as f64);
    }
    if scores.is_empty() {
        return Err(EvalError::Invalid("batch ASW needs a label present in at least 2 batches".into()));
    }
    Ok(scores.iter().sum::<f64>() / scores.len() as f64)
}

/// Lloyd's k-means with k-means++ seeding, best of `n_init` seeded starts (lowest inertia).
/// Returns each cell's cluster.
///
/// # Errors
/// `k` = 0 or more clusters than cells.
pub fn kmeans(emb: EmbeddingView<'_>, k: usize, n_init: usize, seed: u64) -> Result<Vec<usize>, EvalError> {
    let (n, d) = (emb.n_cells(), emb.dim);
    if k == 0 || k > n {
        return Err(EvalError::Invalid(format!("{k} clusters for {n} cells")));
    }
    let mut rng = SplitMix64::new(seed);
    let mut best: Option<(f64, Vec<usize>)> = None;
    for _ in 0..n_init.max(1) {
        // k-means++: the first centre uniformly, then proportional to squared distance.
        let mut centres: Vec<f64> = Vec::with_capacity(k * d);
        let first = rng.below(n);
        centres.extend(emb.row(first).iter().map(|&v| f64::from(v)));
        let mut nearest: Vec<f64> = (0..n).map(|i| sq_dist(emb.row(i), &centres[..d])).collect();
        for _ in 1..k {
            let total: f64 = nearest.iter().sum();
            let next = if total > 0.0 {
                let mut target = rng.unit() * total;
                nearest
                    .iter()
                    .position(|&w| {
                        target -= w;
                        target < 0.0
                    })
                    .unwrap_or(n - 1)
            } else {
                rng.below(n)
            };
            let c = centres.len();
            centres.extend(emb.row(next).iter().map(|&v| f64::from(v)));
            for (i, w) in nearest.iter_mut().enumerate() {
                *w = w.min(sq_dist(emb.row(i), &centres[c..c + d]));
            }
        }
        let mut assign = vec![usize::MAX; n];
        let mut inertia = 0.0;
        for _ in 0..300 {
            let mut changed = false;
            inertia = 0.0;
            for (i, a) in assign.iter_mut().enumerate() {
                let (c, dist) = (0..k)
                    .map(|c| (c, sq_dist(emb.row(i), &centres[c * d..(c + 1) * d])))
                    .fold((0, f64::INFINITY), |b, x| if x.1 < b.1 { x } else { b });
                inertia += dist;
                changed |= *a != c;
                *a = c;
            }
            if !changed {
                break;
            }
            let mut sums = vec![0.0f64; k * d];
            let mut counts = vec![0usize; k];
            for (i, &c) in assign.iter().enumerate() {
                counts[c] += 1;
                for (s, &v) in sums[c * d..(c + 1) * d].iter_mut().zip(emb.row(i)) {
                    *s += f64::from(v);
                }
            }
            for c in 0..k {
                if counts[c] > 0 {
                    for (m, s) in centres[c * d..(c + 1) * d].iter_mut().zip(&sums[c * d..(c + 1) * d]) {
                        *m = s / counts[c] as f64;
                    }
                }
            }
        }
        if best.as_ref().is_none_or(|(b, _)| inertia < *b) {
            best = Some((inertia, assign));
        }
    }
    Ok(best.map(|(_, a)| a).unwrap_or_default())
}

fn sq_dist(x: &[f32], c: &[f64]) -> f64 {
    x.iter().zip(c).map(|(&a, &b)| (f64::from(a) - b).powi(2)).sum()
}

/// Contingency table of two labelings and its margins.
fn contingency(a: &[usize], b: &[usize]) -> (Vec<Vec<f64>>, Vec<f64>, Vec<f64>) {
    let ka = a.iter().max().map_or(0, |m| m + 1);
    let kb = b.iter().max().map_or(0, |m| m + 1);
    let mut t = vec![vec![0.0; kb]; ka];
    for (&x, &y) in a.iter().zip(b) {
        t[x][y] += 1.0;
    }
    let rows = t.iter().map(|r| r.iter().sum()).collect();
    let cols = (0..kb).map(|j| t.iter().map(|r| r[j]).sum()).collect();
    (t, rows, cols)
}

/// Adjusted Rand index of two labelings (1 = identical partitions, ~0 = chance).
///
/// # Errors
/// Lengths that differ or no cells.
pub fn adjusted_rand_index(a: &[usize], b: &[usize]) -> Result<f64, EvalError> {
    require_len("second labeling", a.len(), b.len())?;
    if a.is_empty() {
        return Err(EvalError::Invalid("no cells".into()));
    }
    let pairs = |x: f64| x * (x - 1.0) / 2.0;
    let (t, rows, cols) = contingency(a, b);
    let index: f64 = t.iter().flatten().map(|&x| pairs(x)).sum();
    let sa: f64 = rows.iter().map(|&x| pairs(x)).sum();
    let sb: f64 = cols.iter().map(|&x| pairs(x)).sum();
    let expected = sa * sb / pairs(a.len() as f64).max(f64::MIN_POSITIVE);
    let max = (sa + sb) / 2.0;
    if (max - expected).abs() < 1e-12 {
        return Ok(1.0);
    }
    Ok((index - expected) / (max - expected))
}

/// Normalized mutual information (arithmetic-mean normalisation, scikit-learn's default).
///
/// # Errors
/// Lengths that differ or no cells.
pub fn normalized_mutual_info(a: &[usize], b: &[usize]) -> Result<f64, EvalError> {
    require_len("second labeling", a.len(), b.len())?;
    if a.is_empty() {
        return Err(EvalError::Invalid("no cells".into()));
    }
    let n = a.len() as f64;
    let (t, rows, cols) = contingency(a, b);
    let entropy = |m: &[f64]| -m.iter().filter(|&&x| x > 0.0).map(|&x| x / n * (x / n).ln()).sum::<f64>();
    let (ha, hb) = (entropy(&rows), entropy(&cols));
    if ha == 0.0 && hb == 0.0 {
        return Ok(1.0);
    }
    let mut mi = 0.0;
    for (i, row) in t.iter().enumerate() {
        for (j, &x) in row.iter().enumerate() {
            if x > 0.0 {
                mi += x / n * (x * n / (rows[i] * cols[j])).ln();
            }
        }
    }
    Ok((mi / ((ha + hb) / 2.0)).clamp(0.0, 1.0))
}

/// The first two principal components of the embeddings (power iteration on the covariance,
/// deterministic; each axis signed so its largest loading is positive): row-major `[cells, 2]`.
pub fn pca_2d(emb: EmbeddingView<'_>) -> Vec<[f64; 2]> {
    let (n, d) = (emb.n_cells(), emb.dim);
    let mut mean = vec![0.0f64; d];
    for i in 0..n {
        for (m, &v) in mean.iter_mut().zip(emb.row(i)) {
            *m += f64::from(v) / n as f64;
        }
    }
    let mut cov = vec![0.0f64; d * d];
    for i in 0..n {
        let x: Vec<f64> = emb.row(i).iter().zip(&mean).map(|(&v, m)| f64::from(v) - m).collect();
        for a in 0..d {
            for b in 0..d {
                cov[a * d + b] += x[a] * x[b];
            }
        }
    }
    let mut axes: Vec<Vec<f64>> = vec![];
    for _ in 0..2 {
        let mut v: Vec<f64> = (0..d).map(|j| 1.0 + (j as f64 * 0.618).fract()).collect();
        for _ in 0..500 {
            let mut w: Vec<f64> = (0..d).map(|a| (0..d).map(|b| cov[a * d + b] * v[b]).sum()).collect();
            for axis in &axes {
                let p: f64 = w.iter().zip(axis).map(|(x, y)| x * y).sum();
                w.iter_mut().zip(axis).for_each(|(x, y)| *x -= p * y);
            }
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm == 0.0 {
                break;
            }
            w.iter_mut().for_each(|x| *x /= norm);
            v = w;
        }
        let largest = v.iter().copied().fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
        if largest < 0.0 {
            v.iter_mut().for_each(|x| *x = -*x);
        }
        axes.push(v);
    }
    (0..n)
        .map(|i| {
            let x: Vec<f64> = emb.row(i).iter().zip(&mean).map(|(&v, m)| f64::from(v) - m).collect();
            let proj = |axis: &[f64]| x.iter().zip(axis).map(|(a, b)| a * b).sum::<f64>();
            [proj(&axes[0]), proj(&axes[1])]
        })
        .collect()
}

/// The embedding metrics of one labelled set of cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingReport {
    /// Cells evaluated.
    pub cells: usize,
    /// Leave-one-out kNN accuracy and its `k`.
    pub knn_accuracy: f64,
    /// Neighbours of the kNN vote.
    pub knn_k: usize,
    /// ARI of k-means (k = number of labels) against the labels.
    pub ari: f64,
    /// NMI of the same clustering.
    pub nmi: f64,
    /// Mean silhouette width of the labels, in [−1, 1].
    pub silhouette: f64,
    /// scIB's batch ASW when batches were given.
    pub batch_asw: Option<f64>,
}

impl EmbeddingReport {
    /// All metrics, with k-means seeded by `seed`.
    ///
    /// # Errors
    /// As the single metrics.
    pub fn compute(
        emb: EmbeddingView<'_>,
        labels: &[usize],
        batches: Option<&[usize]>,
        knn_k: usize,
        seed: u64,
    ) -> Result<Self, EvalError> {
        let n_labels = {
            let mut l = labels.to_vec();
            l.sort_unstable();
            l.dedup();
            l.len()
        };
        let clusters = kmeans(emb, n_labels.max(1), 10, seed)?;
        let sil = silhouette_samples(emb, labels)?;
        Ok(Self {
            cells: emb.n_cells(),
            knn_accuracy: knn_accuracy(emb, labels, knn_k)?,
            knn_k,
            ari: adjusted_rand_index(labels, &clusters)?,
            nmi: normalized_mutual_info(labels, &clusters)?,
            silhouette: sil.iter().sum::<f64>() / sil.len() as f64,
            batch_asw: batches.map(|b| batch_asw(emb, labels, b)).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two tight groups far apart on a line, plus their labels.
    fn two_blobs() -> (Vec<f32>, Vec<usize>) {
        let values = vec![0.0, 0.0, 0.1, 0.0, 0.0, 0.1, 10.0, 10.0, 10.1, 10.0, 10.0, 10.1];
        (values, vec![0, 0, 0, 1, 1, 1])
    }

    #[test]
    fn separated_groups_score_high() {
        let (v, l) = two_blobs();
        let e = EmbeddingView::new(&v, 2).unwrap();
        assert_eq!(knn_accuracy(e, &l, 2).unwrap(), 1.0);
        let s = silhouette_samples(e, &l).unwrap();
        assert!(s.iter().all(|&x| x > 0.95), "{s:?}");
        let c = kmeans(e, 2, 3, 7).unwrap();
        assert_eq!(adjusted_rand_index(&l, &c).unwrap(), 1.0);
        assert!((normalized_mutual_info(&l, &c).unwrap() - 1.0).abs() < 1e-12);
        // Alternating batches inside each tight group are well mixed.
        let asw = batch_asw(e, &l, &[0, 1, 0, 1, 0, 1]).unwrap();
        assert!(asw > 0.5, "{asw}");
    }

    #[test]
    fn ari_and_nmi_match_scikit_learn_values() {
        // sklearn.metrics.adjusted_rand_score([0,0,1,1],[0,0,1,2]) = 0.5714285714285715
        // normalized_mutual_info_score([0,0,1,1],[0,0,1,2]) = 0.8
        assert!((adjusted_rand_index(&[0, 0, 1, 1], &[0, 0, 1, 2]).unwrap() - 4.0 / 7.0).abs() < 1e-12);
        assert!((normalized_mutual_info(&[0, 0, 1, 1], &[0, 0, 1, 2]).unwrap() - 0.8).abs() < 1e-12);
    }

    #[test]
    fn non_finite_rows_are_rejected() {
        assert!(EmbeddingView::new(&[0.0, f32::NAN], 2).is_err());
        assert!(EmbeddingView::new(&[0.0, 1.0, 2.0], 2).is_err());
    }

    #[test]
    fn pca_finds_the_long_axis() {
        // Pairs (i, ±0.1): the first axis is x exactly, the second y.
        let v: Vec<f32> = (0..20).flat_map(|i| [i as f32, 0.1, i as f32, -0.1]).collect();
        let p = pca_2d(EmbeddingView::new(&v, 2).unwrap());
        assert!((p[38][0] - p[0][0] - 19.0).abs() < 1e-6);
        assert!(((p[0][1] - p[1][1]).abs() - 0.2).abs() < 1e-6);
    }
}
