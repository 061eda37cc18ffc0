//! xTrimoGene as a [`CellModel`].

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};

use super::{EncoderInput, Weights, XTrimoGene, XTrimoGeneConfig};
use crate::{CellModel, ImportError, Pooling, UnsupportedPooling, seeded};

/// A batch of cells as xTrimoGene's encoder reads them: each cell's selected positions (its
/// expressed genes, then T and S), right-padded.
#[derive(Debug, Clone)]
pub struct XTrimoGeneBatch<B: Backend> {
    /// `[batch, width]` values.
    pub values: Tensor<B, 2>,
    /// `[batch, width]` gene positions.
    pub positions: Tensor<B, 2, Int>,
    /// `[batch, width]`, true at padding.
    pub padded: Tensor<B, 2, Bool>,
    /// Selected positions per cell.
    pub lengths: Vec<usize>,
}

impl<B: Backend> XTrimoGeneBatch<B> {
    /// The tensors of `input` on `device`.
    pub fn new(input: &EncoderInput, device: &B::Device) -> Self {
        let (values, positions, padded) = input.tensors(device);
        Self { values, positions, padded, lengths: input.lengths.clone() }
    }
}

impl<B: Backend> CellModel<B> for XTrimoGene<B> {
    type Config = XTrimoGeneConfig;
    type Batch = XTrimoGeneBatch<B>;

    const NAME: &'static str = "xTrimoGene";
    const POOLINGS: &'static [Pooling] = XTrimoGene::<B>::POOLINGS;

    /// scFoundation's `models.ckpt`, its cell-embedding weights ([`Weights::Cell`]; the others
    /// through [`XTrimoGene::from_checkpoint`]).
    fn from_upstream(path: &Path, device: &B::Device) -> Result<Self, ImportError> {
        Self::from_checkpoint(path, Weights::Cell, device)
    }

    fn init(config: &XTrimoGeneConfig, seed: u64, device: &B::Device) -> Self {
        seeded(device, seed, || config.init(device, seed))
    }

    fn config(&self) -> &XTrimoGeneConfig {
        &self.config
    }

    fn encode(&self, batch: &XTrimoGeneBatch<B>) -> Tensor<B, 3> {
        self.encode(batch.values.clone(), batch.positions.clone(), batch.padded.clone())
    }

    fn embed(&self, batch: &XTrimoGeneBatch<B>, pooling: Pooling) -> Result<Tensor<B, 2>, UnsupportedPooling> {
        XTrimoGene::cell_embeddings(CellModel::encode(self, batch), &batch.lengths, pooling)
    }
}
