//! Cell-embedding throughput of one model shape with random weights: the Rust side of the
//! embedding benchmark in docs/benchmarks.md (`scripts/bench/embed_torch.py` runs the same
//! shapes and inputs in PyTorch).
//!
//! ```text
//! cargo run --release -p scfm-models --example embed_forward -- MODEL BATCH LEN ITERS [BACKEND] [DTYPE] [--pipeline]
//! MODEL: geneformer-v1-10m | geneformer-v2-104m | scgpt-human | scbert | xtrimogene
//! BACKEND: cpu (burn-flex, the default) | cuda (feature `cuda`) | wgpu (feature `wgpu`)
//! DTYPE: fp32 (the default) | bf16 (GPU backends)
//! ```
//!
//! Every cell has `LEN` tokens (no padding); one pass embeds `BATCH` cells (Geneformer: mean of
//! the penultimate layer, from the whole encoder — the same work as the PyTorch side's encoder
//! — or, with `--pipeline`, from the layers up to it, as `scfm embed` runs it; scGPT: the CLS
//! output; scBERT, released shape with `LEN` positions (16,907 for the release): mean of the
//! encodings; xTrimoGene, released shape: the encoder over `LEN` expressed positions, `all`
//! pooling). Prints one JSON line with cells/s; run it under `/usr/bin/time -v` for the peak
//! memory.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::backend::Flex as Cpu;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use scfm_models::Pooling;
use scfm_models::geneformer::{EmbeddingLayer, Geneformer, GeneformerConfig};
use scfm_models::scbert::{ScBert, ScBertConfig};
use scfm_models::scgpt::{ScGpt, ScGptConfig};
use scfm_models::xtrimogene::{EncoderInput, XTrimoGene, XTrimoGeneConfig};

/// A tiny deterministic generator (the inputs only need to be the same on both sides).
fn lcg(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *state >> 33
}

fn main() -> Result<()> {
    // As the `scfm` command line does: reuse freed memory instead of faulting in fresh pages.
    scfm_models::cpu::keep_freed_memory();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let pipeline = args.iter().any(|a| a == "--pipeline");
    args.retain(|a| a != "--pipeline");
    let (model, batch, len, iters, backend, dtype) = match args.as_slice() {
        [m, b, l, i] => (m, b, l, i, "cpu", "fp32"),
        [m, b, l, i, backend] => (m, b, l, i, backend.as_str(), "fp32"),
        [m, b, l, i, backend, dtype] => (m, b, l, i, backend.as_str(), dtype.as_str()),
        _ => bail!(
            "usage: embed_forward MODEL BATCH LEN ITERS [cpu|cuda|wgpu] [fp32|bf16] [--pipeline] (MODEL: geneformer-v1-10m, geneformer-v2-104m, scgpt-human, scbert, xtrimogene)"
        ),
    };
    let (b, l, iters): (usize, usize, usize) =
        (batch.parse().context("BATCH")?, len.parse().context("LEN")?, iters.parse().context("ITERS")?);
    let result = match (backend, dtype) {
        ("cpu", "fp32") => bench::<Cpu>(model, b, l, iters, pipeline, "scfm (burn-flex, fp32)")?,
        #[cfg(feature = "cuda")]
        ("cuda", "fp32") => bench::<burn::backend::Cuda<f32>>(model, b, l, iters, pipeline, "scfm (burn cuda, fp32)")?,
        #[cfg(feature = "cuda")]
        ("cuda", "bf16") => {
            bench::<burn::backend::Cuda<burn::tensor::bf16>>(model, b, l, iters, pipeline, "scfm (burn cuda, bf16)")?
        }
        #[cfg(feature = "wgpu")]
        ("wgpu", "fp32") => bench::<burn::backend::Wgpu<f32>>(model, b, l, iters, pipeline, "scfm (burn wgpu, fp32)")?,
        (backend, dtype) => {
            bail!("{backend} {dtype} is not in this build (cpu fp32; cuda fp32|bf16 and wgpu fp32 with those features)")
        }
    };
    println!("{result}");
    Ok(())
}

