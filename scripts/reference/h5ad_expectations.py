"""Record what Python anndata reads from every shared data file, for scfm-io's tests.

Run with the reference environment (MODELS.md §9; here: anndata, h5py, scipy, pandas):

    python scripts/reference/h5ad_expectations.py ../shared/data > fixtures/io/expectations.json

For each readable file and matrix: shape, number of non-zero values (explicit zeros are not
counted: scfm drops them), the sum of all values in float64, per-cell sums of the first cells,
a few individual non-zero values, the obs index head, and every obs column's kind, null count,
categories and first values. Files anndata cannot read (the pre-0.7 legacy file) are listed
with the error so that the Rust side can check it rejects them too.
"""

import glob
import json
import os
import sys

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

root = sys.argv[1]
N_CELLS = 5


def matrix_facts(m):
    if sp.issparse(m):
        m = sp.csr_matrix(m)
        m.sum_duplicates()
        m.eliminate_zeros()
        nnz = int(m.nnz)
        total = float(m.sum(dtype=np.float64))
        head = m[:N_CELLS]
        row_sums = [float(x) for x in np.asarray(head.sum(axis=1, dtype=np.float64)).ravel()]
        coo = head.tocoo()
        order = np.lexsort((coo.col, coo.row))[:8]
        samples = [[int(coo.row[i]), int(coo.col[i]), float(coo.data[i])] for i in order]
        dtype = str(m.dtype)
    else:
        m = np.asarray(m)
        nnz = int(np.count_nonzero(m))
        total = float(m.sum(dtype=np.float64))
        row_sums = [float(x) for x in m[:N_CELLS].sum(axis=1, dtype=np.float64)]
        r, c = np.nonzero(m[:N_CELLS])
        samples = [[int(a), int(b), float(m[a, b])] for a, b in list(zip(r, c))[:8]]
        dtype = str(m.dtype)
    return {
        "shape": list(m.shape),
        "nnz": nnz,
        "sum": total,
        "row_sums": row_sums,
        "samples": samples,
        "dtype": dtype,
    }


def column_facts(s):
    out = {"nulls": int(s.isna().sum())}
    if isinstance(s.dtype, pd.CategoricalDtype):
        out["kind"] = "categorical"
        out["categories"] = [str(c) for c in s.cat.categories]
        out["codes_head"] = [int(c) for c in s.cat.codes[:N_CELLS]]
    elif pd.api.types.is_bool_dtype(s.dtype):
        out["kind"] = "bool"
        out["head"] = [None if pd.isna(v) else bool(v) for v in s[:N_CELLS]]
    elif pd.api.types.is_numeric_dtype(s.dtype):
        out["kind"] = "float" if pd.api.types.is_float_dtype(s.dtype) else "int"
        out["head"] = [None if pd.isna(v) else float(v) for v in s[:N_CELLS]]
    else:
        out["kind"] = "string"
        out["head"] = [None if pd.isna(v) else str(v) for v in s[:N_CELLS]]
    return out


files = sorted(glob.glob(os.path.join(root, "h5ad", "*.h5ad")))
files += sorted(glob.glob(os.path.join(root, "h5ad", "encodings", "*", "*.h5ad")))
result = {"anndata": ad.__version__, "files": {}}
for path in files:
    rel = os.path.relpath(path, root)
    try:
        a = ad.read_h5ad(path)
    except Exception as e:  # noqa: BLE001 - recorded, the Rust side must reject it too
        result["files"][rel] = {"error": f"{type(e).__name__}: {e}"}
        continue
    entry = {
        "n_obs": a.n_obs,
        "n_vars": a.n_vars,
        "obs_names_head": [str(x) for x in a.obs_names[:N_CELLS]],
        "var_names_head": [str(x) for x in a.var_names[:N_CELLS]],
        "matrices": {"X": matrix_facts(a.X)},
        "obs": {c: column_facts(a.obs[c]) for c in a.obs.columns},
    }
    if a.raw is not None:
        entry["matrices"]["raw"] = matrix_facts(a.raw.X)
        entry["raw_var_names_head"] = [str(x) for x in a.raw.var_names[:N_CELLS]]
    for k in a.layers.keys():
        entry["matrices"][f"layer:{k}"] = matrix_facts(a.layers[k])
    for k in a.obsm.keys():
        m = np.asarray(a.obsm[k], dtype=np.float64)
        entry.setdefault("obsm", {})[k] = list(m.shape)
        entry.setdefault("obsm_values", {})[k] = {"sum": float(m.sum()), "first_row": m[0].tolist()}
    result["files"][rel] = entry

# Cell Ranger outputs: read with h5py / scipy only (what Cell Ranger wrote), cells as rows,
# all features kept (every feature in these files is "Gene Expression").
import gzip  # noqa: E402

import h5py  # noqa: E402
import scipy.io  # noqa: E402


def tenx_h5(path):
    f = h5py.File(path, "r")
    g = f["matrix"] if "matrix" in f else f[sorted(f.keys())[0]]
    n_genes, n_cells = (int(x) for x in g["shape"][:])
    m = sp.csc_matrix((g["data"][:], g["indices"][:], g["indptr"][:]), shape=(n_genes, n_cells)).T
    ids = g["features/id"][:] if "features" in g else g["genes"][:]
    facts = matrix_facts(m)
    facts["barcodes_head"] = [b.decode() for b in g["barcodes"][:N_CELLS]]
    facts["gene_ids_head"] = [b.decode() for b in ids[:N_CELLS]]
    return facts


def tenx_mtx(folder):
    def opener(name):
        for n in (name, name + ".gz"):
            p = os.path.join(folder, n)
            if os.path.exists(p):
                return gzip.open(p, "rt") if p.endswith(".gz") else open(p)
        return None

    m = sp.csr_matrix(scipy.io.mmread(opener("matrix.mtx")).T)
    facts = matrix_facts(m)
    facts["barcodes_head"] = [l.strip() for l in list(opener("barcodes.tsv"))[:N_CELLS]]
    feats = opener("features.tsv") or opener("genes.tsv")
    facts["gene_ids_head"] = [l.split("\t")[0] for l in list(feats)[:N_CELLS]]
    return facts


result["tenx"] = {
    "10x/v3/filtered_feature_bc_matrix.h5": tenx_h5(os.path.join(root, "10x/v3/filtered_feature_bc_matrix.h5")),
    "10x/v2/filtered_gene_bc_matrices_h5.h5": tenx_h5(os.path.join(root, "10x/v2/filtered_gene_bc_matrices_h5.h5")),
    "10x/scminer_demo_182_fullpanel_v3.h5": tenx_h5(os.path.join(root, "10x/scminer_demo_182_fullpanel_v3.h5")),
    "10x/v3/filtered_feature_bc_matrix": tenx_mtx(os.path.join(root, "10x/v3/filtered_feature_bc_matrix")),
    "10x/v2/filtered_gene_bc_matrices/hg19_chr21": tenx_mtx(os.path.join(root, "10x/v2/filtered_gene_bc_matrices/hg19_chr21")),
}

json.dump(result, sys.stdout, indent=1, sort_keys=True)
