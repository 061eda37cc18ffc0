//! The single-cell foundation models in [burn], generic over the backend, with loaders for the
//! checkpoint files users download.
//!
//! Every family's model is a [`CellModel`]: `from_upstream`, `init` under a seed, `encode`,
//! `embed` with a [`Pooling`], over configurations with one vocabulary of field names
//! (`d_model`, `n_heads`, `n_layers`, `d_ff`, `max_len`, `vocab_size`, `dropout`).
//!
//! - [`layers`]: the shared building blocks (multi-head self-attention with key-padding mask,
//!   post-norm encoder layer, the FAVOR+ Performer layer); every family is built from them.
//! - [`geneformer`]: Geneformer V1/V2 (a BERT encoder with its masked-LM head), loaded from a
//!   Hugging Face folder, and its cell embeddings.
//! - [`scgpt`]: scGPT's `TransformerModel` (expression, MVC and classification decoders),
//!   loaded from a released folder (`args.json` + `vocab.json` + `best_model.pt`).
//! - [`scbert`]: scBERT's `PerformerLM` over its 16,906-gene panel (and `finetune.py`'s
//!   head), loaded from its `.pth`.
//! - [`xtrimogene`]: xTrimoGene / scFoundation's `MaeAutobin` (encoder over the expressed
//!   genes, Performer decoder), loaded from `models.ckpt`.
//! - [`checkpoint`]: readers of the tensor containers (safetensors, PyTorch zip pickles) and the strict key
//!   bookkeeping every import goes through: a missing, unexpected or mis-shaped tensor is an
//!   [`ImportError`] that names it.
//!
//! Library code never picks a backend; the `scfm` facade and the command line do.

mod cell_model;
pub mod checkpoint;
pub mod cpu;
mod error;
pub mod geneformer;
pub mod layers;
mod pooling;
pub mod scbert;
pub mod scgpt;
mod torch;
pub mod xtrimogene;

pub use cell_model::{CellModel, rng_lock, seeded};
pub use error::{ImportError, TensorProblem};
pub use pooling::{Pooling, UnsupportedPooling};

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;

    /// `config` written with the field names of 2026-12-07 and before (`renames`: new → old),
    /// read back.
    fn with_old_names<C: serde::Serialize + DeserializeOwned>(config: &C, renames: &[(&str, &str)]) -> C {
        let mut text = serde_json::to_string(config).unwrap();
        for (new, old) in renames {
            assert!(text.contains(&format!("\"{new}\"")), "{new} not in {text}");
            text = text.replace(&format!("\"{new}\""), &format!("\"{old}\""));
        }
        serde_json::from_str(&text).unwrap()
    }

    /// Checkpoints of ours record model configurations; those written before the shared field
    /// names (`d_model`, `n_heads`, `n_layers`, `d_ff`, `max_len`, `vocab_size`) still load.
    #[test]
    fn configs_of_older_checkpoints_read_under_the_shared_names() {
        let scgpt = crate::scgpt::ScGptConfig::whole_human();
        assert_eq!(with_old_names(&scgpt, &[("d_ff", "d_hid"), ("max_len", "max_seq_len")]), scgpt);
        let scbert = crate::scbert::ScBertConfig::released();
        let performer = [
            ("d_model", "dim"),
            ("n_layers", "depth"),
            ("n_heads", "heads"),
            ("d_head", "dim_head"),
            ("n_features", "nb_features"),
            ("d_ff", "ff_dim"),
        ];
        let mut renames = vec![("vocab_size", "n_tokens"), ("max_len", "seq_len")];
        renames.extend(performer);
        assert_eq!(with_old_names(&scbert, &renames), scbert);
        let xtrimogene = crate::xtrimogene::XTrimoGeneConfig::released();
        // The encoder's names and the decoder's Performer names differ, so both are renamed
        // wherever they occur.
        let old: crate::xtrimogene::XTrimoGeneConfig = serde_json::from_str(
            &serde_json::to_string(&xtrimogene)
                .unwrap()
                .replacen("\"max_len\"", "\"seq_len\"", 1)
                .replacen("\"d_model\"", "\"encoder_dim\"", 1)
                .replacen("\"n_layers\"", "\"encoder_depth\"", 1)
                .replacen("\"n_heads\"", "\"encoder_heads\"", 1)
                .replacen("\"d_ff\"", "\"encoder_ff_dim\"", 1),
        )
        .unwrap();
        assert_eq!(old, xtrimogene);
    }
}
