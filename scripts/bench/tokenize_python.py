"""The Python reference tokenizers on a benchmark h5ad, timed end to end (read → tokenize →
Hugging Face dataset on disk), for the side-by-side table in docs/benchmarks.md.

    python scripts/bench/tokenize_python.py geneformer-helical IN.h5ad OUT_DIR VOCAB_DIR HELICAL_TOKENIZER_PY
    python scripts/bench/tokenize_python.py scgpt-preprocessor IN.h5ad OUT_DIR SCGPT_VOCAB_JSON
    python scripts/bench/tokenize_python.py scgpt-collator IN.h5ad OUT_DIR SCGPT_VOCAB_JSON

Run it under `/usr/bin/time -v` for the peak RSS. Environment: MODELS.md §9 (torch 2.3.1,
scgpt 0.2.4, anndata, scanpy, datasets).

* `geneformer-helical`: helical 2.2.0's copy of Geneformer's `TranscriptomeTokenizer` (Geneformer
  itself is not on PyPI). Its module is loaded from the file given (unpack the wheel:
  `pip download --no-deps helical==2.2.0` and unzip; the module imports only numpy, scipy,
  pandas, anndata, scanpy and datasets), with the gc104M dictionaries, 4,096 tokens and
  `<cls>`/`<eos>` (Geneformer V2). The var index must be Ensembl ids (copied into
  `var["ensembl_id"]` as helical requires); `n_counts` is read from obs.
* `scgpt-preprocessor`: scGPT's `Preprocessor(normalize_total=1e4, log1p=True, binning=51)`
  then `tokenize_and_pad_batch(max_len=1200, <cls> first, non-zero genes)`, as the annotation
  tutorial runs them; the padded arrays are written as a dataset.
* `scgpt-collator`: the zero-shot embedding path: per cell, the non-zero genes in the vocabulary,
  `DataCollator(do_binning=True, sampling=True, max_length=1200)` (bin, sample to 1,200,
  pad), in batches of 64 like `tasks.cell_emb`.

Prints one line: the mode, cells, seconds and cells per second (the run's wall time, imports
excluded, dataset writing included).
"""

import importlib.util
import json
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
from datasets import Dataset


def geneformer_helical(path, out, vocab_dir, module_file):
    spec = importlib.util.spec_from_file_location("helical_geneformer_tokenizer", module_file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    start = time.perf_counter()
    vocab = Path(vocab_dir)
    tk = mod.TranscriptomeTokenizer(
        model_input_size=4096,
        special_token=True,
        gene_median_file=vocab / "gene_median_dictionary_gc104M.pkl",
        token_dictionary_file=vocab / "token_dictionary_gc104M.pkl",
        gene_mapping_file=vocab / "ensembl_mapping_dict_gc104M.pkl",
    )
    adata = ad.read_h5ad(path)
    adata.var["ensembl_id"] = adata.var_names
    cells, meta = tk.tokenize_anndata(adata)
    tk.create_dataset(cells, meta).save_to_disk(out)
    return adata.n_obs, time.perf_counter() - start


def scgpt_vocab(vocab_json):
    from scgpt.tokenizer import GeneVocab

    vocab = GeneVocab.from_file(vocab_json)
    for s in ["<pad>", "<cls>", "<eoc>"]:
        if s not in vocab:
            vocab.append_token(s)
    vocab.set_default_index(vocab["<pad>"])
    return vocab


def scgpt_preprocessor(path, out, vocab_json):
    from scgpt.preprocess import Preprocessor
    from scgpt.tokenizer import tokenize_and_pad_batch

    start = time.perf_counter()
    vocab = scgpt_vocab(vocab_json)
    adata = ad.read_h5ad(path)
    adata = adata[:, [g in vocab for g in adata.var_names]].copy()
    Preprocessor(normalize_total=1e4, log1p=True, binning=51, result_binned_key="X_binned")(adata)
    binned = adata.layers["X_binned"]
    binned = binned.toarray() if hasattr(binned, "toarray") else np.asarray(binned)
    gene_ids = np.array(vocab(adata.var_names.tolist()), dtype=int)
    tok = tokenize_and_pad_batch(
        binned, gene_ids, max_len=1200, vocab=vocab, pad_token="<pad>", pad_value=-2,
        append_cls=True, include_zero_gene=False,
    )
    Dataset.from_dict({"input_ids": tok["genes"].numpy(), "values": tok["values"].numpy()}).save_to_disk(out)
    return adata.n_obs, time.perf_counter() - start


def scgpt_collator(path, out, vocab_json):
    import torch
    from scgpt.data_collator import DataCollator

    start = time.perf_counter()
    vocab = scgpt_vocab(vocab_json)
    adata = ad.read_h5ad(path)
    adata = adata[:, [g in vocab for g in adata.var_names]].copy()
    gene_ids = np.array(vocab(adata.var_names.tolist()), dtype=int)
    collator = DataCollator(
        do_padding=True, pad_token_id=vocab["<pad>"], pad_value=-2, do_mlm=False, do_binning=True,
        max_length=1200, sampling=True, keep_first_n_tokens=1,
    )
    x = adata.X.tocsr()
    cls = vocab["<cls>"]
    ids, values = [], []
    for lo in range(0, x.shape[0], 64):
        examples = []
        for i in range(lo, min(lo + 64, x.shape[0])):
            row = x[i]
            examples.append({
                "genes": torch.from_numpy(np.insert(gene_ids[row.indices], 0, cls)),
                "expressions": torch.from_numpy(np.insert(row.data.astype(np.float32), 0, -2.0)),
            })
        batch = collator(examples)
        ids.append(batch["gene"].numpy())
        values.append(batch["expr"].numpy())
    Dataset.from_dict({"input_ids": np.concatenate(ids), "values": np.concatenate(values)}).save_to_disk(out)
    return adata.n_obs, time.perf_counter() - start


def main():
    mode, path, out = sys.argv[1:4]
    run = {"geneformer-helical": geneformer_helical, "scgpt-preprocessor": scgpt_preprocessor,
           "scgpt-collator": scgpt_collator}[mode]
    n, secs = run(path, out, *sys.argv[4:])
    print(json.dumps({"mode": mode, "cells": n, "seconds": round(secs, 2), "cells_per_s": round(n / secs)}))


if __name__ == "__main__":
    main()
