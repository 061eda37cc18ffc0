//! `scfm pretrain` as users run it, on the real 490-cell subset: scGPT generative pretraining
//! learns, a run stopped part-way and resumed writes the same final weights as an
//! uninterrupted one, resuming another family's checkpoint is refused, `--devices` splits
//! batches over devices, mixed precision (`--precision bf16`) learns as fp32 does, and
//! Geneformer pretraining streamed from a tokenized dataset equals the in-memory run.

use std::path::Path;
use std::process::{Command, Output};

fn pretrain(out: &Path, family: &str, vocab: &str, extra: &[&str]) -> Output {
    pretrain_from(&crate::data("h5ad/pbmc_sorted_train_490.h5ad"), out, family, vocab, extra)
}

fn pretrain_from(input: &Path, out: &Path, family: &str, vocab: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scfm"))
        .arg("pretrain")
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(["--family", family, "--vocab"])
        .arg(crate::data(vocab))
        .args(["--d-model", "32", "--layers", "1", "--heads", "2", "--d-ff", "64", "--max-len", "48"])
        .args(["--epochs", "1", "--batch-size", "16", "--lr", "3e-3", "--checkpoint-every", "4"])
        .args(extra)
        .output()
        .unwrap()
}

fn final_weights(out: &Path) -> Vec<u8> {
    let latest = std::fs::read_to_string(out.join("latest")).unwrap();
    std::fs::read(out.join(latest.trim()).join("model.safetensors")).unwrap()
}

