"""Write a large synthetic h5ad (anndata 0.8+ encoding) chunk by chunk, in bounded memory.

    python scripts/bench/make_synthetic_h5ad.py OUT.h5ad N_CELLS [N_GENES=20000] [DENSITY=0.05] [GENES_TSV]

X is CSR int32 counts (1..9) with N_GENES * DENSITY genes per cell at random positions
(one per stride of 1/DENSITY genes, so rows are sorted and unique); obs has a 12-level
categorical `cell_type` and a float `n_counts`; no compression (as for a local scratch copy).

With GENES_TSV (a `token<TAB>id` table such as Geneformer's token dictionary export), the var
index is its first N_GENES gene ids (rows whose token starts with `<` are skipped) and counts are
negative-binomial (1 + NB(2, 0.4)), as in the tokenizer baselines of MODELS.md §9.
"""

import sys

import h5py
import numpy as np

out, n_cells = sys.argv[1], int(sys.argv[2])
n_genes = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
density = float(sys.argv[4]) if len(sys.argv) > 4 else 0.05
genes_tsv = sys.argv[5] if len(sys.argv) > 5 else None
if genes_tsv:
    with open(genes_tsv) as fh:
        next(fh)
        gene_ids = [l.split("\t")[0] for l in fh if not l.startswith("<")][:n_genes]
    assert len(gene_ids) == n_genes, f"{genes_tsv} has only {len(gene_ids)} genes"
else:
    gene_ids = [f"ENSG{i:011d}" for i in range(n_genes)]
stride = int(round(1 / density))
per_cell = n_genes // stride
chunk = 10000
rng = np.random.default_rng(0)
str_dt = h5py.string_dtype("utf-8")


def enc(obj, kind, version):
    obj.attrs["encoding-type"] = kind
    obj.attrs["encoding-version"] = version


with h5py.File(out, "w") as f:
    enc(f, "anndata", "0.1.0")
    x = f.create_group("X")
    enc(x, "csr_matrix", "0.1.0")
    x.attrs["shape"] = np.array([n_cells, n_genes], dtype=np.int64)
    nnz = n_cells * per_cell
    data = x.create_dataset("data", shape=(nnz,), dtype=np.int32, chunks=(1 << 20,))
    indices = x.create_dataset("indices", shape=(nnz,), dtype=np.int32, chunks=(1 << 20,))
    x.create_dataset("indptr", data=np.arange(n_cells + 1, dtype=np.int64) * per_cell)
    base = np.arange(per_cell, dtype=np.int32) * stride
    totals = np.empty(n_cells)
    for start in range(0, n_cells, chunk):
        n = min(chunk, n_cells - start)
        idx = (base[None, :] + rng.integers(0, stride, size=(n, per_cell), dtype=np.int32)).ravel()
        if genes_tsv:
            val = (1 + rng.negative_binomial(2, 0.4, size=n * per_cell)).astype(np.int32)
        else:
            val = rng.integers(1, 10, size=n * per_cell, dtype=np.int32)
        totals[start:start + n] = val.reshape(n, per_cell).sum(axis=1)
        indices[start * per_cell:(start + n) * per_cell] = idx
        data[start * per_cell:(start + n) * per_cell] = val
    obs = f.create_group("obs")
    enc(obs, "dataframe", "0.2.0")
    obs.attrs["_index"] = "_index"
    obs.attrs["column-order"] = np.array(["cell_type", "n_counts"], dtype=object)
    ids = obs.create_dataset("_index", data=np.array([f"cell{i}" for i in range(n_cells)], dtype=object), dtype=str_dt)
    enc(ids, "string-array", "0.2.0")
    ct = obs.create_group("cell_type")
    enc(ct, "categorical", "0.2.0")
    ct.attrs["ordered"] = False
    cats = ct.create_dataset("categories", data=np.array([f"type{i}" for i in range(12)], dtype=object), dtype=str_dt)
    enc(cats, "string-array", "0.2.0")
    codes = ct.create_dataset("codes", data=(np.arange(n_cells) % 12).astype(np.int8))
    enc(codes, "array", "0.2.0")
    nc = obs.create_dataset("n_counts", data=totals)
    enc(nc, "array", "0.2.0")
    var = f.create_group("var")
    enc(var, "dataframe", "0.2.0")
    var.attrs["_index"] = "_index"
    var.attrs["column-order"] = np.array([], dtype=np.float64)  # what anndata writes for no columns
    gid = var.create_dataset("_index", data=np.array(gene_ids, dtype=object), dtype=str_dt)
    enc(gid, "string-array", "0.2.0")
    for g in ("obsm", "varm", "obsp", "varp", "layers", "uns"):
        enc(f.create_group(g), "dict", "0.1.0")
print(f"{out}: {n_cells} cells x {n_genes} genes, {n_cells * per_cell} non-zeros")
