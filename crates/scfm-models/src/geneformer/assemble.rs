//! Assembles Geneformer from a module source (fresh weights or a checkpoint) under the
//! Hugging Face BERT key names, and the constructors built on it (`init`, `from_hf_dir`).

use std::path::Path;

use burn::module::Param;
use burn::tensor::backend::Backend;

use super::model::{Embeddings, MlmHead};
use super::{Geneformer, GeneformerConfig};
use crate::ImportError;
use crate::checkpoint::{Fresh, Loader, ModuleSource, TensorFile};
use crate::layers::{EncoderLayer, SelfAttention};

/// Assembles a model from `src` under `BertForMaskedLM`'s state-dict names.
pub(super) fn assemble<B: Backend>(c: &GeneformerConfig, src: &mut impl ModuleSource<B>, mlm: bool) -> Geneformer<B> {
    let (d, eps) = (c.d_model, c.layer_norm_eps);
    let e = "bert.embeddings";
    let embeddings = Embeddings::new(
        src.embedding(&format!("{e}.word_embeddings.weight"), c.vocab_size, d),
        src.embedding(&format!("{e}.position_embeddings.weight"), c.max_len, d),
        src.embedding(&format!("{e}.token_type_embeddings.weight"), c.type_vocab_size, d),
        src.layer_norm(&format!("{e}.LayerNorm"), d, eps),
        c.dropout,
    );
    let layers = (0..c.n_layers)
        .map(|i| {
            let p = format!("bert.encoder.layer.{i}");
            let attention = SelfAttention::new(
                src.linear(&format!("{p}.attention.self.query"), d, d),
                src.linear(&format!("{p}.attention.self.key"), d, d),
                src.linear(&format!("{p}.attention.self.value"), d, d),
                src.linear(&format!("{p}.attention.output.dense"), d, d),
                c.n_heads,
                c.attention_dropout,
            );
            EncoderLayer::new(
                attention,
                src.layer_norm(&format!("{p}.attention.output.LayerNorm"), d, eps),
                src.linear(&format!("{p}.intermediate.dense"), d, c.d_ff),
                src.linear(&format!("{p}.output.dense"), c.d_ff, d),
                src.layer_norm(&format!("{p}.output.LayerNorm"), d, eps),
                c.activation,
                c.dropout,
            )
        })
        .collect();
    let mlm = mlm.then(|| MlmHead {
        transform: src.linear("cls.predictions.transform.dense", d, d),
        norm: src.layer_norm("cls.predictions.transform.LayerNorm", d, eps),
        bias: Param::from_tensor(src.vector("cls.predictions.bias", c.vocab_size)),
        activation: c.activation,
    });
    Geneformer { embeddings, layers, mlm, config: c.clone() }
}

/// Keys a Geneformer checkpoint may hold that the model does not read: the tied decoder
/// (`cls.predictions.decoder.*`, the word embeddings and `cls.predictions.bias` again) and the
/// `position_ids` buffer of transformers-4.6-era V1 files.
const IGNORABLE: [&str; 3] =
    ["cls.predictions.decoder.weight", "cls.predictions.decoder.bias", "bert.embeddings.position_ids"];

impl<B: Backend> Geneformer<B> {
    /// Loads a released Geneformer from its Hugging Face folder (`config.json` +
    /// `model.safetensors`, or `pytorch_model.bin` when there is no safetensors file).
    ///
    /// The masked-LM head is loaded when the checkpoint has it (`cls.predictions.*`, as every
    /// pretrained release); its decoder is tied to the word embeddings.
    ///
    /// # Errors
    /// [`ImportError`]: unreadable or malformed files, and [`ImportError::Tensors`] listing every
    /// missing, unexpected or mis-shaped tensor.
    pub fn from_hf_dir(dir: &Path, device: &B::Device) -> Result<Self, ImportError> {
        let config = GeneformerConfig::from_hf_json(&dir.join("config.json"))?;
        let (safetensors, bin) = (dir.join("model.safetensors"), dir.join("pytorch_model.bin"));
        let file = if safetensors.is_file() {
            TensorFile::read_safetensors(&safetensors)?
        } else if bin.is_file() {
            TensorFile::read_torch(&bin)?
        } else {
            return Err(ImportError::NoCheckpoint {
                dir: dir.to_owned(),
                expected: vec!["model.safetensors", "pytorch_model.bin"],
            });
        };
        Self::from_tensors(&config, &file, device)
    }

    /// Builds the model of `config` from the tensors of a checkpoint file.
    ///
    /// # Errors
    /// [`ImportError::Tensors`] listing every missing, unexpected or mis-shaped tensor.
    pub fn from_tensors(config: &GeneformerConfig, file: &TensorFile, device: &B::Device) -> Result<Self, ImportError> {
        let mut loader = Loader::new(file, device);
        let mlm = loader.has("cls.predictions.bias") || loader.has("cls.predictions.transform.dense.weight");
        let model = assemble(config, &mut loader, mlm);
        loader.ignore(IGNORABLE.map(String::from));
        loader.finish(&format!("Geneformer ({} layers, d_model {})", config.n_layers, config.d_model))?;
        Ok(model)
    }
}

impl GeneformerConfig {
    /// A freshly initialised model of this shape (BERT's initialisation: N(0, 0.02) weights,
    /// zero biases, unit LayerNorms), with the MLM head.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Geneformer<B> {
        assemble(self, &mut Fresh::new(device, 0.02), true)
    }
}
