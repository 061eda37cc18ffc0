//! Cell embeddings of any input with a released model, in two calls: [`Embedder::prepare`]
//! loads the checkpoint and its tokenizer files, [`Embedder::embed`] streams the input through
//! ingestion → tokenizer → model in batches bounded by a token budget and returns one embedding
//! per input cell, in input order. [`write_outputs`] saves them as an Arrow/Parquet table and
//! into a copy of the h5ad as `obsm["X_scfm_<model>"]`.
//!
//! ```no_run
//! use scfm::embed::{EmbedModel, EmbedOptions, Embedder, OutputFormat, write_outputs};
//! use scfm::family::FamilyKind;
//!
//! let model = EmbedModel::new(FamilyKind::ScGpt, "scGPT_human");
//! let embedder = Embedder::<scfm::backend::Cpu>::prepare(&model, EmbedOptions::default(), &Default::default())?;
//! let cells = embedder.embed("pbmc.h5ad".as_ref(), &mut |_, _| {})?;
//! write_outputs(&cells, "pbmc.h5ad".as_ref(), "out".as_ref(), OutputFormat::Arrow)?;
//! # Ok::<(), scfm::Error>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use rayon::prelude::*;
use scfm_core::CellSource;
use scfm_core::arrow_array::builder::{FixedSizeListBuilder, Float32Builder};
use scfm_core::arrow_array::{ArrayRef, RecordBatch, StringArray};
use scfm_core::arrow_schema::{DataType, Field, Schema};
use scfm_io::corpus::{ShardFormat, write_table};
use scfm_io::writeback::{Annotation, annotate_copy};
use scfm_io::{AnySource, IoError, MatrixSelector, ObsSelection, SourceOptions};
use scfm_models::geneformer::EmbeddingLayer;
use scfm_models::layers::l2_normalize;
use scfm_models::xtrimogene::Weights;
use scfm_tokenize::geneformer::GeneformerVersion;
use scfm_tokenize::xtrimogene::DepthTarget;
use serde::Serialize;

use crate::Error;
use crate::family::{EmbedderModel, FamilyKind, ModelFamily, Registered, with_kind, with_value};
use crate::pipeline::{TokenizerSpec, prepare};
use scfm_tokenize::PreparedTokenizer;

/// Upper bound on `cells × len²` per forward pass (the padding bias has that many floats: 64 MB),
/// so that long cells (4,096 tokens) run one at a time whatever the token budget.
const MAX_BIAS_ELEMENTS: usize = 16 << 20;

/// The model to embed with and where its files are.
#[derive(Debug, Clone)]
pub struct EmbedModel {
    /// The model's family.
    pub family: FamilyKind,
    /// The checkpoint: a Geneformer Hugging Face folder (`config.json` + weights), a released
    /// scGPT folder (`args.json` + `vocab.json` + `best_model.pt`), a scBERT `.pth` (or a
    /// `.safetensors` state dict), scFoundation's `models.ckpt`.
    pub checkpoint: PathBuf,
    /// The tokenizer's files where the checkpoint does not hold them: Geneformer's
    /// dictionaries' folder (`token_dictionary_gc*.pkl`, …), scBERT's ordered gene list
    /// (`vocab_gene2vec_16906.pkl` or a text list), scFoundation's
    /// `OS_scRNA_gene_index.19264.tsv`. scGPT reads its folder's `vocab.json`.
    pub vocab: Option<PathBuf>,
    /// Geneformer: V1 (gc30M dictionaries, 2,048 tokens) or V2 (gc104M, 4,096,
    /// `<cls>`/`<eos>`); `None`: V1 when the checkpoint has 2,048 positions, else V2.
    pub version: Option<GeneformerVersion>,
    /// xTrimoGene: `cell` (upstream's default `--version ce`) or `rde`.
    pub weights: Weights,
    /// xTrimoGene: the target read depth T (`--tgthighres`; upstream's default `t4`).
    pub depth_target: DepthTarget,
}

impl EmbedModel {
    /// The `family` model at `checkpoint`, with the family's defaults.
    pub fn new(family: FamilyKind, checkpoint: impl Into<PathBuf>) -> Self {
        Self {
            family,
            checkpoint: checkpoint.into(),
            vocab: None,
            version: None,
            weights: Weights::Cell,
            depth_target: DepthTarget::Fixed(4.0),
        }
    }

    /// The same model with its tokenizer's files at `vocab`.
    #[must_use]
    pub fn with_vocab(mut self, vocab: impl Into<PathBuf>) -> Self {
        self.vocab = Some(vocab.into());
        self
    }

