//! `scfm`: single-cell foundation models from the command line.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use scfm::embed::{EmbedModel, EmbedOptions, Embedder, OutputFormat, Pooling, write_outputs};
use scfm::family::FamilyKind;
use scfm::io::corpus::{ConvertOptions, ShardFormat, convert};
use scfm::io::inspect::inspect;
use scfm::io::{MatrixSelector, ObsFilter, ObsSelection};
use scfm::models::geneformer::EmbeddingLayer;
use scfm::models::xtrimogene::Weights;
use scfm::pipeline::{SchemeKind, SchemeOptions, TieMode, TokenizeOptions, TokenizerSpec, UnknownGenePolicy, tokenize};
use scfm::tokenize::geneformer::GeneformerVersion;
use scfm::tokenize::scgpt::ScGptSequence;
use scfm::tokenize::xtrimogene::DepthTarget;

#[derive(Parser)]
#[command(name = "scfm", version, about = "Single-cell foundation models: data, tokenizers, models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// A model's size (`scfm finetune`, `scfm pretrain`).
#[derive(clap::Args)]
struct SizeArgs {
    /// Hidden size (scBERT: the Performer width; xTrimoGene: encoder and decoder width).
    #[arg(long, default_value_t = 128)]
    d_model: usize,
    /// Encoder layers.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Feed-forward size.
    #[arg(long, default_value_t = 256)]
    d_ff: usize,
    /// Tokens per cell (Geneformer: `<cls>`, the top-ranked genes, `<eos>`; scGPT: `<cls>` and
    /// a sample of the expressed genes; scBERT and xTrimoGene read their whole gene panels).
    #[arg(long, default_value_t = 128)]
    max_len: usize,
}

impl SizeArgs {
    fn size(&self) -> scfm::annotate::ModelSize {
        scfm::annotate::ModelSize {
            d_model: self.d_model,
            n_layers: self.layers,
            n_heads: self.heads,
            d_ff: self.d_ff,
            max_len: self.max_len,
        }
    }
}

/// A burn backend (`cuda` and `wgpu` only in builds with those features).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    /// burn's CPU backend (burn-flex).
    Cpu,
    /// NVIDIA GPUs (feature `cuda`).
    Cuda,
    /// GPUs through wgpu (feature `wgpu`).
    Wgpu,
}

/// Floating-point precision of the model's passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Precision {
    /// 32-bit floats.
    Fp32,
    /// bfloat16.
    Bf16,
}

/// Where `finetune` and `pretrain` train.
#[derive(clap::Args)]
struct TrainOn {
    /// cpu, cuda (feature `cuda`) or wgpu (feature `wgpu`): where the model trains.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
    /// GPUs to train on, data parallel (e.g. 0,1): every batch is split over them and the
    /// gradients summed on the first, which holds the model.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    devices: Vec<usize>,
    /// fp32, or bf16: mixed precision (forward and backward passes in bf16; weights,
    /// gradients and the optimiser in fp32). For GPUs; a CPU emulates bf16 slowly.
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    precision: Precision,
}

