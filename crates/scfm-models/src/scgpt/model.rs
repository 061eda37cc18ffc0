use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, LayerNorm, Linear};
use burn::tensor::activation::{leaky_relu, relu, sigmoid};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use super::ScGptConfig;
use crate::checkpoint::{Fresh, ModuleSource};
use crate::layers::{EncoderLayer, as_dtype, full_bias, key_padding_bias, l2_normalize, masked_bias, mean_over};
use crate::{Pooling, UnsupportedPooling};

/// `GeneEncoder`: the gene-token embedding followed by `enc_norm`.
#[derive(Module, Debug)]
pub struct GeneEncoder<B: Backend> {
    pub embedding: Embedding<B>,
    pub norm: LayerNorm<B>,
}

impl<B: Backend> GeneEncoder<B> {
    /// # Shapes
    /// - `ids`: `[batch, len]`
    /// - output: `[batch, len, d_model]`
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.norm.forward(self.embedding.forward(ids))
    }
}

/// `ContinuousValueEncoder`: `norm(linear2(relu(linear1(min(x, max_value)))))`.
#[derive(Module, Debug)]
pub struct ValueEncoder<B: Backend> {
    pub linear1: Linear<B>,
    pub linear2: Linear<B>,
    pub norm: LayerNorm<B>,
    pub dropout: Dropout,
    #[module(skip)]
    pub max_value: f32,
}

impl<B: Backend> ValueEncoder<B> {
    /// # Shapes
    /// - `values`: `[batch, len]`
    /// - output: `[batch, len, d_model]`
    pub fn forward(&self, values: Tensor<B, 2>) -> Tensor<B, 3> {
        let x = as_dtype(values, self.linear1.weight.val().dtype());
        let x = x.clamp_max(self.max_value).unsqueeze_dim::<3>(2);
        let x = self.linear2.forward(relu(self.linear1.forward(x)));
        self.dropout.forward(self.norm.forward(x))
    }
}

/// `ExprDecoder`: per-token expression prediction, `fc.4(leaky(fc.2(leaky(fc.0(x)))))` with
/// LeakyReLU slope 0.01.
#[derive(Module, Debug)]
pub struct ExprDecoder<B: Backend> {
    pub fc0: Linear<B>,
    pub fc2: Linear<B>,
    pub fc4: Linear<B>,
}

impl<B: Backend> ExprDecoder<B> {
    /// # Shapes
    /// - `x`: `[batch, len, d_model]`
    /// - output: `[batch, len]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 2> {
        let h = leaky_relu(self.fc0.forward(x), 0.01);
        let h = leaky_relu(self.fc2.forward(h), 0.01);
        self.fc4.forward(h).squeeze_dim(2)
    }
}

/// `MVCDecoder` in "inner product" style: `pred_g = W(sigmoid(gene2query(gene_emb_g))) · cell`.
#[derive(Module, Debug)]
pub struct MvcDecoder<B: Backend> {
    pub gene2query: Linear<B>,
    pub w: Linear<B>,
}

impl<B: Backend> MvcDecoder<B> {
    /// # Shapes
    /// - `cell`: `[batch, d_model]`
    /// - `gene_embeddings`: `[batch, len, d_model]` (the [`GeneEncoder`] output)
    /// - output: `[batch, len]`
    pub fn forward(&self, cell: Tensor<B, 2>, gene_embeddings: Tensor<B, 3>) -> Tensor<B, 2> {
        let q = self.w.forward(sigmoid(self.gene2query.forward(gene_embeddings)));
        (q * cell.unsqueeze_dim::<3>(1)).sum_dim(2).squeeze_dim(2)
    }
}

/// One hidden block of [`ClsDecoder`]: `norm(relu(linear(x)))`.
#[derive(Module, Debug)]
pub struct ClsBlock<B: Backend> {
    pub linear: Linear<B>,
    pub norm: LayerNorm<B>,
}

/// `ClsDecoder`: `n_layers_cls − 1` blocks of Linear → ReLU → LayerNorm, then `out_layer`.
#[derive(Module, Debug)]
pub struct ClsDecoder<B: Backend> {
    pub blocks: Vec<ClsBlock<B>>,
    pub out: Linear<B>,
}

impl<B: Backend> ClsDecoder<B> {
    /// # Shapes
    /// - `cell`: `[batch, d_model]`
    /// - output: logits `[batch, n_cls]`
    pub fn forward(&self, cell: Tensor<B, 2>) -> Tensor<B, 2> {
        let h = self.blocks.iter().fold(cell, |h, b| b.norm.forward(relu(b.linear.forward(h))));
        self.out.forward(h)
    }
}

