//! The training loop shared by every objective: seeded length-grouped batches, AdamW with a
//! schedule, global-norm clipping, gradient accumulation, checkpoints and bit-exact resume.

use std::path::PathBuf;

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

use crate::batch::{budget_batches, length_grouped};
use crate::checkpoint::{Checkpoint, CheckpointMeta, TrainProgress, save};
use crate::rng::derive_seed;
use crate::{LrSchedule, TrainError};

pub use scfm_models::seeded;

const ORDER_STREAM: u64 = 1;
const DROPOUT_STREAM: u64 = 2;

/// Settings of a training run (every objective).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Passes over the cells.
    pub epochs: usize,
    /// Most cells per batch.
    pub batch_size: usize,
    /// Most padded tokens per batch (cells × longest).
    pub max_batch_tokens: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f32,
    /// The schedule's shape; warm-up and total steps are filled in from the data.
    pub schedule: ScheduleKind,
    /// Warm-up as a fraction of all optimiser steps.
    pub warmup_fraction: f64,
    /// Clip the global gradient norm to this (transformers' `max_grad_norm`, 1.0).
    pub clip_norm: Option<f64>,
    /// Batches whose gradients are summed per optimiser step.
    pub accumulation: usize,
    /// Seed of batch order, masking and dropout.
    pub seed: u64,
    /// Write a checkpoint every this many optimiser steps (and at the end) into
    /// `checkpoint_dir`.
    pub checkpoint_every: Option<u64>,
    /// Where checkpoints go.
    pub checkpoint_dir: Option<PathBuf>,
    /// Stop after this many optimiser steps (the schedule still spans the whole run); a
    /// checkpoint is written there, so the run can be resumed.
    pub stop_after: Option<u64>,
    /// The float type of the forward and backward passes; weights, gradients and the
    /// optimiser stay fp32.
    #[serde(default)]
    pub precision: Precision,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 12,
            max_batch_tokens: 16_384,
            lr: 5e-5,
            weight_decay: 0.001,
            schedule: ScheduleKind::Linear,
            warmup_fraction: 0.1,
            clip_norm: Some(1.0),
            accumulation: 1,
            seed: 42,
            checkpoint_every: None,
            checkpoint_dir: None,
            stop_after: None,
            precision: Precision::Fp32,
        }
    }
}

/// The schedule's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// Constant after warm-up.
    Constant,
    /// Linear decay to 0.
    Linear,
    /// Cosine decay to 0.
    Cosine,
}

/// The float type a training step computes in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Everything in fp32.
    #[default]
    Fp32,
    /// Mixed precision with bf16 (PyTorch's `autocast(dtype=torch.bfloat16)` with fp32
    /// master weights): every step casts the fp32 parameters to bf16 inside the autodiff
    /// graph, runs the forward and backward passes in bf16 and gets fp32 gradients back
    /// through the casts, so clipping, accumulation and AdamW work on fp32 as before. Losses
    /// (cross-entropy, masked MSE) are computed in fp32. bf16 keeps fp32's exponent range, so
    /// no loss scaling is needed. Unlike autocast, layer norms and softmax run in bf16 too.
    /// Meant for GPUs with bf16 matrix units; CPUs emulate bf16 and run slower than fp32.
    Bf16,
}

impl Precision {
    /// The floating-point type of the passes, `None` for fp32 (nothing to cast).
    fn compute_dtype(self) -> Option<FloatDType> {
        match self {
            Self::Fp32 => None,
            Self::Bf16 => Some(FloatDType::BF16),
        }
    }
}

