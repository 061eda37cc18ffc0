//! Batching: padding to the batch maximum, token-budget batches, Geneformer's length-grouped
//! sampling and seeded shuffles.

use std::borrow::Cow;

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, DType, Int, Tensor, TensorData};

use scfm_core::SplitMix64;

use crate::TrainError;

/// The cells of a run, read one cell at a time when a batch needs it: token ids and, for the
/// value-based families, one value per token (scGPT's bins, xTrimoGene's raw counts). Held in
/// memory ([`Cells::tokens`], [`Cells::with_values`]), read from a tokenized dataset on disk
/// (the facade's `scfm::pretrain::DatasetTokens`; a corpus need not fit in memory) or a
/// [`Subset`] of other cells.
pub trait TokenSource: Sync {
    /// Cells.
    fn n_cells(&self) -> usize;
    /// Tokens per cell (for batching; read once per run).
    fn lengths(&self) -> Vec<usize>;
    /// The token ids of `cell`.
    fn tokens(&self, cell: usize) -> Cow<'_, [u32]>;
    /// Whether the cells carry values.
    fn has_values(&self) -> bool {
        false
    }
    /// The values of `cell`, one per token; `None` when the cells carry none.
    fn values(&self, cell: usize) -> Option<Cow<'_, [f32]>> {
        let _ = cell;
        None
    }
    /// The largest token id of all cells (`None` without any token), for vocabulary checks.
    /// The default reads every cell; a source that read them when it was opened says what it
    /// saw.
    fn max_token(&self) -> Option<u32> {
        (0..self.n_cells()).filter_map(|c| self.tokens(c).iter().max().copied()).max()
    }
    /// Checks that every cell has one value per token when the cells carry values. The
    /// default reads every cell; a source that checked when it was opened returns at once.
    ///
    /// # Errors
    /// [`TrainError::Invalid`] naming the first offending cell.
    fn check_values(&self) -> Result<(), TrainError> {
        if !self.has_values() {
            return Ok(());
        }
        for c in 0..self.n_cells() {
            let (ids, values) = (self.tokens(c).len(), self.values(c).map_or(0, |v| v.len()));
            if ids != values {
                return Err(TrainError::Invalid(format!("cell {c} has {ids} tokens but {values} values")));
            }
        }
        Ok(())
    }
}

/// Cells held in memory: ids and, optionally, values.
#[derive(Debug, Clone, Copy)]
struct InMemory<'a> {
    ids: &'a [Vec<u32>],
    values: Option<&'a [Vec<f32>]>,
}

impl TokenSource for InMemory<'_> {
    fn n_cells(&self) -> usize {
        self.ids.len()
    }
    fn lengths(&self) -> Vec<usize> {
        self.ids.iter().map(Vec::len).collect()
    }
    fn tokens(&self, cell: usize) -> Cow<'_, [u32]> {
        Cow::Borrowed(&self.ids[cell])
    }
    fn has_values(&self) -> bool {
        self.values.is_some()
    }
    fn values(&self, cell: usize) -> Option<Cow<'_, [f32]>> {
        self.values.and_then(|v| v.get(cell)).map(|v| Cow::Borrowed(v.as_slice()))
    }
    fn check_values(&self) -> Result<(), TrainError> {
        match self.values {
            Some(values) if values.len() != self.ids.len() => Err(TrainError::Invalid(format!(
                "{} cells have token ids but {} have values",
                self.ids.len(),
                values.len()
            ))),
            Some(values) => match self.ids.iter().zip(values).position(|(i, v)| i.len() != v.len()) {
                Some(c) => Err(TrainError::Invalid(format!(
                    "cell {c} has {} tokens but {} values",
                    self.ids[c].len(),
                    values[c].len()
                ))),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }
}

/// Some of the cells of a [`Cells`], e.g. a training or validation split of a streamed
/// dataset: cell `i` of the subset is cell `rows[i]` of `cells`, read when a batch needs it.
///
/// ```
/// use scfm_train::batch::{Cells, Subset};
/// let ids = vec![vec![5, 6], vec![7], vec![8, 9, 10]];
/// let rows = [2, 0];
/// let train = Subset::new(Cells::tokens(&ids), &rows);
/// let cells = Cells::streamed(&train);
/// assert_eq!((cells.len(), cells.lengths()), (2, vec![3, 2]));
/// assert_eq!(&*cells.ids(1), &[5, 6]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Subset<'a> {
    cells: Cells<'a>,
    rows: &'a [usize],
}