    /// The tokenizer's file, which `family` (as papers write it) needs: `what` it is. When
    /// [`Self::vocab`] is a folder and `names` are given, the first of `names` in it.
    pub(crate) fn vocab_file(&self, family: &'static str, what: &str, names: &[&str]) -> Result<PathBuf, Error> {
        let vocab = self.vocab.as_deref().ok_or_else(|| Error::MissingOption {
            checkpoint: self.checkpoint.clone(),
            family,
            option: "--vocab",
            needs: what.to_owned(),
        })?;
        Ok(scfm_tokenize::vocab::file_in(vocab, names, what)?)
    }
}

/// How cells are pooled into one vector (one enum for every family's embeddings and heads).
pub use scfm_models::Pooling;

/// Options of [`Embedder`].
#[derive(Debug, Clone)]
pub struct EmbedOptions {
    /// Matrix of h5ad inputs (raw counts).
    pub matrix: MatrixSelector,
    /// GENCODE gene table (Ensembl id → symbol) for scGPT on Ensembl-only inputs.
    pub gene_table: Option<PathBuf>,
    /// Most padded tokens (`cells × longest cell`) per forward pass; a cell longer than the
    /// budget runs alone. Bounds activation memory; results do not depend on it.
    pub max_batch_tokens: usize,
    /// Cells read (and tokenized) per step.
    pub chunk_cells: usize,
    /// `None`: the family's default (Geneformer mean, scGPT CLS, scBERT mean, xTrimoGene all).
    pub pooling: Option<Pooling>,
    /// Divide each embedding by its L2 norm; `None`: the upstream default (scGPT's
    /// `embed_data` normalises, Geneformer does not).
    pub l2_normalize: Option<bool>,
    /// Geneformer's layer (upstream `emb_layer`; default the penultimate layer).
    pub geneformer_layer: EmbeddingLayer,
    /// scGPT: seed of the gene sub-sampling of cells longer than `max_seq_len`.
    pub seed: u32,
    /// Tokenizer threads; `None`: one per core. Results do not depend on it.
    pub threads: Option<usize>,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        Self {
            matrix: MatrixSelector::Counts,
            gene_table: None,
            max_batch_tokens: 16_384,
            chunk_cells: 1024,
            pooling: None,
            l2_normalize: None,
            geneformer_layer: EmbeddingLayer::Penultimate,
            seed: 0,
            threads: None,
        }
    }
}

/// A loaded model with its tokenizer, ready to embed inputs ([`Embedder::embed`]).
pub struct Embedder<B: Backend> {
    model: EmbedderModel<B>,
    scheme: TokenizerSpec,
    checkpoint: PathBuf,
    opts: EmbedOptions,
    pooling: Pooling,
    l2_normalize: bool,
    device: B::Device,
}

/// What an embedding run did; saved as `scfm_embed.json` by [`write_outputs`].
#[derive(Debug, Clone, Serialize)]
pub struct EmbedReport {
    /// The model's family.
    #[serde(skip)]
    pub family: FamilyKind,
    /// `geneformer-v1`, `geneformer-v2`, `scgpt`, `scbert` or `xtrimogene`.
    pub model: &'static str,
    /// The checkpoint folder.
    pub checkpoint: PathBuf,
    /// The input.
    pub input: PathBuf,
    /// The tokenizer's settings.
    pub tokenizer: serde_json::Value,
    /// Pooling and normalisation.
    pub pooling: Pooling,
    /// Whether embeddings are L2-normalised.
    pub l2_normalized: bool,
    /// Embedding size.
    pub dim: usize,
    /// Cells read (= rows of the output).
    pub cells: usize,
    /// Cells without any token the model knows (scBERT: fewer than 200 genes of its panel;
    /// xTrimoGene: no expressed gene of its panel, or fewer than 3 encoder positions with
    /// `all` pooling); their embedding is NaN.
    pub cells_without_tokens: usize,
    /// Genes in the input.
    pub genes_in: usize,
    /// Input genes the model knows.
    pub genes_mapped: usize,
    /// Forward passes.
    pub batches: usize,
    /// Real tokens run through the model.
    pub tokens: usize,
    /// Tokens including padding.
    pub padded_tokens: usize,
}

/// Embeddings of every input cell, in input order.
#[derive(Debug, Clone)]
pub struct CellEmbeddings {
    /// The input's cell ids (obs names).
    pub cell_ids: Vec<String>,
    /// Embedding size.
    pub dim: usize,
    /// Row-major `cells × dim`.
    pub values: Vec<f32>,
    /// What was done.
    pub report: EmbedReport,
}

