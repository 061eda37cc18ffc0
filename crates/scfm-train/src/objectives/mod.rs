//! The objectives: cell-type classification (every family's fine-tuning) and each family's
//! pretraining.

mod geneformer;
mod scbert;
mod scgpt;
mod xtrimogene;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::activation::softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, Int, Tensor, TensorData};
use scfm_models::layers::as_dtype;

pub use geneformer::MaskedLm;
pub use scbert::ScBertMaskedLm;
pub use scgpt::{ScGptPretraining, ScGptTask};
pub use xtrimogene::{DownSampling, XTrimoGenePretraining};

use crate::TrainError;
use crate::batch::{Cells, TokenBatch};
use crate::train::{Objective, in_batches};

/// A model that classifies cells into cell types.
pub trait CellClassifier<B: Backend>: Module<B> {
    /// Family and head, as checkpoints record it (`geneformer-classifier`).
    fn family(&self) -> &'static str;
    /// Id of `<pad>`.
    fn pad_id(&self) -> u32;
    /// The value of padded positions for families that read a value per token (scGPT);
    /// `None` for token-only families.
    fn pad_value(&self) -> Option<f32> {
        None
    }
    /// Cell types the head predicts (0 without a head).
    fn n_classes(&self) -> usize;
    /// Checks that the model can read `cells`: values present exactly when it reads them,
    /// and whatever else the family requires.
    ///
    /// # Errors
    /// [`TrainError::Invalid`] naming the problem.
    fn check_cells(&self, cells: &Cells<'_>) -> Result<(), TrainError> {
        cells.check(self.pad_value().is_some())
    }
    /// The cell embeddings of a padded batch that the head classifies: Geneformer's pooled
    /// last layer, scGPT's `<cls>` embedding, xTrimoGene's max-pooled encoder output, the
    /// activations of scBERT's last hidden head layer (`fc2`; its head reads every position,
    /// so the embedding is taken inside it).
    ///
    /// # Shapes
    /// - output: `[cells, embedding_dim]`
    fn embed(&self, batch: &TokenBatch, device: &B::Device) -> Tensor<B, 2>;
    /// Class logits of cell embeddings from [`Self::embed`].
    ///
    /// # Shapes
    /// - `embeddings`: `[cells, embedding_dim]`
    /// - output: `[cells, n_classes]`
    fn head(&self, embeddings: Tensor<B, 2>) -> Tensor<B, 2>;
    /// Class logits of a padded batch.
    ///
    /// # Shapes
    /// - output: `[cells, n_classes]`
    fn logits(&self, batch: &TokenBatch, device: &B::Device) -> Tensor<B, 2> {
        self.head(self.embed(batch, device))
    }
    /// Stops gradients to the embeddings and the first `n_layers` encoder layers (upstream's
    /// `freeze_layers`).
    fn freeze_layers(self, n_layers: usize) -> Self;
}

/// Checks that `model` can read `cells` and has a head.
fn check_input<B: Backend, M: CellClassifier<B>>(model: &M, cells: &Cells<'_>) -> Result<(), TrainError> {
    if model.n_classes() == 0 {
        return Err(TrainError::Invalid(format!("the {} model has no classification head", model.family())));
    }
    model.check_cells(cells)
}

/// Cross-entropy of cell-type predictions.
#[derive(Debug, Clone)]
pub struct Classification<'a> {
    /// The cells.
    pub cells: Cells<'a>,
    /// Class code per cell.
    pub classes: &'a [usize],
}

impl<B: AutodiffBackend, M: CellClassifier<B>> Objective<B, M> for Classification<'_> {
    fn check(&self, model: &M) -> Result<(), TrainError> {
        check_input(model, &self.cells)?;
        if self.classes.len() != self.cells.len() {
            return Err(TrainError::Invalid(format!(
                "{} cells but {} class labels",
                self.cells.len(),
                self.classes.len()
            )));
        }
        match self.classes.iter().find(|&&c| c >= model.n_classes()) {
            Some(c) => Err(TrainError::Invalid(format!("class {c}, but the head predicts {}", model.n_classes()))),
            None => Ok(()),
        }
    }
    fn loss(&self, model: &M, rows: &[usize], _epoch: usize, device: &B::Device) -> Tensor<B, 1> {
        let logits = model.logits(&self.cells.batch(rows, model.pad_id(), model.pad_value()), device);
        let logits = as_dtype(logits, DType::F32);
        let targets: Vec<i64> = rows.iter().map(|&r| self.classes[r] as i64).collect();
        let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(targets, [rows.len()]), device);
        CrossEntropyLossConfig::new().init(device).forward(logits, targets)
    }
    fn lengths(&self) -> Vec<usize> {
        self.cells.lengths()
    }
}