impl<'a> Subset<'a> {
    /// The cells `rows` of `cells` (each below `cells.len()`).
    pub fn new(cells: Cells<'a>, rows: &'a [usize]) -> Self {
        Self { cells, rows }
    }
}

impl TokenSource for Subset<'_> {
    fn n_cells(&self) -> usize {
        self.rows.len()
    }
    fn lengths(&self) -> Vec<usize> {
        let all = self.cells.lengths();
        self.rows.iter().map(|&r| all[r]).collect()
    }
    fn tokens(&self, cell: usize) -> Cow<'_, [u32]> {
        self.cells.ids(self.rows[cell])
    }
    fn has_values(&self) -> bool {
        self.cells.has_values()
    }
    fn values(&self, cell: usize) -> Option<Cow<'_, [f32]>> {
        self.cells.values(self.rows[cell])
    }
}

/// An fp32 tensor of host values, whatever the device's default float type: loss targets and
/// weights, and model inputs (which the models cast to their parameters' type).
pub(crate) fn f32_tensor<B: Backend, const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values, shape), (device, DType::F32))
}

/// Tokenized cells as a run reads them: token ids and, for the value-based families (scGPT,
/// xTrimoGene), one value per token; held in memory or streamed from any [`TokenSource`].
#[derive(Clone, Copy)]
pub struct Cells<'a> {
    source: Source<'a>,
}

#[derive(Clone, Copy)]
enum Source<'a> {
    Memory(InMemory<'a>),
    Streamed(&'a dyn TokenSource),
}

impl std::fmt::Debug for Cells<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cells")
            .field("cells", &self.len())
            .field("values", &self.has_values())
            .field("streamed", &matches!(self.source, Source::Streamed(_)))
            .finish()
    }
}

impl<'a> Cells<'a> {
    /// Cells given by token ids alone (Geneformer, scBERT).
    pub fn tokens(ids: &'a [Vec<u32>]) -> Self {
        Self { source: Source::Memory(InMemory { ids, values: None }) }
    }

    /// Cells given by token ids and one value per token (scGPT's bins; xTrimoGene's gene
    /// positions and raw counts).
    pub fn with_values(ids: &'a [Vec<u32>], values: &'a [Vec<f32>]) -> Self {
        Self { source: Source::Memory(InMemory { ids, values: Some(values) }) }
    }

    /// Cells given by token ids and, when there are any, one value per token.
    pub fn new(ids: &'a [Vec<u32>], values: Option<&'a [Vec<f32>]>) -> Self {
        Self { source: Source::Memory(InMemory { ids, values }) }
    }

    /// Cells read from `source` one at a time, when a batch needs them.
    pub fn streamed(source: &'a dyn TokenSource) -> Self {
        Self { source: Source::Streamed(source) }
    }

    fn source(&self) -> &dyn TokenSource {
        match &self.source {
            Source::Memory(m) => m,
            Source::Streamed(s) => *s,
        }
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.source().n_cells()
    }

    /// Whether there are no cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tokens per cell.
    pub fn lengths(&self) -> Vec<usize> {
        self.source().lengths()
    }