/// One tokenized cell waiting for the model: its index in the input and its tokens.
pub(crate) struct Pending {
    /// The cell's index in the input.
    pub(crate) cell: usize,
    /// Token ids (xTrimoGene: encoder positions).
    pub(crate) ids: Vec<u32>,
    /// One value per id, where the scheme has values.
    pub(crate) values: Option<Vec<f32>>,
}

impl<B: Backend> Embedder<B> {
    /// Loads the checkpoint and the tokenizer files (first call of the two-call API).
    ///
    /// # Errors
    /// [`Error::Model`] for checkpoints that do not load, [`Error::VocabularyMismatch`] when
    /// the tokenizer's vocabulary or input length does not fit the checkpoint,
    /// [`Error::MissingOption`] / [`Error::UnusedOption`] for the tokenizer file,
    /// [`Error::PoolingNotApplicable`], and the tokenizer's file errors.
    pub fn prepare(model: &EmbedModel, opts: EmbedOptions, device: &B::Device) -> Result<Self, Error> {
        with_kind!(model.family, F => Self::prepare_family::<F>(model, opts, device))
    }

    fn prepare_family<F: Registered>(
        model: &EmbedModel,
        opts: EmbedOptions,
        device: &B::Device,
    ) -> Result<Self, Error> {
        let (loaded, scheme) = F::load_embedder::<B>(model, &opts, device)?;
        let (allowed, why) = F::poolings::<B>(&loaded);
        let pooling = opts.pooling.unwrap_or(allowed[0]);
        if !allowed.contains(&pooling) {
            return Err(Error::PoolingNotApplicable { pooling, scheme: scheme.kind(), why, allowed });
        }
        let l2_normalize = opts.l2_normalize.unwrap_or(F::L2_NORMALIZE);
        Ok(Self {
            model: F::embedder(loaded),
            scheme,
            checkpoint: model.checkpoint.clone(),
            opts,
            pooling,
            l2_normalize,
            device: device.clone(),
        })
    }

    /// The embedding size.
    pub fn dim(&self) -> usize {
        with_value!(EmbedderModel, &self.model, m, F => F::embedding_dim(m, self.pooling))
    }

    /// The model's family.
    pub fn family(&self) -> FamilyKind {
        with_value!(EmbedderModel, &self.model, _m, F => F::KIND)
    }