#[test]
fn pretrain_learns_and_resumes_to_the_same_weights() {
    let vocab = "vocab/scgpt/default_cellxgene_vocab.json";
    let whole = tempfile::tempdir().unwrap();
    let run = pretrain(whole.path(), "scgpt", vocab, &[]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(whole.path().join("pretrain.json")).unwrap()).unwrap();
    assert_eq!(report["family"], "scgpt");
    assert_eq!(report["cells"], 490);
    assert_eq!(report["steps"], 31);
    assert!(report["final_loss"].as_f64().unwrap() < 0.8 * report["first_loss"].as_f64().unwrap(), "{report}");

    let parted = tempfile::tempdir().unwrap();
    let first = pretrain(parted.path(), "scgpt", vocab, &["--stop-after", "10"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert_eq!(std::fs::read_to_string(parted.path().join("latest")).unwrap().trim(), "step-000010");
    let rest = pretrain(parted.path(), "scgpt", vocab, &["--resume"]);
    assert!(rest.status.success(), "{}", String::from_utf8_lossy(&rest.stderr));
    assert!(final_weights(parted.path()) == final_weights(whole.path()), "resumed weights differ");

    // scBERT's masked LM over its whole gene panel, briefly.
    let scbert = tempfile::tempdir().unwrap();
    let run = pretrain(scbert.path(), "scbert", "vocab/scbert/scbert_panglao_genes_16906.txt", &["--stop-after", "3"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(scbert.path().join("pretrain.json")).unwrap()).unwrap();
    assert_eq!((report["family"].as_str(), report["steps"].as_u64()), (Some("scbert-mlm"), Some(3)));

    // The folder holds scGPT checkpoints: a Geneformer run cannot resume from them.
    let wrong = pretrain(parted.path(), "geneformer", "vocab/geneformer", &["--resume"]);
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("holds a scgpt model") && stderr.contains("geneformer-mlm is needed"), "{stderr}");

    // Data parallel from the command line: every batch split over two (CPU) devices.
    let parallel = tempfile::tempdir().unwrap();
    let geneformer = "vocab/geneformer";
    let run = pretrain(parallel.path(), "geneformer", geneformer, &["--stop-after", "2", "--devices", "0,0"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(std::fs::read_to_string(parallel.path().join("latest")).unwrap().trim(), "step-000002");
    let missing = pretrain(parallel.path(), "geneformer", geneformer, &["--devices", "1"]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("--backend cpu has one device"), "{stderr}");
}

fn report(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("pretrain.json")).unwrap()).unwrap()
}

#[test]
fn mixed_precision_pretraining_learns_like_fp32() {
    // scGPT's generative objective (value encoder, generative attention mask, MVC decoder)
    // over the whole epoch: bf16 passes with fp32 weights follow the fp32 run closely. Test
    // builds keep burn-flex's debug assertions, which reject any op mixing bf16 and fp32.
    let vocab = "vocab/scgpt/default_cellxgene_vocab.json";
    let (fp32, bf16) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for (out, precision) in [(&fp32, "fp32"), (&bf16, "bf16")] {
        let run = pretrain(out.path(), "scgpt", vocab, &["--precision", precision]);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    }
    let (a, b) = (report(fp32.path()), report(bf16.path()));
    let loss = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap();
    assert!(loss(&b, "final_loss") < 0.8 * loss(&b, "first_loss"), "{b}");
    let gap = (loss(&b, "final_loss") - loss(&a, "final_loss")).abs() / loss(&a, "final_loss");
    assert!(gap < 0.05, "bf16 {b} against fp32 {a}");
    // The checkpoint holds fp32 master weights, not the bf16 copies.
    let latest = std::fs::read_to_string(bf16.path().join("latest")).unwrap();
    let weights = std::fs::read(bf16.path().join(latest.trim()).join("model.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8_lossy(&weights[8..8 + header_len]);
    assert!(header.contains("\"F32\"") && !header.contains("BF16"), "{header}");

    // Geneformer's and scBERT's masked LMs run under bf16 too (a few steps).
    for (family, vocab) in
        [("geneformer", "vocab/geneformer"), ("scbert", "vocab/scbert/scbert_panglao_genes_16906.txt")]
    {
        let out = tempfile::tempdir().unwrap();
        let run = pretrain(out.path(), family, vocab, &["--precision", "bf16", "--stop-after", "3"]);
        assert!(run.status.success(), "{family}: {}", String::from_utf8_lossy(&run.stderr));
        assert!(report(out.path())["final_loss"].as_f64().unwrap().is_finite());
    }
}

#[test]
fn every_family_pretrains_from_a_tokenized_dataset_as_from_the_h5ad() {
    let dir = tempfile::tempdir().unwrap();
    // Tokenized as `scfm pretrain` tokenizes the h5ad (scGPT: 48 tokens, the run's seed,
    // `<cls>` at the pad value, helical ties).
    let scgpt = ["--max-len", "48", "--seed", "42", "--cls-value", "-2", "--ties", "helical"];
    let families: [(&str, &str, &str, &[&str], &str); 4] = [
        ("geneformer", "geneformer-v2", "vocab/geneformer", &[], "8"),
        ("scgpt", "scgpt", "vocab/scgpt/default_cellxgene_vocab.json", &scgpt, "4"),
        ("scbert", "scbert", "vocab/scbert/scbert_panglao_genes_16906.txt", &[], "2"),
        ("xtrimogene", "xtrimogene", "vocab/scfoundation/OS_scRNA_gene_index.19264.tsv", &[], "3"),
    ];
    for (family, scheme, vocab, options, steps) in families {
        let dataset = dir.path().join(format!("{family}.dataset"));
        let tokenize = Command::new(env!("CARGO_BIN_EXE_scfm"))
            .arg("tokenize")
            .arg(crate::data("h5ad/pbmc_sorted_train_490.h5ad"))
            .arg("-o")
            .arg(&dataset)
            .args(["--scheme", scheme, "--vocab"])
            .arg(crate::data(vocab))
            .args(options)
            .output()
            .unwrap();
        assert!(tokenize.status.success(), "{family}: {}", String::from_utf8_lossy(&tokenize.stderr));
        let (from_h5ad, from_dataset) = (dir.path().join(format!("{family}-h5ad")), dir.path().join(family));
        let run = pretrain(&from_h5ad, family, vocab, &["--stop-after", steps]);
        assert!(run.status.success(), "{family}: {}", String::from_utf8_lossy(&run.stderr));
        // The same command with the dataset as input: the cells are read from the mapped
        // Arrow file batch by batch, and training is bit-identical.
        let streamed = pretrain_from(&dataset, &from_dataset, family, vocab, &["--stop-after", steps]);
        assert!(streamed.status.success(), "{family}: {}", String::from_utf8_lossy(&streamed.stderr));
        assert!(final_weights(&from_dataset) == final_weights(&from_h5ad), "{family}: streamed training differs");
        let (a, b) = (report(&from_h5ad), report(&from_dataset));
        assert_eq!(a["steps"].as_u64(), Some(steps.parse().unwrap()), "{family}");
        for key in ["cells", "cells_in", "genes_mapped", "final_loss"] {
            assert_eq!(a[key], b[key], "{family}: {key}");
        }
        // The checkpoint records the tokenizer of the dataset it was trained on.
        let latest = std::fs::read_to_string(from_dataset.join("latest")).unwrap();
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(from_dataset.join(latest.trim()).join("state.json")).unwrap())
                .unwrap();
        let tokenizer = &state["meta"]["tokenizer"];
        assert_eq!(tokenizer["scheme"], scheme, "{family}: {tokenizer}");
        assert_eq!(tokenizer["dataset"].as_str(), dataset.to_str(), "{family}: {tokenizer}");
        assert!(tokenizer["settings"].is_object(), "{family}: {tokenizer}");
    }

    // A dataset of another scheme is refused with the reason.
    let geneformer_tokens = dir.path().join("geneformer.dataset");
    let wrong = pretrain_from(&geneformer_tokens, &dir.path().join("wrong"), "scgpt", families[1].2, &[]);
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("tokenized with the \"geneformer-v2\" scheme"), "{stderr}");
    // So is one tokenized with another vocabulary file than the family's.
    let other_vocab = dir.path().join("vocab.json");
    let mut vocab: serde_json::Value =
        serde_json::from_slice(&std::fs::read(crate::data(families[1].2)).unwrap()).unwrap();
    vocab.as_object_mut().unwrap().remove("ZZZ3");
    std::fs::write(&other_vocab, serde_json::to_vec(&vocab).unwrap()).unwrap();
    let wrong = pretrain_from(
        &dir.path().join("scgpt.dataset"),
        &dir.path().join("wrong-vocab"),
        "scgpt",
        other_vocab.to_str().unwrap(),
        &[],
    );
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("which differs from the family's"), "{stderr}");
}
