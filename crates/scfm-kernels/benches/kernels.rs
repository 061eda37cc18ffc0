//! The CPU kernels alone, on Geneformer V1-10M's attention and feed-forward shapes (8 cells ×
//! 256 tokens, 4 heads of 64, feed-forward 512) and scBERT's FAVOR+ (1 cell × 16,907
//! positions, 10 heads of 64, 266 features): what a forward pass spends outside burn.
//!
//! `cargo bench -p scfm-kernels --bench kernels`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use scfm_kernels::attention::{Dims, attention, favor_attention};
use scfm_kernels::linear::{Activation, linear};

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n).map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 2001) as f32 / 4000.0 - 0.25).collect()
}

fn kernels(c: &mut Criterion) {
    let mut g = c.benchmark_group("kernels");
    g.sample_size(10);

    let dims = Dims { batch: 8, len: 256, heads: 4, head_dim: 64 };
    let d = dims.heads * dims.head_dim;
    let qkv = values(3 * dims.batch * dims.len * d, 1);
    let mut out = vec![0f32; dims.batch * dims.len * d];
    g.throughput(Throughput::Elements(dims.batch as u64));
    g.bench_function("attention_8x256_h4x64", |b| b.iter(|| attention(&qkv, None, dims, &mut out)));

    let x = values(dims.batch * dims.len * d, 2);
    let (w1, b1) = (values(d * 512, 3), values(512, 4));
    let (w2, b2) = (values(512 * d, 5), values(d, 6));
    g.bench_function("feed_forward_8x256_256x512", |b| {
        b.iter(|| {
            let h = linear(&x, &w1, &b1, None, Some(Activation::Relu));
            linear(&h, &w2, &b2, Some(&x), None)
        })
    });

    let dims = Dims { batch: 1, len: 16_907, heads: 10, head_dim: 64 };
    let d = dims.heads * dims.head_dim;
    let qkv = values(3 * dims.len * d, 7);
    let projection = values(266 * dims.head_dim, 8);
    let mut out = vec![0f32; dims.len * d];
    g.throughput(Throughput::Elements(1));
    g.bench_function("favor_1x16907_h10x64_f266", |b| b.iter(|| favor_attention(&qkv, &projection, dims, &mut out)));
    g.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