/// `module` with every float parameter cast to `dtype` by a differentiable cast: gradients
/// of a loss computed with the result reach the original (master) parameters in their own
/// type. Batch norms keep their type (as under PyTorch's autocast): their running statistics
/// are shared with `module` and updated in place, so they must stay in the master's type;
/// models run their batch norms in fp32.
pub fn cast_parameters<B: burn::tensor::backend::Backend, M: Module<B>>(module: M, dtype: FloatDType) -> M {
    struct Cast {
        dtype: FloatDType,
        /// Depth inside `BatchNorm` modules.
        in_norm: usize,
    }
    impl<B: burn::tensor::backend::Backend> ModuleMapper<B> for Cast {
        fn enter_module(&mut self, _name: &str, container_type: &str) {
            self.in_norm += usize::from(container_type == "Struct:BatchNorm");
        }
        fn exit_module(&mut self, _name: &str, container_type: &str) {
            self.in_norm -= usize::from(container_type == "Struct:BatchNorm");
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            if self.in_norm > 0 {
                return param;
            }
            let (id, tensor, mapper) = param.consume();
            Param::from_mapped_value(id, tensor.cast(self.dtype), mapper)
        }
    }
    module.map(&mut Cast { dtype, in_norm: 0 })
}

/// One optimiser step, reported to the progress callback.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StepReport {
    /// Steps done (this one included).
    pub step: u64,
    /// Steps of the whole run.
    pub total_steps: u64,
    /// Epoch of the step.
    pub epoch: usize,
    /// Mean loss of the step's batches.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Cells in the step.
    pub cells: usize,
}

/// A training objective over token sequences: the loss of a batch of cells.
pub trait Objective<B: AutodiffBackend, M> {
    /// Checks, before the first step, that `model` can be trained on this objective's data
    /// (heads present, values where the family reads them, tokens in the vocabulary).
    ///
    /// # Errors
    /// [`TrainError::Invalid`] naming the problem.
    fn check(&self, model: &M) -> Result<(), TrainError> {
        let _ = model;
        Ok(())
    }

    /// The mean loss of the cells `rows` (indices into the run's cells) under `model`; `key`
    /// is unique per epoch and cell for anything random the objective draws (masking).
    ///
    /// # Shapes
    /// - output: `[1]`
    fn loss(&self, model: &M, rows: &[usize], epoch: usize, device: &B::Device) -> Tensor<B, 1>;

    /// Tokens of each cell (for batching).
    fn lengths(&self) -> Vec<usize>;
}

/// Trains `model` on `objective` with AdamW, as `options` say; resumes from `resume` when
/// given (model, optimiser state and position), reproducing the uninterrupted run exactly on
/// CPU. `progress` sees every optimiser step.
///
/// # Errors
/// [`TrainError::Invalid`] for empty data, zero sizes or data the model cannot read
/// ([`Objective::check`]), checkpoint errors.
pub fn train<B, M, Obj>(
    model: M,
    objective: &Obj,
    options: &TrainOptions,
    meta: &CheckpointMeta,
    resume: Option<&Checkpoint>,
    device: &B::Device,
    progress: &mut dyn FnMut(&StepReport),
) -> Result<M, TrainError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    Obj: Objective<B, M>,
{
    train_data_parallel(model, objective, options, meta, resume, std::slice::from_ref(device), progress)
}

