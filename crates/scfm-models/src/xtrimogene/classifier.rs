use burn::module::{Module, Param};
use burn::nn::{BatchNorm, BatchNormConfig, Linear};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};

use super::XTrimoGene;
use crate::Pooling;
use crate::checkpoint::{Fresh, ModuleSource};
use crate::layers::as_dtype;

/// scFoundation's fine-tuning model (`model/finetune_model.py`): the pretrained value and
/// position embeddings and encoder, the element-wise max over the encoder output →
/// `BatchNorm1d(encoder_dim, affine=False, eps=1e-6)` → Linear(→ 256) → ReLU → Linear(→ classes).
///
/// The maximum is taken over the cell's selected positions only (padding of a batch left out),
/// T and S included; upstream runs one cell at a time. burn's `BatchNorm` keeps the biased batch
/// variance as its running variance where PyTorch keeps the unbiased one: the training
/// forward is the same, inference after training differs by the factor n/(n−1) of the batch.
#[derive(Module, Debug)]
pub struct XTrimoGeneClassifier<B: Backend> {
    /// The pretrained model (its decoder is not used).
    pub backbone: XTrimoGene<B>,
    /// `norm`, without affine parameters (held at 1 and 0, not trained).
    pub norm: BatchNorm<B>,
    /// `fc1` (d_model → 256).
    pub fc1: Linear<B>,
    /// `fc2` (256 → classes).
    pub fc2: Linear<B>,
}

impl<B: Backend> XTrimoGeneClassifier<B> {
    /// The head over `backbone` for `n_classes` cell types, freshly initialised.
    pub fn new(backbone: XTrimoGene<B>, n_classes: usize, device: &B::Device) -> Self {
        let d = backbone.config.d_model;
        let mut norm = BatchNormConfig::new(d).with_epsilon(1e-6).init(device);
        norm.gamma = Param::from_tensor(Tensor::ones([d], device)).set_require_grad(false);
        norm.beta = Param::from_tensor(Tensor::zeros([d], device)).set_require_grad(false);
        let mut fresh = Fresh::new(device, 0.02);
        Self { fc1: fresh.linear("fc1", d, 256), fc2: fresh.linear("fc2", 256, n_classes), norm, backbone }
    }

    /// Cell types the head predicts.
    pub fn n_classes(&self) -> usize {
        self.fc2.weight.dims()[1]
    }

    /// Class logits.
    ///
    /// # Shapes
    /// - `values`, `positions`, `padded`: `[batch, width]` (an
    ///   [`EncoderInput`](super::EncoderInput)'s tensors)
    /// - `lengths`: selected positions per cell
    /// - output: `[batch, n_classes]`
    pub fn forward(
        &self,
        values: Tensor<B, 2>,
        positions: Tensor<B, 2, Int>,
        padded: Tensor<B, 2, Bool>,
        lengths: &[usize],
    ) -> Tensor<B, 2> {
        self.head(self.pool(values, positions, padded, lengths))
    }

    /// The cell embedding the head reads: the element-wise maximum of the encoder output over
    /// each cell's selected positions.
    ///
    /// # Shapes
    /// - `values`, `positions`, `padded`: `[batch, width]`
    /// - `lengths`: selected positions per cell
    /// - output: `[batch, d_model]`
    pub fn pool(
        &self,
        values: Tensor<B, 2>,
        positions: Tensor<B, 2, Int>,
        padded: Tensor<B, 2, Bool>,
        lengths: &[usize],
    ) -> Tensor<B, 2> {
        let encoded = self.backbone.encode(values, positions, padded);
        XTrimoGene::cell_embeddings(encoded, lengths, Pooling::Max).expect("xTrimoGene pools by max")
    }

    /// BatchNorm → `fc1` → ReLU → `fc2`. The batch norm runs in its own parameters' type
    /// (mixed-precision training keeps it, and its running statistics, in fp32), whatever type
    /// the rest computes in.
    ///
    /// # Shapes
    /// - `pooled`: `[batch, d_model]`
    /// - output: `[batch, n_classes]`
    pub fn head(&self, pooled: Tensor<B, 2>) -> Tensor<B, 2> {
        let dtype = pooled.dtype();
        let normed = as_dtype(self.norm.forward(as_dtype(pooled, self.norm.gamma.val().dtype())), dtype);
        self.fc2.forward(relu(self.fc1.forward(normed)))
    }
}