impl TrainOn {
    fn precision(&self) -> scfm::train::Precision {
        match self.precision {
            Precision::Bf16 => scfm::train::Precision::Bf16,
            Precision::Fp32 => scfm::train::Precision::Fp32,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Fine-tune a cell-type classifier on a labelled h5ad (a small model of the family,
    /// fresh or from --init, with optional self-supervised pretraining on the training cells
    /// first) and score it against a logistic-regression baseline on a seeded stratified
    /// split; writes report.json, predictions.h5ad and PNG plots.
    Finetune(FinetuneArgs),
    /// Pretrain a model from scratch with its family's self-supervised objective: Geneformer
    /// masked LM, scGPT generative GEP + GEPC (or masked values), scBERT masked LM over bins,
    /// xTrimoGene read-depth-aware masked regression. Checkpoints go to OUT (resumable); OUT/pretrain.json records the run.
    Pretrain(PretrainArgs),
    /// Score predictions stored in an h5ad's obs against its labels (accuracy, macro-F1,
    /// per-class precision/recall, confusion matrix) as JSON, with a confusion-matrix PNG.
    Eval(EvalArgs),
    /// Convert h5ad / 10x / corpus inputs into one sharded Arrow corpus.
    Convert(ConvertArgs),
    /// Tokenize cells for a model; writes a Hugging Face `datasets` folder (load_from_disk).
    Tokenize(TokenizeArgs),
    /// Cell embeddings with a released model: writes embeddings.arrow (or .parquet), a copy of
    /// an h5ad input with obsm["X_scfm_<model>"], and scfm_embed.json into the output folder.
    Embed(EmbedArgs),
    /// Describe a file: shape, matrices, obs columns and types, count-likeness, gene ids.
    Inspect(InspectArgs),
}

/// The arguments of `scfm finetune`.
#[derive(clap::Args)]
struct FinetuneArgs {
    /// Labelled input (h5ad with raw counts).
    input: PathBuf,
    /// Output folder.
    #[arg(short, long)]
    out: PathBuf,
    /// The model family.
    #[arg(long, value_enum, default_value_t)]
    family: FamilyKind,
    /// The tokenizer's files: the Geneformer V2 dictionaries folder, a scGPT vocab.json
    /// (a released model's own), scBERT's gene list or scFoundation's gene index TSV.
    #[arg(long, alias = "dictionaries")]
    vocab: PathBuf,
    /// Obs column with the cell types.
    #[arg(long, default_value = "trueLabel")]
    label: String,
    /// Another labelled h5ad (same genes) to evaluate on.
    #[arg(long)]
    test: Option<PathBuf>,
    /// Share of each cell type held out for validation.
    #[arg(long, default_value_t = 0.2)]
    validation_fraction: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    size: SizeArgs,
    /// Self-supervised pretraining epochs on the training cells first (the family's
    /// objective, as `scfm pretrain`).
    #[arg(long, default_value_t = 1)]
    pretrain_epochs: usize,
    /// Fine-tuning epochs.
    #[arg(long, default_value_t = 6)]
    epochs: usize,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Peak fine-tuning learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// What Geneformer's head reads: mean (of the real positions) or cls (the first position,
    /// upstream's; also called first).
    #[arg(long, value_enum, default_value = "mean")]
    pooling: Pooling,
    /// Write a checkpoint every N optimiser steps into OUT/checkpoints.
    #[arg(long)]
    checkpoint_every: Option<u64>,
    /// Start from a pretrained model of the family: an upstream release (Hugging Face
    /// Geneformer folder, scGPT folder, scBERT .pth, scFoundation models.ckpt) or a
    /// `scfm pretrain` output (its shape replaces the size options; see also
    /// --pretrain-epochs 0).
    #[arg(long)]
    init: Option<PathBuf>,
    /// Freeze the embeddings and the first N encoder layers while fine-tuning.
    #[arg(long, default_value_t = 0)]
    freeze_layers: usize,
    #[command(flatten)]
    train_on: TrainOn,
}

/// The arguments of `scfm pretrain`.
#[derive(clap::Args)]
struct PretrainArgs {
    /// Input: h5ad, Cell Ranger .h5, Matrix Market folder or scfm corpus (raw counts), or a
    /// tokenized dataset of the family's scheme (`scfm tokenize --scheme geneformer-v2,
    /// scgpt, scbert or xtrimogene`), read from disk batch by batch instead of held in memory.
    input: PathBuf,
    /// Output folder (checkpoints, pretrain.json).
    #[arg(short, long)]
    out: PathBuf,
    /// geneformer, scgpt (generative), scgpt-masked (masked values), scbert or xtrimogene.
    #[arg(long, default_value = "geneformer")]
    family: String,
    /// The tokenizer's files: the Geneformer V2 dictionaries folder, a scGPT vocab.json,
    /// scBERT's gene list or scFoundation's gene index TSV.
    #[arg(long)]
    vocab: PathBuf,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    size: SizeArgs,
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Peak learning rate (linear decay after 10 % warm-up).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Write a checkpoint every N optimiser steps (and at the end).
    #[arg(long, default_value_t = 500)]
    checkpoint_every: u64,
    /// Stop after this many optimiser steps (the schedule still spans all epochs).
    #[arg(long)]
    stop_after: Option<u64>,
    /// Continue from OUT's latest checkpoint.
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    train_on: TrainOn,
}

/// The arguments of `scfm eval`.
#[derive(clap::Args)]
struct EvalArgs {
    /// h5ad with both columns (e.g. predictions.h5ad of `scfm finetune`).
    input: PathBuf,
    /// Obs column with the true cell types.
    #[arg(long, default_value = "trueLabel")]
    label: String,
    /// Obs column with the predictions.
    #[arg(long, default_value = "scfm_prediction")]
    prediction: String,
    /// Score only cells whose obs column `split` (e.g. scfm_split) equals this value.
    #[arg(long)]
    only: Option<String>,
    /// The obs column `--only` refers to.
    #[arg(long, default_value = "scfm_split")]
    split: String,
    /// Write the report and `confusion.png` into this folder (default: print the report).
    #[arg(short, long)]
    out: Option<PathBuf>,
}

/// The arguments of `scfm convert`.
#[derive(clap::Args)]
struct ConvertArgs {
    /// Input files (h5ad, Cell Ranger .h5, Matrix Market folders, scfm corpora).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output corpus folder.
    #[arg(short, long)]
    output: PathBuf,
    /// Matrix of h5ad inputs: X, raw, counts (raw.X when present, else X) or layer:NAME.
    #[arg(long, default_value = "X")]
    matrix: MatrixSelector,
    /// Keep only cells matching this obs filter, e.g. 'tissue == "blood" and disease == "normal"'.
    #[arg(long)]
    filter: Option<String>,
    /// Comma-separated obs columns to keep (default: all; "none" for none).
    #[arg(long)]
    obs: Option<String>,
    /// Cells per shard file.
    #[arg(long, default_value_t = 100_000)]
    shard_cells: usize,
    /// Shard format: arrow (Arrow IPC) or parquet (with the `parquet` feature).
    #[arg(long, default_value = "arrow")]
    format: ShardFormat,
    /// Cells read per step (bounds memory).
    #[arg(long, default_value_t = 4096)]
    chunk_cells: usize,
    /// Refuse negative values (use for raw counts).
    #[arg(long)]
    require_counts: bool,
}

/// The arguments of `scfm tokenize`.
#[derive(clap::Args)]
struct TokenizeArgs {
    /// Input: h5ad, Cell Ranger .h5, Matrix Market folder or scfm corpus (raw counts).
    input: PathBuf,
    /// Output dataset folder.
    #[arg(short, long)]
    output: PathBuf,
    /// The tokenization scheme.
    #[arg(long, value_enum, default_value = "geneformer-v2")]
    scheme: SchemeKind,
    /// The model's upstream vocabulary: a folder holding the upstream files (Geneformer
    /// dictionaries, scGPT vocab.json, scBERT gene list, scFoundation gene index) or the file.
    #[arg(long)]
    vocab: PathBuf,
    /// Comma-separated obs columns to carry into the dataset.
    #[arg(long)]
    obs: Option<String>,
    /// Matrix of h5ad inputs: counts (raw.X when present, else X), X, raw or layer:NAME.
    #[arg(long, default_value = "counts")]
    matrix: MatrixSelector,
    /// scGPT: longest sequence including <cls> (longer cells are sub-sampled, seeded).
    #[arg(long, default_value_t = 1200)]
    max_len: usize,
    /// scGPT: value of the <cls> position (-2 on the zero-shot path, 0 in the fine-tuning
    /// tutorials).
    #[arg(long, default_value_t = -2.0, allow_negative_numbers = true)]
    cls_value: f32,
    /// scGPT: include unexpressed vocabulary genes (integration tutorial).
    #[arg(long)]
    include_zero_genes: bool,
    /// scGPT: seed of sub-sampling and of the numpy-legacy tie-break.
    #[arg(long, default_value_t = 0)]
    seed: u32,
    /// scGPT binning ties: helical (per-cell PCG64(42)), numpy-legacy (upstream's stream, cells
    /// in file order) or deterministic (highest bin).
    #[arg(long, value_enum, default_value_t = TieMode::Helical)]
    ties: TieMode,
    /// xTrimoGene target depth: t<v>, f<r> or a<d>.
    #[arg(long, default_value = "t4")]
    target: DepthTarget,
    /// Unknown genes: skip (count and leave out) or error.
    #[arg(long, value_enum, default_value_t = UnknownGenePolicy::Skip)]
    unknown_genes: UnknownGenePolicy,
    /// GENCODE gene table (Ensembl id → symbol, e.g. gencode_v48_genes_homo_sapiens.csv.gz)
    /// for scGPT/scBERT/xTrimoGene on inputs that have Ensembl ids only.
    #[arg(long)]
    gene_table: Option<PathBuf>,
    /// Tokenizer threads (default: one per core); the output does not depend on it.
    #[arg(long)]
    threads: Option<usize>,
}

/// The arguments of `scfm embed`.
#[derive(clap::Args)]
struct EmbedArgs {
    /// Input: h5ad, Cell Ranger .h5, Matrix Market folder or scfm corpus (raw counts).
    input: PathBuf,
    /// Output folder.
    #[arg(short, long)]
    output: PathBuf,
    /// The model's family.
    #[arg(long, value_enum)]
    model: FamilyKind,
    /// The checkpoint (Geneformer: folder with config.json + model.safetensors or
    /// pytorch_model.bin; scGPT: folder with args.json + vocab.json + best_model.pt; scBERT:
    /// the .pth or a .safetensors state dict; xTrimoGene: models.ckpt).
    #[arg(long)]
    checkpoint: PathBuf,
    /// The tokenizer's files the checkpoint does not hold: Geneformer's dictionaries'
    /// folder (token_dictionary_gc*.pkl, …); scBERT's gene list (vocab_gene2vec_16906.pkl
    /// or a text list); xTrimoGene's OS_scRNA_gene_index.19264.tsv (a folder holding the
    /// file also works). scGPT reads its checkpoint folder's vocab.json.
    #[arg(long, visible_aliases = ["genes", "dictionaries"])]
    vocab: Option<PathBuf>,
    /// xTrimoGene: the weight set of models.ckpt, cell (default) or rde.
    #[arg(long, default_value = "cell")]
    weights: Weights,
    /// xTrimoGene: the target read depth T: t<v> (fixed), f<r> or a<d> (default t4).
    #[arg(long, default_value = "t4")]
    target: DepthTarget,
    /// Geneformer: v1 or v2 (default: v1 for checkpoints with 2,048 positions, else v2).
    #[arg(long, value_enum)]
    version: Option<GeneformerVersion>,
    /// mean or cls (default: Geneformer and scBERT mean, scGPT cls); xTrimoGene: all
    /// (S, T, max, mean; default) or max.
    #[arg(long, value_enum)]
    pooling: Option<Pooling>,
    /// L2-normalise embeddings: true or false (default: scGPT true, the others false).
    #[arg(long)]
    l2_normalize: Option<bool>,
    /// Geneformer layer: -1 = penultimate (upstream default), 0 = last, or a hidden-state
    /// index from 1 (first layer).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    layer: i64,
    /// Most padded tokens per forward pass (bounds memory; results do not depend on it).
    #[arg(long, default_value_t = 16_384)]
    max_batch_tokens: usize,
    /// Matrix of h5ad inputs: counts (raw.X when present, else X), X, raw or layer:NAME.
    #[arg(long, default_value = "counts")]
    matrix: MatrixSelector,
    /// GENCODE gene table (Ensembl id → symbol) for scGPT on inputs with Ensembl ids only.
    #[arg(long)]
    gene_table: Option<PathBuf>,
    /// scGPT: seed of the sub-sampling of cells with more genes than max_seq_len.
    #[arg(long, default_value_t = 0)]
    seed: u32,
    /// Table format: arrow, or parquet where scfm is built with the `parquet` feature.
    #[arg(long, value_enum, default_value = "arrow")]
    format: OutputFormat,
    /// cpu, cuda (feature `cuda`) or wgpu (feature `wgpu`).
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
    /// fp32, or bf16 weights and activations (cuda only; faster, embeddings differ from
    /// fp32 at the 1e-2 relative level).
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    precision: Precision,
}

/// The arguments of `scfm inspect`.
#[derive(clap::Args)]
struct InspectArgs {
    /// An h5ad file, Cell Ranger .h5, Matrix Market folder or scfm corpus.
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Evaluates `$body` with the type `$b` set to the autodiff backend that `--backend` names and
/// `$devices` to the devices that `--devices` lists on it ([`TrainOn`]).
macro_rules! on_train_backend {
    ($on:expr, |$b:ident, $devices:ident| $body:expr) => {{
        let TrainOn { backend, devices: indices, .. } = $on;
        match backend {
            Backend::Cpu => {
                type $b = scfm::backend::CpuTrain;
                if indices.iter().any(|&i| i != 0) {
                    anyhow::bail!("--backend cpu has one device: --devices 0");
                }
                let $devices = vec![Default::default(); indices.len()];
                $body
            }
            #[cfg(feature = "cuda")]
            Backend::Cuda => {
                type $b = scfm::backend::CudaTrain;
                let $devices: Vec<_> = indices.iter().map(|&i| scfm::burn::backend::cuda::CudaDevice::new(i)).collect();
                $body
            }
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => {
                type $b = scfm::backend::WgpuTrain;
                let $devices: Vec<_> =
                    indices.iter().map(|&i| scfm::burn::backend::wgpu::WgpuDevice::DiscreteGpu(i)).collect();
                $body
            }
            #[allow(unreachable_patterns)]
            other => anyhow::bail!("--backend {other:?} is not in this build: cpu, or cuda/wgpu with those features"),
        }
    }};
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    // Every tensor op on the CPU backend allocates its result: keep freed memory for reuse.
    scfm::models::cpu::keep_freed_memory();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The cause chain, without a backtrace: these are messages about the user's files.
            eprintln!("error: {}", cause_chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `e` and its causes joined by ": ", leaving out a cause whose message the previous one
/// already ends with (the libraries' I/O errors name their file and repeat the OS message).
fn cause_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let cause = cause.to_string();
        if out.ends_with(&cause) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&cause);
    }
    out
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Convert(args) => convert_cmd(args),
        Command::Tokenize(args) => tokenize_cmd(args),
        Command::Embed(args) => embed_cmd(args),
        Command::Finetune(args) => finetune_cmd(args),
        Command::Pretrain(args) => pretrain_cmd(args),
        Command::Eval(args) => eval_cmd(args),
        Command::Inspect(args) => inspect_cmd(args),
    }
}

/// `scfm convert`.
fn convert_cmd(args: ConvertArgs) -> Result<()> {
    let ConvertArgs { inputs, output, matrix, filter, obs, shard_cells, format, chunk_cells, require_counts } = args;
    let filter = filter.map(|f| ObsFilter::parse(&f)).transpose()?;
    let obs = match obs.as_deref() {
        None => ObsSelection::All,
        Some("none") => ObsSelection::None,
        Some(cols) => ObsSelection::Columns(cols.split(',').map(|c| c.trim().to_owned()).collect()),
    };
    let opts = ConvertOptions { matrix, obs, filter, shard_cells, format, chunk_cells, require_counts };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} cells  {per_sec}  ETA {eta}  {msg}")
            .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let manifest = convert(&inputs, &output, &opts, &mut |p| {
        bar.set_length(p.cells_total as u64);
        bar.set_position(p.cells_done as u64);
        bar.set_message(format!("{} kept", p.cells_kept));
    })
    .with_context(|| format!("converting into {}", output.display()))?;
    bar.finish_and_clear();
    println!(
        "wrote {} cells × {} genes ({} non-zeros) in {} shard(s) to {}",
        manifest.n_cells,
        manifest.genes.len(),
        manifest.nnz,
        manifest.shards.len(),
        output.display()
    );
    Ok(())
}

/// `scfm tokenize`.
fn tokenize_cmd(args: TokenizeArgs) -> Result<()> {
    let TokenizeArgs {
        input,
        output,
        scheme,
        vocab,
        obs,
        matrix,
        max_len,
        cls_value,
        include_zero_genes,
        seed,
        ties,
        target,
        unknown_genes,
        gene_table,
        threads,
    } = args;
    let mut sequence = ScGptSequence::zero_shot(0);
    sequence.max_len = max_len;
    sequence.seed = seed;
    sequence.cls_value = cls_value;
    sequence.include_zero_genes = include_zero_genes;
    let scheme = TokenizerSpec::named(scheme, &vocab, &SchemeOptions { sequence, ties, target })?;
    let opts = TokenizeOptions {
        matrix,
        unknown_genes,
        gene_table,
        obs_columns: obs.map(|o| o.split(',').map(|c| c.trim().to_owned()).collect()).unwrap_or_default(),
        threads,
        ..Default::default()
    };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} cells  {per_sec}  ETA {eta}")
            .expect("valid template"),
    );
    let report = tokenize(&input, &output, &scheme, &opts, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .with_context(|| format!("tokenizing {}", input.display()))?;
    bar.finish_and_clear();
    println!(
        "{}: tokenized {} of {} cells ({} of {} genes mapped) into {}",
        report.scheme,
        report.cells_out,
        report.cells_in,
        report.genes_mapped,
        report.genes_in,
        output.display()
    );
    Ok(())
}