    /// The token ids of `cell`.
    pub fn ids(&self, cell: usize) -> Cow<'_, [u32]> {
        self.source().tokens(cell)
    }

    /// The values of `cell`; `None` when the cells carry none.
    pub fn values(&self, cell: usize) -> Option<Cow<'_, [f32]>> {
        self.source().values(cell)
    }

    /// Whether the cells carry values.
    pub fn has_values(&self) -> bool {
        self.source().has_values()
    }

    /// The largest token id of all cells (`None` without any token).
    pub fn max_token(&self) -> Option<u32> {
        self.source().max_token()
    }

    /// Checks that every token id is below `limit` (the model's vocabulary or positions);
    /// `what` names the ids in the error (`token`, `gene position`).
    ///
    /// # Errors
    /// [`TrainError::Invalid`] naming the largest id.
    pub fn check_below(&self, limit: usize, what: &str) -> Result<(), TrainError> {
        match self.max_token() {
            Some(t) if t as usize >= limit => {
                Err(TrainError::Invalid(format!("{what} {t} is outside the model's range 0..{limit}")))
            }
            _ => Ok(()),
        }
    }

    /// The cells `rows`, padded: with `pad_value` the values are padded too (and required).
    pub fn batch(&self, rows: &[usize], pad_id: u32, pad_value: Option<f32>) -> TokenBatch {
        let cells: Vec<Cow<'_, [u32]>> = rows.iter().map(|&r| self.ids(r)).collect();
        let views: Vec<&[u32]> = cells.iter().map(AsRef::as_ref).collect();
        let mut batch = TokenBatch::pad(&views, pad_id);
        if let Some(pad) = pad_value.filter(|_| self.has_values()) {
            batch.values = vec![pad; batch.cells * batch.len];
            for (b, &r) in rows.iter().enumerate() {
                if let Some(values) = self.values(r) {
                    batch.values[b * batch.len..b * batch.len + values.len()].copy_from_slice(&values);
                }
            }
        }
        batch
    }

    /// Checks that values are present exactly when `needs_values`, one per token.
    ///
    /// # Errors
    /// [`TrainError::Invalid`] naming the first offending cell.
    pub fn check(&self, needs_values: bool) -> Result<(), TrainError> {
        match (self.has_values(), needs_values) {
            (false, true) => Err(TrainError::Invalid("this model reads a value per token; the cells have none".into())),
            (true, false) => Err(TrainError::Invalid("this model reads tokens only; the cells carry values".into())),
            (false, false) => Ok(()),
            (true, true) => self.source().check_values(),
        }
    }
}

/// Right-padded token ids of a batch of cells, their values when the family reads them, and
/// the padding mask.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    /// `[cells, len]` row-major ids; padding is `pad_id`.
    pub ids: Vec<i64>,
    /// `[cells, len]` row-major values (padding: the model's pad value); empty for token-only
    /// families.
    pub values: Vec<f32>,
    /// `[cells, len]`, true at padding.
    pub padded: Vec<bool>,
    /// Real tokens per cell.
    pub lengths: Vec<usize>,
    /// Cells.
    pub cells: usize,
    /// Padded length (the longest cell).
    pub len: usize,
}

impl TokenBatch {
    /// Pads `cells` (token ids) to the longest of them with `pad_id`.
    pub fn pad(cells: &[&[u32]], pad_id: u32) -> Self {
        let len = cells.iter().map(|c| c.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![i64::from(pad_id); cells.len() * len];
        let mut padded = vec![true; cells.len() * len];
        for (r, c) in cells.iter().enumerate() {
            for (k, &t) in c.iter().enumerate() {
                ids[r * len + k] = i64::from(t);
                padded[r * len + k] = false;
            }
        }
        Self { ids, values: vec![], padded, lengths: cells.iter().map(|c| c.len()).collect(), cells: cells.len(), len }
    }

    /// The values as an fp32 tensor (zeros when the batch has none); models cast it to their
    /// parameters' type.
    ///
    /// # Shapes
    /// - output: `[cells, len]`
    pub fn value_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        let shape = [self.cells, self.len];
        if self.values.is_empty() {
            return Tensor::zeros(shape, (device, DType::F32));
        }
        f32_tensor(self.values.clone(), shape, device)
    }

    /// The ids and padding mask as tensors.
    ///
    /// # Shapes
    /// - output: `[cells, len]` each
    pub fn tensors<B: Backend>(&self, device: &B::Device) -> (Tensor<B, 2, Int>, Tensor<B, 2, Bool>) {
        let shape = [self.cells, self.len];
        (
            Tensor::from_data(TensorData::new(self.ids.clone(), shape), device),
            Tensor::from_data(TensorData::new(self.padded.clone(), shape), device),
        )
    }
}