/// [`train`] with data parallelism over `devices` (burn's multi-device pattern): every batch
/// is split into one contiguous shard per device; each device runs the forward and backward
/// pass of its shard on a [`fork`](burn::module::Module::fork) of the model (same parameter
/// ids), the loss weighted by its share of the batch; the gradients are brought to
/// `devices[0]`, summed (= the gradient of the whole batch's mean loss for per-cell mean
/// losses), clipped and applied there once. The model lives on `devices[0]`.
///
/// The devices are driven in turn from this thread: on GPUs their kernels run concurrently
/// (burn launches them asynchronously); on a CPU the split only shows that the result does
/// not depend on it. With one device this is exactly [`train`]. Shard `d > 0` draws its
/// dropout from its own seeded stream, so runs are reproducible for a fixed device count.
///
/// # Errors
/// As [`train`]; [`TrainError::Invalid`] without devices.
pub fn train_data_parallel<B, M, Obj>(
    mut model: M,
    objective: &Obj,
    options: &TrainOptions,
    meta: &CheckpointMeta,
    resume: Option<&Checkpoint>,
    devices: &[B::Device],
    progress: &mut dyn FnMut(&StepReport),
) -> Result<M, TrainError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    Obj: Objective<B, M>,
{
    let Some(device) = devices.first() else {
        return Err(TrainError::Invalid("data-parallel training needs at least one device".into()));
    };
    let lengths = objective.lengths();
    if lengths.is_empty() || options.batch_size == 0 || options.epochs == 0 || options.accumulation == 0 {
        return Err(TrainError::Invalid(format!(
            "nothing to train: {} cells, batch size {}, {} epochs, accumulation {}",
            lengths.len(),
            options.batch_size,
            options.epochs,
            options.accumulation
        )));
    }
    objective.check(&model)?;
    let plans: Vec<Vec<Vec<usize>>> = (0..options.epochs)
        .map(|e| {
            let order = length_grouped(&lengths, options.batch_size, derive_seed(options.seed, ORDER_STREAM, e as u64));
            budget_batches(&order, &lengths, options.batch_size, options.max_batch_tokens)
        })
        .collect();
    let total_steps: u64 = plans.iter().map(|p| p.len().div_ceil(options.accumulation) as u64).sum();
    let warmup = (options.warmup_fraction * total_steps as f64).round() as u64;
    let schedule = match options.schedule {
        ScheduleKind::Constant => LrSchedule::Constant { warmup },
        ScheduleKind::Linear => LrSchedule::Linear { warmup, total: total_steps },
        ScheduleKind::Cosine => LrSchedule::Cosine { warmup, total: total_steps },
    };
    let mut optimizer = AdamWConfig::new().with_weight_decay(options.weight_decay).with_epsilon(1e-8).init::<B, M>();
    let mut at = TrainProgress { seed: options.seed, ..TrainProgress::default() };
    if let Some(ckpt) = resume {
        model = ckpt.load_model(model, device)?;
        optimizer = ckpt.load_optimizer::<B, M, _>(optimizer, device)?;
        at = ckpt.progress;
        if at.seed != options.seed {
            return Err(TrainError::Invalid(format!(
                "{} was trained with seed {}, this run has {}: resuming would not reproduce it",
                ckpt.path.display(),
                at.seed,
                options.seed
            )));
        }
    }
    let checkpoint = |model: &M, optimizer: &_, at: TrainProgress| -> Result<(), TrainError> {
        if let Some(dir) = &options.checkpoint_dir {
            save::<B, M, _>(dir, model, optimizer, meta, at)?;
        }
        Ok(())
    };
    while at.epoch < options.epochs {
        let plan = &plans[at.epoch];
        while at.batch < plan.len() {
            if options.stop_after.is_some_and(|s| at.step >= s) {
                if options.checkpoint_every.is_none_or(|e| e == 0 || !at.step.is_multiple_of(e)) {
                    checkpoint(&model, &optimizer, at)?;
                }
                return Ok(model);
            }
            let group = &plan[at.batch..(at.batch + options.accumulation).min(plan.len())];
            let mut accumulator = GradientsAccumulator::<M>::new();
            let mut loss_sum = 0.0;
            for (k, rows) in group.iter().enumerate() {
                let dropout =
                    derive_seed(options.seed, DROPOUT_STREAM, (at.epoch as u64) << 32 | (at.batch + k) as u64);
                let per_device = rows.len().div_ceil(devices.len());
                for (d, (shard, shard_device)) in rows.chunks(per_device).zip(devices).enumerate() {
                    let _guard = scfm_models::rng_lock();
                    B::seed(shard_device, if d == 0 { dropout } else { derive_seed(dropout, d as u64, 0) });
                    // The shard's share of the step's loss: 1 / group size for one device.
                    let share = shard.len() as f64 / rows.len() as f64;
                    let divisor = group.len() as f64 / share;
                    // The first shard runs on the model itself, the others on forks.
                    let replica = (d > 0).then(|| model.clone().fork(shard_device));
                    let on = replica.as_ref().unwrap_or(&model);
                    // Mixed precision: the pass runs on a cast copy; the gradients land on
                    // `on`'s fp32 parameters through the casts.
                    let cast = options.precision.compute_dtype().map(|t| cast_parameters(on.clone(), t));
                    let loss = objective.loss(cast.as_ref().unwrap_or(on), shard, at.epoch, shard_device);
                    loss_sum += loss.clone().into_scalar().elem::<f64>() * share;
                    let loss = if divisor != 1.0 { loss.div_scalar(divisor) } else { loss };
                    let grads = GradientsParams::from_grads(loss.backward(), on);
                    let grads = if replica.is_some() { grads.to_device(device, &model) } else { grads };
                    accumulator.accumulate(&model, grads);
                }
            }
            let mut grads = accumulator.grads();
            if let Some(max_norm) = options.clip_norm {
                grads = clip_global_norm::<B, M>(&model, grads, max_norm);
            }
            let lr = schedule.rate(options.lr, at.step);
            model = optimizer.step(lr, model, grads);
            at.step += 1;
            at.batch += group.len();
            if at.batch >= plan.len() {
                at.epoch += 1;
                at.batch = 0;
            }
            let cells = group.iter().map(Vec::len).sum();
            let loss = loss_sum / group.len() as f64;
            progress(&StepReport {
                step: at.step,
                total_steps,
                epoch: at.epoch.min(options.epochs - 1),
                loss,
                lr,
                cells,
            });
            if options.checkpoint_every.is_some_and(|e| e > 0 && at.step.is_multiple_of(e)) {
                checkpoint(&model, &optimizer, at)?;
            }
            if at.epoch >= options.epochs {
                break;
            }
        }
    }
    if options.checkpoint_every.is_none_or(|e| e == 0 || !at.step.is_multiple_of(e)) {
        checkpoint(&model, &optimizer, at)?;
    }
    Ok(model)
}

