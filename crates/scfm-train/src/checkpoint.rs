//! scfm's own training checkpoints, written atomically.
//!
//! ```text
//! <dir>/step-000120/model.safetensors   parameters by module path (f32)
//! <dir>/step-000120/optimizer.bin       optimiser state (burn record, full precision)
//! <dir>/step-000120/state.json          family, model config, tokenizer spec, classes,
//!                                        progress (step, epoch, batch, seed), parameter ids
//! <dir>/latest                          the name of the newest complete checkpoint
//! ```
//!
//! A checkpoint is written into a hidden temporary folder, synced, and renamed into place;
//! only then does `latest` (itself replaced by a rename) point at it. A run killed mid-write
//! leaves the previous checkpoint as `latest`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{AutodiffModule, Module};
use burn::optim::Optimizer;
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use scfm_models::checkpoint::{TensorFile, write_safetensors};
use serde::{Deserialize, Serialize};

use crate::TrainError;

const FORMAT: u32 = 1;

/// What a checkpoint holds besides tensors: enough to rebuild the model and its tokenizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// The model family and head (`geneformer-classifier`, `geneformer-mlm`).
    pub family: String,
    /// The model's configuration (the family's config struct as JSON).
    pub model_config: serde_json::Value,
    /// The tokenizer spec the cells were tokenized with.
    pub tokenizer: serde_json::Value,
    /// Class names of a classifier, in output order.
    pub classes: Vec<String>,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TrainProgress {
    /// Optimiser steps taken.
    pub step: u64,
    /// The epoch in progress.
    pub epoch: usize,
    /// Batches of that epoch already used.
    pub batch: usize,
    /// The run's seed.
    pub seed: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    format: u32,
    meta: CheckpointMeta,
    progress: TrainProgress,
    param_ids: BTreeMap<String, u64>,
}

/// A checkpoint read from disk (tensors loaded, optimiser state read on demand).
#[derive(Debug)]
pub struct Checkpoint {
    /// Its folder.
    pub path: PathBuf,
    /// Family, config, tokenizer, classes.
    pub meta: CheckpointMeta,
    /// Where the run stood.
    pub progress: TrainProgress,
    tensors: TensorFile,
    param_ids: BTreeMap<String, u64>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io { path: path.to_owned(), source }
}

fn sync(path: &Path) -> Result<(), TrainError> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(io(path))
}

/// Writes a checkpoint of `model` and `optimizer` under `dir` and points `latest` at it.
/// Returns its folder.
///
/// # Errors
/// [`TrainError::Io`] and [`TrainError::Checkpoint`] when a file cannot be written.
pub fn save<B, M, O>(
    dir: &Path,
    model: &M,
    optimizer: &O,
    meta: &CheckpointMeta,
    progress: TrainProgress,
) -> Result<PathBuf, TrainError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = format!("step-{:06}", progress.step);
    let tmp = dir.join(format!(".tmp-{name}"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir(&tmp).map_err(io(&tmp))?;
    let (tensors, param_ids) = crate::params::export::<B, M>(model);
    let weights = tmp.join("model.safetensors");
    write_safetensors(&weights, &tensors)?;
    let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
    Recorder::<B>::record(&recorder, optimizer.to_record(), tmp.join("optimizer"))
        .map_err(|e| TrainError::Checkpoint { path: tmp.clone(), reason: format!("optimiser state: {e}") })?;
    let state = StateFile { format: FORMAT, meta: meta.clone(), progress, param_ids };
    let state_path = tmp.join("state.json");
    std::fs::write(&state_path, serde_json::to_vec_pretty(&state).expect("state serialises"))
        .map_err(io(&state_path))?;
    for f in ["model.safetensors", "optimizer.bin", "state.json"] {
        sync(&tmp.join(f))?;
    }
    let target = dir.join(&name);
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(io(&target))?;
    }
    std::fs::rename(&tmp, &target).map_err(io(&target))?;
    let latest_tmp = dir.join(".latest.tmp");
    std::fs::write(&latest_tmp, &name).map_err(io(&latest_tmp))?;
    sync(&latest_tmp)?;
    std::fs::rename(&latest_tmp, dir.join("latest")).map_err(io(dir))?;
    Ok(target)
}