/// scGPT's `TransformerModel` (inference path of the released checkpoints).
#[derive(Module, Debug)]
pub struct ScGpt<B: Backend> {
    pub gene_encoder: GeneEncoder<B>,
    pub value_encoder: ValueEncoder<B>,
    pub layers: Vec<EncoderLayer<B>>,
    pub expr_decoder: ExprDecoder<B>,
    pub mvc_decoder: Option<MvcDecoder<B>>,
    pub cls_decoder: Option<ClsDecoder<B>>,
    /// `flag_encoder`, `Embedding(2, d_model)`: row 1 marks the generated genes of generative
    /// pretraining (present in the released checkpoints; unused at inference).
    pub flag_encoder: Option<Embedding<B>>,
    #[module(skip)]
    pub config: ScGptConfig,
}

/// The encoder's outputs.
#[derive(Debug, Clone)]
pub struct ScGptEncoded<B: Backend> {
    /// The [`GeneEncoder`] output (`cur_gene_token_embs`), which the MVC decoder reads,
    /// `[batch, len, d_model]`.
    pub gene_embeddings: Tensor<B, 3>,
    /// The last layer's output (`_encode`), the contextual gene embeddings,
    /// `[batch, len, d_model]`.
    pub output: Tensor<B, 3>,
    /// Attention probabilities per layer, `[batch, heads, len, len]`, when asked for.
    pub attentions: Vec<Tensor<B, 4>>,
}

impl<B: Backend> ScGpt<B> {
    /// The model with the flag embedding generative pretraining needs (kept when it has one).
    pub fn with_flag_encoder(mut self, device: &B::Device) -> Self {
        if self.flag_encoder.is_none() {
            self.config.generative = true;
            self.flag_encoder = Some(Fresh::new(device, 0.02).embedding("flag_encoder.weight", 2, self.config.d_model));
        }
        self
    }

    /// Runs the gene and value encoders and the transformer.
    ///
    /// # Shapes
    /// - `ids`: `[batch, len]` gene tokens, `<cls>` first, right-padded with `<pad>`
    /// - `values`: `[batch, len]` binned values (padding: `pad_value`)
    /// - `padded`: `[batch, len]`, true at padding positions
    /// - output: [`ScGptEncoded`] (`[batch, len, d_model]` each; `n_layers` maps
    ///   `[batch, heads, len, len]` with `return_attentions`)
    pub fn encode(
        &self,
        ids: Tensor<B, 2, Int>,
        values: Tensor<B, 2>,
        padded: Tensor<B, 2, Bool>,
        return_attentions: bool,
    ) -> ScGptEncoded<B> {
        let gene_embeddings = self.gene_encoder.forward(ids);
        let bias = full_bias(key_padding_bias(padded, gene_embeddings.dtype()));
        let mut x = gene_embeddings.clone() + self.value_encoder.forward(values);
        let mut attentions = vec![];
        for layer in &self.layers {
            let (y, probs) = layer.forward(x, Some(bias.clone()), return_attentions);
            attentions.extend(probs);
            x = y;
        }
        ScGptEncoded { gene_embeddings, output: x, attentions }
    }

    /// The forward pass of generative pretraining (MODELS.md §3.9). Gene-prompt positions
    /// (`prompt`, `<cls>` included) carry gene + value embeddings, generated positions gene +
    /// flag embeddings; `blocked` (from [`ScGpt::generative_attention_mask`]) lets prompt genes
    /// attend to the prompt only and each generated gene to the prompt and itself. With
    /// `cell_prompt` the first position's input is that cell embedding instead (the
    /// "cell-prompt" pass). `None` without a flag encoder ([`ScGpt::with_flag_encoder`]).
    ///
    /// Upstream runs the generated stream through the same `Wqkv` but skips `out_proj` for it;
    /// scfm applies the whole attention to both streams (the same weights, one code path). The
    /// quirk only matters when continuing upstream's own pretraining run.
    ///
    /// # Shapes
    /// - `ids`, `values`, `prompt`: `[batch, len]`
    /// - `blocked`: `[batch, 1, len, len]`, true where a query may not see a key
    /// - `cell_prompt`: `[batch, d_model]`
    /// - output: [`ScGptEncoded`] (`[batch, len, d_model]` each, no attentions)
    pub fn encode_generative(
        &self,
        ids: Tensor<B, 2, Int>,
        values: Tensor<B, 2>,
        prompt: Tensor<B, 2, Bool>,
        blocked: Tensor<B, 4, Bool>,
        cell_prompt: Option<Tensor<B, 2>>,
    ) -> Option<ScGptEncoded<B>> {
        let flag = self.flag_encoder.as_ref()?;
        let [b, l] = ids.dims();
        let d = self.config.d_model;
        let gene_embeddings = self.gene_encoder.forward(ids);
        let bias = masked_bias(blocked, gene_embeddings.dtype());
        let flag = flag.weight.val().narrow(0, 1, 1).reshape([1, 1, d]);
        let prompt = prompt.unsqueeze_dim::<3>(2).expand([b, l, d]);
        let mut x = (gene_embeddings.clone() + flag)
            .mask_where(prompt, gene_embeddings.clone() + self.value_encoder.forward(values));
        if let Some(cell) = cell_prompt {
            x = x.slice_assign([0..b, 0..1, 0..d], as_dtype(cell, gene_embeddings.dtype()).reshape([b, 1, d]));
        }
        for layer in &self.layers {
            x = layer.forward(x, Some(bias.clone()), false).0;
        }
        Some(ScGptEncoded { gene_embeddings, output: x, attentions: vec![] })
    }

