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
//!
//! # Why not burn-train's `Learner`
//!
//! The training loop is scfm's own, because burn-train 0.21's supervised `Learner`
//! (`SupervisedTraining::new(dir, train_loader, valid_loader).launch(learner)`) cannot keep
//! two promises this crate makes:
//!
//! - **Resuming bit for bit mid-run.** Its checkpointers (`FileCheckpointer`, behind
//!   `AsyncCheckpointer`) write one record each of the model, the optimiser and the scheduler
//!   per *epoch* (`model-{epoch}`, …) and restore by epoch number. Where the run stood within
//!   the epoch is not in them, so a run stopped between epoch ends resumes from the last one
//!   and trains other batches. [`checkpoint`]s are written every N steps and record the step,
//!   the epoch, the batch within it and the seed from which the sampler's order and the
//!   dropout stream are derived.
//! - **One atomic, self-describing checkpoint.** `FileCheckpointer::save` hands the path to
//!   the recorder, which writes in place, three files that only burn can read. Ours keep the
//!   parameters as safetensors next to the model config and the tokenizer spec that produced
//!   the training data (and the optimiser state as a burn record), written to a temporary
//!   folder and renamed, so a run killed mid-write leaves the last good one readable.
//!
//! Its `DataLoader` trait could carry the token-budget, length-grouped batches and the streamed
//! [`TokenSource`]s. Its TUI, metric registry and multi-device strategies are what [`train`]
//! replaces with a progress callback ([`StepReport`]) and [`train_data_parallel`]. (Checked
//! against `Cargo.lock`: burn-train 0.21 with `default-features = false` would add 15 crates to
//! the build, with its default features 86.)

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
