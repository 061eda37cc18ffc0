"""Cell-embedding throughput of the upstream PyTorch models with random weights, on the same
shapes and inputs as `cargo run --release -p scfm-models --example embed_forward` (docs/benchmarks.md).

    python scripts/bench/embed_torch.py MODEL BATCH LEN ITERS [--dtype fp32|bf16] [--device cpu|cuda]
    MODEL: geneformer-v1-10m | geneformer-v2-104m | scgpt-human

Geneformer: transformers BertForMaskedLM's encoder with output_hidden_states (what
EmbExtractor runs), cell embedding = mean of the penultimate layer. scGPT: scgpt 0.2.4
TransformerModel built as tasks.cell_emb does (no flash-attn: use_fast_transformer=False),
cell embedding = CLS output. torch default CPU threads (one per core), eval(), no_grad().
Prints one JSON line; run under /usr/bin/time -v for the peak memory.
"""

import argparse
import json
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("batch", type=int)
p.add_argument("len", type=int)
p.add_argument("iters", type=int)
p.add_argument("--dtype", default="fp32")
p.add_argument("--device", default="cpu")
a = p.parse_args()
b, l = a.batch, a.len
dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[a.dtype]
dev = torch.device(a.device)
torch.manual_seed(0)
g = torch.Generator().manual_seed(42)

if a.model.startswith("geneformer"):
    from transformers import BertConfig, BertForMaskedLM

    v1 = a.model.endswith("10m")
    cfg = BertConfig(
        vocab_size=25426 if v1 else 20275,
        hidden_size=256 if v1 else 768,
        num_attention_heads=4 if v1 else 12,
        num_hidden_layers=6 if v1 else 12,
        intermediate_size=512 if v1 else 3072,
        max_position_embeddings=2048 if v1 else 4096,
        hidden_act="relu",
        layer_norm_eps=1e-12,
        pad_token_id=0,
    )
    model = BertForMaskedLM(cfg).bert.to(dev, dtype).eval()
    ids = torch.randint(4, cfg.vocab_size, (b, l), generator=g).to(dev)
    mask = torch.ones(b, l, dtype=torch.long, device=dev)

    def run():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        return out.hidden_states[-2].mean(1)

else:
    from scgpt.model import TransformerModel

    ntoken, pad = 60697, 60694
    model = TransformerModel(
        ntoken, 512, 8, 512, 12, nlayers_cls=3, n_cls=1, vocab={"<pad>": pad}, dropout=0.2, pad_token="<pad>",
        pad_value=-2, do_mvc=True, do_dab=False, use_batch_labels=False, domain_spec_batchnorm=False,
        input_emb_style="continuous", n_input_bins=51, cell_emb_style="cls", mvc_decoder_style="inner product",
        explicit_zero_prob=False, use_fast_transformer=False, pre_norm=False,
    ).to(dev, dtype).eval()
    ids = torch.randint(0, pad, (b, l), generator=g).to(dev)
    values = torch.randint(1, 51, (b, l), generator=g).to(dev, dtype)
    padding = torch.zeros(b, l, dtype=torch.bool, device=dev)

    def run():
        return model._encode(ids, values, padding)[:, 0, :]

def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()

with torch.no_grad():
    t = time.perf_counter()
    first = run()
    sync()
    warm = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(a.iters):
        run()
    sync()
    s = time.perf_counter() - t
print(json.dumps({
    "side": f"pytorch {torch.__version__} ({a.device}, {a.dtype}, {torch.get_num_threads()} threads)",
    "model": a.model, "batch": b, "len": l, "iters": a.iters, "warmup_s": warm, "seconds": s,
    "cells_per_s": b * a.iters / s, "checksum": float(first.float().sum()),
}))
