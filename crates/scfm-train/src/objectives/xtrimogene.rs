//! xTrimoGene / scFoundation: the fine-tuning head and read-depth-aware masked regression.

use std::borrow::Cow;

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use scfm_core::SplitMix64;
use scfm_models::xtrimogene::{EncoderInput, XTrimoGene, XTrimoGeneClassifier};
use scfm_tokenize::mask::XTrimoGeneMask;

use super::{CellClassifier, cell_key, masked_mse};
use crate::TrainError;
use crate::batch::{Cells, TokenBatch, f32_tensor};
use crate::rng::derive_seed;
use crate::train::Objective;

/// The cells are xTrimoGene encoder inputs: ids are model positions (below `seq_len`), each with
/// its value.
impl<B: Backend> CellClassifier<B> for XTrimoGeneClassifier<B> {
    fn family(&self) -> &'static str {
        "xtrimogene-classifier"
    }
    /// Padding takes the extra position `seq_len` (the last row of the position table).
    fn pad_id(&self) -> u32 {
        self.backbone.config.max_len as u32
    }
    fn pad_value(&self) -> Option<f32> {
        Some(self.backbone.config.pad_token_id as f32)
    }
    fn n_classes(&self) -> usize {
        XTrimoGeneClassifier::n_classes(self)
    }
    fn check_cells(&self, cells: &Cells<'_>) -> Result<(), TrainError> {
        cells.check(true)?;
        cells.check_below(self.backbone.config.max_len, "position")
    }
    /// The max-pooled encoder output.
    fn embed(&self, batch: &TokenBatch, device: &B::Device) -> Tensor<B, 2> {
        let (positions, padded) = batch.tensors::<B>(device);
        self.pool(batch.value_tensor(device), positions, padded, &batch.lengths)
    }
    /// BatchNorm → `fc1` → ReLU → `fc2`.
    fn head(&self, embeddings: Tensor<B, 2>) -> Tensor<B, 2> {
        XTrimoGeneClassifier::head(self, embeddings)
    }
    fn freeze_layers(mut self, n_layers: usize) -> Self {
        if n_layers > 0 {
            self.backbone.token_emb = self.backbone.token_emb.no_grad();
            self.backbone.pos_emb = self.backbone.pos_emb.no_grad();
        }
        for layer in self.backbone.encoder.iter_mut().take(n_layers) {
            *layer = layer.clone().no_grad();
        }
        self
    }
}

/// Read-depth-aware input (the scFoundation paper; the exact procedure is not released):
/// with `probability` a cell's counts are thinned binomially to a fraction drawn uniformly
/// from `[min_fraction, 1)`, and the model sees the thinned cell (S = its log10 total) while
/// T carries the original log10 total and the loss targets the original values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DownSampling {
    /// Share of the cells that are down-sampled.
    pub probability: f64,
    /// Smallest kept fraction of the reads.
    pub min_fraction: f64,
}

impl Default for DownSampling {
    /// Half of the cells, thinned to 10–100 % of their reads (scfm's choice; upstream's
    /// setting is unreleased).
    fn default() -> Self {
        Self { probability: 0.5, min_fraction: 0.1 }
    }
}

/// xTrimoGene's pretraining (MODELS.md §4.10): the masker selects expressed genes with
/// probability 0.3 and unexpressed ones with 0.03 (80 % mask value, 10 % another expressed
/// value, 10 % kept); selected genes are left out of the encoder, which sees the other
/// expressed genes and T and S; the decoder sees every position; the loss is the MSE of
/// `to_final` against the original log-normalised values at the selected genes.
#[derive(Debug, Clone)]
pub struct XTrimoGenePretraining<'a> {
    /// Each cell's expressed genes: ids are the model's gene positions, ascending, and values
    /// their raw counts (`XTrimoGeneTokenizer::align_counts`); in memory or streamed.
    pub cells: Cells<'a>,
    /// The masker.
    pub masker: XTrimoGeneMask,
    /// Read-depth-aware down-sampling; `None` trains on the cells as they are (T = S).
    pub downsample: Option<DownSampling>,
}

/// `ln(1 + count / total · 10⁴)` of every gene, dense.
fn normalised(counts: &[(u32, f64)], total: f64, n_genes: usize) -> Vec<f64> {
    let mut dense = vec![0.0; n_genes];
    if total > 0.0 {
        for &(p, c) in counts {
            dense[p as usize] = (c / total * 10_000.0).ln_1p();
        }
    }
    dense
}

/// Binomial thinning: each read is kept with probability `fraction` (counts are rounded).
fn thin(counts: &[(u32, f64)], fraction: f64, rng: &mut SplitMix64) -> Vec<(u32, f64)> {
    counts
        .iter()
        .map(|&(p, c)| (p, (0..c.round().max(0.0) as u64).filter(|_| rng.unit() < fraction).count() as f64))
        .filter(|&(_, c)| c > 0.0)
        .collect()
}

