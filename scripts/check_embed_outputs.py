"""Check the outputs of `scfm embed` from Python: the h5ad copy opens in plain anndata with
obsm["X_scfm_<model>"], the Arrow table opens in pyarrow, and both hold the same numbers for
the same cells in the same order.

    python scripts/check_embed_outputs.py OUT_DIR
"""

import json
import pathlib
import sys

import anndata as ad
import numpy as np
import pyarrow as pa

out = pathlib.Path(sys.argv[1])
report = json.loads((out / "scfm_embed.json").read_text())
key = "X_scfm_scgpt" if report["model"] == "scgpt" else "X_scfm_geneformer"
table = pa.ipc.open_file(out / "embeddings.arrow").read_all()
ids = table.column("cell_id").to_pylist()
emb = np.asarray(table.column("embedding").combine_chunks().flatten()).reshape(len(ids), -1)
h5ad = next(p for p in out.glob("*.h5ad"))
a = ad.read_h5ad(h5ad)
x = a.obsm[key]
print(f"{h5ad.name}: obsm[{key!r}] {x.shape} {x.dtype}; table {emb.shape}; report {report['cells']} cells, dim {report['dim']}")
assert list(a.obs_names) == ids, "cell order differs between the h5ad and the table"
assert x.shape == (report["cells"], report["dim"]) == emb.shape
assert np.array_equal(x, emb, equal_nan=True), "obsm and table differ"
print(f"OK: {len(ids)} cells, same ids, same values; {int(np.isnan(x[:, 0]).sum())} NaN rows (cells without tokens)")
