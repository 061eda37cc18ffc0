use scfm_core::CellSource;
use scfm_eval::*;
use scfm_io::{AnySource, MatrixSelector, ObsSelection, SourceOptions};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/eval/sklearn_pbmc490.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// The 490 cells' counts and `trueLabel`s, read by scfm-io.
fn pbmc490() -> (CsrMatrix, Vec<String>) {
    let opts = SourceOptions {
        matrix: MatrixSelector::Counts,
        obs: ObsSelection::Columns(vec!["trueLabel".into()]),
        require_counts: true,
    };
    let source = AnySource::open(crate::data("h5ad/pbmc_sorted_train_490.h5ad"), &opts).unwrap();
    let mut x = CsrMatrix::new(source.genes().len());
    let mut labels = vec![];
    for chunk in source.chunks(200) {
        let chunk = chunk.unwrap();
        for cell in chunk.cells() {
            x.push_row(cell.indices, cell.values).unwrap();
        }
        labels.extend(chunk.obs_labels("trueLabel").unwrap().into_iter().map(Option::unwrap));
    }
    (x, labels)
}

#[test]
fn logistic_regression_matches_scikit_learn_on_real_cells() {
    let f = fixture();
    let (counts, labels) = pbmc490();
    let classes = Labels::from_strings(&labels);
    let names: Vec<String> = f["classes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().into()).collect();
    assert_eq!(classes.names, names);
    assert_eq!(classes.codes, usizes(&f["labels"]));
    let x = counts.log1p_normalized(1e4);
    let valid = usizes(&f["valid"]);
    let train: Vec<usize> = (0..x.n_rows()).filter(|i| !valid.contains(i)).collect();
    let y: Vec<usize> = train.iter().map(|&i| classes.codes[i]).collect();
    let model = LogisticRegression::fit(&x.select_rows(&train), &y, 7, &LogisticRegressionConfig::default()).unwrap();
    let proba = model.predict_proba(&x.select_rows(&valid)).unwrap();
    let reference: Vec<f64> = f["lr_valid_proba"].as_array().unwrap().iter().flat_map(floats).collect();
    // Both solvers stop at a gradient tolerance on a weakly regularised, ill-conditioned
    // objective; their probabilities agree to 5e-4 and their predictions exactly.
    let worst = proba.iter().zip(&reference).map(|(a, b)| (f64::from(*a) - b).abs()).fold(0.0, f64::max);
    assert!(
        worst < 5e-4,
        "probabilities differ from scikit-learn's by up to {worst} ({} iterations)",
        model.iterations
    );
    let predicted = argmax_rows(&proba, 7);
    assert_eq!(predicted, usizes(&f["lr_valid_pred"]));

    let truth: Vec<usize> = valid.iter().map(|&i| classes.codes[i]).collect();
    let report = ClassificationReport::compute(&truth, &predicted, &classes.names).unwrap();
    let r = &f["lr_report"];
    let close = |a: f64, b: &Value| (a - b.as_f64().unwrap()).abs() < 1e-12;
    assert!(close(report.accuracy, &r["accuracy"]) && close(report.macro_f1, &r["macro_f1"]));
    assert!(close(report.weighted_f1, &r["weighted_f1"]));
    for (c, s) in report.per_class.iter().enumerate() {
        assert!(close(s.precision, &r["precision"][c]) && close(s.recall, &r["recall"][c]) && close(s.f1, &r["f1"][c]));
    }
    let confusion: Vec<Vec<u64>> = r["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| usizes(row).into_iter().map(|v| v as u64).collect())
        .collect();
    assert_eq!(report.confusion.counts, confusion);
}

#[test]
fn embedding_metrics_match_scikit_learn() {
    let f = fixture();
    let labels = usizes(&f["labels"]);
    let emb: Vec<f32> = f["pca10"].as_array().unwrap().iter().flat_map(floats).map(|v| v as f32).collect();
    let view = EmbeddingView::new(&emb, 10).unwrap();
    let s = silhouette_samples(view, &labels).unwrap();
    let worst = s.iter().zip(floats(&f["silhouette_samples"])).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-9, "silhouette differs by {worst}");
    let batches: Vec<usize> = (0..labels.len()).map(|i| i % 2).collect();
    let asw = batch_asw(view, &labels, &batches).unwrap();
    assert!((asw - f["batch_asw_index_mod_2"].as_f64().unwrap()).abs() < 1e-9);
    let predicted = usizes(&f["lr_all_pred"]);
    assert!(
        (adjusted_rand_index(&labels, &predicted).unwrap() - f["ari_labels_vs_pred"].as_f64().unwrap()).abs() < 1e-12
    );
    assert!(
        (normalized_mutual_info(&labels, &predicted).unwrap() - f["nmi_labels_vs_pred"].as_f64().unwrap()).abs()
            < 1e-12
    );
    // The whole report on the same cells: a real embedding of sorted types clusters well above chance.
    let report = EmbeddingReport::compute(view, &labels, Some(&batches), 15, 0).unwrap();
    assert!(report.knn_accuracy > 0.6 && report.ari > 0.2, "{report:?}");
    assert_eq!(EmbeddingReport::compute(view, &labels, Some(&batches), 15, 0).unwrap(), report);
}

#[test]
fn plots_are_valid_pngs() {
    let f = fixture();
    let labels = usizes(&f["labels"]);
    let names: Vec<String> = f["classes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().into()).collect();
    let emb: Vec<f32> = f["pca10"].as_array().unwrap().iter().flat_map(floats).map(|v| v as f32).collect();
    let dir = tempfile::tempdir().unwrap();
    let scatter = dir.path().join("pca.png");
    scatter_png(&scatter, &pca_2d(EmbeddingView::new(&emb, 10).unwrap()), &labels, &names, "PCA").unwrap();
    let report = ClassificationReport::compute(&labels, &usizes(&f["lr_all_pred"]), &names).unwrap();
    let confusion = dir.path().join("confusion.png");
    confusion_png(&confusion, &report.confusion, "baseline").unwrap();
    for p in [scatter, confusion] {
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let info = decoder.read_info().unwrap().info().clone();
        assert!(info.width > 300 && info.height > 300);
    }
    assert!(matches!(
        confusion_png(&dir.path().join("missing/dir.png"), &report.confusion, "x"),
        Err(EvalError::Write { .. })
    ));
}
