use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ImportError;
use crate::layers::Activation;

/// Geneformer's architecture (a BERT encoder), in scfm's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneformerConfig {
    /// Token vocabulary size (genes + specials).
    pub vocab_size: usize,
    /// Hidden size.
    pub d_model: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Encoder layers.
    pub n_layers: usize,
    /// Feed-forward size.
    pub d_ff: usize,
    /// Longest input (position embeddings): 2048 for V1, 4096 for V2.
    pub max_len: usize,
    /// Token-type embeddings (BERT's segment ids; Geneformer only uses type 0).
    pub type_vocab_size: usize,
    /// LayerNorm epsilon (1e-12).
    pub layer_norm_eps: f64,
    /// Feed-forward and MLM-transform activation.
    pub activation: Activation,
    /// Dropout after embeddings, attention output and feed-forward.
    pub dropout: f64,
    /// Dropout of the attention probabilities.
    pub attention_dropout: f64,
    /// Id of `<pad>`.
    pub pad_token_id: usize,
}

/// The fields of a Hugging Face `BertConfig` that matter (upstream names).
#[derive(Debug, Deserialize)]
struct HfBertConfig {
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    num_attention_heads: usize,
    num_hidden_layers: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    #[serde(default = "two")]
    type_vocab_size: usize,
    #[serde(default = "eps")]
    layer_norm_eps: f64,
    #[serde(default = "gelu")]
    hidden_act: String,
    #[serde(default)]
    hidden_dropout_prob: f64,
    #[serde(default)]
    attention_probs_dropout_prob: f64,
    #[serde(default)]
    pad_token_id: usize,
    position_embedding_type: Option<String>,
}

fn two() -> usize {
    2
}
fn eps() -> f64 {
    1e-12
}
fn gelu() -> String {
    "gelu".into()
}

impl GeneformerConfig {
    /// The shape of `Geneformer-V1-10M` (6 layers, 256 wide, 4 heads, FFN 512, 2,048
    /// positions, the gc30M vocabulary of 25,426 tokens), for training from scratch and
    /// benchmarks. Released models are loaded with their `config.json` instead.
    pub fn v1_10m() -> Self {
        Self {
            vocab_size: 25_426,
            d_model: 256,
            n_heads: 4,
            n_layers: 6,
            d_ff: 512,
            max_len: 2048,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            activation: Activation::Relu,
            dropout: 0.02,
            attention_dropout: 0.02,
            pad_token_id: 0,
        }
    }

    /// The shape of `Geneformer-V2-104M` (12 layers, 768 wide, 12 heads, FFN 3,072, 4,096
    /// positions, the gc104M vocabulary of 20,275 tokens; MODELS.md §2.1).
    pub fn v2_104m() -> Self {
        Self {
            vocab_size: 20_275,
            d_model: 768,
            n_heads: 12,
            n_layers: 12,
            d_ff: 3072,
            max_len: 4096,
            ..Self::v1_10m()
        }
    }

    /// Reads a Hugging Face `config.json` (the `BertConfig` every Geneformer release ships).
    ///
    /// # Errors
    /// [`ImportError::Io`], and [`ImportError::Config`] for malformed JSON, a model type other
    /// than BERT, relative position embeddings, an unsupported activation or heads that do not
    /// divide the hidden size.
    pub fn from_hf_json(path: &Path) -> Result<Self, ImportError> {
        let text = std::fs::read(path).map_err(|source| ImportError::Io { path: path.to_owned(), source })?;
        let bad = |reason: String| ImportError::Config { path: path.to_owned(), reason };
        let c: HfBertConfig = serde_json::from_slice(&text).map_err(|e| bad(format!("not a BERT config.json: {e}")))?;
        if let Some(t) = c.model_type.as_deref().filter(|t| *t != "bert") {
            return Err(bad(format!("model_type {t:?}: Geneformer checkpoints are \"bert\"")));
        }
        if let Some(p) = c.position_embedding_type.as_deref().filter(|p| *p != "absolute") {
            return Err(bad(format!("position_embedding_type {p:?}: only \"absolute\" is supported")));
        }
        let activation = match c.hidden_act.as_str() {
            "relu" => Activation::Relu,
            "gelu" => Activation::Gelu,
            other => return Err(bad(format!("hidden_act {other:?}: supported are \"relu\" and \"gelu\""))),
        };
        if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            return Err(bad(format!(
                "{} attention heads do not divide hidden_size {}",
                c.num_attention_heads, c.hidden_size
            )));
        }
        Ok(Self {
            vocab_size: c.vocab_size,
            d_model: c.hidden_size,
            n_heads: c.num_attention_heads,
            n_layers: c.num_hidden_layers,
            d_ff: c.intermediate_size,
            max_len: c.max_position_embeddings,
            type_vocab_size: c.type_vocab_size,
            layer_norm_eps: c.layer_norm_eps,
            activation,
            dropout: c.hidden_dropout_prob,
            attention_dropout: c.attention_probs_dropout_prob,
            pad_token_id: c.pad_token_id,
        })
    }
}
