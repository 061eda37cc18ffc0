//! burn 0.21 CPU backends on the shapes scfm runs: a 1024² matmul, and a 4-layer transformer
//! encoder (d_model 256, 8 heads, d_ff 1024, batch 8 × 512 tokens) forward and forward+backward.
//! Select the backend with one feature: `flex`, `ndarray` or `openblas`.

use burn::backend::Autodiff;
use burn::nn::transformer::{TransformerEncoderConfig, TransformerEncoderInput};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};

#[cfg(feature = "cuda")]
type B = burn::backend::Cuda;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
type B = burn::backend::Wgpu;
#[cfg(all(feature = "flex", not(any(feature = "cuda", feature = "wgpu"))))]
type B = burn::backend::Flex;
#[cfg(all(any(feature = "ndarray", feature = "openblas"), not(any(feature = "flex", feature = "cuda", feature = "wgpu"))))]
type B = burn::backend::NdArray;

#[cfg(feature = "cuda")]
const NAME: &str = "cuda";
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
const NAME: &str = "wgpu";
#[cfg(all(feature = "flex", not(any(feature = "cuda", feature = "wgpu"))))]
const NAME: &str = "flex";
#[cfg(all(feature = "openblas", not(any(feature = "flex", feature = "cuda", feature = "wgpu"))))]
const NAME: &str = "ndarray+openblas";
#[cfg(all(feature = "ndarray", not(any(feature = "flex", feature = "openblas", feature = "cuda", feature = "wgpu"))))]
const NAME: &str = "ndarray";

fn encoder<Bk: Backend>(device: &Bk::Device) -> burn::nn::transformer::TransformerEncoder<Bk> {
    TransformerEncoderConfig::new(256, 1024, 8, 4).with_dropout(0.0).init::<Bk>(device)
}

fn bench(c: &mut Criterion) {
    let device = Default::default();
    let mut g = c.benchmark_group(NAME);
    g.sample_size(10);

    let a = Tensor::<B, 2>::random([1024, 1024], Distribution::Default, &device);
    let b = Tensor::<B, 2>::random([1024, 1024], Distribution::Default, &device);
    g.bench_function("matmul_1024", |bn| bn.iter(|| a.clone().matmul(b.clone()).into_data()));

    let enc = encoder::<B>(&device);
    let x = Tensor::<B, 3>::random([8, 512, 256], Distribution::Default, &device);
    g.bench_function("encoder_forward_4x256_b8x512", |bn| {
        bn.iter(|| enc.forward(TransformerEncoderInput::new(x.clone())).into_data())
    });

    let enc = encoder::<Autodiff<B>>(&device);
    let x = Tensor::<Autodiff<B>, 3>::random([8, 512, 256], Distribution::Default, &device);
    g.bench_function("encoder_forward_backward_4x256_b8x512", |bn| {
        bn.iter(|| {
            let y = enc.forward(TransformerEncoderInput::new(x.clone()));
            let grads = y.powf_scalar(2.0).mean().backward();
            drop(grads);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