    /// The model's short name (`geneformer-v2`, `scgpt`, …).
    pub fn model_name(&self) -> &'static str {
        self.scheme.name()
    }

    /// The obsm key the embeddings are written under: `X_scfm_geneformer`, `X_scfm_scgpt`,
    /// `X_scfm_scbert` or `X_scfm_xtrimogene`.
    pub fn obsm_key(&self) -> &'static str {
        self.family().obsm_key()
    }

    /// Embeds every cell of `input` (h5ad, 10x, corpus); `progress(done, total)` after each
    /// chunk.
    ///
    /// # Errors
    /// Read errors, non-count matrices, inputs without any gene the model knows.
    pub fn embed(&self, input: &Path, progress: &mut dyn FnMut(usize, usize)) -> Result<CellEmbeddings, Error> {
        let source = AnySource::open(
            input,
            &SourceOptions { matrix: self.opts.matrix.clone(), obs: ObsSelection::All, require_counts: true },
        )?;
        crate::pipeline::require_counts(&source, input)?;
        let n_counts_col = source.obs_schema().index_of("n_counts").ok();
        let PreparedTokenizer { tokenizer, genes_mapped, settings, .. } =
            prepare(&self.scheme, &source, self.opts.gene_table.as_deref(), false)?;
        let layout = tokenizer.layout();
        crate::pipeline::require_mapped(&source, input, genes_mapped)?;
        let (n, dim) = (source.n_cells(), self.dim());
        // The tokenizer's threads: rayon's global pool, or a pool of the size asked for.
        let pool = match self.opts.threads {
            Some(n) => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n.max(1))
                    .build()
                    .map_err(|e| Error::Threads { threads: n, reason: e.to_string() })?,
            ),
            None => None,
        };
        let mut values = vec![f32::NAN; n * dim];
        let mut cell_ids = Vec::with_capacity(n);
        let mut report = EmbedReport {
            family: self.family(),
            model: self.scheme.name(),
            checkpoint: self.checkpoint.clone(),
            input: input.to_owned(),
            tokenizer: settings,
            pooling: self.pooling,
            l2_normalized: self.l2_normalize,
            dim,
            cells: 0,
            cells_without_tokens: 0,
            genes_in: source.genes().len(),
            genes_mapped,
            batches: 0,
            tokens: 0,
            padded_tokens: 0,
        };
        for chunk in source.chunks(self.opts.chunk_cells) {
            let chunk = chunk?;
            let base = cell_ids.len();
            let n_counts = crate::pipeline::n_counts(&chunk, n_counts_col, layout.uses_n_counts);
            let rows = {
                let tokenize = || -> Vec<_> {
                    (0..chunk.n_cells())
                        .into_par_iter()
                        .map(|i| tokenizer.tokenize((base + i) as u64, chunk.cell(i), n_counts[i]))
                        .collect()
                };
                match &pool {
                    Some(pool) => pool.install(tokenize),
                    None => tokenize(),
                }
            };
            cell_ids.extend_from_slice(chunk.cell_ids());
            // Cells the model cannot embed keep their NaN row.
            let usable = |p: &Pending| with_value!(EmbedderModel, &self.model, m, F => F::embeds(m, self.pooling, p));
            let mut pending: Vec<Pending> = rows
                .into_iter()
                .enumerate()
                .filter_map(|(i, row)| row.map(|r| Pending { cell: base + i, ids: r.ids, values: r.values }))
                .filter(usable)
                .collect();
            report.cells_without_tokens += chunk.n_cells() - pending.len();
            // Longest first, so each batch pads to its first cell; stable, so ties keep order.
            pending.sort_by_key(|p| std::cmp::Reverse(p.ids.len()));
            let mut start = 0;
            while start < pending.len() {
                let longest = pending[start].ids.len().max(1);
                // Cells per pass: the token budget, at most MAX_BIAS_ELEMENTS in the
                // [cells, len, len] key-padding bias the attention reads, and the family's own
                // limit (scBERT: one cell, as `predict.py`).
                let limit = with_value!(EmbedderModel, &self.model, _m, F => F::MAX_CELLS_PER_PASS);
                let take = (self.opts.max_batch_tokens / longest)
                    .min(MAX_BIAS_ELEMENTS / (longest * longest))
                    .min(limit.unwrap_or(usize::MAX))
                    .max(1)
                    .min(pending.len() - start);
                let batch = &pending[start..start + take];
                let emb = self.forward(batch, longest)?;
                for (p, row) in batch.iter().zip(emb.chunks(dim)) {
                    values[p.cell * dim..(p.cell + 1) * dim].copy_from_slice(row);
                }
                report.batches += 1;
                report.tokens += batch.iter().map(|p| p.ids.len()).sum::<usize>();
                report.padded_tokens += take * longest;
                start += take;
            }
            progress(cell_ids.len(), n);
        }
        report.cells = cell_ids.len();
        Ok(CellEmbeddings { cell_ids, dim, values, report })
    }

    /// One forward pass over `batch` (padded to `len`); row-major `[batch, dim]` embeddings.
    fn forward(&self, batch: &[Pending], len: usize) -> Result<Vec<f32>, Error> {
        let emb = with_value!(EmbedderModel, &self.model, m, F => {
            F::embed_batch(m, batch, len, self.pooling, &self.opts, &self.device)?
        });
        into_rows(if self.l2_normalize { l2_normalize(emb) } else { emb })
    }
}

/// A batch of token-input cells padded to one length, as the dense-input models read it.
pub(crate) struct DenseBatch<B: Backend> {
    /// `[batch, len]` token ids, `pad_id` after each cell's tokens.
    pub(crate) ids: Tensor<B, 2, Int>,
    /// `[batch, len]`, true at padding.
    pub(crate) padded: Tensor<B, 2, Bool>,
    /// `[batch, len]` input values, row-major (scGPT's), `pad_value` at padding.
    pub(crate) values: Vec<f32>,
    /// Tokens per cell.
    pub(crate) lengths: Vec<usize>,
}

