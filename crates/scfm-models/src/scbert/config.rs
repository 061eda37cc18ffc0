use serde::{Deserialize, Serialize};

use crate::layers::PerformerShape;

/// scBERT's `PerformerLM` and, for fine-tuned checkpoints, `finetune.py`'s head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScBertConfig {
    /// Token ids: bins 0…5 and `[MASK]` 6 (upstream `num_tokens`, `CLASS = bin_num + 2` = 7).
    #[serde(alias = "n_tokens")]
    pub vocab_size: usize,
    /// Positions: the gene panel plus the trailing slot (upstream `max_seq_len`, 16,907).
    #[serde(alias = "seq_len")]
    pub max_len: usize,
    /// The Performer stack (200 wide, 6 layers, 10 heads of 64, 266 features, FFN 800, no qkv
    /// bias in the release).
    pub performer: PerformerShape,
    /// The classification head of a fine-tuned checkpoint; `None` for the pretrained masked-LM
    /// model (`to_out` = Linear(dim → n_tokens)).
    pub classifier: Option<ScBertClassifierShape>,
}

/// `finetune.py`'s `Identity` head: `conv1` (1 × dim) → ReLU → `fc1` (seq_len → 512) → ReLU →
/// `fc2` (512 → 128) → ReLU → `fc3` (128 → classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScBertClassifierShape {
    /// Output of `fc1` (512).
    pub fc1: usize,
    /// `h_dim`, output of `fc2` (128).
    pub fc2: usize,
    /// Cell types.
    pub n_classes: usize,
}

impl ScBertConfig {
    /// The released `panglao_pretrain.pth`: `PerformerLM(num_tokens=7, dim=200, depth=6,
    /// max_seq_len=16907, heads=10, local_attn_heads=0, g2v_position_emb=True)`.
    pub fn released() -> Self {
        Self {
            vocab_size: 7,
            max_len: 16_907,
            performer: PerformerShape {
                d_model: 200,
                n_layers: 6,
                n_heads: 10,
                d_head: 64,
                n_features: PerformerShape::default_n_features(64),
                d_ff: 800,
                qkv_bias: false,
            },
            classifier: None,
        }
    }

    /// With `finetune.py`'s classification head for `n_classes` cell types.
    pub fn with_classifier(mut self, n_classes: usize) -> Self {
        self.classifier = Some(ScBertClassifierShape { fc1: 512, fc2: 128, n_classes });
        self
    }
}
