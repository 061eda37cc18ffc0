//! Tokenizers of the single-cell foundation models and readers of their upstream vocabulary
//! files. Burn-free: tokenizing is plain Rust on CPU.
//!
//! - [`geneformer`]: Geneformer V1/V2 rank-value encoding, token-exact against upstream.
//! - [`scbert`]: scBERT's aligned, log2-normalised expression bins.
//! - [`mask`]: the seeded masking schemes of the four pretraining objectives.
//! - [`xtrimogene`]: xTrimoGene/scFoundation input with the T/S read-depth tokens.
//! - [`scgpt`]: scGPT value binning with upstream's, helical's or a deterministic tie-break.
//!
//! It also reads the vocabularies as users have them ([`vocab`]), including Python
//! pickles through a restricted reader that never executes code ([`pickle`]).

mod error;
pub mod geneformer;
pub mod mask;
/// The restricted pickle reader (it lives in `scfm-core`, shared with the checkpoint loaders).
pub use scfm_core::pickle;
mod radix;
pub mod rng;
pub mod scbert;
pub mod scgpt;
pub mod spec;
pub mod tokenizer;
pub mod vocab;
pub mod xtrimogene;

pub use error::TokenizeError;
pub use spec::{SchemeKind, SchemeOptions, SchemeSpec, TokenizerSpec};
pub use tokenizer::{
    GeneMapping, IdWidth, PlannedTokenizer, PreparedTokenizer, SequentialTokenizer, TokenLayout, TokenizedCell,
    Tokenizer, TokenizerInput,
};
