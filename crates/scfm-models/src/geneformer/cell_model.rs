//! Geneformer as a [`CellModel`].

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};

use super::{EmbeddingLayer, Geneformer, GeneformerConfig};
use crate::{CellModel, ImportError, Pooling, UnsupportedPooling, seeded};

/// A batch of rank-value encoded cells, right-padded.
#[derive(Debug, Clone)]
pub struct GeneformerBatch<B: Backend> {
    /// `[batch, len]` token ids.
    pub ids: Tensor<B, 2, Int>,
    /// `[batch, len]`, true at padding.
    pub padded: Tensor<B, 2, Bool>,
    /// Real tokens per cell.
    pub lengths: Vec<usize>,
    /// The cells are framed by `<cls>` … `<eos>` (V2 tokens), which mean pooling leaves out.
    pub framed: bool,
}

impl<B: Backend> CellModel<B> for Geneformer<B> {
    type Config = GeneformerConfig;
    type Batch = GeneformerBatch<B>;

    const NAME: &'static str = "Geneformer";
    const POOLINGS: &'static [Pooling] = Geneformer::<B>::POOLINGS;

    /// A Hugging Face folder (`config.json` and `model.safetensors` or `pytorch_model.bin`).
    fn from_upstream(path: &Path, device: &B::Device) -> Result<Self, ImportError> {
        Self::from_hf_dir(path, device)
    }

    fn init(config: &GeneformerConfig, seed: u64, device: &B::Device) -> Self {
        seeded(device, seed, || config.init(device))
    }

    fn config(&self) -> &GeneformerConfig {
        &self.config
    }

    fn encode(&self, batch: &GeneformerBatch<B>) -> Tensor<B, 3> {
        self.hidden_state(batch.ids.clone(), batch.padded.clone(), self.config.n_layers)
    }

    /// Upstream's default: the penultimate layer (`emb_layer=-1`), mean-pooled over the genes
    /// or at `<cls>`; other layers through [`Geneformer::hidden_state`] and
    /// [`Geneformer::pool`].
    fn embed(&self, batch: &GeneformerBatch<B>, pooling: Pooling) -> Result<Tensor<B, 2>, UnsupportedPooling> {
        let layer = self.hidden_index(EmbeddingLayer::Penultimate);
        let hidden = self.hidden_state(batch.ids.clone(), batch.padded.clone(), layer);
        Geneformer::pool(hidden, &batch.lengths, pooling, batch.framed)
    }
}
