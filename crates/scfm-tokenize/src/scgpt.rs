//! scGPT's per-cell value binning (`scgpt.preprocess.binning`, 51 bins), exactly.
//!
//! A cell's non-zero values get quantile edges `np.quantile(nz, linspace(0, 1, n_bins − 1))`
//! (NumPy's linear method, f64), then `left = #edges ≤ x`, `right = #edges < x` and
//! `bin = ceil(u·(right − left) + left)`: a value between edges gets its bin, a value equal to a
//! run of equal edges (common with integer counts) gets a *random* bin among
//! `right+1 ..= left`. Where `u` comes from is a [`TieBreak`]; zeros stay 0.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::rng::{NumpyLegacy, NumpyPcg64};
use crate::spec::{SchemeOptions, SchemeSpec};
use crate::tokenizer::{PreparedTokenizer, SequentialTokenizer, TokenizedCell, TokenizerInput};
use crate::{TokenizeError, Tokenizer};

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

/// [`digitize`] of ascending `xs` in one merge walk over them and the ascending `edges`:
/// `(left, right)` for each, as `u8` (at most 256 edges).
fn digitize_ascending(edges: &[f64], xs: impl Iterator<Item = f64>) -> impl Iterator<Item = (u8, u8)> {
    let (mut left, mut right) = (0, 0);
    xs.map(move |x| {
        while left < edges.len() && edges[left] <= x {
            left += 1;
        }
        while right < edges.len() && edges[right] < x {
            right += 1;
        }
        (left as u8, right as u8)
    })
}

/// Bins one cell's values (zeros stay 0, non-zeros get 1 ..= n_bins − 1).
///
/// # Panics
/// When `n_bins < 3`.
pub fn bin_cell(values: &[f32], n_bins: usize, tie: &mut TieBreak) -> Vec<u8> {
    assert!((3..=256).contains(&n_bins));
    /// Per-thread buffers: non-zero values as ordered keys, sort scratch, sorted values,
    /// digitize bounds by rank (general path) or by value (counts path), value histogram, and
    /// helical's draws.
    #[derive(Default)]
    struct Buffers {
        keys: Vec<u64>,
        scratch: crate::radix::Scratch,
        sorted: Vec<f64>,
        bounds: Vec<(u8, u8)>,
        histogram: Vec<u32>,
        helical: HelicalDraws,
    }
    thread_local! {
        static BUFFERS: std::cell::RefCell<Buffers> = Default::default();
    }
    let mut out = vec![0u8; values.len()];
    BUFFERS.with_borrow_mut(|Buffers { keys, scratch, sorted, bounds, histogram, helical }| {
        // Raw counts (positive integers, the largest not far above the number of values) are
        // ordered by a histogram instead of a sort, and digitized once per distinct value.
        let (n, max, counts) = values
            .iter()
            .filter(|&&v| v != 0.0)
            .fold((0usize, 0f32, true), |(n, max, counts), &v| (n + 1, max.max(v), counts & (v > 0.0) & is_whole(v)));
        if n == 0 {
            return;
        }
        let by_value = counts && (max as usize) <= (4 * n).max(4096);
        // The non-zero values in ascending order, their quantile edges, and the digitize bounds:
        // by value (counts path) or by rank among the non-zeros (general path).
        sorted.clear();
        bounds.clear();
        if by_value {
            histogram.clear();
            histogram.resize(max as usize + 1, 0);
            for &v in values.iter().filter(|&&v| v != 0.0) {
                histogram[v as usize] += 1;
            }
            let present = || histogram.iter().enumerate().filter(|&(_, &c)| c > 0);
            for (v, &c) in present() {
                sorted.extend(std::iter::repeat_n(v as f64, c as usize));
            }
            let edges = quantile_edges(sorted, n_bins - 1);
            bounds.resize(histogram.len(), (0, 0));
            for ((v, _), b) in present().zip(digitize_ascending(&edges, present().map(|(v, _)| v as f64))) {
                bounds[v] = b;
            }
        } else {
            // Non-zero values as order-preserving integers.
            keys.clear();
            keys.extend(values.iter().filter(|&&v| v != 0.0).map(|&v| u64::from(ordered_bits(v))));
            let order = crate::radix::argsort_stable(keys, scratch);
            sorted.extend(order.positions().map(|k| f64::from(from_ordered_bits(keys[k] as u32))));
            let edges = quantile_edges(sorted, n_bins - 1);
            bounds.resize(n, (0, 0));
            for (k, b) in order.positions().zip(digitize_ascending(&edges, sorted.iter().copied())) {
                bounds[k] = b;
            }
        }
        // helical seeds default_rng(42) afresh for every cell: every cell takes the same draws.
        let helical = match tie {
            TieBreak::HelicalPcg64 => helical.first(n),
            _ => &[],
        };
        // Draws are consumed in column order, one per non-zero value.
        let slots = out.iter_mut().zip(values).filter(|(_, v)| **v != 0.0);
        for (rank, (slot, &v)) in slots.enumerate() {
            let (left, right) = bounds[if by_value { v as usize } else { rank }];
            let u = match tie {
                TieBreak::Deterministic => 0.0,
                TieBreak::NumpyLegacy(g) => g.next_f64(),
                TieBreak::HelicalPcg64 => helical[rank],
            };
            let (l, r) = (f64::from(left), f64::from(right));
            *slot = ceil_non_negative(u * (r - l) + l);
        }
    });
    out
}

