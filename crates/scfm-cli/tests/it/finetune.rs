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
        .arg("--dictionaries")
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
