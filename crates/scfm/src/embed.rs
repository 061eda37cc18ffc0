//! Cell embeddings of any input with a released model, in two calls: [`Embedder::prepare`]
//! loads the checkpoint and its tokenizer files, [`Embedder::embed`] streams the input through
//! ingestion → tokenizer → model in batches bounded by a token budget and returns one embedding
//! per input cell, in input order. [`write_outputs`] saves them as an Arrow/Parquet table and
//! into a copy of the h5ad as `obsm["X_scfm_<model>"]`.
//!
//! ```no_run
//! use scfm::embed::{EmbedModel, EmbedOptions, Embedder, OutputFormat, write_outputs};
//!
//! let model = EmbedModel::ScGpt { checkpoint: "scGPT_human".into() };
//! let embedder = Embedder::<scfm::backend::Cpu>::prepare(&model, EmbedOptions::default(), &Default::default())?;
//! let cells = embedder.embed("pbmc.h5ad".as_ref(), &mut |_, _| {})?;
//! write_outputs(&cells, "pbmc.h5ad".as_ref(), "out".as_ref(), OutputFormat::Arrow)?;
//! # Ok::<(), scfm::Error>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use scfm_core::CellSource;
use scfm_core::arrow_array::builder::{FixedSizeListBuilder, Float32Builder};
use scfm_core::arrow_array::{ArrayRef, RecordBatch, StringArray};
use scfm_core::arrow_schema::{DataType, Field, Schema};
use scfm_io::corpus::{ShardFormat, write_table};
use scfm_io::writeback::{Annotation, annotate_copy};
use scfm_io::{AnySource, IoError, MatrixSelector, ObsSelection, SourceOptions};
use scfm_models::geneformer::{CellPooling, EmbeddingLayer, Geneformer};
use scfm_models::layers::l2_normalize;
use scfm_models::scbert::ScBert;
use scfm_models::scgpt::{ScGpt, ScGptPooling};
use scfm_models::xtrimogene::{self, EncoderInput, Weights, XTrimoGene};
use scfm_tokenize::geneformer::GeneformerVersion;
use scfm_tokenize::scgpt::ScGptSequence;
use scfm_tokenize::xtrimogene::DepthTarget;
use serde::Serialize;

use crate::Error;
use crate::pipeline::{GeneformerFiles, Prepared, Scheme, TieMode, par_map, prepare_scheme};

/// Upper bound on `cells × len²` per forward pass (the padding bias has that many floats: 64 MB),
/// so that long cells (4,096 tokens) run one at a time whatever the token budget.
const MAX_BIAS_ELEMENTS: usize = 16 << 20;

/// The model to embed with and where its files are.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum EmbedModel {
    /// A Geneformer Hugging Face folder (`config.json` + weights) and the folder of the
    /// dictionaries it was trained with (`token_dictionary_gc*.pkl`, …).
    Geneformer {
        /// The checkpoint folder.
        checkpoint: PathBuf,
        /// The dictionaries' folder.
        dictionaries: PathBuf,
        /// V1 (gc30M dictionaries, 2,048 tokens) or V2 (gc104M, 4,096, `<cls>`/`<eos>`);
        /// `None`: V1 when the checkpoint has 2,048 positions, else V2.
        version: Option<GeneformerVersion>,
    },
    /// A released scGPT folder (`args.json` + `vocab.json` + `best_model.pt`).
    ScGpt {
        /// The checkpoint folder.
        checkpoint: PathBuf,
    },
    /// A scBERT checkpoint (`panglao_pretrain.pth`, a fine-tuned `.pth`, or a `.safetensors`
    /// state dict) and its ordered gene list (`gene2vec_16906` order: the pickled
    /// `vocab_gene2vec_16906.pkl` or a text list).
    ScBert {
        /// The checkpoint file.
        checkpoint: PathBuf,
        /// The gene list.
        genes: PathBuf,
    },
    /// scFoundation's `models.ckpt`, one of its weight sets, and its gene list
    /// (`OS_scRNA_gene_index.19264.tsv`).
    XTrimoGene {
        /// The checkpoint file.
        checkpoint: PathBuf,
        /// The gene list.
        genes: PathBuf,
        /// `cell` (upstream's default `--version ce`) or `rde`.
        weights: Weights,
        /// The target read depth T (`--tgthighres`; upstream's default `t4`).
        target: DepthTarget,
    },
}

