use serde::{Deserialize, Serialize};

use crate::layers::PerformerShape;

/// `MaeAutobin`'s architecture, as `load_model_frommmf` builds it from a checkpoint's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XTrimoGeneConfig {
    /// Positions: genes + T + S (upstream `seq_len`; 19,266 for the release, T at
    /// `max_len − 2`, S at `max_len − 1`).
    #[serde(alias = "seq_len")]
    pub max_len: usize,
    /// Encoder width (upstream `encoder.hidden_dim`, 768).
    #[serde(alias = "encoder_dim")]
    pub d_model: usize,
    /// Encoder layers (12).
    #[serde(alias = "encoder_depth")]
    pub n_layers: usize,
    /// Encoder heads (12).
    #[serde(alias = "encoder_heads")]
    pub n_heads: usize,
    /// Encoder feed-forward width (`4 · d_model`).
    #[serde(alias = "encoder_ff_dim")]
    pub d_ff: usize,
    /// The Performer decoder (512 wide, 6 layers, 8 heads of 64, 266 features, qkv bias).
    pub decoder: PerformerShape,
    /// `bin_num` of the auto-discretization embedding (100).
    pub bin_num: usize,
    /// `bin_alpha` (1.0).
    pub bin_alpha: f32,
    /// The value that marks a masked gene (102).
    pub mask_token_id: usize,
    /// The value that marks padding (103).
    pub pad_token_id: usize,
}

impl XTrimoGeneConfig {
    /// The released scFoundation model (`models.ckpt`): encoder 768/12/12, decoder 512/6/8,
    /// 19,264 genes + T + S, 100 bins.
    pub fn released() -> Self {
        Self {
            max_len: 19_266,
            d_model: 768,
            n_layers: 12,
            n_heads: 12,
            d_ff: 3072,
            decoder: PerformerShape {
                d_model: 512,
                n_layers: 6,
                n_heads: 8,
                d_head: 64,
                n_features: PerformerShape::default_n_features(64),
                d_ff: 2048,
                qkv_bias: true,
            },
            bin_num: 100,
            bin_alpha: 1.0,
            mask_token_id: 102,
            pad_token_id: 103,
        }
    }

    /// The number of genes (`max_len − 2`).
    pub fn n_genes(&self) -> usize {
        self.max_len - 2
    }
}
