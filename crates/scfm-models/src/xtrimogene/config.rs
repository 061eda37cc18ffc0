use serde::{Deserialize, Serialize};

use crate::layers::PerformerShape;

/// `MaeAutobin`'s architecture, as `load_model_frommmf` builds it from a checkpoint's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XTrimoGeneConfig {
    /// `seq_len`: genes + T + S (19,266 for the release; T at `seq_len − 2`, S at `seq_len − 1`).
    pub seq_len: usize,
    /// Encoder width (768).
    pub encoder_dim: usize,
    /// Encoder layers (12).
    pub encoder_depth: usize,
    /// Encoder heads (12).
    pub encoder_heads: usize,
    /// Encoder feed-forward width (`4 · encoder_dim`).
    pub encoder_ff_dim: usize,
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
            seq_len: 19_266,
            encoder_dim: 768,
            encoder_depth: 12,
            encoder_heads: 12,
            encoder_ff_dim: 3072,
            decoder: PerformerShape {
                dim: 512,
                depth: 6,
                heads: 8,
                dim_head: 64,
                nb_features: PerformerShape::default_nb_features(64),
                ff_dim: 2048,
                qkv_bias: true,
            },
            bin_num: 100,
            bin_alpha: 1.0,
            mask_token_id: 102,
            pad_token_id: 103,
        }
    }

    /// The number of genes (`seq_len − 2`).
    pub fn n_genes(&self) -> usize {
        self.seq_len - 2
    }
}
