//! Assembles xTrimoGene from a module source (fresh weights or a checkpoint), and the
//! constructors built on it.
//!
//! scFoundation's `models.ckpt`: `{gene, cell, rde}` → `{config, state_dict}` with Lightning's
//! `model.` key prefix (what `load_model_frommmf` / `convertconfig` read).

use std::path::Path;

use burn::tensor::backend::Backend;

use super::model::AutoDiscretization;
use super::{XTrimoGene, XTrimoGeneConfig};
use crate::ImportError;
use crate::checkpoint::{Fresh, Loader, ModuleSource, PyValue, TensorFile, TorchArchive};
use crate::layers::{Activation, EncoderLayer, PerformerShape, assemble_performer, stacked_self_attention};

/// The three weight sets of scFoundation's `models.ckpt` (`get_embedding.py --version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weights {
    /// `ce`: cell embeddings.
    Cell,
    /// `rde`: read-depth-enhanced cell embeddings.
    Rde,
    /// Gene embeddings and expression (the decoder path).
    Gene,
}

/// `cell` (or upstream's `ce`), `rde` or `gene`.
impl std::str::FromStr for Weights {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cell" | "ce" => Ok(Self::Cell),
            "rde" => Ok(Self::Rde),
            "gene" => Ok(Self::Gene),
            other => Err(format!("unknown weight set {other:?}: use cell (ce), rde or gene")),
        }
    }
}

impl Weights {
    /// The entry's key in `models.ckpt`.
    pub fn key(self) -> &'static str {
        match self {
            Self::Cell => "cell",
            Self::Rde => "rde",
            Self::Gene => "gene",
        }
    }
}

/// Buffers that inference does not read.
const IGNORABLE: [&str; 1] = ["decoder.performer.calls_since_last_redraw"];

pub(super) fn assemble<B: Backend>(c: &XTrimoGeneConfig, src: &mut impl ModuleSource<B>) -> XTrimoGene<B> {
    let (d, bins) = (c.d_model, c.bin_num);
    let token_emb = AutoDiscretization {
        mlp: src.linear("token_emb.mlp", 1, bins),
        mlp2: src.linear("token_emb.mlp2", bins, bins),
        emb: src.embedding("token_emb.emb.weight", bins, d),
        emb_mask: src.embedding("token_emb.emb_mask.weight", 1, d),
        emb_pad: src.embedding("token_emb.emb_pad.weight", 1, d),
        bin_alpha: c.bin_alpha,
        mask_value: c.mask_token_id as f32,
        pad_value: c.pad_token_id as f32,
    };
    let pos_emb = src.embedding("pos_emb.weight", c.max_len + 1, d);
    let encoder = (0..c.n_layers)
        .map(|i| {
            let p = format!("encoder.transformer_encoder.{i}");
            let (w, b) = (format!("{p}.self_attn.in_proj_weight"), format!("{p}.self_attn.in_proj_bias"));
            let out = format!("{p}.self_attn.out_proj");
            let attention = stacked_self_attention(src, (&w, &b, &out), d, c.n_heads, 0.0);
            EncoderLayer::new(
                attention,
                src.layer_norm(&format!("{p}.norm1"), d, 1e-5),
                src.linear(&format!("{p}.linear1"), d, c.d_ff),
                src.linear(&format!("{p}.linear2"), c.d_ff, d),
                src.layer_norm(&format!("{p}.norm2"), d, 1e-5),
                Activation::Relu,
                0.0,
            )
        })
        .collect();
    let dd = c.decoder.d_model;
    XTrimoGene {
        token_emb,
        pos_emb,
        encoder,
        encoder_norm: src.layer_norm("encoder.norm", d, 1e-5),
        decoder_embed: src.linear("decoder_embed", d, dd),
        decoder: assemble_performer(&c.decoder, "decoder.performer.net.layers", src),
        decoder_norm: src.layer_norm("decoder.norm", dd, 1e-5),
        norm: src.layer_norm("norm", dd, 1e-5),
        to_final: src.linear("to_final", dd, 1),
        config: c.clone(),
    }
}

