use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Embedding, LayerNorm, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};

use super::GeneformerConfig;
use crate::layers::{Activation, EncoderLayer, full_bias, key_padding_bias, mean_over};
use crate::{Pooling, UnsupportedPooling};

/// BERT embeddings: word + absolute position + token type 0, then LayerNorm.
#[derive(Module, Debug)]
pub struct Embeddings<B: Backend> {
    pub word: Embedding<B>,
    pub position: Embedding<B>,
    pub token_type: Embedding<B>,
    pub norm: LayerNorm<B>,
    pub dropout: Dropout,
}

impl<B: Backend> Embeddings<B> {
    pub(super) fn new(
        word: Embedding<B>,
        position: Embedding<B>,
        token_type: Embedding<B>,
        norm: LayerNorm<B>,
        dropout: f64,
    ) -> Self {
        Self { word, position, token_type, norm, dropout: DropoutConfig::new(dropout).init() }
    }

    /// # Shapes
    /// - `ids`: `[batch, len]`
    /// - output: `[batch, len, d_model]`
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [b, l] = ids.dims();
        let device = ids.device();
        let positions = Tensor::<B, 1, Int>::arange(0..l as i64, &device).reshape([1, l]);
        let types = Tensor::<B, 2, Int>::zeros([1, l], &device);
        let word = self.word.forward(ids);
        let d = word.dims()[2];
        // `[1, len · d]` rows broadcast over the cells: burn-flex adds those with SIMD, where a
        // `[1, len, d]` broadcast takes its scalar strided path. Same sums, same order.
        let row = |t: Tensor<B, 3>| t.reshape([1, l * d]);
        let x = word.reshape([b, l * d]) + row(self.position.forward(positions)) + row(self.token_type.forward(types));
        self.dropout.forward(self.norm.forward(x.reshape([b, l, d])))
    }
}

/// BERT's masked-LM head: dense → activation → LayerNorm → decoder tied to the word embeddings
/// (+ bias).
#[derive(Module, Debug)]
pub struct MlmHead<B: Backend> {
    pub transform: Linear<B>,
    pub norm: LayerNorm<B>,
    pub bias: Param<Tensor<B, 1>>,
    #[module(skip)]
    pub activation: Activation,
}

/// Geneformer: a BERT encoder with its optional masked-LM head.
#[derive(Module, Debug)]
pub struct Geneformer<B: Backend> {
    pub embeddings: Embeddings<B>,
    pub layers: Vec<EncoderLayer<B>>,
    pub mlm: Option<MlmHead<B>>,
    #[module(skip)]
    pub config: GeneformerConfig,
}

/// The encoder's outputs.
#[derive(Debug, Clone)]
pub struct Encoded<B: Backend> {
    /// `hidden_states[0]` is the embedding output, `hidden_states[i]` the output of layer `i`
    /// (Hugging Face's `output_hidden_states=True`); `[batch, len, d_model]` each.
    pub hidden_states: Vec<Tensor<B, 3>>,
    /// Attention probabilities per layer, `[batch, heads, len, len]`, when asked for.
    pub attentions: Vec<Tensor<B, 4>>,
}

impl<B: Backend> Encoded<B> {
    /// The last layer's output `[batch, len, d_model]`.
    pub fn last(&self) -> &Tensor<B, 3> {
        self.hidden_states.last().expect("the embedding output at least")
    }
}

/// Which hidden state a cell embedding is taken from: upstream `EmbExtractor`'s `emb_layer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmbeddingLayer {
    /// `emb_layer = -1` (upstream default): the output of the second-to-last layer,
    /// `hidden_states[n_layers − 1]`.
    #[default]
    Penultimate,
    /// `emb_layer = 0`: the last layer's output.
    Last,
    /// `hidden_states[i]` (0 = embedding output).
    Index(usize),
}

