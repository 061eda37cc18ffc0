use burn::module::{Module, Param};
use burn::nn::{Embedding, LayerNorm, Linear};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use super::ScBertConfig;
use crate::layers::PerformerLayer;

/// `finetune.py`'s classification head over the encodings of all positions.
#[derive(Module, Debug)]
pub struct ScBertClassifier<B: Backend> {
    /// `conv1`, a `Conv2d(1, 1, (1, dim))`: one weight per feature, i.e. Linear(dim → 1).
    pub conv: Linear<B>,
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
    pub fc3: Linear<B>,
}

impl<B: Backend> ScBertClassifier<B> {
    /// # Shapes
    /// - `encodings`: `[batch, seq_len, dim]`
    /// - output: logits `[batch, n_classes]`
    pub fn forward(&self, encodings: Tensor<B, 3>) -> Tensor<B, 2> {
        self.fc3.forward(self.hidden(encodings))
    }

    /// The activations of the last hidden layer (`fc2`, after ReLU), which `fc3` classifies.
    ///
    /// # Shapes
    /// - `encodings`: `[batch, seq_len, dim]`
    /// - output: `[batch, fc2 width]`
    pub fn hidden(&self, encodings: Tensor<B, 3>) -> Tensor<B, 2> {
        let [b, n, _] = encodings.dims();
        let x = relu(self.conv.forward(encodings)).reshape([b, n]);
        let x = relu(self.fc1.forward(x));
        relu(self.fc2.forward(x))
    }
}

/// scBERT's `PerformerLM` (inference path), with its masked-LM output layer or a fine-tuned
/// classification head.
#[derive(Module, Debug)]
pub struct ScBert<B: Backend> {
    pub token_emb: Embedding<B>,
    /// The gene2vec table `[seq_len, dim]` (last row zero); frozen, as upstream.
    pub pos_emb: Param<Tensor<B, 2>>,
    pub layers: Vec<PerformerLayer<B>>,
    pub norm: LayerNorm<B>,
    /// `to_out` of the pretrained model: Linear(dim → n_tokens).
    pub lm_head: Option<Linear<B>>,
    /// `to_out` of a fine-tuned model.
    pub classifier: Option<ScBertClassifier<B>>,
    #[module(skip)]
    pub config: ScBertConfig,
}

impl<B: Backend> ScBert<B> {
    /// The encodings (`return_encodings=True`): token + gene2vec embeddings, the Performer
    /// layers, the final LayerNorm.
    ///
    /// # Shapes
    /// - `ids`: `[batch, seq_len]` (bins 0…5, `[MASK]` 6)
    /// - output: `[batch, seq_len, dim]`
    pub fn encode(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [_, n] = ids.dims();
        let pos = self.pos_emb.val().narrow(0, 0, n).unsqueeze::<3>();
        let x = self.token_emb.forward(ids) + pos;
        let x = self.layers.iter().fold(x, |x, layer| layer.forward(x));
        self.norm.forward(x)
    }

    /// Masked-LM logits of the pretrained model; `None` for a fine-tuned one.
    ///
    /// # Shapes
    /// - `encodings`: `[batch, seq_len, dim]`
    /// - output: `[batch, seq_len, n_tokens]`
    pub fn lm_logits(&self, encodings: Tensor<B, 3>) -> Option<Tensor<B, 3>> {
        self.lm_head.as_ref().map(|h| h.forward(encodings))
    }

    /// Cell-type logits of a fine-tuned model; `None` for the pretrained one.
    ///
    /// # Shapes
    /// - `encodings`: `[batch, seq_len, dim]`
    /// - output: `[batch, n_classes]`
    pub fn classify(&self, encodings: Tensor<B, 3>) -> Option<Tensor<B, 2>> {
        self.classifier.as_ref().map(|h| h.forward(encodings))
    }

    /// A cell embedding: the mean of the encodings over all positions (the gene panel and the
    /// trailing slot). scBERT itself defines no cell embedding; this pooling is scfm's choice.
    ///
    /// # Shapes
    /// - `encodings`: `[batch, seq_len, dim]`
    /// - output: `[batch, dim]`
    pub fn cell_embeddings(encodings: Tensor<B, 3>) -> Tensor<B, 2> {
        let [b, _, d] = encodings.dims();
        encodings.mean_dim(1).reshape([b, d])
    }
}
