//! scBERT (Yang et al. 2022): a Performer (FAVOR+ linear attention) over all 16,906 genes of its
//! panel plus one trailing slot, each position's token the cell's binned expression (0…5),
//! with gene2vec vectors as positional embeddings.
//!
//! Load a released or fine-tuned `.pth` with [`ScBert::from_file`] (the pretrained
//! `panglao_pretrain.pth` with its masked-LM head, or a `finetune.py` checkpoint with its
//! convolutional classification head; the shapes come from the checkpoint). Inputs are what
//! `scfm_tokenize::scbert` produces: token ids `[batch, 16907]`.
//!
//! Numerics: FAVOR+ subtracts one key maximum over the whole batch, so a cell's outputs depend
//! slightly on its batch-mates; upstream's `predict.py` runs one cell per call. The gene2vec
//! table is float64 in the checkpoint and held in f32 here (upstream adds it in f64 and rounds
//! once; the difference is ≤ 2.4e-7 on the fixtures).

mod assemble;
mod cell_model;
mod config;
mod model;

pub use config::{ScBertClassifierShape, ScBertConfig};
pub use model::{ScBert, ScBertClassifier};