/// `scfm embed`.
fn embed_cmd(args: EmbedArgs) -> Result<()> {
    let EmbedArgs {
        input,
        output,
        model,
        checkpoint,
        vocab,
        weights,
        target,
        version,
        pooling,
        l2_normalize,
        layer,
        max_batch_tokens,
        matrix,
        gene_table,
        seed,
        format,
        backend,
        precision,
    } = args;
    if weights == Weights::Gene {
        anyhow::bail!("--weights gene is models.ckpt's decoder path, not cell embeddings: use cell or rde");
    }
    let model = EmbedModel { vocab, version, weights, depth_target: target, ..EmbedModel::new(model, checkpoint) };
    let opts = EmbedOptions {
        matrix,
        gene_table,
        max_batch_tokens,
        pooling,
        l2_normalize,
        geneformer_layer: match layer {
            -1 => EmbeddingLayer::Penultimate,
            0 => EmbeddingLayer::Last,
            i if i > 0 => EmbeddingLayer::Index(i as usize),
            other => anyhow::bail!("--layer {other}: use -1, 0 or a positive index"),
        },
        seed,
        ..Default::default()
    };
    match (backend, precision) {
        (Backend::Cpu, Precision::Fp32) => {
            embed_with::<scfm::backend::Cpu>(&model, opts, &input, &output, format, Default::default())?
        }
        #[cfg(feature = "cuda")]
        (Backend::Cuda, Precision::Fp32) => {
            embed_with::<scfm::backend::Cuda>(&model, opts, &input, &output, format, Default::default())?
        }
        #[cfg(feature = "cuda")]
        (Backend::Cuda, Precision::Bf16) => {
            embed_with::<scfm::backend::CudaBf16>(&model, opts, &input, &output, format, Default::default())?
        }
        #[cfg(feature = "wgpu")]
        (Backend::Wgpu, Precision::Fp32) => {
            embed_with::<scfm::backend::Wgpu>(&model, opts, &input, &output, format, Default::default())?
        }
        (backend, precision) => anyhow::bail!(
            "--backend {backend:?} --precision {precision:?} is not in this build: cpu fp32, or cuda fp32|bf16 and wgpu fp32 with those features"
        ),
    }
    Ok(())
}

