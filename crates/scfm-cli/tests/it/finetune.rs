//! `scfm finetune` and `scfm eval` as users run them, on the real 490-cell subset.

use std::process::Command;

#[test]
fn finetune_then_eval_agree_on_the_validation_scores() {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_scfm"))
        .args(["finetune"])
        .arg(crate::data("h5ad/pbmc_sorted_train_490.h5ad"))
        .arg("--out")
        .arg(out.path())
        .arg("--vocab")
        .arg(crate::data("vocab/geneformer"))
        .args(["--d-model", "32", "--layers", "1", "--heads", "2", "--d-ff", "64", "--max-len", "48"])
        .args(["--pretrain-epochs", "1", "--epochs", "2", "--lr", "2e-3"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["validation_cells"], 98);
    assert_eq!(report["classes"].as_array().unwrap().len(), 7);
    for f in ["confusion_model.png", "confusion_baseline.png", "embedding_pca.png", "predictions.h5ad"] {
        assert!(out.path().join(f).is_file(), "{f} missing");
    }
    // The baseline on this split is strong; the tiny model is only checked for sanity here.
    assert!(report["validation"]["baseline"]["accuracy"].as_f64().unwrap() > 0.8);

    let eval_dir = out.path().join("eval");
    let eval = Command::new(env!("CARGO_BIN_EXE_scfm"))
        .arg("eval")
        .arg(out.path().join("predictions.h5ad"))
        .args(["--only", "validation", "--out"])
        .arg(&eval_dir)
        .output()
        .unwrap();
    assert!(eval.status.success(), "{}", String::from_utf8_lossy(&eval.stderr));
    let scored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(eval_dir.join("eval.json")).unwrap()).unwrap();
    assert_eq!(scored["cells"], 98);
    assert_eq!(scored["accuracy"], report["validation"]["model"]["accuracy"]);
    assert_eq!(scored["macro_f1"], report["validation"]["model"]["macro_f1"]);

    // A missing label column is a clear error, not a panic.
    let bad = Command::new(env!("CARGO_BIN_EXE_scfm"))
        .arg("eval")
        .arg(out.path().join("predictions.h5ad"))
        .args(["--label", "no_such_column"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no_such_column"));
}

/// Runs `scfm <args>` on the 490 cells with a tiny model.
fn scfm(command: &str, out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_scfm"))
        .arg(command)
        .arg(crate::data("h5ad/pbmc_sorted_train_490.h5ad"))
        .arg("--out")
        .arg(out)
        .args(["--d-model", "32", "--layers", "2", "--heads", "2", "--d-ff", "64", "--max-len", "48"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn finetune_starts_from_a_pretrained_model_and_refuses_one_that_does_not_fit() {
    let dictionaries = crate::data("vocab/geneformer");
    let dictionaries = dictionaries.to_str().unwrap();
    let pre = tempfile::tempdir().unwrap();
    let run = scfm("pretrain", pre.path(), &["--vocab", dictionaries, "--stop-after", "6"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));

    let out = tempfile::tempdir().unwrap();
    let init = pre.path().to_str().unwrap();
    let flags = ["--vocab", dictionaries, "--init", init, "--pretrain-epochs", "0", "--epochs", "1"];
    // Fine-tuned in mixed precision (bf16 passes, fp32 weights), part of the model frozen.
    let run = scfm("finetune", out.path(), &[&flags[..], &["--freeze-layers", "1", "--precision", "bf16"]].concat());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["options"]["init"], init);
    assert_eq!(report["options"]["freeze_layers"], 1);
    assert_eq!(report["options"]["precision"], "bf16");
    assert!(report["validation"]["model"]["accuracy"].as_f64().is_some_and(f64::is_finite), "{report}");

    // A Hugging Face Geneformer with another vocabulary (a 64-token parity model).
    let tiny = crate::data("parity/models/geneformer/v2_tiny");
    let bad = scfm("finetune", out.path(), &["--vocab", dictionaries, "--init", tiny.to_str().unwrap()]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("vocabulary of 64 tokens") && stderr.contains("20275"), "{stderr}");
}
