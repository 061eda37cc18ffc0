//! xTrimoGene / scFoundation (log-normalised values of its 19,264 genes, read-depth tokens T
//! and S): read-depth-aware masked regression; the max-pool → BatchNorm → 2 linear head;
//! `all` or `max` pooled embeddings of the encoder.

use std::path::Path;

use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use scfm_models::CellModel;
use scfm_models::xtrimogene::{EncoderInput, XTrimoGene as Model, XTrimoGeneClassifier, XTrimoGeneConfig};
use scfm_tokenize::mask::XTrimoGeneMask;
use scfm_tokenize::xtrimogene::DepthTarget;
use scfm_train::{Cells, DownSampling, StepReport, XTrimoGenePretraining};

use super::{DatasetColumns, ModelFamily, ModelSize, PretrainRun, performer_shape};
use crate::Error;
use crate::annotate::{Finetune, Finetuned};
use crate::embed::{EmbedModel, EmbedOptions, Pending, Pooling};
use crate::pipeline::{COUNT_POSITIONS, COUNTS};
use scfm_tokenize::xtrimogene::XTrimoGeneSpec;
use scfm_tokenize::{SchemeKind, TokenizerSpec};

/// The xTrimoGene / scFoundation family.
pub(crate) struct XTrimoGene;

/// The genes of scFoundation's gene index `genes`.
fn n_genes(genes: &Path) -> Result<usize, Error> {
    Ok(scfm_tokenize::vocab::scfoundation_genes(genes)?.len())
}

impl ModelFamily for XTrimoGene {
    type Model<B: Backend> = Model<B>;
    type Embedder<B: Backend> = Box<Model<B>>;

    const TITLE: &'static str = "xTrimoGene";
    const FILE_FIELD: &'static str = "genes";
    const DEFAULT_FILE: &'static str = "vocab/scfoundation/OS_scRNA_gene_index.19264.tsv";
    const PRETRAINED_CHECKPOINT: &'static str = "xtrimogene";

    /// T = S (`f1`).
    fn scheme<B: Backend>(file: &Path, _model: &Model<B>, _max_len: usize, _seed: u64) -> Result<TokenizerSpec, Error> {
        Ok(XTrimoGeneSpec::new(file.to_owned(), DepthTarget::Fold(1.0)).into())
    }

    fn tokenizer_json(file: &Path, _max_len: usize) -> serde_json::Value {
        serde_json::json!({"scheme": "xtrimogene", "genes": file, "target": "f1"})
    }

    /// Encoder and Performer decoder of the same size over the gene panel (+ T and S).
    fn fresh<B: Backend>(file: &Path, size: &ModelSize, seed: u64, device: &B::Device) -> Result<Model<B>, Error> {
        let config = XTrimoGeneConfig {
            max_len: n_genes(file)? + 2,
            d_model: size.d_model,
            n_layers: size.n_layers,
            n_heads: size.n_heads,
            d_ff: size.d_ff,
            decoder: performer_shape(size, true),
            ..XTrimoGeneConfig::released()
        };
        Ok(<Model<B> as CellModel<B>>::init(&config, seed, device))
    }

    /// The same gene panel.
    fn check<B: Backend>(model: &Model<B>, file: &Path, path: &Path, _max_len: usize) -> Result<(), Error> {
        let n = n_genes(file)?;
        if model.config.n_genes() != n {
            return Err(Error::VocabularyMismatch {
                model: path.to_owned(),
                model_has: format!("reads {} genes", model.config.n_genes()),
                tokenizer: file.to_owned(),
                tokenizer_has: format!("has {n}"),
            });
        }
        Ok(())
    }

    /// Read-depth-aware masked regression, down-sampling the raw counts.
    fn pretrain<B: AutodiffBackend>(
        run: &PretrainRun<'_, B>,
        model: Model<B>,
        cells: Cells<'_>,
        progress: &mut dyn FnMut(&StepReport),
    ) -> Result<(Model<B>, Vec<f64>), Error> {
        let objective = XTrimoGenePretraining {
            cells,
            masker: XTrimoGeneMask::new(run.train.seed as u32),
            downsample: Some(DownSampling::default()),
        };
        run.go(model, &objective, progress)
    }