/// The first draws of `np.random.default_rng(42)`, which helical's binning takes afresh for
/// every cell: drawn once per thread, as far as the longest cell so far needs.
#[derive(Default)]
struct HelicalDraws {
    draws: Vec<f64>,
    /// The generator after the last draw kept.
    rng: Option<NumpyPcg64>,
}

impl HelicalDraws {
    /// Draws `0..n` of the stream.
    fn first(&mut self, n: usize) -> &[f64] {
        if self.draws.len() < n {
            let rng = self.rng.get_or_insert_with(|| NumpyPcg64::new(42));
            let more = n - self.draws.len();
            self.draws.extend(std::iter::repeat_with(|| rng.next_f64()).take(more));
        }
        &self.draws[..n]
    }
}

/// Whether `v` is a whole number (finite, no fraction), without a libm call (`f32::fract` calls
/// `truncf` on baseline x86-64): below 2^23 the cast truncates exactly; above, every `f32` is
/// whole.
fn is_whole(v: f32) -> bool {
    const EVERY_F32_WHOLE: f32 = 8_388_608.0;
    v.is_finite() && (v.abs() >= EVERY_F32_WHOLE || (v as i32) as f32 == v)
}

/// The bits of `v` as an integer that orders like `v` (total order; negatives below positives).
fn ordered_bits(v: f32) -> u32 {
    let b = v.to_bits();
    if b >> 31 == 1 { !b } else { b | 0x8000_0000 }
}

/// The inverse of [`ordered_bits`].
fn from_ordered_bits(o: u32) -> f32 {
    f32::from_bits(if o >> 31 == 1 { o & 0x7fff_ffff } else { !o })
}

/// `y.ceil() as u8` for `0 ≤ y < 256`, without a libm call (`ceil` is not inlined on baseline
/// x86-64): the truncation, plus one when a fraction was cut off.
fn ceil_non_negative(y: f64) -> u8 {
    let t = y as u8;
    if f64::from(t) < y { t + 1 } else { t }
}

/// The names of a scGPT vocabulary in a folder, first found first: a release's own
/// `vocab.json`, or the whole-human vocabulary as the shared data folder has it.
pub const VOCAB_FILES: [&str; 2] = ["vocab.json", "default_census_vocab.json"];

/// How scGPT builds a cell's token sequence (MODELS.md §3.5).
#[derive(Debug, Clone)]
pub struct ScGptSequence {
    /// Id of `<cls>`.
    pub cls_id: u32,
    /// Value of the `<cls>` position: −2 (`pad_value`, zero-shot embedding path) or 0 (the
    /// fine-tuning tutorials).
    pub cls_value: f32,
    /// Longest sequence, `<cls>` included; longer cells keep `<cls>` and a seeded uniform sample
    /// of their genes (in column order).
    pub max_len: usize,
    /// Include unexpressed vocabulary genes (integration tutorial) or not (annotation, zero-shot).
    pub include_zero_genes: bool,
    /// Number of value bins (51).
    pub n_bins: usize,
    /// Seed of the gene sub-sampling.
    pub seed: u32,
}

impl ScGptSequence {
    /// The zero-shot embedding path: `<cls>` value −2, `max_len` 1200, expressed genes only.
    pub fn zero_shot(cls_id: u32) -> Self {
        Self { cls_id, cls_value: -2.0, max_len: 1200, include_zero_genes: false, n_bins: 51, seed: 0 }
    }

    /// Maps dataset columns to vocabulary ids (by gene symbol, exact match).
    pub fn plan(vocab: &scfm_core::GeneVocab, genes: &scfm_core::GeneTable) -> Vec<Option<u32>> {
        genes.symbols().unwrap_or(genes.ids()).iter().map(|g| vocab.id(g)).collect()
    }

