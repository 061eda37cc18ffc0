//! [`CellModel`]: the one shape every family's model has — the upstream release, a fresh model
//! under a seed, per-token states and cell embeddings — and [`seeded`], the initialisation
//! under a seed that every fresh model goes through.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::{ImportError, Pooling, UnsupportedPooling};

/// A family's model behind the shape every family shares. The configuration uses the shared
/// field names (`d_model`, `n_heads`, `n_layers`, `d_ff`, `max_len`, `vocab_size`, `dropout`
/// where the family has them); upstream names stay in the readers of upstream files.
///
/// ```
/// use burn::backend::Flex;
/// use scfm_models::scbert::{ScBert, ScBertConfig};
/// use scfm_models::{CellModel, Pooling};
///
/// let mut config = ScBertConfig::released();
/// (config.max_len, config.performer.d_model, config.performer.n_layers) = (8, 4, 1);
/// let device = Default::default();
/// let model = ScBert::<Flex>::init(&config, 7, &device);
/// let ids = burn::tensor::Tensor::<Flex, 2, burn::tensor::Int>::zeros([2, 8], &device);
/// // `CellModel::encode`, not scBERT's own `encode` (which takes the tensor by value).
/// assert_eq!(CellModel::encode(&model, &ids).dims(), [2, 8, 4]);
/// assert_eq!(model.embed(&ids, Pooling::Mean).unwrap().dims(), [2, 4]);
/// assert!(model.embed(&ids, Pooling::Cls).is_err());
/// ```
pub trait CellModel<B: Backend>: Module<B> + Sized {
    /// The model's configuration.
    type Config: Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned;
    /// One batch of cells as the model reads it.
    type Batch;

    /// The family's name as papers write it.
    const NAME: &'static str;
    /// The poolings of [`Self::embed`], upstream's default first.
    const POOLINGS: &'static [Pooling];

    /// The upstream release at `path` (a file or a folder, as the family ships it).
    ///
    /// # Errors
    /// [`ImportError`] naming the file, tensor or configuration field that does not fit.
    fn from_upstream(path: &Path, device: &B::Device) -> Result<Self, ImportError>;

    /// A fresh model of `config`, every parameter (and random projection) drawn under `seed`:
    /// the same seed gives the same model.
    fn init(config: &Self::Config, seed: u64, device: &B::Device) -> Self;

    /// The configuration.
    fn config(&self) -> &Self::Config;

    /// The last layer's per-token states.
    ///
    /// # Shapes
    /// - output: `[batch, len, d_model]`
    fn encode(&self, batch: &Self::Batch) -> Tensor<B, 3>;

    /// One embedding per cell, pooled by `pooling`.
    ///
    /// # Shapes
    /// - output: `[batch, dim]` (`dim` is `d_model`, or a multiple for a concatenating
    ///   pooling)
    ///
    /// # Errors
    /// [`UnsupportedPooling`] for a pooling not in [`Self::POOLINGS`].
    fn embed(&self, batch: &Self::Batch, pooling: Pooling) -> Result<Tensor<B, 2>, UnsupportedPooling>;
}

/// burn's backends draw parameters and dropout masks from one process-wide generator; seeding
/// it and drawing from it happen under this lock, so concurrent work in one process stays
/// reproducible.
static RNG_LOCK: Mutex<()> = Mutex::new(());

/// The lock over burn's process-wide generator (see [`seeded`]); hold it from seeding the
/// generator until the draws are made.
pub fn rng_lock() -> MutexGuard<'static, ()> {
    RNG_LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Builds a model with burn's generator seeded with `seed`, under [`rng_lock`], and draws
/// every parameter before returning: burn initialises parameters lazily, on first use, so
/// without this the weights would come from whatever the generator holds at that later moment.
pub fn seeded<B: Backend, M: Module<B>>(device: &B::Device, seed: u64, f: impl FnOnce() -> M) -> M {
    struct Materialize;
    impl<B: Backend> ModuleVisitor<B> for Materialize {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let _ = param.val();
        }
        fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<B, D, burn::tensor::Int>>) {
            let _ = param.val();
        }
        fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<B, D, burn::tensor::Bool>>) {
            let _ = param.val();
        }
    }
    let _guard = rng_lock();
    B::seed(device, seed);
    let model = f();
    model.visit(&mut Materialize);
    model
}
