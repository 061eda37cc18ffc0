//! Assembles scGPT from a module source (fresh weights or a checkpoint) under the
//! `TransformerModel.state_dict()` key names, and the constructors built on it.

use std::path::Path;

use burn::tensor::backend::Backend;

use super::model::{ClsBlock, ClsDecoder, ExprDecoder, GeneEncoder, MvcDecoder, ValueEncoder, dropout};
use super::{ScGpt, ScGptConfig};
use crate::ImportError;
use crate::checkpoint::{Fresh, Loader, ModuleSource, TensorFile};
use crate::layers::{Activation, EncoderLayer, stacked_self_attention};

/// Where a layer's stacked `[Q; K; V]` projection sits: the flash (FA1) layout of the released
/// checkpoints, the nested layout of scGPT's current flash wrapper, or PyTorch's
/// `nn.MultiheadAttention`. All three stack the same rows; only the names differ.
const ATTENTION_LAYOUTS: [(&str, &str, &str); 3] = [
    ("self_attn.Wqkv.weight", "self_attn.Wqkv.bias", "self_attn.out_proj"),
    ("self_attn._impl.Wqkv.weight", "self_attn._impl.Wqkv.bias", "self_attn._impl.out_proj"),
    ("self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj"),
];

/// Assembles a model from `src` under `TransformerModel`'s state-dict names, in the released
/// (flash) attention layout.
pub(super) fn assemble<B: Backend>(c: &ScGptConfig, src: &mut impl ModuleSource<B>) -> ScGpt<B> {
    assemble_with(c, src, |_| false)
}

/// [`assemble`]; `has` tells which attention layout the checkpoint uses (per layer, the first
/// whose weight it has, else the released one).
fn assemble_with<B: Backend, S: ModuleSource<B>>(c: &ScGptConfig, src: &mut S, has: impl Fn(&str) -> bool) -> ScGpt<B> {
    let (d, eps) = (c.d_model, c.layer_norm_eps);
    let gene_encoder = GeneEncoder {
        embedding: src.embedding("encoder.embedding.weight", c.vocab_size, d),
        norm: src.layer_norm("encoder.enc_norm", d, eps),
    };
    let value_encoder = ValueEncoder {
        linear1: src.linear("value_encoder.linear1", 1, d),
        linear2: src.linear("value_encoder.linear2", d, d),
        norm: src.layer_norm("value_encoder.norm", d, eps),
        dropout: dropout(c.dropout),
        max_value: c.max_value,
    };
    let layers = (0..c.n_layers)
        .map(|i| {
            let p = format!("transformer_encoder.layers.{i}");
            let (w, b, out) =
                ATTENTION_LAYOUTS.iter().find(|(w, ..)| has(&format!("{p}.{w}"))).unwrap_or(&ATTENTION_LAYOUTS[0]);
            let (w, b) = (format!("{p}.{w}"), format!("{p}.{b}"));
            let out = format!("{p}.{out}");
            let attention = stacked_self_attention(src, (&w, &b, &out), d, c.n_heads, c.dropout);
            EncoderLayer::new(
                attention,
                src.layer_norm(&format!("{p}.norm1"), d, eps),
                src.linear(&format!("{p}.linear1"), d, c.d_ff),
                src.linear(&format!("{p}.linear2"), c.d_ff, d),
                src.layer_norm(&format!("{p}.norm2"), d, eps),
                Activation::Relu,
                c.dropout,
            )
        })
        .collect();
    let expr_decoder = ExprDecoder {
        fc0: src.linear("decoder.fc.0", d, d),
        fc2: src.linear("decoder.fc.2", d, d),
        fc4: src.linear("decoder.fc.4", d, 1),
    };
    let mvc_decoder = c.mvc.then(|| MvcDecoder {
        gene2query: src.linear("mvc_decoder.gene2query", d, d),
        w: src.linear_no_bias("mvc_decoder.W.weight", d, d),
    });
    let cls_decoder = c.n_cls.map(|n_cls| cls_decoder(c, n_cls, src));
    let flag_encoder = c.generative.then(|| src.embedding("flag_encoder.weight", 2, d));
    ScGpt {
        gene_encoder,
        value_encoder,
        layers,
        expr_decoder,
        mvc_decoder,
        cls_decoder,
        flag_encoder,
        config: c.clone(),
    }
}

