use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, Linear};
use burn::tensor::Tensor;
use burn::tensor::activation::{gelu, relu};
use burn::tensor::backend::Backend;

use super::SelfAttention;

/// Feed-forward activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    /// The exact (erf) GELU of PyTorch and Hugging Face's `"gelu"`.
    Gelu,
}

impl Activation {
    /// Applies the activation.
    pub fn apply<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Self::Relu => relu(x),
            Self::Gelu => gelu(x),
        }
    }
}

/// A post-norm transformer encoder layer — BERT's `BertLayer` and PyTorch's
/// `nn.TransformerEncoderLayer(norm_first=False)`:
/// `h = norm1(x + attn(x))`, `y = norm2(h + ff2(act(ff1(h))))`.
#[derive(Module, Debug)]
pub struct EncoderLayer<B: Backend> {
    pub attention: SelfAttention<B>,
    pub norm1: LayerNorm<B>,
    pub ff1: Linear<B>,
    pub ff2: Linear<B>,
    pub norm2: LayerNorm<B>,
    pub dropout: Dropout,
    #[module(skip)]
    pub activation: Activation,
}

impl<B: Backend> EncoderLayer<B> {
    /// A layer from its parts.
    pub fn new(
        attention: SelfAttention<B>,
        norm1: LayerNorm<B>,
        ff1: Linear<B>,
        ff2: Linear<B>,
        norm2: LayerNorm<B>,
        activation: Activation,
        dropout: f64,
    ) -> Self {
        Self { attention, norm1, ff1, ff2, norm2, dropout: DropoutConfig::new(dropout).init(), activation }
    }

    /// One layer; returns the output and, when asked, the attention probabilities.
    ///
    /// # Shapes
    /// - `x`: `[batch, len, d_model]`
    /// - `bias`: broadcastable to `[batch, heads, len, len]`
    /// - output: `[batch, len, d_model]`, probabilities `[batch, heads, len, len]`
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        bias: Option<Tensor<B, 4>>,
        return_probs: bool,
    ) -> (Tensor<B, 3>, Option<Tensor<B, 4>>) {
        let a = self.attention.forward(x.clone(), bias, return_probs);
        let h = self.norm1.forward(x + self.dropout.forward(a.context));
        let f = self.ff2.forward(self.activation.apply(self.ff1.forward(h.clone())));
        (self.norm2.forward(h + self.dropout.forward(f)), a.probs)
    }
}