/// `scfm finetune`.
fn finetune_cmd(args: FinetuneArgs) -> Result<()> {
    let FinetuneArgs {
        input,
        out,
        family,
        vocab,
        label,
        test,
        validation_fraction,
        seed,
        size,
        pretrain_epochs,
        epochs,
        batch_size,
        lr,
        pooling,
        checkpoint_every,
        init,
        freeze_layers,
        train_on,
    } = args;
    use scfm::annotate::{AnnotateOptions, Stage, annotate_data_parallel};
    let mut opts = AnnotateOptions::with_data_dir(std::path::Path::new("."), &out);
    opts.family = scfm::family::Family::new(family, vocab);
    opts.label = label;
    opts.test = test;
    opts.validation_fraction = validation_fraction;
    opts.seed = seed;
    opts.model = size.size();
    opts.pretrain_epochs = pretrain_epochs;
    opts.finetune_epochs = epochs;
    opts.batch_size = batch_size;
    opts.finetune_lr = lr;
    opts.checkpoint_every = checkpoint_every;
    opts.init = init;
    opts.freeze_layers = freeze_layers;
    opts.precision = train_on.precision();
    opts.pooling = pooling;
    let bar =
        ProgressBar::new(0).with_style(ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} steps  ETA {eta}")?);
    let report = on_train_backend!(train_on, |B, devices| {
        annotate_data_parallel::<B>(&input, &opts, &devices, &mut |stage| match stage {
            Stage::Start(name) => bar.set_message(name.to_string()),
            Stage::Step(name, s) => {
                bar.set_length(s.total_steps);
                bar.set_position(s.step);
                bar.set_message(format!("{name} loss {:.3}", s.loss));
            }
        })?
    });
    bar.finish_and_clear();
    let v = &report.validation;
    eprintln!(
        "validation: model accuracy {:.3} macro-F1 {:.3}; baseline accuracy {:.3} macro-F1 {:.3}",
        v.model.accuracy, v.model.macro_f1, v.baseline.accuracy, v.baseline.macro_f1
    );
    println!("{}", out.join("report.json").display());
    Ok(())
}

