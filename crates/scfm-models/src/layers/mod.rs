//! Building blocks shared by every model family.

mod attention;
mod encoder;
mod pooling;

pub use attention::{AttentionOutput, SelfAttention, full_bias, key_padding_bias};
pub use encoder::{Activation, EncoderLayer};
pub use pooling::{l2_normalize, mean_over};