/// `cls_decoder` with `n_cls` outputs, from `src`.
pub(super) fn cls_decoder<B: Backend>(c: &ScGptConfig, n_cls: usize, src: &mut impl ModuleSource<B>) -> ClsDecoder<B> {
    let (d, eps) = (c.d_model, c.layer_norm_eps);
    ClsDecoder {
        blocks: (0..c.n_layers_cls - 1)
            .map(|k| ClsBlock {
                linear: src.linear(&format!("cls_decoder._decoder.{}", 3 * k), d, d),
                norm: src.layer_norm(&format!("cls_decoder._decoder.{}", 3 * k + 2), d, eps),
            })
            .collect(),
        out: src.linear("cls_decoder.out_layer", d, n_cls),
    }
}

/// The checkpoint names scGPT folders use, in the order they are looked for.
const CHECKPOINT_NAMES: [&str; 2] = ["best_model.pt", "model.pt"];

impl<B: Backend> ScGpt<B> {
    /// Loads a released scGPT from its folder: `args.json`, `vocab.json` (specials appended when
    /// missing, as upstream does) and `best_model.pt` (or `model.pt`, the name fine-tuning
    /// scripts save under).
    ///
    /// # Errors
    /// [`ImportError`]: unreadable or malformed files, and [`ImportError::Tensors`] listing every
    /// missing, unexpected or mis-shaped tensor.
    pub fn from_dir(dir: &Path, device: &B::Device) -> Result<Self, ImportError> {
        let vocab_path = dir.join("vocab.json");
        let vocab = scfm_tokenize::vocab::scgpt_vocab(&vocab_path, true)
            .map_err(|e| ImportError::Config { path: vocab_path, reason: e.to_string() })?;
        let config = ScGptConfig::from_args_json(&dir.join("args.json"), &vocab)?;
        let Some(path) = CHECKPOINT_NAMES.iter().map(|n| dir.join(n)).find(|p| p.is_file()) else {
            return Err(ImportError::NoCheckpoint { dir: dir.to_owned(), expected: CHECKPOINT_NAMES.to_vec() });
        };
        Self::from_tensors(&config, &TensorFile::read_torch(&path)?, device)
    }

    /// Builds the model of `config` from the tensors of a checkpoint. The heads follow the
    /// checkpoint: the MVC decoder when it has `mvc_decoder.*`, the classification decoder
    /// (sized by `cls_decoder.out_layer.weight`) when it has `cls_decoder.*`, the flag embedding
    /// of generative pretraining when it has `flag_encoder.weight`; the attention
    /// projections may be stored as `Wqkv` (released, flash layout) or `in_proj_*` (PyTorch).
    ///
    /// # Errors
    /// [`ImportError::Tensors`] listing every missing, unexpected or mis-shaped tensor.
    pub fn from_tensors(config: &ScGptConfig, file: &TensorFile, device: &B::Device) -> Result<Self, ImportError> {
        let mut loader = Loader::new(file, device);
        let mut config = config.clone();
        config.mvc = loader.has("mvc_decoder.W.weight") || loader.has("mvc_decoder.gene2query.weight");
        config.n_cls = loader.shape("cls_decoder.out_layer.weight").map(|s| s.first().copied().unwrap_or(0));
        config.generative = loader.has("flag_encoder.weight");
        let has = |key: &str| file.get(key).is_some();
        let model = assemble_with(&config, &mut loader, has);
        loader.finish(&format!("scGPT ({} layers, d_model {})", config.n_layers, config.d_model))?;
        Ok(model)
    }
}

impl<B: Backend> ScGpt<B> {
    /// The model with a freshly initialised classification decoder for `n_cls` cell types
    /// (replacing any it had), as the annotation tutorial puts on a pretrained model.
    pub fn with_classifier(mut self, n_cls: usize, device: &B::Device) -> Self {
        self.config.n_cls = Some(n_cls);
        self.cls_decoder = Some(cls_decoder(&self.config, n_cls, &mut Fresh::new(device, 0.02)));
        self
    }
}

impl ScGptConfig {
    /// A freshly initialised model of this shape (weights ~ N(0, 0.02), zero biases, unit
    /// LayerNorms) with the heads the configuration names.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ScGpt<B> {
        assemble(self, &mut Fresh::new(device, 0.02))
    }
}