    /// scFoundation's max-pool + BatchNorm head over the encoder.
    fn finetune<B: AutodiffBackend>(
        stage: &Finetune<'_, B>,
        model: Model<B>,
        n_classes: usize,
        head_seed: u64,
        progress: &mut dyn FnMut(&StepReport),
    ) -> Result<Finetuned, Error> {
        stage.run_head(head_seed, |device| XTrimoGeneClassifier::new(model, n_classes, device), progress)
    }

    /// Pretraining: the raw counts on the gene positions; the model: its encoder input.
    fn dataset_columns(file: &Path, pretraining: bool, _max_len: usize) -> Result<DatasetColumns, Error> {
        let (ids, values) = if pretraining { (COUNT_POSITIONS, COUNTS) } else { ("input_ids", "values") };
        Ok(DatasetColumns::new(SchemeKind::XTrimoGene, file.to_owned(), ids, Some(values)))
    }

    /// `models.ckpt`, the chosen weight set and target depth, and the gene index (`vocab`).
    fn load_embedder<B: Backend>(
        spec: &EmbedModel,
        _opts: &EmbedOptions,
        device: &B::Device,
    ) -> Result<(Self::Embedder<B>, TokenizerSpec), Error> {
        let genes = spec.vocab_file(
            Self::TITLE,
            "its gene index (OS_scRNA_gene_index.19264.tsv)",
            &scfm_tokenize::xtrimogene::GENE_INDEX_FILES,
        )?;
        let m = Model::<B>::from_checkpoint(&spec.checkpoint, spec.weights, device)?;
        let panel = n_genes(&genes)?;
        if m.config.max_len != panel + 2 {
            return Err(Error::VocabularyMismatch {
                model: spec.checkpoint.clone(),
                model_has: format!("has {} positions", m.config.max_len),
                tokenizer: genes.to_owned(),
                tokenizer_has: format!("gives {} (its {panel} genes, T and S): another gene panel?", panel + 2),
            });
        }
        Ok((Box::new(m), XTrimoGeneSpec::new(genes.to_owned(), spec.depth_target).into()))
    }

    fn poolings<B: Backend>(_model: &Self::Embedder<B>) -> (&'static [Pooling], &'static str) {
        (Model::<B>::POOLINGS, "")
    }

    fn embedding_dim<B: Backend>(m: &Self::Embedder<B>, pooling: Pooling) -> usize {
        if pooling == Pooling::All { 4 * m.config.d_model } else { m.config.d_model }
    }

    /// A cell with no expressed model gene has no embedding, nor has one with fewer than 3
    /// encoder positions under `all` pooling (upstream's max over an empty gene set fails).
    fn embeds<B: Backend>(m: &Self::Embedder<B>, pooling: Pooling, cell: &Pending) -> bool {
        let min_positions = if pooling == Pooling::All { 3 } else { 1 };
        // Positions ascend: the first one is a gene unless only T and S are left.
        cell.ids.len() >= min_positions && (cell.ids[0] as usize) < m.config.n_genes()
    }

    /// The sparse encoder input: positions and values, padded inside `EncoderInput`.
    fn embed_batch<B: Backend>(
        m: &Self::Embedder<B>,
        batch: &[Pending],
        _len: usize,
        pooling: Pooling,
        _opts: &EmbedOptions,
        device: &B::Device,
    ) -> Result<Tensor<B, 2>, Error> {
        let cells: Vec<(&[u32], &[f32])> =
            batch.iter().map(|p| (p.ids.as_slice(), p.values.as_deref().unwrap_or_default())).collect();
        let input = EncoderInput::from_selected(&cells, m.config.max_len, m.config.pad_token_id as f32);
        let (values, positions, padded) = input.tensors::<B>(device);
        Ok(Model::cell_embeddings(m.encode(values, positions, padded), &input.lengths, pooling)?)
    }
}