/// Class probabilities of every cell, row-major `[cells, n_classes]`, in batches of at most
/// `batch_size` cells and `max_tokens` padded tokens (no dropout: run it on the model's
/// [`AutodiffModule::valid`](burn::module::AutodiffModule::valid) copy).
///
/// # Errors
/// [`TrainError::Invalid`] when the model has no head or cannot read the cells (values missing
/// or unexpected).
pub fn predict_proba<B: Backend, M: CellClassifier<B>>(
    model: &M,
    cells: Cells<'_>,
    batch_size: usize,
    max_tokens: usize,
    device: &B::Device,
) -> Result<Vec<Vec<f32>>, TrainError> {
    let p = predict(model, cells, batch_size, max_tokens, device)?;
    Ok(p.proba.chunks(p.n_classes.max(1)).map(<[f32]>::to_vec).collect())
}

/// What [`predict`] computes for every cell, in the input order.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    /// Class probabilities, row-major `[cells, n_classes]`.
    pub proba: Vec<f32>,
    /// Cell types of the head.
    pub n_classes: usize,
    /// Cell embeddings ([`CellClassifier::embed`]), row-major `[cells, dim]`.
    pub embeddings: Vec<f32>,
    /// Embedding width.
    pub dim: usize,
}

/// Class probabilities and cell embeddings of every cell from one forward pass each, in
/// batches of at most `batch_size` cells and `max_tokens` padded tokens (no dropout: run it on
/// the model's [`AutodiffModule::valid`](burn::module::AutodiffModule::valid) copy).
///
/// # Errors
/// [`TrainError::Invalid`] when the model has no head or cannot read the cells (values missing
/// or unexpected).
pub fn predict<B: Backend, M: CellClassifier<B>>(
    model: &M,
    cells: Cells<'_>,
    batch_size: usize,
    max_tokens: usize,
    device: &B::Device,
) -> Result<Predictions, TrainError> {
    check_input(model, &cells)?;
    let rows = in_batches(&cells.lengths(), batch_size, max_tokens, |rows| {
        let emb = model.embed(&cells.batch(rows, model.pad_id(), model.pad_value()), device);
        let probs = softmax(model.head(emb.clone()), 1);
        let (k, d) = (probs.dims()[1], emb.dims()[1]);
        let p = probs.into_data().convert::<f32>().into_vec::<f32>().unwrap_or_default();
        let e = emb.into_data().convert::<f32>().into_vec::<f32>().unwrap_or_default();
        p.chunks(k).zip(e.chunks(d)).map(|(p, e)| (p.to_vec(), e.to_vec())).collect()
    });
    let n_classes = model.n_classes();
    let dim = rows.first().map_or(0, |(_, e)| e.len());
    let mut out = Predictions { proba: Vec::with_capacity(rows.len() * n_classes), n_classes, embeddings: vec![], dim };
    for (p, e) in rows {
        out.proba.extend(p);
        out.embeddings.extend(e);
    }
    Ok(out)
}

/// The key of a cell's random draws (masks, splits) in an epoch: distinct per epoch and cell.
pub(crate) fn cell_key(epoch: usize, cells: usize, row: usize) -> u64 {
    epoch as u64 * cells as u64 + row as u64
}

/// Cross-entropy of a masked-LM head at the scored positions of a batch: `scored` lists
/// `(cell, position, target)`. A batch without any (tiny cells, nothing drawn) scores position
/// 0 of the first cell against `fallback`: no signal, but a valid graph.
///
/// # Shapes
/// - `hidden`: `[cells, len, d]`
/// - `head`: `[1, m, d]` → `[1, m, n_classes]`
/// - output: `[1]`
pub(crate) fn masked_lm_loss<B: Backend>(
    hidden: Tensor<B, 3>,
    scored: &[(usize, usize, i64)],
    fallback: i64,
    n_classes: usize,
    head: impl FnOnce(Tensor<B, 3>) -> Tensor<B, 3>,
) -> Tensor<B, 1> {
    let [cells, len, d] = hidden.dims();
    let device = hidden.device();
    let (picked, targets): (Vec<i64>, Vec<i64>) = if scored.is_empty() {
        (vec![0], vec![fallback])
    } else {
        scored.iter().map(|&(b, k, t)| ((b * len + k) as i64, t)).unzip()
    };
    let m = picked.len();
    let index = Tensor::<B, 1, Int>::from_data(TensorData::new(picked, [m]), &device);
    let selected = hidden.reshape([cells * len, d]).select(0, index).reshape([1, m, d]);
    let logits = as_dtype(head(selected).reshape([m, n_classes]), DType::F32);
    let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(targets, [m]), &device);
    CrossEntropyLossConfig::new().init(&device).forward(logits, targets)
}

/// `Σ m·(pred − target)² / Σ m` (scGPT's `masked_mse_loss`, xTrimoGene's masked regression),
/// in fp32 whatever type the model computed `pred` in.
///
/// # Shapes
/// - `pred`, `target`, `mask` (1 at scored positions): `[cells, len]`
/// - output: `[1]`
pub(crate) fn masked_mse<B: Backend>(pred: Tensor<B, 2>, target: Tensor<B, 2>, mask: Tensor<B, 2>) -> Tensor<B, 1> {
    let pred = as_dtype(pred, DType::F32);
    let n = mask.clone().sum().clamp_min(1.0);
    ((pred - target).powi_scalar(2) * mask).sum() / n
}
