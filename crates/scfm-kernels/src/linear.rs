//! Linear layers on host slices: `activation(x W + b + residual)` in one parallel pass.
//!
//! burn-flex gives every op a fresh output: a matrix product zero-fills its result and copies
//! it once more to realign it, then the bias, the residual and the activation each make one
//! more pass with one more buffer. Here the output starts as `bias (+ residual)` and the
//! product accumulates onto it in the same `gemm` call, and the activation runs in place right
//! after it, block by block in the same parallel task. The numbers differ from an op-by-op
//! evaluation only by the order of those additions (float rounding).

use rayon::prelude::*;

/// The activations of the models' feed-forward layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// The exact (erf) GELU of PyTorch and Hugging Face's `"gelu"`.
    Gelu,
}

impl Activation {
    /// The activation applied in place, one thread; GELU through libm's `erff`, the function
    /// burn-flex's GELU calls, so both give the same values.
    pub fn apply_to_slice(self, x: &mut [f32]) {
        match self {
            Self::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
            Self::Gelu => {
                let sqrt2 = core::f32::consts::SQRT_2;
                x.iter_mut().for_each(|v| *v = 0.5 * *v * (1.0 + libm::erff(*v / sqrt2)));
            }
        }
    }
}

/// `activation(x W + b + residual)` for the `[k, n]` row-major `weight` and the `n` biases.
///
/// # Shapes
/// - `x`: `[rows, k]`
/// - `weight`: `[k, n]`
/// - `bias`: `[n]`
/// - `residual`: `[rows, n]`
/// - output: `[rows, n]`
///
/// # Panics
/// When the slices do not fit these shapes.
///
/// One parallel pass over blocks of rows: each task writes its block's bias (+ residual)
/// straight into fresh memory (no zero-fill first), accumulates its product onto it with
/// one single-threaded `gemm` call, then applies the activation. One fork and join per
/// layer instead of one for the bias and one for the product (and one more for the
/// activation): each join leaves a core waiting for the other's last block.
pub fn linear(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    residual: Option<&[f32]>,
    activation: Option<Activation>,
) -> Vec<f32> {
    let n = bias.len();
    assert!(n > 0 && weight.len().is_multiple_of(n), "a weight of {} values is not rows of {n}", weight.len());
    let k = weight.len() / n;
    assert!(k > 0 && x.len().is_multiple_of(k), "linear input of {} values is not rows of {k}", x.len());
    let m = x.len() / k;
    if m * n == 0 {
        return vec![];
    }
    if let Some(r) = residual {
        assert_eq!(r.len(), m * n, "residual does not fit the linear output");
    }
    let mut out: Vec<f32> = Vec::with_capacity(m * n);
    // Row blocks, two per thread: on this project's 2-core machine that ran −1 to +9 %
    // (mostly +2–4 %) against gemm's own threads over the whole product on Geneformer's
    // shapes (interleaved runs), and a block whose core is slowed down leaves its share
    // to the other thread.
    let rows = m.div_ceil(2 * rayon::current_num_threads()).next_multiple_of(16);
    let spare = &mut out.spare_capacity_mut()[..m * n];
    spare.par_chunks_mut(rows * n).enumerate().for_each(|(block, o)| {
        let first = block * rows;
        let block_rows = o.len() / n;
        match residual {
            Some(r) => {
                let r = &r[first * n..(first + block_rows) * n];
                for (o, r) in o.chunks_exact_mut(n).zip(r.chunks_exact(n)) {
                    for ((o, r), b) in o.iter_mut().zip(r).zip(bias) {
                        o.write(r + b);
                    }
                }
            }
            None => {
                for o in o.chunks_exact_mut(n) {
                    for (o, b) in o.iter_mut().zip(bias) {
                        o.write(*b);
                    }
                }
            }
        }
        // SAFETY: every element of the block was written just above (whole rows of n).
        let o: &mut [f32] = unsafe { &mut *(o as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) };
        let x = &x[first * k..(first + block_rows) * k];
        // SAFETY: x is [block_rows, k], weight [k, n] and o [block_rows, n], all
        // row-major and contiguous.
        unsafe {
            gemm::gemm(
                block_rows,
                n,
                k,
                o.as_mut_ptr(),
                1,
                n as isize,
                true,
                x.as_ptr(),
                1,
                k as isize,
                weight.as_ptr(),
                1,
                n as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        if let Some(activation) = activation {
            activation.apply_to_slice(o);
        }
    });
    // SAFETY: the blocks cover all m · n elements, and every one was written above.
    unsafe { out.set_len(m * n) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `activation(x W + b + residual)` evaluated naively in f64.
    fn naive(x: &[f32], w: &[f32], b: &[f32], r: Option<&[f32]>, act: Option<Activation>) -> Vec<f32> {
        let (n, k) = (b.len(), w.len() / b.len());
        let m = x.len() / k;
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut acc = f64::from(b[j]) + r.map_or(0.0, |r| f64::from(r[i * n + j]));
                for l in 0..k {
                    acc += f64::from(x[i * k + l]) * f64::from(w[l * n + j]);
                }
                out[i * n + j] = acc as f32;
            }
            if let Some(a) = act {
                a.apply_to_slice(&mut out[i * n..(i + 1) * n]);
            }
        }
        out
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    #[test]
    fn matches_the_naive_product_over_blocks_with_residual_and_activations() {
        // 70 rows: blocks of 16 rows with a short last one.
        for (m, k, n) in [(70, 24, 40), (1, 8, 3), (33, 64, 16)] {
            let (x, w, b, r) = (values(m * k, 1), values(k * n, 2), values(n, 3), values(m * n, 4));
            for act in [None, Some(Activation::Relu), Some(Activation::Gelu)] {
                for residual in [None, Some(r.as_slice())] {
                    let got = linear(&x, &w, &b, residual, act);
                    let want = naive(&x, &w, &b, residual, act);
                    let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max);
                    assert!(worst < 1e-5, "{m}x{k}x{n} {act:?}: {worst}");
                    if act == Some(Activation::Relu) {
                        assert!(got.iter().all(|&v| v >= 0.0));
                    }
                }
            }
        }
        assert!(linear(&[], &values(12, 0), &values(3, 0), None, None).is_empty());
    }
}
