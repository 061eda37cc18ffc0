//! Building blocks shared by every model family.

mod attention;
mod cpu_linear;
mod encoder;
mod performer;
mod pooling;

pub(crate) use attention::masked_bias;
pub use attention::{AttentionOutput, SelfAttention, as_dtype, full_bias, key_padding_bias, stacked_self_attention};
pub use encoder::{Activation, EncoderLayer};
pub use performer::{
    FavorAttention, PerformerLayer, PerformerShape, assemble_performer, favor_attention, gaussian_orthogonal,
    orthogonal_projection,
};
pub use pooling::{l2_normalize, mean_over};
