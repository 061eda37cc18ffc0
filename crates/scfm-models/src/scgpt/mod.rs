//! scGPT (Cui et al. 2024): a post-norm transformer over (gene token, binned value) pairs, with
//! the expression decoder it was pretrained with, the inner-product MVC decoder of the released
//! checkpoints and the classification decoder of annotation fine-tunes.
//!
//! Load a released model from its folder (`args.json` + `vocab.json` + `best_model.pt`) with
//! [`ScGpt::from_dir`]; [`ScGpt::encode`] runs the encoder and [`ScGpt::cell_embeddings`] pools
//! cell embeddings as `scgpt.tasks.cell_emb.embed_data` does (see [`ScGpt::cell_embeddings`]).
//!
//! Inputs are what `scfm_tokenize::scgpt::ScGptSequence` produces: `<cls>` first, then gene
//! tokens with their bin (1…50) as a float, right-padded with `<pad>` and `pad_value` (−2).

mod assemble;
mod cell_model;
mod config;
mod model;

pub use cell_model::ScGptBatch;
pub use config::ScGptConfig;
pub use model::{ClsBlock, ClsDecoder, ExprDecoder, GeneEncoder, MvcDecoder, ScGpt, ScGptEncoded, ValueEncoder};
