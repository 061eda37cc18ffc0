//! scGPT: the classifier (`cls_decoder` on the `<cls>` embedding) and the pretraining
//! objectives (GEP and GEPC over masked values or generated genes).

use burn::module::Module;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Bool, Tensor, TensorData};
use scfm_models::Pooling;
use scfm_models::scgpt::ScGpt;
use scfm_tokenize::mask::ScGptValueMask;

use super::{CellClassifier, cell_key, masked_mse};
use crate::TrainError;
use crate::batch::{Cells, TokenBatch, f32_tensor};
use crate::rng::derive_seed;
use crate::train::Objective;

impl<B: Backend> CellClassifier<B> for ScGpt<B> {
    fn family(&self) -> &'static str {
        "scgpt-classifier"
    }
    fn pad_id(&self) -> u32 {
        self.config.pad_token_id as u32
    }
    fn pad_value(&self) -> Option<f32> {
        Some(self.config.pad_value)
    }
    fn n_classes(&self) -> usize {
        self.config.n_cls.unwrap_or(0)
    }
    /// The un-normalised `<cls>` embedding (`cls_output`'s input, MODELS.md §3.11).
    fn embed(&self, batch: &TokenBatch, device: &B::Device) -> Tensor<B, 2> {
        let (ids, padded) = batch.tensors::<B>(device);
        let encoded = self.encode(ids, batch.value_tensor(device), padded, false);
        ScGpt::cell_embeddings(encoded.output, &batch.lengths, Pooling::Cls, false).expect("scGPT pools by <cls>")
    }
    /// `cls_decoder`.
    fn head(&self, embeddings: Tensor<B, 2>) -> Tensor<B, 2> {
        self.classify(embeddings).expect("checked: the model has a classification decoder")
    }
    fn freeze_layers(mut self, n_layers: usize) -> Self {
        if n_layers > 0 {
            self.gene_encoder = self.gene_encoder.no_grad();
            self.value_encoder = self.value_encoder.no_grad();
        }
        for layer in self.layers.iter_mut().take(n_layers) {
            *layer = layer.clone().no_grad();
        }
        self
    }
}

/// What an scGPT pretraining step predicts.
#[derive(Debug, Clone)]
pub enum ScGptTask {
    /// Masked values (the integration and annotation scripts' `MLM`): a fraction of the
    /// positions get `mask_value` and the expression decoder predicts their values.
    MaskedValues {
        /// The masker (ratio, seed).
        masker: ScGptValueMask,
    },
    /// Generative pretraining (MODELS.md §3.9): per batch a fraction drawn from `gen_probs`
    /// of each cell's genes is generated from the rest (the gene prompt, `<cls>` included)
    /// under the gene-prompt attention mask. From epoch `cell_prompt_from_epoch` on, a second
    /// pass generates the same genes from the detached `<cls>` embedding alone (the cell
    /// prompt; upstream starts it after 1,000 iterations) and adds its loss.
    Generative {
        /// Seeds the split (only its `generative_split` is used).
        masker: ScGptValueMask,
        /// Fractions of generated genes, one drawn per batch (upstream 0.25, 0.5, 0.75).
        gen_probs: Vec<f64>,
        /// First epoch with the cell-prompt pass.
        cell_prompt_from_epoch: Option<usize>,
    },
}

impl ScGptTask {
    /// Generative pretraining with upstream's fractions and the cell-prompt pass from the
    /// second epoch.
    pub fn generative(seed: u32) -> Self {
        Self::Generative {
            masker: ScGptValueMask::new(0.0, seed),
            gen_probs: vec![0.25, 0.5, 0.75],
            cell_prompt_from_epoch: Some(1),
        }
    }
}

/// scGPT pretraining: GEP (masked MSE of the expression decoder, MODELS.md §3.10) plus, with
/// `gepc`, GEPC (the same loss on the MVC decoder's prediction from the `<cls>` embedding).
/// Values are scGPT's bins; the loss is over the scored positions of the whole batch.
#[derive(Debug, Clone)]
pub struct ScGptPretraining<'a> {
    /// The cells (ids and binned values, `<cls>` first), in memory or streamed.
    pub cells: Cells<'a>,
    /// Masked values or generative.
    pub task: ScGptTask,
    /// Add the GEPC loss (needs the MVC decoder).
    pub gepc: bool,
}

/// `[cells, len]` flags, true at the first `lengths[c]` positions of cell `c`.
fn leading(lengths: &[usize], len: usize) -> Vec<bool> {
    lengths.iter().flat_map(|&n| (0..len).map(move |j| j < n)).collect()
}

/// `[cells, len]` of 0/1 as a float tensor.
fn ones_at<B: Backend>(flags: Vec<bool>, shape: [usize; 2], device: &B::Device) -> Tensor<B, 2> {
    f32_tensor(flags.into_iter().map(f32::from).collect(), shape, device)
}

