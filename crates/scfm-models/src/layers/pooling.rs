use std::ops::Range;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// The mean of each row's hidden states over a range of positions (the real tokens, with or
/// without specials); a row with an empty range gives zeros.
///
/// # Shapes
/// - `hidden`: `[batch, len, d_model]`
/// - `ranges`: one per row, within `0..len`
/// - output: `[batch, d_model]`
pub fn mean_over<B: Backend>(hidden: Tensor<B, 3>, ranges: &[Range<usize>]) -> Tensor<B, 2> {
    let [b, l, d] = hidden.dims();
    let device = hidden.device();
    let (mut weights, mut counts) = (vec![0f32; b * l], vec![0f32; b]);
    for (row, range) in ranges.iter().enumerate() {
        weights[row * l + range.start..row * l + range.end].fill(1.0);
        counts[row] = range.len().max(1) as f32;
    }
    let dtype = hidden.dtype();
    let w = Tensor::<B, 3>::from_data(TensorData::new(weights, [b, l, 1]), (&device, dtype));
    let c = Tensor::<B, 2>::from_data(TensorData::new(counts, [b, 1]), (&device, dtype));
    (hidden * w).sum_dim(1).reshape([b, d]) / c
}

/// Each row divided by its L2 norm (scGPT's `embed_data` normalisation).
///
/// # Shapes
/// - `x`, output: `[batch, d]`
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt();
    x / norm
}