/// `scfm pretrain`.
fn pretrain_cmd(args: PretrainArgs) -> Result<()> {
    let PretrainArgs {
        input,
        out,
        family,
        vocab,
        seed,
        size,
        epochs,
        batch_size,
        lr,
        checkpoint_every,
        stop_after,
        resume,
        train_on,
    } = args;
    use scfm::pretrain::{PretrainOptions, pretrain_data_parallel};
    // `<family>-masked`: the masked-value objective of a family that has two (scGPT).
    let (name, masked) = family.strip_suffix("-masked").map_or((family.as_str(), false), |f| (f, true));
    let family = scfm::family::Family::named(name, vocab)?;
    let mut opts = PretrainOptions::new(family, &out);
    opts.scgpt_generative = !masked;
    opts.model = size.size();
    opts.train.seed = seed;
    opts.train.epochs = epochs;
    opts.train.batch_size = batch_size;
    opts.train.lr = lr;
    opts.train.checkpoint_every = Some(checkpoint_every);
    opts.train.stop_after = stop_after;
    opts.train.precision = train_on.precision();
    opts.resume = resume;
    let bar = ProgressBar::new(0)
        .with_style(ProgressStyle::with_template("pretrain {msg} {bar:30} {pos}/{len} steps  ETA {eta}")?);
    let report = on_train_backend!(train_on, |B, devices| {
        pretrain_data_parallel::<B>(&input, &opts, &devices, &mut |s| {
            bar.set_length(s.total_steps);
            bar.set_position(s.step);
            bar.set_message(format!("loss {:.3}", s.loss));
        })?
    });
    bar.finish_and_clear();
    eprintln!(
        "{} cells, {} steps: loss {:.3} -> {:.3}",
        report.cells, report.steps, report.first_loss, report.final_loss
    );
    println!("{}", report.checkpoint.display());
    Ok(())
}

