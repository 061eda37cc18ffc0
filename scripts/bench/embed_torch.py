"""Cell-embedding throughput of the upstream PyTorch models with random weights, on the same
shapes and inputs as `cargo run --release -p scfm-models --example embed_forward` (docs/benchmarks.md).

    python scripts/bench/embed_torch.py MODEL BATCH LEN ITERS [--dtype fp32|bf16] [--device cpu|cuda] [--pipeline]
    MODEL: geneformer-v1-10m | geneformer-v2-104m | scgpt-human | scbert | xtrimogene

Geneformer: transformers BertForMaskedLM's encoder with output_hidden_states, cell embedding =
mean of the penultimate layer (the same work as scfm's embed_forward without --pipeline). With
--pipeline, the whole BertForMaskedLM, MLM head included, as Geneformer's EmbExtractor runs it
(perturber_utils.load_model("Pretrained", ..., mode="eval") is
BertForMaskedLM.from_pretrained(..., output_hidden_states=True), and get_embs calls
model(input_ids=..., attention_mask=...) and keeps hidden_states[layer_to_quant]). The other
models' upstream embedding paths are what this script runs either way. scGPT: scgpt 0.2.4
TransformerModel built as tasks.cell_emb does (no flash-attn: use_fast_transformer=False),
cell embedding = CLS output. scBERT: the released PerformerLM shape (dim 200, 6 layers, 10
heads of 64, 266 features) over LEN positions, built from a transcription of the fork's
`softmax_kernel` / `linear_attention` / pre-LN layers (the fork is not on PyPI; same einsums),
cell embedding = mean of the encodings. xTrimoGene: the released encoder (auto-discretization
embedding, 12 × nn.TransformerEncoderLayer 768/12 heads, final LayerNorm) over LEN expressed
positions, `all` pooling (S, T, max, mean). torch default CPU threads (one per core), eval(),
no_grad().
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
p.add_argument("--pipeline", action="store_true")
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
    model = BertForMaskedLM(cfg)
    model = (model if a.pipeline else model.bert).to(dev, dtype).eval()
    ids = torch.randint(4, cfg.vocab_size, (b, l), generator=g).to(dev)
    mask = torch.ones(b, l, dtype=torch.long, device=dev)

    def run():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        return out.hidden_states[-2].mean(1)

elif a.model == "scbert":
    import math
    from torch import nn

    def softmax_kernel(data, projection, is_query, eps=1e-4):
        normalizer = data.shape[-1] ** -0.25
        ratio = projection.shape[0] ** -0.5
        proj = projection.expand(data.shape[0], data.shape[1], *projection.shape).type_as(data)
        dash = torch.einsum("...id,...jd->...ij", normalizer * data, proj)
        diag = ((data ** 2).sum(-1) / 2.0 * normalizer ** 2).unsqueeze(-1)
        if is_query:
            return ratio * (torch.exp(dash - diag - dash.max(dim=-1, keepdim=True).values) + eps)
        return ratio * (torch.exp(dash - diag - dash.max()) + eps)

    def linear_attention(q, k, v):
        d_inv = 1.0 / torch.einsum("...nd,...d->...n", q, k.sum(dim=-2))
        context = torch.einsum("...nd,...ne->...de", k, v)
        return torch.einsum("...de,...nd,...n->...ne", context, q, d_inv)

    class Attention(nn.Module):
        def __init__(self, dim, heads=10, dim_head=64):
            super().__init__()
            inner, self.h = heads * dim_head, heads
            self.to_q, self.to_k, self.to_v = (nn.Linear(dim, inner, bias=False) for _ in range(3))
            self.to_out = nn.Linear(inner, dim)
            m = int(dim_head * math.log(dim_head))
            self.register_buffer("projection", torch.randn(m, dim_head, generator=g))

        def forward(self, x):
            b, n, _ = x.shape
            q, k, v = (t(x).view(b, n, self.h, -1).transpose(1, 2) for t in (self.to_q, self.to_k, self.to_v))
            q, k = softmax_kernel(q, self.projection, True), softmax_kernel(k, self.projection, False)
            return self.to_out(linear_attention(q, k, v).transpose(1, 2).reshape(b, n, -1))

    class Layer(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.n1, self.attn, self.n2 = nn.LayerNorm(dim), Attention(dim), nn.LayerNorm(dim)
            self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

        def forward(self, x):
            x = x + self.attn(self.n1(x))
            return x + self.ff(self.n2(x))

    class PerformerLM(nn.Module):
        def __init__(self, n, dim=200, depth=6):
            super().__init__()
            self.token_emb = nn.Embedding(7, dim)
            self.pos = nn.Embedding(n, dim)
            self.layers = nn.ModuleList(Layer(dim) for _ in range(depth))
            self.norm = nn.LayerNorm(dim)

        def forward(self, ids):
            x = self.token_emb(ids) + self.pos.weight[: ids.shape[1]]
            for layer in self.layers:
                x = layer(x)
            return self.norm(x)

    model = PerformerLM(l).to(dev, dtype).eval()
    ids = torch.randint(0, 6, (b, l), generator=g).to(dev)

    def run():
        return model(ids).mean(1)

elif a.model == "xtrimogene":
    from torch import nn

    class AutoBin(nn.Module):
        def __init__(self, dim=768, bins=100):
            super().__init__()
            self.mlp, self.mlp2, self.emb = nn.Linear(1, bins), nn.Linear(bins, bins), nn.Embedding(bins, dim)

        def forward(self, x):
            h = nn.functional.leaky_relu(self.mlp(x.unsqueeze(2)), 0.1)
            w = torch.softmax(h + self.mlp2(h), dim=-1)
            return torch.matmul(w, self.emb.weight)

    class Encoder(nn.Module):
        def __init__(self, dim=768, depth=12, heads=12, seq_len=19266):
            super().__init__()
            self.token_emb, self.pos_emb = AutoBin(dim), nn.Embedding(seq_len + 1, dim)
            self.layers = nn.ModuleList(
                nn.TransformerEncoderLayer(dim, heads, 4 * dim, batch_first=True) for _ in range(depth)
            )
            self.norm = nn.LayerNorm(dim)

        def forward(self, values, positions, padding):
            x = self.token_emb(values) + self.pos_emb(positions)
            for layer in self.layers:
                x = layer(x, src_key_padding_mask=padding)
            h = self.norm(x)
            return torch.cat([h[:, -1], h[:, -2], h[:, :-2].max(1).values, h[:, :-2].mean(1)], dim=1)

    model = Encoder().to(dev, dtype).eval()
    positions = torch.stack([torch.randperm(19264, generator=g)[: l - 2].sort().values for _ in range(b)])
    positions = torch.cat([positions, torch.tensor([[19264, 19265]] * b)], 1).to(dev)
    values = (0.5 + torch.rand(b, l, generator=g) * 4).to(dev, dtype)
    padding = torch.zeros(b, l, dtype=torch.bool, device=dev)

    def run():
        return model(values, positions, padding)

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
    "model": a.model, "pipeline": a.pipeline, "batch": b, "len": l, "iters": a.iters, "warmup_s": warm, "seconds": s,
    "cells_per_s": b * a.iters / s, "checksum": float(first.float().sum()),
}))