    /// The attention mask of generative pretraining, true where query `i` may not see key
    /// `j`: it may when `j` is a real prompt position or `j == i`.
    ///
    /// # Shapes
    /// - `prompt`, `padded`: `[cells, len]` row-major
    /// - output: `[cells, 1, len, len]`
    pub fn generative_attention_mask(
        prompt: &[bool],
        padded: &[bool],
        cells: usize,
        len: usize,
        device: &B::Device,
    ) -> Tensor<B, 4, Bool> {
        let mut blocked = vec![true; cells * len * len];
        for c in 0..cells {
            let row = &mut blocked[c * len * len..(c + 1) * len * len];
            for j in (0..len).filter(|&j| prompt[c * len + j] && !padded[c * len + j]) {
                for i in 0..len {
                    row[i * len + j] = false;
                }
            }
            for i in 0..len {
                row[i * len + i] = false;
            }
        }
        Tensor::from_data(TensorData::new(blocked, [cells, 1, len, len]), device)
    }

    /// The expression decoder's prediction per position (`mlm_output`).
    ///
    /// # Shapes
    /// - `output`: `[batch, len, d_model]` ([`ScGptEncoded::output`])
    /// - output: `[batch, len]`
    pub fn expression(&self, output: Tensor<B, 3>) -> Tensor<B, 2> {
        self.expr_decoder.forward(output)
    }

    /// The MVC decoder's prediction per position (`mvc_output`) from the un-normalised CLS cell
    /// embedding; `None` without an MVC decoder (fine-tunes).
    ///
    /// # Shapes
    /// - `cell`: `[batch, d_model]`; `gene_embeddings`: `[batch, len, d_model]`
    /// - output: `[batch, len]`
    pub fn mvc(&self, cell: Tensor<B, 2>, gene_embeddings: Tensor<B, 3>) -> Option<Tensor<B, 2>> {
        Some(self.mvc_decoder.as_ref()?.forward(cell, gene_embeddings))
    }

    /// Class logits (`cls_output`) from the un-normalised CLS cell embedding; `None` without a
    /// classification decoder (pretrained checkpoints).
    ///
    /// # Shapes
    /// - `cell`: `[batch, d_model]`
    /// - output: `[batch, n_cls]`
    pub fn classify(&self, cell: Tensor<B, 2>) -> Option<Tensor<B, 2>> {
        Some(self.cls_decoder.as_ref()?.forward(cell))
    }

    /// Cell embeddings: [`Pooling::Cls`] (`cell_emb_style="cls"`, the released models; with
    /// `normalize`, divided by its L2 norm as `embed_data` returns it) or [`Pooling::Mean`], the
    /// mean over the real (non-padded) positions, `<cls>` included. (Upstream's "avg-pool"
    /// averages over padding too, which makes a cell's embedding depend on its batch; scfm
    /// does not.)
    ///
    /// # Shapes
    /// - `output`: `[batch, len, d_model]` ([`ScGptEncoded::output`])
    /// - `lengths`: real tokens per row (`<cls>` included); read by [`Pooling::Mean`]
    /// - output: `[batch, d_model]`
    ///
    /// # Errors
    /// [`UnsupportedPooling`] for the other poolings.
    pub fn cell_embeddings(
        output: Tensor<B, 3>,
        lengths: &[usize],
        pooling: Pooling,
        normalize: bool,
    ) -> Result<Tensor<B, 2>, UnsupportedPooling> {
        UnsupportedPooling::check(<Self as crate::CellModel<B>>::NAME, pooling, Self::POOLINGS)?;
        let [b, l, d] = output.dims();
        Ok(if pooling == Pooling::Cls {
            let cls = output.slice([0..b, 0..1, 0..d]).reshape([b, d]);
            if normalize { l2_normalize(cls) } else { cls }
        } else {
            let ranges: Vec<_> = lengths.iter().map(|&n| 0..n.clamp(1, l)).collect();
            mean_over(output, &ranges)
        })
    }

    /// The poolings of [`Self::cell_embeddings`].
    pub const POOLINGS: &'static [Pooling] = &[Pooling::Cls, Pooling::Mean];
}

pub(super) fn dropout(p: f64) -> Dropout {
    DropoutConfig::new(p).init()
}
