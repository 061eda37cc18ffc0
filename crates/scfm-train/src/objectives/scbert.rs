//! scBERT: the convolutional classification head and masked-LM pretraining over bins.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use scfm_models::scbert::ScBert;
use scfm_tokenize::mask::ScBertMask;

use super::{CellClassifier, cell_key, masked_lm_loss};
use crate::TrainError;
use crate::batch::{Cells, TokenBatch};
use crate::train::Objective;

/// Checks that every cell has the model's `seq_len` tokens, each below `n_tokens`.
fn check_tokens(cells: &Cells<'_>, seq_len: usize, n_tokens: usize) -> Result<(), TrainError> {
    if let Some((c, l)) = cells.lengths().into_iter().enumerate().find(|&(_, l)| l != seq_len) {
        return Err(TrainError::Invalid(format!(
            "cell {c} has {l} tokens; scBERT reads exactly {seq_len} (its gene panel and the trailing slot)"
        )));
    }
    cells.check_below(n_tokens, "token")
}

impl<B: Backend> CellClassifier<B> for ScBert<B> {
    fn family(&self) -> &'static str {
        "scbert-classifier"
    }
    /// scBERT's cells all have `seq_len` tokens: nothing is ever padded.
    fn pad_id(&self) -> u32 {
        0
    }
    fn n_classes(&self) -> usize {
        self.classifier.as_ref().map_or(0, |h| h.fc3.weight.dims()[1])
    }
    fn check_cells(&self, cells: &Cells<'_>) -> Result<(), TrainError> {
        cells.check(false)?;
        check_tokens(cells, self.config.max_len, self.config.vocab_size)
    }
    /// The head's `fc2` activations (128 per cell in `finetune.py`'s head).
    fn embed(&self, batch: &TokenBatch, device: &B::Device) -> Tensor<B, 2> {
        let (ids, _) = batch.tensors::<B>(device);
        self.classifier.as_ref().expect("checked: the model has a classification head").hidden(self.encode(ids))
    }
    /// `fc3`.
    fn head(&self, embeddings: Tensor<B, 2>) -> Tensor<B, 2> {
        self.classifier.as_ref().expect("checked: the model has a classification head").fc3.forward(embeddings)
    }
    fn freeze_layers(mut self, n_layers: usize) -> Self {
        if n_layers > 0 {
            self.token_emb = self.token_emb.no_grad();
        }
        for layer in self.layers.iter_mut().take(n_layers) {
            *layer = layer.clone().no_grad();
        }
        self
    }
}

/// scBERT's masked-LM pretraining (MODELS.md §1.7): `data_mask` picks 15 % of the non-zero
/// bins of each cell and masks 90 % of them; cross-entropy over the 7 tokens at the picked
/// positions (`ignore_index` = `[MASK]`), averaged over the batch.
#[derive(Debug, Clone)]
pub struct ScBertMaskedLm<'a> {
    /// Tokens per cell (bins 0…5 over the panel, then the trailing 0), in memory or streamed.
    pub cells: Cells<'a>,
    /// The masker.
    pub masker: ScBertMask,
}

impl<B: AutodiffBackend> Objective<B, ScBert<B>> for ScBertMaskedLm<'_> {
    fn check(&self, model: &ScBert<B>) -> Result<(), TrainError> {
        if model.lm_head.is_none() {
            return Err(TrainError::Invalid("masked-LM pretraining needs scBERT's to_out output layer".into()));
        }
        self.cells.check(false)?;
        check_tokens(&self.cells, model.config.max_len, model.config.vocab_size)
    }
    fn loss(&self, model: &ScBert<B>, rows: &[usize], epoch: usize, device: &B::Device) -> Tensor<B, 1> {
        let mut input: Vec<Vec<u32>> = Vec::with_capacity(rows.len());
        let mut scored = vec![];
        let mut fallback = 0;
        for (b, &r) in rows.iter().enumerate() {
            // Checked: every token is below n_tokens (7), so it fits a byte.
            let tokens: Vec<u8> = self.cells.ids(r).iter().map(|&t| t as u8).collect();
            if b == 0 {
                fallback = tokens.first().map_or(0, |&t| i64::from(t));
            }
            let (masked, labels) = self.masker.mask(&tokens, cell_key(epoch, self.cells.len(), r));
            let ignored = self.masker.mask_token;
            scored
                .extend(labels.iter().enumerate().filter(|&(_, &l)| l != ignored).map(|(k, &l)| (b, k, i64::from(l))));
            input.push(masked.into_iter().map(u32::from).collect());
        }
        let views: Vec<&[u32]> = input.iter().map(Vec::as_slice).collect();
        let (ids, _) = TokenBatch::pad(&views, 0).tensors::<B>(device);
        masked_lm_loss(model.encode(ids), &scored, fallback, model.config.vocab_size, |h| {
            model.lm_logits(h).expect("checked: the model has an output layer")
        })
    }
    fn lengths(&self) -> Vec<usize> {
        self.cells.lengths()
    }
}