/// Shortens a rank-value encoded cell to `max_len` tokens as Geneformer's tokenizer does: the
/// highest-ranked genes are kept, and V2's `<cls>` … `<eos>` frame stays in place. In place:
/// a cell that fits comes back as it is.
pub fn truncate_rank_value(mut ids: Vec<u32>, max_len: usize, framed: bool) -> Vec<u32> {
    if ids.len() > max_len {
        if framed && max_len >= 2 {
            let last = ids[ids.len() - 1];
            ids.truncate(max_len - 1);
            ids.push(last);
        } else {
            ids.truncate(max_len);
        }
    }
    ids
}

/// A seeded permutation of `0..n` (Fisher–Yates).
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order
}

/// Geneformer's length-grouped order (Hugging Face `LengthGroupedSampler`, MODELS.md §2.8): a
/// seeded permutation cut into megabatches of `m × batch_size` cells with `m = min(cells /
/// (4 × batch_size), 50)` (at least 1), each sorted by length, longest first; the longest cell
/// of all is swapped to position 0, so an out-of-memory error shows at once. The procedure is
/// upstream's; the permutation comes from scfm's seeded generator, not torch's.
pub fn length_grouped(lengths: &[usize], batch_size: usize, seed: u64) -> Vec<usize> {
    let order = shuffled(lengths.len(), seed);
    let batch_size = batch_size.max(1);
    let mega = (lengths.len() / (4 * batch_size)).clamp(1, 50) * batch_size;
    let mut out: Vec<usize> = vec![];
    for chunk in order.chunks(mega) {
        let mut c = chunk.to_vec();
        c.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        out.extend(c);
    }
    if let Some(longest) = (0..out.len()).max_by_key(|&k| (lengths[out[k]], std::cmp::Reverse(k))) {
        // The first occurrence of the maximum heads its (descending) megabatch.
        out.swap(0, longest);
    }
    out
}

/// Cuts `order` into batches of at most `batch_size` cells whose padded size (cells × longest)
/// stays within `max_tokens` (a single cell longer than the budget forms its own batch).
pub fn budget_batches(order: &[usize], lengths: &[usize], batch_size: usize, max_tokens: usize) -> Vec<Vec<usize>> {
    let mut batches = vec![];
    let mut current: Vec<usize> = vec![];
    let mut longest = 0;
    for &i in order {
        let l = lengths[i].max(1);
        let grown = longest.max(l);
        if !current.is_empty() && (current.len() >= batch_size.max(1) || grown * (current.len() + 1) > max_tokens) {
            batches.push(std::mem::take(&mut current));
            longest = 0;
        }
        longest = longest.max(l);
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_and_truncation() {
        let b = TokenBatch::pad(&[&[2, 7, 3], &[2, 3]], 0);
        assert_eq!(b.ids, vec![2, 7, 3, 2, 3, 0]);
        assert_eq!(b.padded, vec![false, false, false, false, false, true]);
        assert_eq!(truncate_rank_value(vec![2, 10, 11, 12, 3], 4, true), vec![2, 10, 11, 3]);
        assert_eq!(truncate_rank_value(vec![10, 11, 12], 2, false), vec![10, 11]);
    }

    #[test]
    fn length_grouping_is_a_seeded_permutation_with_the_longest_first() {
        let lengths: Vec<usize> = (0..500).map(|i| (i * 37) % 101 + 1).collect();
        let order = length_grouped(&lengths, 4, 9);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..500).collect::<Vec<_>>());
        assert_eq!(lengths[order[0]], 101);
        assert_eq!(order, length_grouped(&lengths, 4, 9));
        assert_ne!(order, length_grouped(&lengths, 4, 10));
        // Inside a megabatch (4 × 31 cells) lengths do not increase, apart from the swapped head.
        assert!(order[1..124].windows(2).all(|w| lengths[w[0]] >= lengths[w[1]]));
    }

    #[test]
    fn budgets_bound_padded_tokens() {
        let lengths = vec![10, 9, 8, 30, 2];
        let batches = budget_batches(&[3, 0, 1, 2, 4], &lengths, 8, 40);
        assert_eq!(batches, vec![vec![3], vec![0, 1, 2, 4]]);
        for b in &batches {
            let longest = b.iter().map(|&i| lengths[i]).max().unwrap();
            assert!(longest * b.len() <= 40 || b.len() == 1);
        }
    }
}
