//! xTrimoGene / scFoundation (Hao et al. 2024), upstream's `MaeAutobin`: an asymmetric
//! encoder–decoder over a fixed panel of genes plus the two read-depth tokens T and S.
//!
//! - [`AutoDiscretization`] turns each scalar value into a soft mixture of learned bin
//!   embeddings (values 102 and 103 select the mask and pad embeddings);
//! - the encoder, a post-norm transformer with a final LayerNorm, sees only the expressed genes
//!   (value > 0, T and S included) in position order ([`EncoderInput`]);
//! - the decoder gets every position: the encoder outputs scattered back into the expressed
//!   ones, the value embeddings of the others, plus positions, projected to its width and run
//!   through a FAVOR+ Performer ([`crate::layers::FavorAttention`]) and two LayerNorms;
//!   `to_final` predicts the expression of every gene.
//!
//! [`XTrimoGene::from_checkpoint`] loads one of the three weight sets of scFoundation's
//! `models.ckpt` ([`Weights`]): `cell` or `rde` for cell embeddings, `gene` for the decoder.
//! Inputs are what `scfm_tokenize::xtrimogene` produces: per cell the `n_genes` log-normalised
//! values followed by T and S.
//!
//! [`XTrimoGeneClassifier`] is the fine-tuning model of `finetune_model.py` (max-pooled encoder
//! output → BatchNorm → two linear layers).

mod assemble;
mod cell_model;
mod classifier;
mod config;
mod model;

pub use assemble::Weights;
pub use cell_model::XTrimoGeneBatch;
pub use classifier::XTrimoGeneClassifier;
pub use config::XTrimoGeneConfig;
pub use model::{AutoDiscretization, EncoderInput, XTrimoGene};
