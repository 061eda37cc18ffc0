//! Building blocks shared by every model family.

mod attention;
mod encoder;

pub use attention::{AttentionOutput, SelfAttention, full_bias, key_padding_bias};
pub use encoder::{Activation, EncoderLayer};
