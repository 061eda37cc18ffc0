"""Check that a dataset written by `scfm tokenize` opens with Hugging Face `datasets` and holds
upstream Geneformer's tokens.

    python scripts/check_hf_dataset.py DATASET_DIR [PARITY_FIXTURE.safetensors]

Prints the features and the first row; with a Geneformer parity fixture (from
shared/data/parity/tokenizers), compares `input_ids` and `length` of the fixture's cells.
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

if len(sys.argv) > 2:
    raw = open(sys.argv[2], "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])

    def arr(name):
        h = header[name]
        a, b = h["data_offsets"]
        return np.frombuffer(raw[8 + n + a : 8 + n + b], dtype=np.int64)

    ids, offsets, cells = arr("input_ids"), arr("offsets"), arr("cell_index")
    for i, row in enumerate(cells):
        want = ids[offsets[i] : offsets[i + 1]].tolist()
        got = ds[int(row)]
        assert got["input_ids"] == want, f"cell {row}: input_ids differ"
        assert got["length"] == len(want), f"cell {row}: length differs"
    print(f"{len(cells)} cells identical to the upstream fixture")