impl<B: AutodiffBackend> Objective<B, ScGpt<B>> for ScGptPretraining<'_> {
    fn check(&self, model: &ScGpt<B>) -> Result<(), TrainError> {
        self.cells.check(true)?;
        self.cells.check_below(model.config.vocab_size, "token")?;
        if self.gepc && model.mvc_decoder.is_none() {
            return Err(TrainError::Invalid("GEPC needs the MVC decoder, which this model lacks".into()));
        }
        match &self.task {
            ScGptTask::Generative { .. } if model.flag_encoder.is_none() => Err(TrainError::Invalid(
                "generative pretraining needs the flag embedding (ScGpt::with_flag_encoder)".into(),
            )),
            ScGptTask::Generative { gen_probs, .. } if gen_probs.is_empty() => {
                Err(TrainError::Invalid("generative pretraining needs at least one fraction of generated genes".into()))
            }
            _ => Ok(()),
        }
    }

    fn loss(&self, model: &ScGpt<B>, rows: &[usize], epoch: usize, device: &B::Device) -> Tensor<B, 1> {
        let key = |r: usize| cell_key(epoch, self.cells.len(), r);
        let pad = model.config.pad_value;
        match &self.task {
            ScGptTask::MaskedValues { masker } => {
                let target = self.cells.batch(rows, model.config.pad_token_id as u32, Some(pad));
                let mut input = target.clone();
                let mut scored = vec![false; target.cells * target.len];
                for (b, &r) in rows.iter().enumerate() {
                    let values = self.cells.values(r).expect("checked: the cells have values");
                    let (masked, positions) = masker.mask(&values, key(r));
                    input.values[b * target.len..b * target.len + masked.len()].copy_from_slice(&masked);
                    for p in positions {
                        scored[b * target.len + p] = true;
                    }
                }
                let (ids, padded) = input.tensors::<B>(device);
                let encoded = model.encode(ids, input.value_tensor(device), padded, false);
                let scored = ones_at::<B>(scored, [target.cells, target.len], device);
                let target = target.value_tensor::<B>(device);
                let mut loss = masked_mse(model.expression(encoded.output.clone()), target.clone(), scored.clone());
                if self.gepc {
                    let cell = ScGpt::cell_embeddings(encoded.output, &input.lengths, Pooling::Cls, false)
                        .expect("scGPT pools by <cls>");
                    let mvc = model.mvc(cell, encoded.gene_embeddings).expect("checked: the model has an MVC decoder");
                    loss = loss + masked_mse(mvc, target, scored);
                }
                loss
            }
            ScGptTask::Generative { masker, gen_probs, cell_prompt_from_epoch } => {
                let draw = derive_seed(u64::from(masker.seed), 3, (epoch as u64) << 32 | rows[0] as u64);
                let gen_prob = gen_probs[(draw % gen_probs.len() as u64) as usize];
                // Each cell laid out as [gene prompt | generated genes | padding]: no
                // positional encoding, so only the attention mask tells the streams apart.
                let (mut ids, mut vals, mut prompt_lengths) = (vec![], vec![], vec![]);
                for &r in rows {
                    let (cell, values) =
                        (self.cells.ids(r), self.cells.values(r).expect("checked: the cells have values"));
                    let (prompt, generated) = masker.generative_split(cell.len(), gen_prob, key(r));
                    let order: Vec<usize> = prompt.iter().chain(&generated).copied().collect();
                    ids.push(order.iter().map(|&p| cell[p]).collect::<Vec<u32>>());
                    vals.push(order.iter().map(|&p| values[p]).collect::<Vec<f32>>());
                    prompt_lengths.push(prompt.len());
                }
                let all: Vec<usize> = (0..rows.len()).collect();
                let batch = Cells::with_values(&ids, &vals).batch(&all, model.config.pad_token_id as u32, Some(pad));
                let (cells, len) = (batch.cells, batch.len);
                let prompt = leading(&prompt_lengths, len);
                let generated: Vec<bool> =
                    prompt.iter().zip(&batch.padded).map(|(&p, &padded)| !p && !padded).collect();
                let scored = ones_at::<B>(generated, [cells, len], device);
                let target = batch.value_tensor::<B>(device);
                let (ids, _) = batch.tensors::<B>(device);
                let pass = |prompt: &[bool], cell: Option<Tensor<B, 2>>| {
                    let blocked = ScGpt::<B>::generative_attention_mask(prompt, &batch.padded, cells, len, device);
                    let mask = Tensor::<B, 2, Bool>::from_data(TensorData::new(prompt.to_vec(), [cells, len]), device);
                    model
                        .encode_generative(ids.clone(), target.clone(), mask, blocked, cell)
                        .expect("checked: the model has a flag embedding")
                };
                let encoded = pass(&prompt, None);
                let mut loss = masked_mse(model.expression(encoded.output.clone()), target.clone(), scored.clone());
                let cell = ScGpt::cell_embeddings(encoded.output, &batch.lengths, Pooling::Cls, false)
                    .expect("scGPT pools by <cls>");
                if self.gepc {
                    let mvc = model
                        .mvc(cell.clone(), encoded.gene_embeddings)
                        .expect("checked: the model has an MVC decoder");
                    loss = loss + masked_mse(mvc, target.clone(), scored.clone());
                }
                if cell_prompt_from_epoch.is_some_and(|from| epoch >= from) {
                    let encoded = pass(&leading(&vec![1; cells], len), Some(cell.detach()));
                    loss = loss + masked_mse(model.expression(encoded.output), target, scored);
                }
                loss
            }
        }
    }

    fn lengths(&self) -> Vec<usize> {
        self.cells.lengths()
    }
}