impl<B: Backend> DenseBatch<B> {
    /// `batch` padded to `len` (at least its longest cell), on `device`.
    ///
    /// # Errors
    /// A token id outside the checkpoint's vocabulary of `vocab` tokens.
    pub(crate) fn new(
        batch: &[Pending],
        len: usize,
        vocab: usize,
        pad_id: usize,
        pad_value: f32,
        device: &B::Device,
    ) -> Result<Self, Error> {
        let b = batch.len();
        let mut ids = vec![pad_id as i64; b * len];
        let mut padded = vec![true; b * len];
        let mut values = vec![pad_value; b * len];
        for (r, p) in batch.iter().enumerate() {
            for (k, &t) in p.ids.iter().enumerate() {
                if t as usize >= vocab {
                    return Err(Error::TokenOutsideVocabulary { token: t, vocab_size: vocab });
                }
                ids[r * len + k] = i64::from(t);
                padded[r * len + k] = false;
            }
            if let Some(v) = &p.values {
                values[r * len..r * len + v.len()].copy_from_slice(v);
            }
        }
        Ok(Self {
            ids: Tensor::from_data(TensorData::new(ids, [b, len]), device),
            padded: Tensor::from_data(TensorData::new(padded, [b, len]), device),
            values,
            lengths: batch.iter().map(|p| p.ids.len()).collect(),
        })
    }
}

/// Row-major values of `[batch, dim]` embeddings, as f32 whatever the backend's float type.
fn into_rows<B: Backend>(emb: Tensor<B, 2>) -> Result<Vec<f32>, Error> {
    emb.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| Error::TensorData { reason: format!("{e:?}") })
}

/// Where [`write_outputs`] put things.
#[derive(Debug, Clone, Serialize)]
pub struct EmbedOutputs {
    /// The table: `cell_id` and `embedding` (fixed-size list of float32).
    pub table: PathBuf,
    /// The annotated h5ad copy (h5ad inputs only).
    pub h5ad: Option<PathBuf>,
    /// The report (`scfm_embed.json`).
    pub report: PathBuf,
}

/// The embedding table's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum OutputFormat {
    /// Arrow IPC (`embeddings.arrow`).
    #[default]
    Arrow,
    /// Parquet (`embeddings.parquet`; feature `parquet`).
    #[cfg(feature = "parquet")]
    Parquet,
}

/// Writes `cells` into `out_dir`: `embeddings.arrow|parquet`, `scfm_embed.json`, and, for h5ad
/// inputs, `<input name>.h5ad`, a copy of `input` with `obsm["X_scfm_<model>"]` added.
///
/// # Errors
/// Write errors.
pub fn write_outputs(
    cells: &CellEmbeddings,
    input: &Path,
    out_dir: &Path,
    format: OutputFormat,
) -> Result<EmbedOutputs, Error> {
    std::fs::create_dir_all(out_dir).map_err(|source| IoError::Io { path: out_dir.to_owned(), source })?;
    let shard = match format {
        OutputFormat::Arrow => ShardFormat::ArrowIpc,
        #[cfg(feature = "parquet")]
        OutputFormat::Parquet => ShardFormat::Parquet,
    };
    let table = out_dir.join(format!("embeddings.{}", shard.extension()));
    write_table(&table, shard, &embedding_batch(cells))?;
    let h5ad =
        input.extension().is_some_and(|e| e == "h5ad").then(|| out_dir.join(input.file_name().unwrap_or_default()));
    if let Some(dst) = &h5ad {
        if dst.canonicalize().ok() == input.canonicalize().ok() {
            return Err(Error::OverwritesInput { path: dst.clone() });
        }
        let key = cells.report.family.obsm_key();
        annotate_copy(input, dst, &[Annotation::Obsm { key, values: &cells.values, dim: cells.dim }])?;
    }
    let report = out_dir.join("scfm_embed.json");
    std::fs::write(&report, serde_json::to_vec_pretty(&cells.report).expect("serializable"))
        .map_err(|source| IoError::Io { path: report.clone(), source })?;
    Ok(EmbedOutputs { table, h5ad, report })
}

/// `cell_id` (utf8) and `embedding` (fixed-size list of `dim` float32).
pub fn embedding_batch(cells: &CellEmbeddings) -> RecordBatch {
    let mut list = FixedSizeListBuilder::with_capacity(
        Float32Builder::with_capacity(cells.values.len()),
        cells.dim as i32,
        cells.cell_ids.len(),
    )
    .with_field(Field::new_list_field(DataType::Float32, false));
    for row in cells.values.chunks(cells.dim.max(1)) {
        list.values().append_slice(row);
        list.append(true);
    }
    let ids: ArrayRef = Arc::new(StringArray::from(cells.cell_ids.clone()));
    let emb: ArrayRef = Arc::new(list.finish());
    let schema = Schema::new(vec![
        Field::new("cell_id", DataType::Utf8, false),
        Field::new("embedding", emb.data_type().clone(), false),
    ]);
    RecordBatch::try_new(Arc::new(schema), vec![ids, emb]).expect("columns match the schema")
}