/// Times `iters` forward passes of `model` on backend `B` after one warm-up pass (which also
/// compiles the GPU kernels); reading the output back to the host waits for the device.
/// `pipeline`: Geneformer runs only the layers its embedding needs, as `scfm embed` does
/// (the other models' embedding paths are the encoder either way).
fn bench<B: Backend>(
    model: &str,
    b: usize,
    l: usize,
    iters: usize,
    pipeline: bool,
    side: &str,
) -> Result<serde_json::Value> {
    let device = B::Device::default();
    let mut seed = 42u64;
    let padded = Tensor::<B, 2, Bool>::from_data(TensorData::new(vec![false; b * l], [b, l]), &device);
    let run: Box<dyn Fn() -> Vec<f32>> = match model {
        "geneformer-v1-10m" | "geneformer-v2-104m" => {
            let config = if model.ends_with("10m") { GeneformerConfig::v1_10m() } else { GeneformerConfig::v2_104m() };
            let ids: Vec<i64> =
                (0..b * l).map(|_| 4 + (lcg(&mut seed) % (config.vocab_size as u64 - 4)) as i64).collect();
            let m = config.init::<B>(&device);
            let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [b, l]), &device);
            Box::new(move || {
                let index = m.hidden_index(EmbeddingLayer::Penultimate);
                let hidden = if pipeline {
                    m.hidden_state(ids.clone(), padded.clone(), index)
                } else {
                    m.encode(ids.clone(), padded.clone(), false).hidden_states[index].clone()
                };
                host(Geneformer::pool(hidden, &vec![l; b], Pooling::Mean, false).unwrap())
            })
        }
        "scgpt-human" => {
            let config = ScGptConfig::whole_human();
            let ids: Vec<i64> = (0..b * l).map(|_| (lcg(&mut seed) % 60_694) as i64).collect();
            let values: Vec<f32> = (0..b * l).map(|_| (1 + lcg(&mut seed) % 50) as f32).collect();
            let m = config.init::<B>(&device);
            let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [b, l]), &device);
            let values = Tensor::<B, 2>::from_data(TensorData::new(values, [b, l]), &device);
            Box::new(move || {
                let enc = m.encode(ids.clone(), values.clone(), padded.clone(), false);
                host(ScGpt::cell_embeddings(enc.output, &vec![l; b], Pooling::Cls, false).unwrap())
            })
        }
        "scbert" => {
            let mut config = ScBertConfig::released();
            config.max_len = l;
            let ids: Vec<i64> = (0..b * l).map(|_| (lcg(&mut seed) % 6) as i64).collect();
            let m = config.init::<B>(&device, 0);
            let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [b, l]), &device);
            Box::new(move || host(ScBert::cell_embeddings(m.encode(ids.clone()))))
        }
        "xtrimogene" => {
            let config = XTrimoGeneConfig::released();
            let n_genes = config.n_genes() as u64;
            // LEN − 2 distinct genes in ascending order, then T and S.
            let mut cells = vec![];
            for _ in 0..b {
                let mut pos: Vec<u32> = vec![];
                while pos.len() < l - 2 {
                    pos.push((lcg(&mut seed) % n_genes) as u32);
                    pos.sort_unstable();
                    pos.dedup();
                }
                pos.extend([n_genes as u32, n_genes as u32 + 1]);
                let values: Vec<f32> = pos.iter().map(|_| 0.5 + (lcg(&mut seed) % 400) as f32 / 100.0).collect();
                cells.push((pos, values));
            }
            let refs: Vec<(&[u32], &[f32])> = cells.iter().map(|(p, v)| (p.as_slice(), v.as_slice())).collect();
            let input = EncoderInput::from_selected(&refs, config.max_len, config.pad_token_id as f32);
            let m = config.init::<B>(&device, 0);
            Box::new(move || {
                let (v, p, pad) = input.tensors::<B>(&device);
                host(XTrimoGene::cell_embeddings(m.encode(v, p, pad), &input.lengths, Pooling::All).unwrap())
            })
        }
        other => bail!("unknown model {other:?}"),
    };
    let warm = Instant::now();
    let first = run();
    let warmup_s = warm.elapsed().as_secs_f64();
    let start = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(run());
    }
    let s = start.elapsed().as_secs_f64();
    Ok(serde_json::json!({
            "side": side, "model": model, "pipeline": pipeline, "batch": b, "len": l, "iters": iters,
            "warmup_s": warmup_s, "seconds": s, "cells_per_s": (b * iters) as f64 / s,
            "checksum": first.iter().map(|v| f64::from(*v)).sum::<f64>(),
    }))
}

/// The output on the host in f32 (waits for the device).
fn host<B: Backend>(t: Tensor<B, 2>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().expect("f32 after convert")
}
