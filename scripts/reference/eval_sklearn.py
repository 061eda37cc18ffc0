"""Reference outputs of scikit-learn for scfm-eval's tests (fixtures/eval/sklearn_pbmc490.json).

Environment: MODELS.md §9 (`/work/pyref`: numpy, scikit-learn 1.9, anndata 0.12).
Run from the repository root:

    python scripts/reference/eval_sklearn.py ../shared/data/h5ad/pbmc_sorted_train_490.h5ad

On the real 490-cell sorted-PBMC subset:
- the logistic-regression baseline: log1p(normalize_total 1e4) features, cells with
  index % 5 == 0 held out, `LogisticRegression(C=1.0)` fitted to convergence; its held-out
  probabilities, predictions and `classification_report`;
- embedding metrics on a 10-component PCA of the same features: per-cell silhouette of the
  labels, scIB's batch ASW with batches `index % 2`, ARI and NMI between the true labels and
  the baseline's predictions on all cells.
"""

import json
import sys

import anndata
import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (adjusted_rand_score, classification_report, normalized_mutual_info_score,
                             silhouette_samples, confusion_matrix)

path = sys.argv[1]
adata = anndata.read_h5ad(path)
x = adata.X.astype(np.float64)
x = x.multiply(1e4 / np.asarray(x.sum(axis=1))).tocsr()
x.data = np.log1p(x.data)
labels = adata.obs["trueLabel"].astype(str).to_numpy()
classes = sorted(set(labels))
y = np.array([classes.index(v) for v in labels])
n = len(y)
valid = np.arange(n) % 5 == 0
train = ~valid

lr = LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(x[train], y[train])
proba = lr.predict_proba(x[valid])
pred = proba.argmax(axis=1)
report = classification_report(y[valid], pred, labels=range(len(classes)), target_names=classes, output_dict=True,
                               zero_division=0)
pred_all = lr.predict(x)

emb = PCA(n_components=10, svd_solver="full").fit_transform(x.toarray()).astype(np.float32)
sil = silhouette_samples(emb.astype(np.float64), y)
batches = np.arange(n) % 2
asw = []
for c in range(len(classes)):
    m = y == c
    s = silhouette_samples(emb[m].astype(np.float64), batches[m])
    asw.append(np.mean(1 - np.abs(s)))

out = {
    "source": "scripts/reference/eval_sklearn.py on pbmc_sorted_train_490.h5ad (scikit-learn "
              + __import__("sklearn").__version__ + ")",
    "classes": classes,
    "labels": y.tolist(),
    "valid": np.flatnonzero(valid).tolist(),
    "lr_valid_proba": proba.round(8).tolist(),
    "lr_valid_pred": pred.tolist(),
    "lr_report": {
        "accuracy": report["accuracy"],
        "macro_f1": report["macro avg"]["f1-score"],
        "weighted_f1": report["weighted avg"]["f1-score"],
        "precision": [report[c]["precision"] for c in classes],
        "recall": [report[c]["recall"] for c in classes],
        "f1": [report[c]["f1-score"] for c in classes],
        "confusion": confusion_matrix(y[valid], pred, labels=range(len(classes))).tolist(),
    },
    "lr_all_pred": pred_all.tolist(),
    "ari_labels_vs_pred": adjusted_rand_score(y, pred_all),
    "nmi_labels_vs_pred": normalized_mutual_info_score(y, pred_all),
    "pca10": emb.tolist(),
    "silhouette_samples": sil.tolist(),
    "batch_asw_index_mod_2": float(np.mean(asw)),
}
with open("fixtures/eval/sklearn_pbmc490.json", "w") as f:
    json.dump(out, f)
print("accuracy", report["accuracy"], "macro-F1", report["macro avg"]["f1-score"])