impl<B: Backend> Geneformer<B> {
    /// Runs the encoder.
    ///
    /// # Shapes
    /// - `ids`: `[batch, len]`, right-padded
    /// - `padded`: `[batch, len]`, true at padding positions
    /// - output: `n_layers + 1` hidden states `[batch, len, d_model]` (and `n_layers` attention
    ///   maps `[batch, heads, len, len]` with `return_attentions`)
    pub fn encode(&self, ids: Tensor<B, 2, Int>, padded: Tensor<B, 2, Bool>, return_attentions: bool) -> Encoded<B> {
        let mut x = self.embeddings.forward(ids);
        let bias = full_bias(key_padding_bias(padded, x.dtype()));
        let mut hidden_states = vec![x.clone()];
        let mut attentions = vec![];
        for layer in &self.layers {
            let (y, probs) = layer.forward(x, Some(bias.clone()), return_attentions);
            attentions.extend(probs);
            hidden_states.push(y.clone());
            x = y;
        }
        Encoded { hidden_states, attentions }
    }

    /// One hidden state only, `hidden_states[index]` of [`Self::encode`], running just the
    /// layers it needs: a cell embedding from the penultimate layer (upstream's default) skips
    /// the last layer's work and keeps no other layer's output. `index` is clamped to
    /// `n_layers` (see [`Self::hidden_index`]).
    ///
    /// # Shapes
    /// - `ids`, `padded`: `[batch, len]`
    /// - output: `[batch, len, d_model]`
    pub fn hidden_state(&self, ids: Tensor<B, 2, Int>, padded: Tensor<B, 2, Bool>, index: usize) -> Tensor<B, 3> {
        let x = self.embeddings.forward(ids);
        let bias = full_bias(key_padding_bias(padded, x.dtype()));
        self.layers.iter().take(index).fold(x, |x, layer| layer.forward(x, Some(bias.clone()), false).0)
    }

    /// Masked-LM logits over the vocabulary; `None` when the checkpoint had no MLM head.
    ///
    /// # Shapes
    /// - `hidden`: `[batch, len, d_model]` (the last hidden state)
    /// - output: `[batch, len, vocab_size]`
    pub fn mlm_logits(&self, hidden: Tensor<B, 3>) -> Option<Tensor<B, 3>> {
        let head = self.mlm.as_ref()?;
        let [b, l, d] = hidden.dims();
        let h = head.norm.forward(head.activation.apply(head.transform.forward(hidden)));
        let decoder = self.embeddings.word.weight.val().transpose();
        let v = self.config.vocab_size;
        Some((h.reshape([b * l, d]).matmul(decoder) + head.bias.val().reshape([1, v])).reshape([b, l, v]))
    }

    /// The index into [`Encoded::hidden_states`] of `layer`.
    pub fn hidden_index(&self, layer: EmbeddingLayer) -> usize {
        let n = self.config.n_layers;
        match layer {
            EmbeddingLayer::Penultimate => n.saturating_sub(1),
            EmbeddingLayer::Last => n,
            EmbeddingLayer::Index(i) => i.min(n),
        }
    }

    /// Cell embeddings as upstream `EmbExtractor` computes them: [`Pooling::Cls`] (`emb_mode="cls"`,
    /// V2) or [`Pooling::Mean`] (`emb_mode="cell"`), which with `framed` (V2's `<cls>` …
    /// `<eos>`) leaves position 0 and the last real position out.
    ///
    /// # Shapes
    /// - `hidden`: `[batch, len, d_model]` (one of [`Encoded::hidden_states`])
    /// - `lengths`: real tokens per row (specials included)
    /// - output: `[batch, d_model]`
    ///
    /// # Errors
    /// [`UnsupportedPooling`] for the other poolings.
    pub fn pool(
        hidden: Tensor<B, 3>,
        lengths: &[usize],
        pooling: Pooling,
        framed: bool,
    ) -> Result<Tensor<B, 2>, UnsupportedPooling> {
        UnsupportedPooling::check(<Self as crate::CellModel<B>>::NAME, pooling, Self::POOLINGS)?;
        let [b, _, d] = hidden.dims();
        Ok(if pooling == Pooling::Cls {
            hidden.slice([0..b, 0..1, 0..d]).reshape([b, d])
        } else {
            let ranges: Vec<_> =
                lengths.iter().map(|&n| if framed { 1..n.saturating_sub(1).max(1) } else { 0..n }).collect();
            mean_over(hidden, &ranges)
        })
    }

    /// The poolings of [`Self::pool`].
    pub const POOLINGS: &'static [Pooling] = &[Pooling::Mean, Pooling::Cls];
}
