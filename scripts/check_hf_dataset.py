"""Check that a dataset written by `scfm tokenize` opens with Hugging Face `datasets` and holds
what the upstream code produces.

    python scripts/check_hf_dataset.py DATASET_DIR [SCHEME PARITY_FIXTURE.safetensors]

SCHEME is geneformer, scgpt (written with `--ties numpy-legacy --max-len 100000`), scbert or
xtrimogene (written with `--target t4`); the fixture comes from shared/data/parity/tokenizers.
"""

import json
import struct
import sys

import datasets
import numpy as np

ds = datasets.load_from_disk(sys.argv[1])
print(ds)
print("features:", ds.features)
print("first row:", {k: (v[:8] if isinstance(v, list) else v) for k, v in ds[0].items()})
if len(sys.argv) < 4:
    sys.exit(0)
scheme, fixture = sys.argv[2], sys.argv[3]
raw = open(fixture, "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8 : 8 + n])
DT = {"I64": np.int64, "I32": np.int32, "U8": np.uint8, "F64": np.float64, "F32": np.float32}


def arr(name):
    h = header[name]
    a, b = h["data_offsets"]
    return np.frombuffer(raw[8 + n + a : 8 + n + b], dtype=DT[h["dtype"]]).reshape(h["shape"])


cells = arr("cell_index")
if scheme == "geneformer":
    ids, off = arr("input_ids"), arr("offsets")
    for i, row in enumerate(cells):
        assert ds[int(row)]["input_ids"] == ids[off[i] : off[i + 1]].tolist(), f"cell {row}"
elif scheme == "scgpt":
    genes, off, bins = arr("gene_ids"), arr("offsets"), arr("bins_legacy")
    for i, row in enumerate(cells):
        r = ds[int(row)]
        assert r["input_ids"][0] == 60695 and r["values"][0] == -2.0, f"cell {row}: <cls>"
        assert r["input_ids"][1:] == genes[off[i] : off[i + 1]].tolist(), f"cell {row}: genes"
        assert r["values"][1:] == bins[off[i] : off[i + 1]].astype(float).tolist(), f"cell {row}: bins"
elif scheme == "scbert":
    tokens = arr("tokens")
    # The dataset keeps the file's cells that pass filter_cells, in order; so does the fixture.
    for k in range(len(cells)):
        assert ds[k]["input_ids"] == tokens[k].tolist(), f"kept cell {k}"
elif scheme == "xtrimogene":
    pos, off, vals, t = arr("gathered_positions"), arr("offsets"), arr("gathered_values"), arr("T_by_variant")
    for i, row in enumerate(cells):
        r = ds[int(row)]
        want_pos = pos[off[i] : off[i + 1]]
        want = vals[off[i] : off[i + 1]].copy()
        want[want_pos == 19264] = t[0, i]
        assert r["input_ids"] == want_pos.tolist(), f"cell {row}: positions"
        assert r["values"] == want.astype(np.float32).tolist(), f"cell {row}: values"
else:
    sys.exit(f"unknown scheme {scheme}")
print(f"{scheme}: {len(cells)} cells identical to the upstream fixture")
