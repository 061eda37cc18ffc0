"""The Python way of doing what `scfm convert` does: anndata.read_h5ad (loads everything into
memory) then pyarrow, writing the same corpus layout (cell_id, gene_index, counts, obs) as one
Arrow IPC file.

    python scripts/bench/python_baseline.py IN.h5ad OUT.arrow
"""

import sys

import anndata as ad
import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import scipy.sparse as sp

a = ad.read_h5ad(sys.argv[1])
x = sp.csr_matrix(a.X)
offsets = pa.array(x.indptr.astype(np.int64))
genes = pa.LargeListArray.from_arrays(offsets, pa.array(x.indices.astype(np.uint32)))
counts = pa.LargeListArray.from_arrays(offsets, pa.array(x.data.astype(np.float32)))
cols = {"cell_id": pa.array(a.obs_names.astype(str)), "gene_index": genes, "counts": counts}
for c in a.obs.columns:
    cols[c] = pa.array(a.obs[c])
feather.write_feather(pa.table(cols), sys.argv[2], compression="uncompressed")
print(f"{a.n_obs} cells written")
