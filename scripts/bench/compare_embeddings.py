"""Compare two `scfm embed` Arrow tables of the same cells (e.g. the CPU and a GPU backend):
same cell ids in the same order, then max |a − b|, ‖a − b‖ / ‖b‖ and the smallest per-cell
cosine similarity. Prints one JSON line; exits 1 when the ids differ or a value is NaN in one
table and not in the other.

    python scripts/bench/compare_embeddings.py GPU.arrow CPU.arrow
"""

import json
import sys

import numpy as np
import pyarrow as pa


def load(path):
    table = pa.ipc.open_file(path).read_all()
    ids = table.column("cell_id").to_pylist()
    emb = np.asarray(table.column("embedding").combine_chunks().flatten(), dtype=np.float64)
    return ids, emb.reshape(len(ids), -1)


ids_a, a = load(sys.argv[1])
ids_b, b = load(sys.argv[2])
if ids_a != ids_b or a.shape != b.shape:
    sys.exit(f"different cells or shapes: {a.shape} vs {b.shape}")
nan_a, nan_b = np.isnan(a).any(1), np.isnan(b).any(1)
if (nan_a != nan_b).any():
    sys.exit(f"NaN rows differ: {int(nan_a.sum())} vs {int(nan_b.sum())}")
a, b = a[~nan_a], b[~nan_b]
cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
print(json.dumps({
    "a": sys.argv[1], "b": sys.argv[2], "cells": len(a), "dim": a.shape[1],
    "max_abs_diff": float(np.abs(a - b).max()), "max_abs_b": float(np.abs(b).max()),
    "rel_l2": float(np.linalg.norm(a - b) / np.linalg.norm(b)), "min_cosine": float(cos.min()),
}))
