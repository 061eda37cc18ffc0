use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, Linear};
use burn::tensor::Tensor;
use burn::tensor::activation::{gelu, relu};
use burn::tensor::backend::Backend;

use super::SelfAttention;
use super::attention::{cpu_kernel_applies, host_f32, host_tensor};
use super::cpu_linear::{HostLinear, HostValues};

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
        if !return_probs && cpu_kernel_applies(&x) {
            return (self.forward_on_host(x, bias), None);
        }
        let a = self.attention.forward(x.clone(), bias, return_probs);
        let h = self.norm1.forward(x + self.dropout.forward(a.context));
        let f = self.ff2.forward(self.activation.apply(self.ff1.forward(h.clone())));
        (self.norm2.forward(h + self.dropout.forward(f)), a.probs)
    }

    /// [`Self::forward`] on scfm's CPU path (fp32 inference on burn-flex): the attention
    /// kernel and the linear layers on host buffers, each bias and residual added where its
    /// matrix product writes ([`HostLinear`]), the activation in place right after it; the
    /// layer norms are burn-flex's own fused, parallel kernel.
    ///
    /// # Shapes
    /// - `x`: `[batch, len, d_model]`
    /// - `bias`: broadcastable to `[batch, heads, len, len]`
    /// - output: `[batch, len, d_model]`
    fn forward_on_host(&self, x: Tensor<B, 3>, bias: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        let [batch, len, d] = x.dims();
        let device = x.device();
        let tensor = |values: Vec<f32>| host_tensor::<B, 3>(values, [batch, len, d], &device);
        let x = HostValues::of(x);
        let context = self.attention.host_context(x.as_slice(), [batch, len], bias);
        let h = HostLinear::of(&[&self.attention.output]).forward(&context, Some(x.as_slice()));
        drop((x, context));
        let h = host_f32(self.norm1.forward(tensor(h)));
        let f = HostLinear::of(&[&self.ff1]).forward_activated(&h, self.activation);
        let y = HostLinear::of(&[&self.ff2]).forward(&f, Some(&h));
        self.norm2.forward(tensor(y))
    }
}