impl<B: AutodiffBackend> Objective<B, XTrimoGene<B>> for XTrimoGenePretraining<'_> {
    fn check(&self, model: &XTrimoGene<B>) -> Result<(), TrainError> {
        self.cells.check(true)?;
        self.cells.check_below(model.config.n_genes(), "gene position")?;
        if let Some(r) =
            (0..self.cells.len()).find(|&r| self.cells.values(r).is_none_or(|v| !v.iter().any(|&c| c > 0.0)))
        {
            return Err(TrainError::Invalid(format!("cell {r} has no counts on xTrimoGene's genes")));
        }
        match self.downsample {
            Some(d) if !(0.0..=1.0).contains(&d.probability) || !(0.0..1.0).contains(&d.min_fraction) => {
                Err(TrainError::Invalid(format!("down-sampling {d:?}: probability in [0, 1], min_fraction in [0, 1)")))
            }
            _ => Ok(()),
        }
    }

    fn loss(&self, model: &XTrimoGene<B>, rows: &[usize], epoch: usize, device: &B::Device) -> Tensor<B, 1> {
        let c = &model.config;
        let (n_genes, seq_len) = (c.n_genes(), c.max_len);
        let mut selected: Vec<(Vec<u32>, Vec<f32>)> = Vec::with_capacity(rows.len());
        let (mut full, mut target, mut scored) =
            (vec![], vec![0f32; rows.len() * seq_len], vec![0f32; rows.len() * seq_len]);
        for (b, &r) in rows.iter().enumerate() {
            let key = cell_key(epoch, self.cells.len(), r);
            let values = self.cells.values(r).expect("checked: the cells have counts");
            let counts: Vec<(u32, f64)> =
                self.cells.ids(r).iter().zip(values.iter()).map(|(&p, &c)| (p, f64::from(c))).collect();
            let counts = counts.as_slice();
            let total: f64 = counts.iter().map(|&(_, c)| c).sum();
            let mut rng = SplitMix64::new(derive_seed(u64::from(self.masker.seed), 4, key));
            let seen: Cow<'_, [(u32, f64)]> = match self.downsample {
                Some(d) if rng.unit() < d.probability => {
                    let fraction = d.min_fraction + (1.0 - d.min_fraction) * rng.unit();
                    let thinned = thin(counts, fraction, &mut rng);
                    if thinned.is_empty() { Cow::Borrowed(counts) } else { Cow::Owned(thinned) }
                }
                _ => Cow::Borrowed(counts),
            };
            let seen_total: f64 = seen.iter().map(|&(_, c)| c).sum();
            let input = normalised(&seen, seen_total, n_genes);
            let (mut corrupted, mut picked) = self.masker.mask(&input, key);
            let mut is_picked = vec![false; n_genes];
            for &p in &picked {
                is_picked[p] = true;
            }
            // The encoder reads the unpicked expressed genes, then T and S where they are > 0
            // (totals above one read).
            let depth = [total.max(1.0).log10(), seen_total.max(1.0).log10()];
            let (mut positions, mut values) = (vec![], vec![]);
            for (p, &v) in input.iter().enumerate().filter(|&(p, &v)| v > 0.0 && !is_picked[p]) {
                positions.push(p as u32);
                values.push(v as f32);
            }
            for (k, &v) in depth.iter().enumerate().filter(|&(_, &v)| v > 0.0) {
                positions.push((n_genes + k) as u32);
                values.push(v as f32);
            }
            // A cell that would leave the encoder nothing (a single read, its gene picked)
            // keeps its first picked expressed gene visible and unscored.
            if positions.is_empty()
                && let Some(k) = picked.iter().position(|&p| input[p] > 0.0)
            {
                let p = picked.remove(k);
                corrupted[p] = input[p];
                positions.push(p as u32);
                values.push(input[p] as f32);
            }
            let original = normalised(counts, total, n_genes);
            for &p in &picked {
                target[b * seq_len + p] = original[p] as f32;
                scored[b * seq_len + p] = 1.0;
            }
            full.extend(corrupted.iter().map(|&v| v as f32));
            full.extend(depth.iter().map(|&v| v as f32));
            selected.push((positions, values));
        }
        let refs: Vec<(&[u32], &[f32])> = selected.iter().map(|(p, v)| (p.as_slice(), v.as_slice())).collect();
        let mut input = EncoderInput::from_selected(&refs, seq_len, c.pad_token_id as f32);
        // The decoder reads the corrupted values: the mask value at masked genes.
        input.full = full;
        let (values, positions, padded) = input.tensors::<B>(device);
        let decoded = model.decode(model.encode(values, positions, padded), &input);
        let shape = [rows.len(), seq_len];
        let target = f32_tensor::<B, 2>(target, shape, device);
        let scored = f32_tensor::<B, 2>(scored, shape, device);
        masked_mse(model.expression(decoded), target, scored)
    }

    fn lengths(&self) -> Vec<usize> {
        self.cells.lengths().into_iter().map(|l| l + 2).collect()
    }
}