impl Checkpoint {
    /// The checkpoint `latest` names in `dir`.
    ///
    /// # Errors
    /// As [`Self::open`], and [`TrainError::Io`] without a `latest` file.
    pub fn latest(dir: &Path) -> Result<Self, TrainError> {
        Self::open(&Self::latest_path(dir)?)
    }

    /// The folder of the checkpoint `latest` names in `dir`, without reading it.
    ///
    /// # Errors
    /// [`TrainError::Io`] without a readable `latest` file.
    pub fn latest_path(dir: &Path) -> Result<PathBuf, TrainError> {
        let pointer = dir.join("latest");
        let name = std::fs::read_to_string(&pointer).map_err(io(&pointer))?;
        Ok(dir.join(name.trim()))
    }

    /// Reads the checkpoint folder `path`.
    ///
    /// # Errors
    /// [`TrainError::Io`] for missing files, [`TrainError::Checkpoint`] for a malformed state
    /// file or format version, [`TrainError::Import`] for a corrupted tensor file.
    pub fn open(path: &Path) -> Result<Self, TrainError> {
        let state_path = path.join("state.json");
        let bytes = std::fs::read(&state_path).map_err(io(&state_path))?;
        let state: StateFile = serde_json::from_slice(&bytes)
            .map_err(|e| TrainError::Checkpoint { path: path.to_owned(), reason: format!("state.json: {e}") })?;
        if state.format != FORMAT {
            return Err(TrainError::Checkpoint {
                path: path.to_owned(),
                reason: format!("format version {} (this scfm reads {FORMAT})", state.format),
            });
        }
        let tensors = TensorFile::read_safetensors(&path.join("model.safetensors"))?;
        Ok(Self {
            path: path.to_owned(),
            meta: state.meta,
            progress: state.progress,
            tensors,
            param_ids: state.param_ids,
        })
    }

    /// Refuses a checkpoint of another family.
    ///
    /// # Errors
    /// [`TrainError::Mismatch`].
    pub fn expect_family(&self, family: &str) -> Result<(), TrainError> {
        self.expect("model family", family, &self.meta.family)
    }

    /// Refuses a checkpoint whose `what` differs from `expected`.
    ///
    /// # Errors
    /// [`TrainError::Mismatch`].
    pub fn expect(&self, what: &'static str, expected: &str, found: &str) -> Result<(), TrainError> {
        if expected == found {
            return Ok(());
        }
        Err(TrainError::Mismatch { path: self.path.clone(), what, expected: expected.into(), found: found.into() })
    }

    /// Refuses a checkpoint whose model has another vocabulary size (`model_config.vocab_size`).
    ///
    /// # Errors
    /// [`TrainError::Mismatch`].
    pub fn expect_vocab_size(&self, vocab_size: usize) -> Result<(), TrainError> {
        let found = self.meta.model_config.get("vocab_size").and_then(serde_json::Value::as_u64);
        let found = found.map_or_else(|| "absent".to_owned(), |v| v.to_string());
        self.expect("vocabulary size", &vocab_size.to_string(), &found)
    }

    /// Loads the saved parameters into `model` (of the checkpoint's configuration).
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] listing every missing, unexpected or mis-shaped tensor.
    pub fn load_model<B: Backend, M: Module<B>>(&self, model: M, device: &B::Device) -> Result<M, TrainError> {
        crate::params::import(model, &self.tensors, &self.param_ids, device)
            .map_err(|problems| TrainError::Checkpoint { path: self.path.clone(), reason: problems.join("; ") })
    }

    /// Restores the optimiser state.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] when `optimizer.bin` does not read.
    pub fn load_optimizer<B, M, O>(&self, optimizer: O, device: &B::Device) -> Result<O, TrainError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
        let record = Recorder::<B>::load(&recorder, self.path.join("optimizer"), device)
            .map_err(|e| TrainError::Checkpoint { path: self.path.clone(), reason: format!("optimiser state: {e}") })?;
        Ok(optimizer.load_record(record))
    }
}
