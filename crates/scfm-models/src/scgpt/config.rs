use std::path::Path;

use scfm_core::GeneVocab;
use serde::{Deserialize, Serialize};

use crate::ImportError;

/// scGPT's architecture, as `scgpt.tasks.cell_emb` builds `TransformerModel` from a released
/// folder: continuous value encoder, post-norm encoder, CLS cell embedding, inner-product MVC
/// decoder, no batch labels or domain-specific batch norm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScGptConfig {
    /// Gene vocabulary size, specials included (60,697 for whole-human).
    pub vocab_size: usize,
    /// Id of `<pad>` (its embedding row is learned and used as is).
    pub pad_token_id: usize,
    /// Id of `<cls>`.
    pub cls_token_id: usize,
    /// `embsize` (512).
    pub d_model: usize,
    /// `nheads` (8).
    pub n_heads: usize,
    /// Feed-forward size (upstream `d_hid`, 512).
    #[serde(alias = "d_hid")]
    pub d_ff: usize,
    /// `nlayers` (12).
    pub n_layers: usize,
    /// `n_layers_cls` (3): the classification decoder has `n_layers_cls − 1` hidden blocks.
    pub n_layers_cls: usize,
    /// `dropout` (0.2; inactive at inference).
    pub dropout: f64,
    /// `pad_value` (−2): the value of padding (and, on the zero-shot path, of `<cls>`).
    pub pad_value: f32,
    /// `n_bins` (51).
    pub n_bins: usize,
    /// The longest sequence of the zero-shot path, `<cls>` included (upstream `max_seq_len`,
    /// 1200).
    #[serde(alias = "max_seq_len")]
    pub max_len: usize,
    /// Values are clamped to this before the value encoder (512).
    pub max_value: f32,
    /// LayerNorm epsilon everywhere (PyTorch's default, 1e-5).
    pub layer_norm_eps: f64,
    /// Whether the model has the MVC decoder (released pretrained checkpoints do).
    pub mvc: bool,
    /// Number of classes of the classification decoder, when there is one (fine-tunes).
    pub n_cls: Option<usize>,
    /// Whether the model has the flag embedding of generative pretraining (`flag_encoder`,
    /// in the released checkpoints).
    #[serde(default)]
    pub generative: bool,
}

/// The fields of a released `args.json` that shape the model (upstream names).
#[derive(Debug, Deserialize)]
struct Args {
    embsize: usize,
    nheads: usize,
    d_hid: usize,
    nlayers: usize,
    #[serde(default = "three")]
    n_layers_cls: usize,
    #[serde(default)]
    dropout: f64,
    #[serde(default = "minus_two")]
    pad_value: f32,
    #[serde(default = "pad")]
    pad_token: String,
    #[serde(default = "fifty_one")]
    n_bins: usize,
    #[serde(default = "twelve_hundred")]
    max_seq_len: usize,
    input_emb_style: Option<String>,
    #[serde(rename = "MVC", default = "yes")]
    mvc: bool,
}

fn three() -> usize {
    3
}
fn minus_two() -> f32 {
    -2.0
}
fn pad() -> String {
    "<pad>".into()
}
fn fifty_one() -> usize {
    51
}
fn twelve_hundred() -> usize {
    1200
}
fn yes() -> bool {
    true
}

impl ScGptConfig {
    /// The shape of the released whole-human model (`args.json` of MODELS.md §3.1: 12 layers,
    /// 512 wide, 8 heads, `d_hid` 512; the 60,697-token vocabulary with `<pad>` 60,694 and
    /// `<cls>` 60,695), with the MVC decoder, for training from scratch and benchmarks.
    pub fn whole_human() -> Self {
        Self {
            vocab_size: 60_697,
            pad_token_id: 60_694,
            cls_token_id: 60_695,
            d_model: 512,
            n_heads: 8,
            d_ff: 512,
            n_layers: 12,
            n_layers_cls: 3,
            dropout: 0.2,
            pad_value: -2.0,
            n_bins: 51,
            max_len: 1200,
            max_value: 512.0,
            layer_norm_eps: 1e-5,
            mvc: true,
            n_cls: None,
            generative: true,
        }
    }

    /// Reads a released `args.json`; `vocab` is the folder's `vocab.json` with the specials
    /// appended as upstream does (`scfm_tokenize::vocab::scgpt_vocab(path, true)`).
    ///
    /// The heads follow `args.json` (`MVC`) until a checkpoint says otherwise: importing sizes
    /// them from the tensors present.
    ///
    /// # Errors
    /// [`ImportError::Io`], and [`ImportError::Config`] for malformed JSON, a value encoding
    /// other than `"continuous"`, heads that do not divide `embsize`, or a vocabulary without
    /// the pad token or `<cls>`.
    pub fn from_args_json(path: &Path, vocab: &GeneVocab) -> Result<Self, ImportError> {
        let text = std::fs::read(path).map_err(|source| ImportError::Io { path: path.to_owned(), source })?;
        let bad = |reason: String| ImportError::Config { path: path.to_owned(), reason };
        let a: Args = serde_json::from_slice(&text).map_err(|e| bad(format!("not a scGPT args.json: {e}")))?;
        if let Some(s) = a.input_emb_style.as_deref().filter(|s| *s != "continuous") {
            return Err(bad(format!(
                "input_emb_style {s:?}: only \"continuous\" (every released checkpoint) is supported"
            )));
        }
        if a.nheads == 0 || !a.embsize.is_multiple_of(a.nheads) {
            return Err(bad(format!("{} heads do not divide embsize {}", a.nheads, a.embsize)));
        }
        let id = |token: &str| {
            vocab.id(token).map(|i| i as usize).ok_or_else(|| bad(format!("the vocabulary has no {token:?}")))
        };
        Ok(Self {
            vocab_size: vocab.id_bound(),
            pad_token_id: id(&a.pad_token)?,
            cls_token_id: id("<cls>")?,
            d_model: a.embsize,
            n_heads: a.nheads,
            d_ff: a.d_hid,
            n_layers: a.nlayers,
            n_layers_cls: a.n_layers_cls.max(1),
            dropout: a.dropout,
            pad_value: a.pad_value,
            n_bins: a.n_bins,
            max_len: a.max_seq_len,
            max_value: 512.0,
            layer_norm_eps: 1e-5,
            mvc: a.mvc,
            n_cls: None,
            generative: false,
        })
    }
}
