//! Training for scfm's models, generic over burn's autodiff backends.
//!
//! - [`batch`]: the cells a run reads ([`Cells`]: held in memory or streamed from any
//!   [`TokenSource`], e.g. a tokenized dataset on disk; [`Subset`] views a split), padding to
//!   the batch maximum, token-budget batches, Geneformer's length-grouped order, seeded
//!   shuffles and rank-value truncation.
//! - [`Objective`]s: [`Classification`] (cell-type fine-tuning with the upstream heads:
//!   Geneformer's BERT pooler and classifier, scGPT's `cls_decoder`, scBERT's convolutional
//!   head) and pretraining: Geneformer's [`MaskedLm`], scBERT's [`ScBertMaskedLm`], scGPT's
//!   [`ScGptPretraining`] (GEP/GEPC, masked values or generative with gene- and cell-prompt
//!   attention), xTrimoGene's read-depth-aware [`XTrimoGenePretraining`]; scFoundation's
//!   fine-tuning head is `XTrimoGeneClassifier`.
//! - [`train`]: AdamW with linear/cosine/constant schedules and warm-up, global-norm
//!   clipping, gradient accumulation, seeded dropout, checkpoints every N steps.
//! - [`checkpoint`]: atomic checkpoints (safetensors + optimiser state + config + tokenizer
//!   spec); resuming reproduces the uninterrupted run bit for bit on CPU.
//!
//! Evaluate with the model's `valid()` copy (no dropout, no autodiff) and `scfm-eval`.

pub mod batch;
pub mod checkpoint;
mod error;
mod objectives;
mod params;
mod rng;
mod schedule;
mod train;

pub use batch::{Cells, Subset, TokenSource};
pub use checkpoint::{Checkpoint, CheckpointMeta, TrainProgress};
pub use error::TrainError;
pub use objectives::{
    CellClassifier, Classification, DownSampling, MaskedLm, Predictions, ScBertMaskedLm, ScGptPretraining, ScGptTask,
    XTrimoGenePretraining, predict, predict_proba,
};
pub use rng::derive_seed;
pub use schedule::LrSchedule;
pub use train::{
    Objective, Precision, ScheduleKind, StepReport, TrainOptions, cast_parameters, clip_global_norm, in_batches,
    seeded, train, train_data_parallel,
};
