//! `scfm finetune` and `scfm pretrain` with the scGPT, scBERT and xTrimoGene families on the
//! real 490-cell subset: fresh models, upstream releases (the tiny parity checkpoints, loaded
//! exactly as shipped) and checkpoints of ours as starting points, and the typed errors of
//! models that do not fit the tokenizer's files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use scfm::io::H5adSource;

use crate::data;

/// `scfm <command> <490 cells> --out OUT <args>`.
fn scfm(command: &str, out: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scfm"))
        .arg(command)
        .arg(data("h5ad/pbmc_sorted_train_490.h5ad"))
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 paths")
}

fn ok(run: &Output) {
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
}

fn failure(run: &Output) -> String {
    assert!(!run.status.success(), "expected a failure");
    String::from_utf8_lossy(&run.stderr).into_owned()
}

fn json(path: PathBuf) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Checks what every fine-tuning run writes: scores for the cells of 7 types (all 490 cells,
/// 98 held out, unless cells without any model input were excluded), the PNGs, and the
/// embeddings under `X_scfm_<family>` in the h5ad copy: finite for the cells used, NaN for the
/// excluded ones.
fn check_outputs(out: &Path, family: &str, dim: usize) -> serde_json::Value {
    let report = json(out.join("report.json"));
    assert_eq!(report["options"]["family"]["name"], family);
    let count = |k: &str| report[k].as_u64().unwrap() as usize;
    let (used, excluded) = (count("train_cells") + count("validation_cells"), count("excluded_cells"));
    assert_eq!(used + excluded, 490);
    if excluded == 0 {
        assert_eq!(count("validation_cells"), 98);
    }
    assert_eq!(report["classes"].as_array().unwrap().len(), 7);
    assert_eq!(report["embedding_dim"], dim);
    assert!(report["finetune_final_loss"].as_f64().unwrap().is_finite());
    for f in ["confusion_model.png", "confusion_baseline.png", "embedding_pca.png"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let copy = H5adSource::open(out.join("predictions.h5ad")).unwrap();
    let emb = copy.read_obsm(&format!("X_scfm_{family}"), 0..490).unwrap();
    assert_eq!(emb.dim, dim);
    let finite = emb.values.chunks(dim).filter(|e| e.iter().all(|v| v.is_finite())).count();
    let nan = emb.values.chunks(dim).filter(|e| e.iter().all(|v| v.is_nan())).count();
    assert_eq!((finite, nan), (used, excluded));
    report
}

const TINY: [&str; 10] = ["--d-model", "32", "--layers", "1", "--heads", "2", "--d-ff", "64", "--max-len", "48"];

#[test]
fn scgpt_fine_tunes_fresh_and_from_the_released_layout() {
    // A fresh model over the CELLxGENE vocabulary, generative pretraining first.
    let fresh = tempfile::tempdir().unwrap();
    let vocab = data("vocab/scgpt/default_cellxgene_vocab.json");
    let flags = ["--family", "scgpt", "--vocab", s(&vocab), "--pretrain-epochs", "1", "--epochs", "2"];
    ok(&scfm("finetune", fresh.path(), &[&flags[..], &TINY].concat()));
    let r = check_outputs(fresh.path(), "scgpt", 32);
    assert!(r["pretrain_final_loss"].as_f64().unwrap().is_finite());

    // The released layout (args.json, vocab.json, best_model.pt), tokenized with its own
    // vocabulary; its shape (32 wide, 2 layers) replaces the size options.
    let tiny = data("parity/models/scgpt/pretrained_tiny");
    let own = tiny.join("vocab.json");
    let released = tempfile::tempdir().unwrap();
    let flags = ["--family", "scgpt", "--vocab", s(&own), "--init", s(&tiny), "--epochs", "1", "--freeze-layers", "1"];
    ok(&scfm("finetune", released.path(), &flags));
    let r = check_outputs(released.path(), "scgpt", 32);
    assert_eq!(r["options"]["freeze_layers"], 1);

    // The same model with another vocabulary is refused before any work.
    let bad = scfm("finetune", released.path(), &["--family", "scgpt", "--vocab", s(&vocab), "--init", s(&tiny)]);
    let stderr = failure(&bad);
    assert!(stderr.contains("tokenize with the model's own vocab.json"), "{stderr}");
}

#[test]
fn xtrimogene_fine_tunes_the_release_and_our_pretrained_model() {
    // The tiny scFoundation checkpoint reads the first 60 genes of the 19,264-gene index (its
    // meta.json lists them); write that panel in the index's own format.
    let tiny = data("parity/models/scfoundation/mae_autobin_tiny");
    let names: Vec<String> = serde_json::from_value(json(tiny.join("meta.json"))["genes"]["names"].clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let panel = dir.path().join("genes60.tsv");
    let rows: Vec<String> = names.iter().enumerate().map(|(i, g)| format!("{g}\t{i}")).collect();
    std::fs::write(&panel, format!("gene_name\tindex\n{}\n", rows.join("\n"))).unwrap();

    // The release ("cell" weights: encoder 32 wide), with read-depth-aware pretraining first.
    let released = dir.path().join("released");
    let ckpt = tiny.join("models.ckpt");
    let flags = ["--family", "xtrimogene", "--vocab", s(&panel), "--init", s(&ckpt), "--pretrain-epochs", "1"];
    ok(&scfm("finetune", &released, &[&flags[..], &["--epochs", "2", "--lr", "3e-3"]].concat()));
    let r = check_outputs(&released, "xtrimogene", 32);
    assert!(r["pretrain_final_loss"].as_f64().unwrap().is_finite());

    // `scfm pretrain` from scratch on the same panel, then fine-tuning from its checkpoint.
    let pre = dir.path().join("pre");
    let flags = ["--family", "xtrimogene", "--vocab", s(&panel), "--checkpoint-every", "10"];
    ok(&scfm("pretrain", &pre, &[&flags[..], &TINY].concat()));
    let p = json(pre.join("pretrain.json"));
    // Pretraining reads the same cells fine-tuning used: those with a panel gene expressed.
    let used = r["train_cells"].as_u64().unwrap() + r["validation_cells"].as_u64().unwrap();
    assert_eq!((p["family"].as_str(), p["cells_in"].as_u64()), (Some("xtrimogene"), Some(490)));
    assert_eq!(p["cells"].as_u64(), Some(used));
    assert!(p["final_loss"].as_f64().unwrap() < p["first_loss"].as_f64().unwrap(), "{p}");
    let ours = dir.path().join("ours");
    let flags = ["--family", "xtrimogene", "--vocab", s(&panel), "--init", s(&pre), "--pretrain-epochs", "0"];
    ok(&scfm("finetune", &ours, &[&flags[..], &["--epochs", "1"]].concat()));
    check_outputs(&ours, "xtrimogene", 32);

    // The full 19,264-gene index does not fit a 60-gene model; nor does a checkpoint of
    // another family.
    let full = data("vocab/scfoundation/OS_scRNA_gene_index.19264.tsv");
    let stderr =
        failure(&scfm("finetune", &ours, &["--family", "xtrimogene", "--vocab", s(&full), "--init", s(&ckpt)]));
    assert!(stderr.contains("reads 60 genes") && stderr.contains("19264"), "{stderr}");
    let stderr = failure(&scfm("finetune", &ours, &["--family", "scbert", "--vocab", s(&panel), "--init", s(&pre)]));
    assert!(stderr.contains("xtrimogene") && stderr.contains("scbert-mlm"), "{stderr}");
}

#[test]
fn scbert_refuses_a_release_with_another_gene_panel() {
    // The tiny scBERT release reads 100 genes + the trailing slot; the real panel has 16,906.
    let tiny = data("parity/models/scbert/pretrain_tiny/panglao_pretrain.pth");
    let genes = data("vocab/scbert/scbert_panglao_genes_16906.txt");
    let out = tempfile::tempdir().unwrap();
    let stderr =
        failure(&scfm("finetune", out.path(), &["--family", "scbert", "--vocab", s(&genes), "--init", s(&tiny)]));
    assert!(stderr.contains("reads 101 positions") && stderr.contains("16906 genes"), "{stderr}");
}