    /// `(gene ids, binned values)` of one cell, `<cls>` first. `cell` keys the sub-sampling
    /// stream; `tie` breaks binning ties (see [`TieBreak`]).
    pub fn tokenize(
        &self,
        plan: &[Option<u32>],
        cell: scfm_core::CellView<'_>,
        cell_key: u64,
        tie: &mut TieBreak,
    ) -> (Vec<u32>, Vec<f32>) {
        // `<cls>` first, then the genes in column order with their raw values, binned in place.
        let capacity = 1 + if self.include_zero_genes { plan.len() } else { cell.nnz() };
        let (mut ids, mut values) = (Vec::with_capacity(capacity), Vec::with_capacity(capacity));
        ids.push(self.cls_id);
        values.push(self.cls_value);
        if self.include_zero_genes {
            let mut dense: Vec<f32> = vec![0.0; plan.len()];
            for (&g, &v) in cell.indices.iter().zip(cell.values) {
                dense[g as usize] = v;
            }
            for (col, id) in plan.iter().enumerate() {
                if let Some(id) = id {
                    ids.push(*id);
                    values.push(dense[col]);
                }
            }
        } else {
            for (&g, &v) in cell.indices.iter().zip(cell.values) {
                if let Some(Some(id)) = plan.get(g as usize) {
                    ids.push(*id);
                    values.push(v);
                }
            }
        }
        let bins = bin_cell(&values[1..], self.n_bins, tie);
        for (v, b) in values[1..].iter_mut().zip(bins) {
            *v = f32::from(b);
        }
        let genes = ids.len() - 1;
        if genes < self.max_len {
            return (ids, values);
        }
        // Too long: `<cls>` and a seeded uniform sample of the genes, in column order.
        let mut keep: Vec<usize> = (0..genes).collect();
        let mut rng = NumpyPcg64::from_entropy(&[self.seed, cell_key as u32, (cell_key >> 32) as u32]);
        let k = rng.shuffle_prefix(&mut keep, self.max_len.saturating_sub(1));
        keep.truncate(k);
        keep.sort_unstable();
        let mut out_ids = Vec::with_capacity(keep.len() + 1);
        let mut out_values = Vec::with_capacity(keep.len() + 1);
        out_ids.push(self.cls_id);
        out_values.push(self.cls_value);
        for i in keep {
            out_ids.push(ids[1 + i]);
            out_values.push(values[1 + i]);
        }
        (out_ids, out_values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_whole_agrees_with_fract() {
        let mut rng = NumpyPcg64::new(1);
        let edges = [0.0, -0.0, 0.5, 1.0, -1.0, 2.5, 8_388_607.5, 8_388_608.0, 16_777_217.0, 3e38, f32::MAX];
        let specials = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MIN_POSITIVE, 1e-45];
        let random = (0..200_000).map(|_| f32::from_bits(rng.next_u64() as u32));
        let near_whole = (0..20_000).map(|i| i as f32 + [0.0, 0.25, 0.5][i % 3]);
        for v in edges.into_iter().chain(specials).chain(random).chain(near_whole) {
            assert_eq!(is_whole(v), v.is_finite() && v.fract() == 0.0, "{v:e} ({:#x})", v.to_bits());
        }
    }

    #[test]
    fn helical_draws_are_the_fresh_stream_however_they_grow() {
        let mut fresh = NumpyPcg64::new(42);
        let expected: Vec<f64> = (0..1000).map(|_| fresh.next_f64()).collect();
        let mut draws = HelicalDraws::default();
        for n in [3, 10, 5, 0, 1000, 640] {
            assert_eq!(draws.first(n), &expected[..n]);
        }
    }
}

/// scGPT's tokens for a dataset: gene ids and binned values, `<cls>` first, each cell's ties
/// broken on its own (helical's per-cell PCG64 or the deterministic rule). Upstream's legacy
/// NumPy stream is consumed cell after cell in file order, so it is not a per-cell tokenizer:
/// [`ScGptSpec`] with [`ScGptTies::NumpyLegacy`] prepares a
/// [`SequentialTokenizer`] for it instead.
#[derive(Debug, Clone)]
pub struct ScGptTokenizer {
    /// The vocabulary (genes by exact symbol).
    pub vocab: scfm_core::GeneVocab,
    /// How a cell's sequence is built.
    pub sequence: ScGptSequence,
    /// helical's per-cell `default_rng(42)` ties, else the deterministic rule.
    pub helical_ties: bool,
}

impl crate::Tokenizer for ScGptTokenizer {
    type Plan = Vec<Option<u32>>;

    fn layout(&self) -> crate::TokenLayout {
        crate::TokenLayout { ids: crate::IdWidth::I32, values: true, counts: false, uses_n_counts: false }
    }

    fn plan(&self, genes: &scfm_core::GeneTable) -> crate::GeneMapping<Self::Plan> {
        crate::GeneMapping::new(ScGptSequence::plan(&self.vocab, genes), genes.ids(), |plan, i| plan[i].is_some())
    }

