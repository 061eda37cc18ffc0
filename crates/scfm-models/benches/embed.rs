//! Forward-pass (cell embedding) cost of the real model shapes with random weights on burn-flex:
//! Geneformer V1-10M and scGPT whole-human, 8 cells × 256 tokens per pass. The end-to-end
//! comparison with PyTorch at longer cells is `examples/embed_forward.rs` against
//! `scripts/bench/embed_torch.py` (docs/benchmarks.md).
//!
//! `cargo bench -p scfm-models --bench embed`

use burn::backend::Flex as Cpu;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use scfm_models::Pooling;
use scfm_models::geneformer::{EmbeddingLayer, Geneformer, GeneformerConfig};
use scfm_models::scgpt::{ScGpt, ScGptConfig};

const CELLS: usize = 8;
const LEN: usize = 256;

fn ids(vocab: usize) -> Tensor<Cpu, 2, Int> {
    let v: Vec<i64> = (0..CELLS * LEN).map(|i| 4 + (i * 7919 % (vocab - 4)) as i64).collect();
    Tensor::from_data(TensorData::new(v, [CELLS, LEN]), &Default::default())
}

fn embed(c: &mut Criterion) {
    scfm_models::cpu::keep_freed_memory();
    let device = Default::default();
    let padded = Tensor::<Cpu, 2, Bool>::from_data(TensorData::new(vec![false; CELLS * LEN], [CELLS, LEN]), &device);
    let mut g = c.benchmark_group("embed_8_cells_256_tokens");
    g.throughput(Throughput::Elements(CELLS as u64));
    g.sample_size(10);

    let gf = GeneformerConfig::v1_10m().init::<Cpu>(&device);
    let gf_ids = ids(gf.config.vocab_size);
    g.bench_function("geneformer_v1_10m", |b| {
        b.iter(|| {
            let enc = gf.encode(gf_ids.clone(), padded.clone(), false);
            let h = enc.hidden_states[gf.hidden_index(EmbeddingLayer::Penultimate)].clone();
            Geneformer::pool(h, &[LEN; CELLS], Pooling::Mean, false).unwrap().into_data()
        })
    });

    let sg = ScGptConfig::whole_human().init::<Cpu>(&device);
    let sg_ids = ids(60_694);
    let values = Tensor::<Cpu, 2>::from_data(
        TensorData::new((0..CELLS * LEN).map(|i| (1 + i % 50) as f32).collect::<Vec<_>>(), [CELLS, LEN]),
        &device,
    );
    g.bench_function("scgpt_whole_human", |b| {
        b.iter(|| {
            let enc = sg.encode(sg_ids.clone(), values.clone(), padded.clone(), false);
            ScGpt::cell_embeddings(enc.output, &[LEN; CELLS], Pooling::Cls, false).unwrap().into_data()
        })
    });
    g.finish();
}

criterion_group!(benches, embed);
criterion_main!(benches);
