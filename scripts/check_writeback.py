"""Check that an h5ad annotated by scfm opens in plain Python anndata (no hdf5plugin).

    python scripts/check_writeback.py ANNOTATED.h5ad OBSM_KEY OBS_COLUMN
"""

import sys

import anndata as ad
import h5py

path, key, column = sys.argv[1:4]
a = ad.read_h5ad(path)
emb = a.obsm[key]
print(f"obsm[{key!r}]: shape {emb.shape}, dtype {emb.dtype}, first row {emb[0].tolist()}")
col = a.obs[column]
print(f"obs[{column!r}]: dtype {col.dtype}, categories {list(col.cat.categories)}, counts {col.value_counts().to_dict()}")
with h5py.File(path, "r") as f:
    print(f"compression of obsm/{key}: {f['obsm'][key].compression}")
