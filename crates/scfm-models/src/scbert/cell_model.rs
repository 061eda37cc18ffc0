//! scBERT as a [`CellModel`].

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use super::{ScBert, ScBertConfig};
use crate::{CellModel, ImportError, Pooling, UnsupportedPooling, seeded};

impl<B: Backend> CellModel<B> for ScBert<B> {
    type Config = ScBertConfig;
    /// `[batch, max_len]` expression bins, one per panel gene (no padding).
    type Batch = Tensor<B, 2, Int>;

    const NAME: &'static str = "scBERT";
    const POOLINGS: &'static [Pooling] = &[Pooling::Mean];

    /// `panglao_pretrain.pth` or a fine-tuned `.pth` (its `model_state_dict`).
    fn from_upstream(path: &Path, device: &B::Device) -> Result<Self, ImportError> {
        Self::from_file(path, device)
    }

    fn init(config: &ScBertConfig, seed: u64, device: &B::Device) -> Self {
        seeded(device, seed, || config.init(device, seed))
    }

    fn config(&self) -> &ScBertConfig {
        &self.config
    }

    fn encode(&self, ids: &Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.encode(ids.clone())
    }

    /// The mean over every position (upstream scBERT has no cell embedding of its own).
    fn embed(&self, ids: &Tensor<B, 2, Int>, pooling: Pooling) -> Result<Tensor<B, 2>, UnsupportedPooling> {
        UnsupportedPooling::check(Self::NAME, pooling, <Self as CellModel<B>>::POOLINGS)?;
        Ok(ScBert::cell_embeddings(self.encode(ids.clone())))
    }
}