impl XTrimoGeneConfig {
    /// Reads the `config` of one `models.ckpt` entry as `convertconfig` + `select_model` do:
    /// `model_config[model]` with its `encoder` (`module_type` `transformer`) and `decoder`
    /// (`performer`) sub-dicts. Feed-forward widths are 4× as upstream builds them; the number
    /// of random features is upstream's default for `dim_head`.
    ///
    /// # Errors
    /// [`ImportError::Config`] naming the missing or unsupported field.
    pub fn from_checkpoint_config(config: &PyValue, path: &Path) -> Result<Self, ImportError> {
        let bad = |reason: String| ImportError::Config { path: path.to_owned(), reason };
        let model = config.get("model").and_then(PyValue::as_str).ok_or_else(|| bad("config has no 'model'".into()))?;
        if model != "mae_autobin" {
            return Err(bad(format!("model {model:?} is not supported (only 'mae_autobin')")));
        }
        let mc = config
            .get("model_config")
            .and_then(|m| m.get(model))
            .ok_or_else(|| bad(format!("config has no model_config[{model:?}]")))?;
        let int = |d: &PyValue, k: &str, what: &str| -> Result<usize, ImportError> {
            d.get(k)
                .and_then(PyValue::as_i64)
                .and_then(|v| usize::try_from(v).ok())
                .ok_or_else(|| bad(format!("{what}: no integer '{k}'")))
        };
        let part = |name: &str, kind: &str| -> Result<&PyValue, ImportError> {
            let p = mc.get(name).ok_or_else(|| bad(format!("model_config has no '{name}'")))?;
            match p.get("module_type").and_then(PyValue::as_str) {
                Some(t) if t == kind => Ok(p),
                t => Err(bad(format!("{name}.module_type {t:?} is not supported (only {kind:?})"))),
            }
        };
        let (enc, dec) = (part("encoder", "transformer")?, part("decoder", "performer")?);
        let (d_model, decoder_dim, d_head) =
            (int(enc, "hidden_dim", "encoder")?, int(dec, "hidden_dim", "decoder")?, int(dec, "dim_head", "decoder")?);
        Ok(Self {
            max_len: int(mc, "seq_len", "model_config")?,
            d_model,
            n_layers: int(enc, "depth", "encoder")?,
            n_heads: int(enc, "heads", "encoder")?,
            d_ff: 4 * d_model,
            decoder: PerformerShape {
                d_model: decoder_dim,
                n_layers: int(dec, "depth", "decoder")?,
                n_heads: int(dec, "heads", "decoder")?,
                d_head,
                n_features: PerformerShape::default_n_features(d_head),
                d_ff: 4 * decoder_dim,
                qkv_bias: true,
            },
            bin_num: int(mc, "bin_num", "model_config")?,
            bin_alpha: mc.get("bin_alpha").and_then(PyValue::as_f64).ok_or_else(|| bad("no 'bin_alpha'".into()))?
                as f32,
            mask_token_id: int(mc, "mask_token_id", "model_config")?,
            pad_token_id: int(mc, "pad_token_id", "model_config")?,
        })
    }
}

impl<B: Backend> XTrimoGene<B> {
    /// Loads one weight set of scFoundation's `models.ckpt` (or a single Lightning-style
    /// checkpoint with `config` and `state_dict` at the top).
    ///
    /// # Errors
    /// [`ImportError`]: an unreadable file, a missing entry or config field, and
    /// [`ImportError::Tensors`] listing every missing, unexpected or mis-shaped tensor.
    pub fn from_checkpoint(path: &Path, weights: Weights, device: &B::Device) -> Result<Self, ImportError> {
        let archive = TorchArchive::open(path)?;
        let top = archive.object();
        let entry = match top.get(weights.key()) {
            Some(e) => e,
            None if top.get("state_dict").is_some() => top,
            None => {
                let keys: Vec<&str> = match top {
                    PyValue::Dict(items) => items.iter().filter_map(|(k, _)| k.as_str()).collect(),
                    _ => vec![],
                };
                return Err(ImportError::Config {
                    path: path.to_owned(),
                    reason: format!("no '{}' entry (the file has {keys:?})", weights.key()),
                });
            }
        };
        let missing = |what: &str| ImportError::Config {
            path: path.to_owned(),
            reason: format!("entry '{}' has no '{what}'", weights.key()),
        };
        let config =
            XTrimoGeneConfig::from_checkpoint_config(entry.get("config").ok_or_else(|| missing("config"))?, path)?;
        let state = entry.get("state_dict").ok_or_else(|| missing("state_dict"))?;
        // convertconfig keeps the text after the first "model." of each key.
        let file = archive.tensors(state, |k| Some(k.find("model.").map_or(k.clone(), |i| k[i + 6..].to_owned())))?;
        Self::from_tensors(&config, &file, device)
    }

    /// Builds the model of `config` from a state dict without prefixes.
    ///
    /// # Errors
    /// [`ImportError::Config`] when the heads do not divide the encoder width;
    /// [`ImportError::Tensors`] listing every missing, unexpected or mis-shaped tensor.
    pub fn from_tensors(config: &XTrimoGeneConfig, file: &TensorFile, device: &B::Device) -> Result<Self, ImportError> {
        if config.n_heads == 0 || !config.d_model.is_multiple_of(config.n_heads) {
            return Err(ImportError::Config {
                path: file.path().to_owned(),
                reason: format!("{} encoder heads do not divide the width {}", config.n_heads, config.d_model),
            });
        }
        let mut loader = Loader::new(file, device);
        let mut config = config.clone();
        if let Some(&[m, _]) = loader.shape("decoder.performer.net.layers.0.0.fn.fast_attention.projection_matrix") {
            config.decoder.n_features = m;
        }
        let model = assemble(&config, &mut loader);
        loader.ignore(IGNORABLE.map(String::from));
        loader.finish(&format!(
            "xTrimoGene (encoder {}×{}, decoder {}×{}, {} positions)",
            config.n_layers, config.d_model, config.decoder.n_layers, config.decoder.d_model, config.max_len
        ))?;
        Ok(model)
    }
}

impl XTrimoGeneConfig {
    /// A freshly initialised model (weights ~ N(0, 0.02), projections drawn from `seed`).
    pub fn init<B: Backend>(&self, device: &B::Device, seed: u64) -> XTrimoGene<B> {
        assemble(self, &mut Fresh::new(device, 0.02).with_seed(seed))
    }
}