/// How cells are pooled into one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Mean over the cell's real tokens (Geneformer's `emb_mode="cell"`, excluding
    /// `<cls>`/`<eos>` for V2).
    Mean,
    /// The `<cls>` position (scGPT's `cell_emb_style="cls"`, Geneformer V2's `emb_mode="cls"`).
    Cls,
    /// xTrimoGene's `pool_type="all"`: S and T token states, max and mean over the expressed
    /// genes, concatenated (4 × 768).
    All,
    /// xTrimoGene's `pool_type="max"`: the max over every encoder position.
    Max,
}

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

enum Loaded<B: Backend> {
    Geneformer(Box<Geneformer<B>>, GeneformerVersion),
    ScGpt(Box<ScGpt<B>>),
    ScBert(Box<ScBert<B>>),
    XTrimoGene(Box<XTrimoGene<B>>),
}

/// A loaded model with its tokenizer, ready to embed inputs ([`Embedder::embed`]).
pub struct Embedder<B: Backend> {
    model: Loaded<B>,
    scheme: Scheme,
    checkpoint: PathBuf,
    opts: EmbedOptions,
    pooling: Pooling,
    l2_normalize: bool,
    device: B::Device,
}

/// What an embedding run did; saved as `scfm_embed.json` by [`write_outputs`].
#[derive(Debug, Clone, Serialize)]
pub struct EmbedReport {
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
struct Pending {
    cell: usize,
    ids: Vec<u32>,
    values: Option<Vec<f32>>,
}

impl<B: Backend> Embedder<B> {
    /// Loads the checkpoint and the tokenizer files (first call of the two-call API).
    ///
    /// # Errors
    /// [`Error::Model`] for checkpoints that do not load, [`Error::Incompatible`] when the
    /// tokenizer's vocabulary or input length does not fit the checkpoint, and the tokenizer's
    /// file errors.
    pub fn prepare(model: &EmbedModel, opts: EmbedOptions, device: &B::Device) -> Result<Self, Error> {
        let (loaded, scheme, checkpoint) = match model {
            EmbedModel::Geneformer { checkpoint, dictionaries, version } => {
                let m = Geneformer::<B>::from_hf_dir(checkpoint, device)?;
                let version = version.unwrap_or(if m.config.max_len == 2048 {
                    GeneformerVersion::V1
                } else {
                    GeneformerVersion::V2
                });
                if version.model_input_size() > m.config.max_len {
                    return Err(Error::Incompatible {
                        reason: format!(
                            "{}: {} position embeddings, but the {version:?} tokenizer writes up to {} tokens",
                            checkpoint.display(),
                            m.config.max_len,
                            version.model_input_size()
                        ),
                    });
                }
                let files = GeneformerFiles::find(dictionaries, version)?;
                let tokens = scfm_tokenize::vocab::geneformer_token_dictionary(&files.token_dictionary)?;
                if tokens.id_bound() > m.config.vocab_size {
                    return Err(Error::Incompatible {
                        reason: format!(
                            "{} has {} token ids, the checkpoint {} only {}: dictionaries of another version?",
                            files.token_dictionary.display(),
                            tokens.id_bound(),
                            checkpoint.display(),
                            m.config.vocab_size
                        ),
                    });
                }
                (Loaded::Geneformer(Box::new(m), version), Scheme::Geneformer { version, files }, checkpoint)
            }
            EmbedModel::ScGpt { checkpoint } => {
                let m = ScGpt::<B>::from_dir(checkpoint, device)?;
                let mut sequence = ScGptSequence::zero_shot(m.config.cls_token_id as u32);
                sequence.max_len = m.config.max_seq_len;
                sequence.cls_value = m.config.pad_value;
                sequence.n_bins = m.config.n_bins;
                sequence.seed = opts.seed;
                let scheme = Scheme::ScGpt { vocab: checkpoint.join("vocab.json"), sequence, ties: TieMode::Helical };
                (Loaded::ScGpt(Box::new(m)), scheme, checkpoint)
            }
            EmbedModel::ScBert { checkpoint, genes } => {
                let m = ScBert::<B>::from_file(checkpoint, device)?;
                let panel = scfm_tokenize::vocab::gene_list(genes)?.len();
                require_positions(checkpoint, m.config.seq_len, genes, panel + 1)?;
                (Loaded::ScBert(Box::new(m)), Scheme::ScBert { genes: genes.clone() }, checkpoint)
            }
            EmbedModel::XTrimoGene { checkpoint, genes, weights, target } => {
                let m = XTrimoGene::<B>::from_checkpoint(checkpoint, *weights, device)?;
                let panel = scfm_tokenize::vocab::scfoundation_genes(genes)?.len();
                require_positions(checkpoint, m.config.seq_len, genes, panel + 2)?;
                let scheme = Scheme::XTrimoGene { genes: genes.clone(), target: *target };
                (Loaded::XTrimoGene(Box::new(m)), scheme, checkpoint)
            }
        };
        let is_scgpt = matches!(loaded, Loaded::ScGpt(_));
        let pooling = opts.pooling.unwrap_or(match loaded {
            Loaded::ScGpt(_) => Pooling::Cls,
            Loaded::XTrimoGene(_) => Pooling::All,
            _ => Pooling::Mean,
        });
        let allowed: &[Pooling] = match loaded {
            Loaded::Geneformer(_, GeneformerVersion::V1) => &[Pooling::Mean],
            Loaded::Geneformer(..) | Loaded::ScGpt(_) => &[Pooling::Mean, Pooling::Cls],
            Loaded::ScBert(_) => &[Pooling::Mean],
            Loaded::XTrimoGene(_) => &[Pooling::All, Pooling::Max],
        };
        if !allowed.contains(&pooling) {
            let why = if matches!(loaded, Loaded::Geneformer(..)) { " (V1 has no <cls> token)" } else { "" };
            return Err(Error::Incompatible {
                reason: format!("{pooling:?} pooling does not apply to {}{why}: use one of {allowed:?}", scheme.name()),
            });
        }
        let l2_normalize = opts.l2_normalize.unwrap_or(is_scgpt);
        Ok(Self {
            model: loaded,
            scheme,
            checkpoint: checkpoint.clone(),
            opts,
            pooling,
            l2_normalize,
            device: device.clone(),
        })
    }

