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

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use scfm::annotate::{AnnotateOptions, Family, FamilyKind, Stage, annotate};
use scfm::backend::CpuTrain;

fn main() -> Result<()> {
    // Reuse freed memory instead of faulting in fresh pages for every tensor (CPU runs).
    scfm::models::cpu::keep_freed_memory();
    let data = std::env::var_os("SCFM_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let mut input = data.join("h5ad/pbmc_sorted_3k5_train.h5ad");
    let mut opts = AnnotateOptions::with_data_dir(&data, &PathBuf::from("out/annotate"));
    let mut args = std::env::args().skip(1);
    let (mut family, mut vocab) = ("geneformer".to_owned(), None::<PathBuf>);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--out" => opts.out = value()?.into(),
            "--label" => opts.label = value()?,
            "--test" => opts.test = Some(value()?.into()),
            "--seed" => opts.seed = value()?.parse()?,
            "--d-model" => opts.model.d_model = value()?.parse()?,
            "--layers" => opts.model.n_layers = value()?.parse()?,
            "--heads" => opts.model.n_heads = value()?.parse()?,
            "--d-ff" => opts.model.d_ff = value()?.parse()?,
            "--max-len" => opts.model.max_len = value()?.parse()?,
            "--pretrain-epochs" => opts.pretrain_epochs = value()?.parse()?,
            "--epochs" => opts.finetune_epochs = value()?.parse()?,
            "--batch-size" => opts.batch_size = value()?.parse()?,
            "--lr" => opts.finetune_lr = value()?.parse()?,
            "--init" => opts.init = Some(value()?.into()),
            "--freeze-layers" => opts.freeze_layers = value()?.parse()?,
            "--family" => family = value()?,
            "--vocab" => vocab = Some(value()?.into()),
            other if !other.starts_with('-') => input = other.into(),
            other => bail!("unknown option {other}"),
        }
    }
    let kind: FamilyKind = family.parse()?;
    opts.family = match vocab {
        Some(file) => Family::new(kind, file),
        None => Family::in_data_dir(kind, &data),
    };
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
