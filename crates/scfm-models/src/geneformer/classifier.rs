use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};

use super::{Geneformer, GeneformerConfig};
use crate::checkpoint::{Fresh, ModuleSource};
use crate::layers::as_dtype;
use crate::{Pooling, UnsupportedPooling};

/// Geneformer with Hugging Face `BertForSequenceClassification`'s head, as upstream's
/// `Classifier` fine-tunes it for cell types: the BERT pooler (`tanh(dense(h))` over the
/// first position, `<cls>` in V2, or over the mean of the real positions) → dropout → a
/// linear layer to the classes.
#[derive(Module, Debug)]
pub struct GeneformerClassifier<B: Backend> {
    /// The encoder (its MLM head, if any, is not used).
    pub encoder: Geneformer<B>,
    /// `bert.pooler.dense`.
    pub pooler: Linear<B>,
    /// `classifier`.
    pub classifier: Linear<B>,
    pub dropout: Dropout,
    #[module(skip)]
    pub pooling: Pooling,
}

impl<B: Backend> GeneformerClassifier<B> {
    /// A classifier over `encoder` (a pretrained model, or [`GeneformerConfig::init`]) with a
    /// freshly initialised pooler and class layer (N(0, 0.02), zero biases). The encoder's
    /// MLM head is dropped.
    pub fn new(mut encoder: Geneformer<B>, n_classes: usize, device: &B::Device) -> Self {
        let (d, dropout) = (encoder.config.d_model, encoder.config.dropout);
        encoder.mlm = None;
        let mut fresh = Fresh::new(device, 0.02);
        Self {
            pooler: fresh.linear("bert.pooler.dense", d, d),
            classifier: fresh.linear("classifier", d, n_classes),
            dropout: DropoutConfig::new(dropout).init(),
            pooling: Pooling::Cls,
            encoder,
        }
    }

    /// The same model pooling as `pooling` says: [`Pooling::Cls`] (the first position,
    /// upstream's) or [`Pooling::Mean`] (learns much faster from scratch).
    ///
    /// # Errors
    /// [`UnsupportedPooling`] for the other poolings.
    pub fn with_pooling(mut self, pooling: Pooling) -> Result<Self, UnsupportedPooling> {
        UnsupportedPooling::check("Geneformer's classification head", pooling, Geneformer::<B>::POOLINGS)?;
        self.pooling = pooling;
        Ok(self)
    }

    /// A fresh model of `config` with `n_classes` outputs.
    pub fn init(config: &GeneformerConfig, n_classes: usize, device: &B::Device) -> Self {
        Self::new(config.init(device), n_classes, device)
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.classifier.weight.dims()[1]
    }

    /// Class logits.
    ///
    /// # Shapes
    /// - `ids`, `padded`: `[batch, len]` (right-padded; true at padding)
    /// - output: `[batch, n_classes]`
    pub fn forward(&self, ids: Tensor<B, 2, Int>, padded: Tensor<B, 2, Bool>) -> Tensor<B, 2> {
        let hidden = self.encoder.hidden_state(ids, padded.clone(), self.encoder.config.n_layers);
        self.head(self.pool(hidden, padded))
    }

    /// The cell representation the head reads: the first position or the mean over real
    /// positions, as [`Self::pooling`] says.
    ///
    /// # Shapes
    /// - `hidden`: `[batch, len, d_model]`; `padded`: `[batch, len]`
    /// - output: `[batch, d_model]`
    pub fn pool(&self, hidden: Tensor<B, 3>, padded: Tensor<B, 2, Bool>) -> Tensor<B, 2> {
        let [b, l, d] = hidden.dims();
        if self.pooling == Pooling::Mean {
            let real = as_dtype(padded.bool_not().float(), hidden.dtype()).reshape([b, l, 1]);
            let counts = real.clone().sum_dim(1).reshape([b, 1]).clamp_min(1.0);
            (hidden * real).sum_dim(1).reshape([b, d]) / counts
        } else {
            hidden.narrow(1, 0, 1).reshape([b, d])
        }
    }

    /// The head over a pooled representation.
    ///
    /// # Shapes
    /// - `pooled`: `[batch, d_model]`
    /// - output: `[batch, n_classes]`
    pub fn head(&self, pooled: Tensor<B, 2>) -> Tensor<B, 2> {
        let pooled = self.pooler.forward(pooled).tanh();
        self.classifier.forward(self.dropout.forward(pooled))
    }
}
