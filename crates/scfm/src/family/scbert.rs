//! scBERT (Performer over the expression bins of its gene panel): masked LM over bins; the
//! convolutional head; mean-pooled embeddings, one cell per forward pass as `predict.py`.

use std::path::Path;

use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use scfm_models::CellModel;
use scfm_models::scbert::{ScBert as Model, ScBertConfig};
use scfm_tokenize::mask::ScBertMask;
use scfm_train::{Cells, ScBertMaskedLm, StepReport};

use super::{DatasetColumns, ModelFamily, ModelSize, PretrainRun, performer_shape};
use crate::Error;
use crate::annotate::{Finetune, Finetuned};
use crate::embed::{DenseBatch, EmbedModel, EmbedOptions, Pending, Pooling};
use scfm_tokenize::scbert::ScBertSpec;
use scfm_tokenize::{SchemeKind, TokenizerSpec};

/// The scBERT family.
pub(crate) struct ScBert;

/// The model positions of the gene list `genes`: its genes and the trailing slot.
fn positions(genes: &Path) -> Result<usize, Error> {
    Ok(scfm_tokenize::vocab::gene_list(genes)?.len() + 1)
}

/// A model with `found` positions reads the gene list `genes` of `expected - 1` genes only
/// when they are equal.
fn require_positions(model: &Path, found: usize, genes: &Path, expected: usize) -> Result<(), Error> {
    if found == expected {
        return Ok(());
    }
    Err(Error::VocabularyMismatch {
        model: model.to_owned(),
        model_has: format!("reads {found} positions"),
        tokenizer: genes.to_owned(),
        tokenizer_has: format!("has {} genes (+1 trailing slot = {expected}): another gene panel?", expected - 1),
    })
}

impl ModelFamily for ScBert {
    type Model<B: Backend> = Model<B>;
    type Embedder<B: Backend> = Box<Model<B>>;

    const TITLE: &'static str = "scBERT";
    const FILE_FIELD: &'static str = "genes";
    const DEFAULT_FILE: &'static str = "vocab/scbert/scbert_panglao_genes_16906.txt";
    const PRETRAINED_CHECKPOINT: &'static str = "scbert-mlm";
    /// One cell per forward pass, as `predict.py` runs: FAVOR+'s global key maximum makes a
    /// cell's output depend on its batch-mates.
    const MAX_CELLS_PER_PASS: Option<usize> = Some(1);

    fn scheme<B: Backend>(file: &Path, _model: &Model<B>, _max_len: usize, _seed: u64) -> Result<TokenizerSpec, Error> {
        Ok(ScBertSpec::new(file.to_owned()).into())
    }

    fn tokenizer_json(file: &Path, _max_len: usize) -> serde_json::Value {
        serde_json::json!({"scheme": "scbert", "genes": file})
    }

    /// A Performer `d_model` wide over the gene panel and its trailing slot.
    fn fresh<B: Backend>(file: &Path, size: &ModelSize, seed: u64, device: &B::Device) -> Result<Model<B>, Error> {
        let config = ScBertConfig {
            max_len: positions(file)?,
            performer: performer_shape(size, false),
            ..ScBertConfig::released()
        };
        Ok(<Model<B> as CellModel<B>>::init(&config, seed, device))
    }

    /// The same gene panel.
    fn check<B: Backend>(model: &Model<B>, file: &Path, path: &Path, _max_len: usize) -> Result<(), Error> {
        require_positions(path, model.config.max_len, file, positions(file)?)
    }

    /// Masked LM over the bins.
    fn pretrain<B: AutodiffBackend>(
        run: &PretrainRun<'_, B>,
        model: Model<B>,
        cells: Cells<'_>,
        progress: &mut dyn FnMut(&StepReport),
    ) -> Result<(Model<B>, Vec<f64>), Error> {
        run.go(model, &ScBertMaskedLm { cells, masker: ScBertMask::new(run.train.seed as u32) }, progress)
    }

    /// conv → fc1/fc2/fc3 over every position.
    fn finetune<B: AutodiffBackend>(
        stage: &Finetune<'_, B>,
        model: Model<B>,
        n_classes: usize,
        head_seed: u64,
        progress: &mut dyn FnMut(&StepReport),
    ) -> Result<Finetuned, Error> {
        stage.run_head(head_seed, |device| model.with_classifier(n_classes, device), progress)
    }

    /// `input_ids` (the bins).
    fn dataset_columns(file: &Path, _pretraining: bool, _max_len: usize) -> Result<DatasetColumns, Error> {
        Ok(DatasetColumns::new(SchemeKind::ScBert, file.to_owned(), "input_ids", None))
    }

    /// The `.pth` (or a safetensors state dict) and its ordered gene list (`vocab`).
    fn load_embedder<B: Backend>(
        spec: &EmbedModel,
        _opts: &EmbedOptions,
        device: &B::Device,
    ) -> Result<(Self::Embedder<B>, TokenizerSpec), Error> {
        let genes = spec.vocab_file(Self::TITLE, "its ordered gene list", &scfm_tokenize::scbert::GENE_LIST_FILES)?;
        let m = Model::<B>::from_file(&spec.checkpoint, device)?;
        require_positions(&spec.checkpoint, m.config.max_len, &genes, positions(&genes)?)?;
        Ok((Box::new(m), ScBertSpec::new(genes).into()))
    }

    fn poolings<B: Backend>(_model: &Self::Embedder<B>) -> (&'static [Pooling], &'static str) {
        (&[Pooling::Mean], "")
    }

    fn embedding_dim<B: Backend>(m: &Self::Embedder<B>, _pooling: Pooling) -> usize {
        m.config.performer.d_model
    }

    fn embed_batch<B: Backend>(
        m: &Self::Embedder<B>,
        batch: &[Pending],
        len: usize,
        _pooling: Pooling,
        _opts: &EmbedOptions,
        device: &B::Device,
    ) -> Result<Tensor<B, 2>, Error> {
        let dense = DenseBatch::new(batch, len, m.config.vocab_size, 0, 0.0, device)?;
        Ok(Model::cell_embeddings(m.encode(dense.ids)))
    }
}