/// Scales all gradients so their global L2 norm is at most `max_norm` (PyTorch's
/// `clip_grad_norm_`, as transformers' `max_grad_norm` applies it).
pub fn clip_global_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    mut grads: GradientsParams,
    max_norm: f64,
) -> GradientsParams {
    struct SquaredNorm<'a, B: AutodiffBackend> {
        grads: &'a GradientsParams,
        sum: Option<Tensor<B::InnerBackend, 1>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNorm<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
                let s = g.powi_scalar(2).sum();
                self.sum = Some(match self.sum.take() {
                    Some(acc) => acc + s,
                    None => s,
                });
            }
        }
    }
    struct Scale<'a, B: AutodiffBackend> {
        grads: &'a mut GradientsParams,
        factor: f64,
        _b: std::marker::PhantomData<B>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
                self.grads.register::<B::InnerBackend, D>(param.id, g.mul_scalar(self.factor));
            }
        }
    }
    let mut norm = SquaredNorm::<B> { grads: &grads, sum: None };
    model.visit(&mut norm);
    let Some(sum) = norm.sum else { return grads };
    let total = sum.into_scalar().elem::<f64>().sqrt();
    let factor = max_norm / (total + 1e-6);
    if factor < 1.0 {
        model.visit(&mut Scale::<B> { grads: &mut grads, factor, _b: std::marker::PhantomData });
    }
    grads
}

/// Evaluation helper: runs `f` over `rows` in batches of at most `batch_size` cells and
/// `max_tokens` padded tokens, longest cells first, and returns per-row outputs in `rows`'
/// order.
pub fn in_batches<T: Clone>(
    lengths: &[usize],
    batch_size: usize,
    max_tokens: usize,
    mut f: impl FnMut(&[usize]) -> Vec<T>,
) -> Vec<T> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let mut out: Vec<Option<T>> = vec![None; lengths.len()];
    for batch in budget_batches(&order, lengths, batch_size, max_tokens) {
        for (i, v) in batch.iter().zip(f(&batch)) {
            out[*i] = Some(v);
        }
    }
    out.into_iter().map(|v| v.expect("every row is in one batch")).collect()
}
