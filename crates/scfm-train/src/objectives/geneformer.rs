//! Geneformer: the classifier and masked-LM pretraining.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use scfm_models::geneformer::{Geneformer, GeneformerClassifier};
use scfm_tokenize::mask::GeneformerMlm;

use super::{CellClassifier, cell_key, masked_lm_loss};
use crate::TrainError;
use crate::batch::{Cells, TokenBatch};
use crate::train::Objective;

impl<B: Backend> CellClassifier<B> for GeneformerClassifier<B> {
    fn family(&self) -> &'static str {
        "geneformer-classifier"
    }
    fn pad_id(&self) -> u32 {
        self.encoder.config.pad_token_id as u32
    }
    fn n_classes(&self) -> usize {
        GeneformerClassifier::n_classes(self)
    }
    fn embed(&self, batch: &TokenBatch, device: &B::Device) -> Tensor<B, 2> {
        let (ids, padded) = batch.tensors::<B>(device);
        let hidden = self.encoder.hidden_state(ids, padded.clone(), self.encoder.config.n_layers);
        self.pool(hidden, padded)
    }
    fn head(&self, embeddings: Tensor<B, 2>) -> Tensor<B, 2> {
        GeneformerClassifier::head(self, embeddings)
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

/// Geneformer's masked-LM pretraining (MODELS.md §2.8): 15 % of the tokens selected, 80 %
/// of those masked, 10 % replaced by a random token, 10 % kept; cross-entropy over the
/// selected positions. Masks differ per epoch and cell and are seeded. The cells are held in
/// memory or streamed from a tokenized dataset ([`Cells::streamed`]).
#[derive(Debug, Clone)]
pub struct MaskedLm<'a> {
    /// Token ids per cell.
    pub cells: Cells<'a>,
    /// The masker (vocabulary size and seed).
    pub masker: GeneformerMlm,
}

impl<B: AutodiffBackend> Objective<B, Geneformer<B>> for MaskedLm<'_> {
    fn check(&self, model: &Geneformer<B>) -> Result<(), TrainError> {
        if model.mlm.is_none() {
            return Err(TrainError::Invalid("masked-LM pretraining needs the model's MLM head".into()));
        }
        self.cells.check(false)?;
        self.cells.check_below(model.config.vocab_size, "token")
    }
    fn loss(&self, model: &Geneformer<B>, rows: &[usize], epoch: usize, device: &B::Device) -> Tensor<B, 1> {
        let mut masked = Vec::with_capacity(rows.len());
        let mut scored = vec![];
        let n = self.cells.len();
        // Scored when no position was drawn: the first token of the first cell.
        let mut fallback = 0;
        for (b, &r) in rows.iter().enumerate() {
            let tokens = self.cells.ids(r);
            if b == 0 {
                fallback = tokens.first().map_or(0, |&t| i64::from(t));
            }
            let (ids, labels) = self.masker.mask(&tokens, cell_key(epoch, n, r));
            scored.extend(labels.iter().enumerate().filter(|&(_, &l)| l >= 0).map(|(k, &l)| (b, k, l)));
            masked.push(ids);
        }
        let views: Vec<&[u32]> = masked.iter().map(Vec::as_slice).collect();
        let (ids, padded) = TokenBatch::pad(&views, model.config.pad_token_id as u32).tensors::<B>(device);
        let hidden = model.hidden_state(ids, padded, model.config.n_layers);
        masked_lm_loss(hidden, &scored, fallback, model.config.vocab_size, |h| {
            model.mlm_logits(h).expect("checked: the model has an MLM head")
        })
    }
    fn lengths(&self) -> Vec<usize> {
        self.cells.lengths()
    }
}