/// `scfm eval`.
fn eval_cmd(args: EvalArgs) -> Result<()> {
    let EvalArgs { input, label, prediction, only, split, out } = args;
    let subset = only.as_deref().map(|value| (split.as_str(), value));
    let report = scfm::score::score_obs_predictions(&input, &label, &prediction, subset)?;
    match out {
        Some(dir) => {
            scfm::score::write_score(&report, &dir, &prediction)?;
            eprintln!("{} cells: accuracy {:.3}, macro-F1 {:.3}", report.cells, report.accuracy, report.macro_f1);
        }
        None => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(())
}

/// `scfm inspect`.
fn inspect_cmd(args: InspectArgs) -> Result<()> {
    let InspectArgs { file, json } = args;
    let s = inspect(&file)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        println!("{}: {} ({} cells × {} genes)", s.path.display(), s.format, s.n_cells, s.n_genes);
        println!(
            "genes: {:?} ids, e.g. {}{}",
            s.gene_id_kind,
            s.first_genes.join(", "),
            if s.has_gene_symbols { " (symbols available)" } else { "" }
        );
        println!("matrices:");
        for m in &s.matrices {
            let c = &m.counts;
            println!(
                "  {:<16} {:<5} {:<7} {}×{}{}  {} (first {} cells: min {}, max {})",
                m.name,
                m.layout.map(|l| format!("{l:?}")).unwrap_or_default(),
                m.dtype,
                m.n_cells,
                m.n_genes,
                m.stored_nnz.map(|n| format!(", {n} stored")).unwrap_or_default(),
                if c.looks_like_counts() { "integer counts" } else { "not raw counts" },
                c.cells_checked,
                c.min.map_or("-".into(), |v| v.to_string()),
                c.max.map_or("-".into(), |v| v.to_string())
            );
        }
        if let Some(c) = &s.counts_matrix {
            println!("raw counts are read from: {c} (--matrix counts)");
        }
        println!("obs columns ({}):", s.obs_columns.len());
        for c in &s.obs_columns {
            println!("  {:<32} {}", c.name, c.arrow_type);
        }
        if let Some(cxg) = &s.cellxgene {
            println!(
                "CELLxGENE schema{}: {} ontology columns, feature_name {}",
                cxg.schema_version.as_deref().map(|v| format!(" {v}")).unwrap_or_default(),
                cxg.ontology_columns.len(),
                if cxg.has_feature_name { "present" } else { "absent" }
            );
        }
    }
    Ok(())
}

/// `scfm embed` on one backend.
fn embed_with<B: scfm::burn::tensor::backend::Backend>(
    model: &EmbedModel,
    opts: EmbedOptions,
    input: &std::path::Path,
    output: &std::path::Path,
    format: OutputFormat,
    device: B::Device,
) -> Result<()> {
    let embedder = Embedder::<B>::prepare(model, opts, &device).context("loading the model")?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} cells  {per_sec}  ETA {eta}")
            .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let cells = embedder
        .embed(input, &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .with_context(|| format!("embedding {}", input.display()))?;
    bar.finish_and_clear();
    let out = write_outputs(&cells, input, output, format)?;
    let r = &cells.report;
    println!(
        "{}: {} cells → {}-dim embeddings ({} of {} genes mapped, {} cells without tokens) in {}{}",
        r.model,
        r.cells,
        r.dim,
        r.genes_mapped,
        r.genes_in,
        r.cells_without_tokens,
        out.table.display(),
        out.h5ad.map(|h| format!(" and {} (obsm[\"{}\"])", h.display(), embedder.obsm_key())).unwrap_or_default()
    );
    Ok(())
}
