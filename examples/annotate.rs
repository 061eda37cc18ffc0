//! Cell-type annotation on real data: the FACS-sorted PBMC training set (2,800 cells, 7 sorted
//! types) → seeded stratified split → Geneformer V2 rank-value tokens → a short masked-LM
//! pretraining of a small Geneformer on the training cells → fine-tuning → accuracy and
//! macro-F1 next to a logistic-regression baseline on the same split → `report.json`,
//! `predictions.h5ad`, confusion-matrix and embedding PNGs.
//!
//! `--family scgpt|scbert|xtrimogene` runs the same stages with that family (its tokenizer
//! files from the shared data folder, or `--vocab FILE`). scBERT and xTrimoGene read their
//! whole gene panels (16,907 and 19,266 positions), so on this 2-core CPU they take hours
//! with the default size and epochs; the default Geneformer takes minutes.
//!
//! ```text
//! cargo run --release --example annotate [-- [INPUT.h5ad] [--out DIR] [--label COLUMN]
//!     [--test FILE.h5ad] [--seed N] [--d-model N] [--layers N] [--heads N] [--max-len N]
//!     [--pretrain-epochs N] [--epochs N] [--batch-size N] [--lr X]
//!     [--family geneformer|scgpt|scbert|xtrimogene] [--vocab FILE]
//!     [--init PRETRAINED] [--freeze-layers N]]
//! ```
//!
//! `--init` starts from a pretrained model of the family (an upstream release, or the output
//! of `scfm pretrain`) instead of a fresh one:
//!
//! ```text
//! cargo run --release -p scfm-cli -- pretrain ../shared/data/h5ad/pbmc_sorted_3k5_train.h5ad \
//!     -o out/pre --vocab ../shared/data/vocab/geneformer --epochs 2
//! cargo run --release --example annotate -- --init out/pre --pretrain-epochs 0
//! ```

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use scfm::annotate::{AnnotateOptions, Family, FamilyKind, Stage, annotate};
use scfm::backend::CpuTrain;

/// The example's options; every one defaults to `AnnotateOptions::with_data_dir`'s value.
#[derive(Parser)]
#[command(about = "Cell-type annotation of the sorted PBMCs with a small model and a baseline")]
struct Args {
    /// Labelled h5ad (default: the shared data's pbmc_sorted_3k5_train.h5ad).
    input: Option<PathBuf>,
    /// Output folder.
    #[arg(long, default_value = "out/annotate")]
    out: PathBuf,
    /// Obs column with the cell types.
    #[arg(long)]
    label: Option<String>,
    /// Another labelled h5ad (same genes) to evaluate on.
    #[arg(long)]
    test: Option<PathBuf>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    d_model: Option<usize>,
    #[arg(long)]
    layers: Option<usize>,
    #[arg(long)]
    heads: Option<usize>,
    #[arg(long)]
    d_ff: Option<usize>,
    /// Tokens per cell.
    #[arg(long)]
    max_len: Option<usize>,
    #[arg(long)]
    pretrain_epochs: Option<usize>,
    /// Fine-tuning epochs.
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak fine-tuning learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Start from a pretrained model of the family (an upstream release or `scfm pretrain`
    /// output).
    #[arg(long)]
    init: Option<PathBuf>,
    /// Keep the embeddings and the first N layers fixed while fine-tuning.
    #[arg(long)]
    freeze_layers: Option<usize>,
    /// The model family.
    #[arg(long, value_enum, default_value_t)]
    family: FamilyKind,
    /// The family's tokenizer file (default: the one in the shared data folder).
    #[arg(long)]
    vocab: Option<PathBuf>,
}

fn main() -> Result<()> {
    // Reuse freed memory instead of faulting in fresh pages for every tensor (CPU runs).
    scfm::models::cpu::keep_freed_memory();
    let data = std::env::var_os("SCFM_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let args = Args::parse();
    let input = args.input.unwrap_or_else(|| data.join("h5ad/pbmc_sorted_3k5_train.h5ad"));
    let mut opts = AnnotateOptions::with_data_dir(&data, &args.out);
    let m = &mut opts.model;
    let set = |to: &mut usize, from: Option<usize>| *to = from.unwrap_or(*to);
    set(&mut m.d_model, args.d_model);
    set(&mut m.n_layers, args.layers);
    set(&mut m.n_heads, args.heads);
    set(&mut m.d_ff, args.d_ff);
    set(&mut m.max_len, args.max_len);
    set(&mut opts.pretrain_epochs, args.pretrain_epochs);
    set(&mut opts.finetune_epochs, args.epochs);
    set(&mut opts.batch_size, args.batch_size);
    set(&mut opts.freeze_layers, args.freeze_layers);
    opts.label = args.label.unwrap_or(opts.label);
    opts.test = args.test;
    opts.seed = args.seed.unwrap_or(opts.seed);
    opts.finetune_lr = args.lr.unwrap_or(opts.finetune_lr);
    opts.init = args.init;
    opts.family = match args.vocab {
        Some(file) => Family::new(args.family, file),
        None => Family::in_data_dir(args.family, &data),
    };
    let family = args.family;
    println!("input {}  →  {}  ({family})", input.display(), opts.out.display());
    let started = std::time::Instant::now();
    let bar = ProgressBar::hidden();
    let device = Default::default();
    let report = annotate::<CpuTrain>(&input, &opts, &device, &mut |stage| match stage {
        Stage::Start(name) => {
            bar.finish_and_clear();
            println!("[{:>5.0}s] {name}", started.elapsed().as_secs_f64());
        }
        Stage::Step(name, s) => {
            if bar.is_hidden() || bar.length() != Some(s.total_steps) {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                bar.set_length(s.total_steps);
                bar.set_style(
                    ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} steps  {per_sec}  ETA {eta}")
                        .expect("template"),
                );
            }
            bar.set_message(format!("{name} loss {:.3}", s.loss));
            bar.set_position(s.step);
        }
    })?;
    bar.finish_and_clear();
    println!(
        "{} train / {} validation cells, {} classes, {} genes mapped, {} parameters",
        report.train_cells,
        report.validation_cells,
        report.classes.len(),
        report.genes_mapped,
        report.parameters
    );
    let show = |name: &str, s: &scfm::annotate::MethodScores| {
        println!("{name:<11} model    accuracy {:.3}  macro-F1 {:.3}", s.model.accuracy, s.model.macro_f1);
        println!(
            "{name:<11} baseline accuracy {:.3}  macro-F1 {:.3}  (logistic regression, log1p CP10k)",
            s.baseline.accuracy, s.baseline.macro_f1
        );
    };
    show("validation", &report.validation);
    if let Some(t) = &report.test {
        show("test", t);
    }
    println!(
        "embedding (validation): kNN {:.3}  ARI {:.3}  NMI {:.3}  silhouette {:.3}",
        report.validation_embedding.knn_accuracy,
        report.validation_embedding.ari,
        report.validation_embedding.nmi,
        report.validation_embedding.silhouette
    );
    for f in &report.files {
        println!("wrote {}", f.display());
    }
    println!("total {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
