//! scGPT as a [`CellModel`].

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};

use super::{ScGpt, ScGptConfig};
use crate::{CellModel, ImportError, Pooling, UnsupportedPooling, seeded};

/// A batch of cells as scGPT reads them: gene ids and binned values, `<cls>` first,
/// right-padded.
#[derive(Debug, Clone)]
pub struct ScGptBatch<B: Backend> {
    /// `[batch, len]` gene ids.
    pub ids: Tensor<B, 2, Int>,
    /// `[batch, len]` values (bins; the pad value at padding).
    pub values: Tensor<B, 2>,
    /// `[batch, len]`, true at padding.
    pub padded: Tensor<B, 2, Bool>,
    /// Real tokens per cell, `<cls>` included.
    pub lengths: Vec<usize>,
}

impl<B: Backend> CellModel<B> for ScGpt<B> {
    type Config = ScGptConfig;
    type Batch = ScGptBatch<B>;

    const NAME: &'static str = "scGPT";
    const POOLINGS: &'static [Pooling] = ScGpt::<B>::POOLINGS;

    /// A released folder: `args.json`, `vocab.json`, `best_model.pt`.
    fn from_upstream(path: &Path, device: &B::Device) -> Result<Self, ImportError> {
        Self::from_dir(path, device)
    }

    fn init(config: &ScGptConfig, seed: u64, device: &B::Device) -> Self {
        seeded(device, seed, || config.init(device))
    }

    fn config(&self) -> &ScGptConfig {
        &self.config
    }

    fn encode(&self, batch: &ScGptBatch<B>) -> Tensor<B, 3> {
        self.encode(batch.ids.clone(), batch.values.clone(), batch.padded.clone(), false).output
    }

    /// Without upstream's L2 normalisation (callers normalise where they want it:
    /// [`ScGpt::cell_embeddings`] with `normalize`).
    fn embed(&self, batch: &ScGptBatch<B>, pooling: Pooling) -> Result<Tensor<B, 2>, UnsupportedPooling> {
        ScGpt::cell_embeddings(CellModel::encode(self, batch), &batch.lengths, pooling, false)
    }
}
