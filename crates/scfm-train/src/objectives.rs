//! The objectives: cell-type classification (every family's fine-tuning) and Geneformer's
//! masked-LM pretraining.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::activation::softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use scfm_models::geneformer::{Geneformer, GeneformerClassifier};
use scfm_tokenize::mask::GeneformerMlm;

use crate::batch::TokenBatch;
use crate::train::{Objective, in_batches};

/// A model that classifies token sequences into cell types.
pub trait CellClassifier<B: Backend>: Module<B> {
    /// Family and head, as checkpoints record it (`geneformer-classifier`).
    fn family(&self) -> &'static str;
    /// Id of `<pad>`.
    fn pad_id(&self) -> u32;
    /// Class logits of a padded batch.
    ///
    /// # Shapes
    /// - output: `[cells, n_classes]`
    fn logits(&self, batch: &TokenBatch, device: &B::Device) -> Tensor<B, 2>;
    /// Stops gradients to the embeddings and the first `n_layers` encoder layers (upstream's
    /// `freeze_layers`).
    fn freeze_layers(self, n_layers: usize) -> Self;
}

impl<B: Backend> CellClassifier<B> for GeneformerClassifier<B> {
    fn family(&self) -> &'static str {
        "geneformer-classifier"
    }
    fn pad_id(&self) -> u32 {
        self.encoder.config.pad_token_id as u32
    }
    fn logits(&self, batch: &TokenBatch, device: &B::Device) -> Tensor<B, 2> {
        let (ids, padded) = batch.tensors::<B>(device);
        self.forward(ids, padded)
    }
    fn freeze_layers(mut self, n_layers: usize) -> Self {
        if n_layers > 0 {
            self.encoder.embeddings = self.encoder.embeddings.no_grad();
        }
        for layer in self.encoder.layers.iter_mut().take(n_layers) {
            *layer = layer.clone().no_grad();
        }
        self
    }
}

/// Cross-entropy of cell-type predictions.
#[derive(Debug, Clone)]
pub struct Classification<'a> {
    /// Token ids per cell.
    pub cells: &'a [Vec<u32>],
    /// Class code per cell.
    pub classes: &'a [usize],
}

impl<B: AutodiffBackend, M: CellClassifier<B>> Objective<B, M> for Classification<'_> {
    fn loss(&self, model: &M, rows: &[usize], _epoch: usize, device: &B::Device) -> Tensor<B, 1> {
        let cells: Vec<&[u32]> = rows.iter().map(|&r| self.cells[r].as_slice()).collect();
        let logits = model.logits(&TokenBatch::pad(&cells, model.pad_id()), device);
        let targets: Vec<i64> = rows.iter().map(|&r| self.classes[r] as i64).collect();
        let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(targets, [rows.len()]), device);
        CrossEntropyLossConfig::new().init(device).forward(logits, targets)
    }
    fn lengths(&self) -> Vec<usize> {
        self.cells.iter().map(Vec::len).collect()
    }
}

/// Class probabilities of every cell, row-major `[cells, n_classes]`, in batches of at most
/// `batch_size` cells and `max_tokens` padded tokens (no dropout: run it on the model's
/// [`AutodiffModule::valid`] copy).
pub fn predict_proba<B: Backend, M: CellClassifier<B>>(
    model: &M,
    cells: &[Vec<u32>],
    batch_size: usize,
    max_tokens: usize,
    device: &B::Device,
) -> Vec<Vec<f32>> {
    let lengths: Vec<usize> = cells.iter().map(Vec::len).collect();
    in_batches(&lengths, batch_size, max_tokens, |rows| {
        let batch: Vec<&[u32]> = rows.iter().map(|&r| cells[r].as_slice()).collect();
        let probs = softmax(model.logits(&TokenBatch::pad(&batch, model.pad_id()), device), 1);
        let k = probs.dims()[1];
        let values = probs.into_data().convert::<f32>().into_vec::<f32>().unwrap_or_default();
        values.chunks(k).map(<[f32]>::to_vec).collect()
    })
}

/// Geneformer's masked-LM pretraining (MODELS.md §2.8): 15 % of the tokens selected, 80 %
/// of those masked, 10 % replaced by a random token, 10 % kept; cross-entropy over the
/// selected positions. Masks differ per epoch and cell and are seeded.
#[derive(Debug, Clone)]
pub struct MaskedLm<'a> {
    /// Token ids per cell.
    pub cells: &'a [Vec<u32>],
    /// The masker (vocabulary size and seed).
    pub masker: GeneformerMlm,
}

impl<B: AutodiffBackend> Objective<B, Geneformer<B>> for MaskedLm<'_> {
    fn loss(&self, model: &Geneformer<B>, rows: &[usize], epoch: usize, device: &B::Device) -> Tensor<B, 1> {
        let n = self.cells.len() as u64;
        let mut masked = Vec::with_capacity(rows.len());
        let mut picked: Vec<i64> = vec![];
        let mut targets: Vec<i64> = vec![];
        let len = rows.iter().map(|&r| self.cells[r].len()).max().unwrap_or(1);
        for (b, &r) in rows.iter().enumerate() {
            let (ids, labels) = self.masker.mask(&self.cells[r], epoch as u64 * n + r as u64);
            for (k, &l) in labels.iter().enumerate() {
                if l >= 0 {
                    picked.push((b * len + k) as i64);
                    targets.push(l);
                }
            }
            masked.push(ids);
        }
        if picked.is_empty() {
            // No token drawn in this batch (tiny cells): no signal, but keep the graph valid.
            picked.push(0);
            targets.push(i64::from(self.cells[rows[0]][0]));
        }
        let views: Vec<&[u32]> = masked.iter().map(Vec::as_slice).collect();
        let batch = TokenBatch::pad(&views, model.config.pad_token_id as u32);
        let (ids, padded) = batch.tensors::<B>(device);
        let hidden = model.hidden_state(ids, padded, model.config.n_layers);
        let d = model.config.d_model;
        let m = picked.len();
        let index = Tensor::<B, 1, Int>::from_data(TensorData::new(picked, [m]), device);
        let selected = hidden.reshape([rows.len() * len, d]).select(0, index).reshape([1, m, d]);
        let logits =
            model.mlm_logits(selected).expect("pretraining needs the MLM head").reshape([m, model.config.vocab_size]);
        let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(targets, [m]), device);
        CrossEntropyLossConfig::new().init(device).forward(logits, targets)
    }
    fn lengths(&self) -> Vec<usize> {
        self.cells.iter().map(Vec::len).collect()
    }
}