    /// The embedding size.
    pub fn dim(&self) -> usize {
        match &self.model {
            Loaded::Geneformer(m, _) => m.config.d_model,
            Loaded::ScGpt(m) => m.config.d_model,
            Loaded::ScBert(m) => m.config.performer.dim,
            Loaded::XTrimoGene(m) if self.pooling == Pooling::All => 4 * m.config.encoder_dim,
            Loaded::XTrimoGene(m) => m.config.encoder_dim,
        }
    }

    /// The model's short name (`geneformer-v2`, `scgpt`, …).
    pub fn model_name(&self) -> &'static str {
        self.scheme.name()
    }

    /// The obsm key the embeddings are written under: `X_scfm_geneformer`, `X_scfm_scgpt`,
    /// `X_scfm_scbert` or `X_scfm_xtrimogene`.
    pub fn obsm_key(&self) -> &'static str {
        obsm_key(self.model_name())
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
        let Prepared { cell_fn, genes_mapped, settings, uses_n_counts, .. } =
            prepare_scheme(&self.scheme, &source, n_counts_col.is_some(), self.opts.gene_table.as_deref(), false)?;
        crate::pipeline::require_mapped(&source, input, genes_mapped)?;
        let (n, dim) = (source.n_cells(), self.dim());
        let threads = self.opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let mut values = vec![f32::NAN; n * dim];
        let mut cell_ids = Vec::with_capacity(n);
        let mut report = EmbedReport {
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
            let n_counts = crate::pipeline::n_counts(&chunk, n_counts_col, uses_n_counts);
            let rows =
                par_map(chunk.n_cells(), threads.max(1), |i| cell_fn((base + i) as u64, chunk.cell(i), n_counts[i]));
            cell_ids.extend_from_slice(chunk.cell_ids());
            // xTrimoGene: a cell with no expressed model gene has no embedding, nor has one with
            // fewer than 3 encoder positions under `all` pooling (upstream's max over an empty
            // gene set fails).
            let usable = |p: &Pending| match &self.model {
                Loaded::XTrimoGene(m) => {
                    let min_positions = if self.pooling == Pooling::All { 3 } else { 1 };
                    // Positions ascend: the first one is a gene unless only T and S are left.
                    p.ids.len() >= min_positions && (p.ids[0] as usize) < m.config.n_genes()
                }
                _ => true,
            };
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
                // Cells per pass: the token budget, and at most MAX_BIAS_ELEMENTS in the
                // [cells, len, len] key-padding bias the attention reads. scBERT runs one cell
                // per pass, as `predict.py` does: FAVOR+'s global key maximum makes a cell's
                // output depend on its batch-mates.
                let take = if matches!(self.model, Loaded::ScBert(_)) {
                    1
                } else {
                    (self.opts.max_batch_tokens / longest)
                        .min(MAX_BIAS_ELEMENTS / (longest * longest))
                        .max(1)
                        .min(pending.len() - start)
                };
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
        let device = &self.device;
        let emb = match &self.model {
            Loaded::Geneformer(m, version) => {
                let dense = DenseBatch::new(batch, len, m.config.vocab_size, m.config.pad_token_id, 0.0, device)?;
                let hidden = m.hidden_state(dense.ids, dense.padded, m.hidden_index(self.opts.geneformer_layer));
                let pooling = match self.pooling {
                    Pooling::Cls => CellPooling::Cls,
                    // `prepare` admits only Mean and Cls here.
                    _ => CellPooling::Mean { exclude_specials: *version == GeneformerVersion::V2 },
                };
                Geneformer::pool(hidden, &dense.lengths, pooling)
            }
            Loaded::ScGpt(m) => {
                let (vocab, pad_id, pad_value) = (m.config.vocab_size, m.config.pad_token_id, m.config.pad_value);
                let dense = DenseBatch::new(batch, len, vocab, pad_id, pad_value, device)?;
                let values = Tensor::<B, 2>::from_data(TensorData::new(dense.values, [batch.len(), len]), device);
                let enc = m.encode(dense.ids, values, dense.padded, false);
                let pooling = match self.pooling {
                    Pooling::Cls => ScGptPooling::Cls { normalize: false },
                    _ => ScGptPooling::Mean,
                };
                ScGpt::cell_embeddings(enc.output, &dense.lengths, pooling)
            }
            Loaded::ScBert(m) => {
                ScBert::cell_embeddings(m.encode(DenseBatch::new(batch, len, m.config.n_tokens, 0, 0.0, device)?.ids))
            }
            Loaded::XTrimoGene(m) => {
                // Sparse encoder input: positions and values, padded inside EncoderInput.
                let cells: Vec<(&[u32], &[f32])> =
                    batch.iter().map(|p| (p.ids.as_slice(), p.values.as_deref().unwrap_or_default())).collect();
                let input = EncoderInput::from_selected(&cells, m.config.seq_len, m.config.pad_token_id as f32);
                let (values, positions, padded) = input.tensors::<B>(device);
                let pooling = match self.pooling {
                    Pooling::Max => xtrimogene::CellPooling::Max,
                    _ => xtrimogene::CellPooling::All,
                };
                XTrimoGene::cell_embeddings(m.encode(values, positions, padded), &input.lengths, pooling)
            }
        };
        into_rows(if self.l2_normalize { l2_normalize(emb) } else { emb })
    }
}

