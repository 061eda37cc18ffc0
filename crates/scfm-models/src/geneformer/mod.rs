//! Geneformer (Theodoris et al. 2023; V2: Chen et al. 2024): a BERT encoder over rank-value
//! encoded cells, with the masked-LM head it was pretrained with.
//!
//! Load a released model from its Hugging Face folder with [`Geneformer::from_hf_dir`] and
//! compute cell embeddings with [`Geneformer::cell_embeddings`], exactly as upstream
//! `EmbExtractor` does (see [`Geneformer::pool`] and [`EmbeddingLayer`]).

mod assemble;
mod cell_model;
mod classifier;
mod config;
mod model;

pub use cell_model::GeneformerBatch;
pub use classifier::GeneformerClassifier;
pub use config::GeneformerConfig;
pub use model::{EmbeddingLayer, Encoded, Geneformer, MlmHead};