    fn tokenize(
        &self,
        plan: &Self::Plan,
        key: u64,
        cell: scfm_core::CellView<'_>,
        _n_counts: f64,
    ) -> Option<crate::TokenizedCell> {
        let mut tie = if self.helical_ties { TieBreak::HelicalPcg64 } else { TieBreak::Deterministic };
        let (ids, values) = self.sequence.tokenize(plan, cell, key, &mut tie);
        Some(crate::TokenizedCell::with_values(ids, values))
    }
}

/// How scGPT breaks ties between equal quantile edges (see [`TieBreak`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum ScGptTies {
    /// Upstream's NumPy legacy stream after `np.random.seed(seed)`, cells in file order.
    NumpyLegacy,
    /// helical's `default_rng(42)` per cell.
    Helical,
    /// The highest candidate bin (no randomness).
    Deterministic,
}

/// scGPT's scheme: gene ids by symbol from a `vocab.json` and binned values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScGptSpec {
    /// The `vocab.json` (the release's specials are appended when missing).
    pub vocab: PathBuf,
    /// Longest sequence, `<cls>` included.
    pub max_len: usize,
    /// Value of the `<cls>` position.
    pub cls_value: f32,
    /// Number of value bins.
    pub n_bins: usize,
    /// Unexpressed vocabulary genes included.
    pub include_zero_genes: bool,
    /// Seed of the sub-sampling (and of the legacy ties).
    pub seed: u32,
    /// How ties are broken.
    pub ties: ScGptTies,
}

impl ScGptSpec {
    /// `sequence` (its `cls_id` is taken from the vocabulary) over `vocab`, ties broken by
    /// `ties`.
    pub fn new(vocab: PathBuf, sequence: &ScGptSequence, ties: ScGptTies) -> Self {
        Self {
            vocab,
            max_len: sequence.max_len,
            cls_value: sequence.cls_value,
            n_bins: sequence.n_bins,
            include_zero_genes: sequence.include_zero_genes,
            seed: sequence.seed,
            ties,
        }
    }
}

/// scGPT with upstream's legacy RNG: the stream consumed cell after cell in file order.
struct ScGptLegacy {
    sequence: ScGptSequence,
    plan: Vec<Option<u32>>,
    tie: TieBreak,
}

impl SequentialTokenizer for ScGptLegacy {
    fn tokenize(&mut self, key: u64, cell: scfm_core::CellView<'_>) -> TokenizedCell {
        let (ids, values) = self.sequence.tokenize(&self.plan, cell, key, &mut self.tie);
        TokenizedCell::with_values(ids, values)
    }
}

impl SchemeSpec for ScGptSpec {
    fn from_files(vocab: &Path, options: &SchemeOptions) -> Result<Self, TokenizeError> {
        let vocab = crate::vocab::file_in(vocab, &VOCAB_FILES, "the scGPT vocab.json")?;
        Ok(Self::new(vocab, &options.sequence, options.ties))
    }

    fn vocabulary(&self) -> &Path {
        &self.vocab
    }

    /// Genes match by symbol (through GENCODE for inputs with only Ensembl ids); the legacy
    /// ties make a [`SequentialTokenizer`].
    fn prepare(&self, input: &TokenizerInput<'_>) -> Result<PreparedTokenizer, TokenizeError> {
        let vocab = crate::vocab::scgpt_vocab(&self.vocab, true)?;
        let cls_id = vocab
            .id("<cls>")
            .ok_or_else(|| TokenizeError::MissingToken { token: "<cls>".into(), vocabulary: "scGPT vocab.json" })?;
        let sequence = ScGptSequence {
            cls_id,
            cls_value: self.cls_value,
            max_len: self.max_len,
            include_zero_genes: self.include_zero_genes,
            n_bins: self.n_bins,
            seed: self.seed,
        };
        let settings = serde_json::json!({
            "vocab": self.vocab, "max_len": sequence.max_len, "cls_value": sequence.cls_value, "n_bins": sequence.n_bins,
            "include_zero_genes": sequence.include_zero_genes, "seed": sequence.seed, "ties": self.ties,
        });
        let tok = ScGptTokenizer { vocab, sequence, helical_ties: self.ties == ScGptTies::Helical };
        let mapping = tok.plan(&crate::vocab::symbol_table(input.genes, input.gencode)?);
        let sequential = (self.ties == ScGptTies::NumpyLegacy).then(|| {
            Box::new(ScGptLegacy {
                sequence: tok.sequence.clone(),
                plan: mapping.plan.clone(),
                tie: TieBreak::numpy_legacy(tok.sequence.seed),
            }) as Box<dyn SequentialTokenizer>
        });
        Ok(PreparedTokenizer { sequential, ..PreparedTokenizer::planned(tok, mapping, |_, _| settings) })
    }
}