/// A batch of token-input cells padded to one length, as the dense-input models read it.
struct DenseBatch<B: Backend> {
    /// `[batch, len]` token ids, `pad_id` after each cell's tokens.
    ids: Tensor<B, 2, Int>,
    /// `[batch, len]`, true at padding.
    padded: Tensor<B, 2, Bool>,
    /// `[batch, len]` input values, row-major (scGPT's), `pad_value` at padding.
    values: Vec<f32>,
    /// Tokens per cell.
    lengths: Vec<usize>,
}

impl<B: Backend> DenseBatch<B> {
    /// `batch` padded to `len` (at least its longest cell), on `device`.
    ///
    /// # Errors
    /// A token id outside the checkpoint's vocabulary of `vocab` tokens.
    fn new(
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
                    return Err(Error::Incompatible {
                        reason: format!("token id {t} is outside the checkpoint's vocabulary of {vocab}"),
                    });
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
    emb.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| Error::Incompatible { reason: format!("{e:?}") })
}

/// A model with `positions` positions needs a gene list that fills them (`expected`).
fn require_positions(checkpoint: &Path, positions: usize, genes: &Path, expected: usize) -> Result<(), Error> {
    if positions == expected {
        return Ok(());
    }
    Err(Error::Incompatible {
        reason: format!(
            "{} has {positions} positions, but the gene list {} gives {expected}: another gene panel?",
            checkpoint.display(),
            genes.display()
        ),
    })
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
            return Err(Error::Incompatible {
                reason: format!("{}: the output would overwrite the input", dst.display()),
            });
        }
        let key = obsm_key(cells.report.model);
        annotate_copy(input, dst, &[Annotation::Obsm { key, values: &cells.values, dim: cells.dim }])?;
    }
    let report = out_dir.join("scfm_embed.json");
    std::fs::write(&report, serde_json::to_vec_pretty(&cells.report).expect("serializable"))
        .map_err(|source| IoError::Io { path: report.clone(), source })?;
    Ok(EmbedOutputs { table, h5ad, report })
}

/// The obsm key of a model's embeddings (`model` as [`Embedder::model_name`] gives it).
fn obsm_key(model: &str) -> &'static str {
    match model {
        "scgpt" => "X_scfm_scgpt",
        "scbert" => "X_scfm_scbert",
        "xtrimogene" => "X_scfm_xtrimogene",
        _ => "X_scfm_geneformer",
    }
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
