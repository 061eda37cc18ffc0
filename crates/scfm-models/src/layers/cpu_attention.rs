//! A fused multi-head attention kernel for the default CPU backend (burn-flex, fp32 inference).
//!
//! burn-flex's own fused attention walks every query row for each 64-key tile with a scalar
//! `expf` per score, runs single-threaded, and needs the heads transposed into contiguous
//! `[batch, heads, len, head_dim]` tensors first (two copies per projection and one for the
//! output). This kernel reads the projections where one fused query/key/value product put
//! them (`[batch, len, 3 · heads · head_dim]`, heads side by side), writes the context rows
//! where the output projection reads them, tiles queries as well as keys so the running output block
//! stays in cache, evaluates the exponentials eight at a time with AVX2 where the CPU has it,
//! and spreads (cell, query block) tasks over rayon's threads. The two products per tile are
//! `gemm` calls, the library burn-flex's matrix products use.
//!
//! The softmax is the usual online one (running maximum and sum per query row), so no
//! `[len, len]` score matrix is ever held: memory per task is one `[QUERY_BLOCK, KEY_BLOCK]`
//! tile. Results agree with the two-pass softmax to float rounding.

use rayon::prelude::*;

/// Query rows per task at most (fewer when that leaves threads idle): the running
/// `[QUERY_BLOCK, head_dim]` output block and the `[QUERY_BLOCK, KEY_BLOCK]` score tile
/// (512 KB) stay in the L2 cache. Tuned on Geneformer V1 shapes at 1,024 tokens (64 → 256:
/// about 15 % faster).
const QUERY_BLOCK: usize = 256;
/// Keys per tile.
const KEY_BLOCK: usize = 512;

/// An additive attention bias laid out in memory as `data[b · batch + h · head + i · row + j]`
/// for cell `b`, head `h`, query `i` and key `j`; a stride of 0 broadcasts (a key-padding
/// bias has `head = row = 0`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BiasLayout<'a> {
    pub data: &'a [f32],
    pub batch: usize,
    pub head: usize,
    pub row: usize,
}

/// The shapes of one call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub batch: usize,
    pub len: usize,
    pub heads: usize,
    pub head_dim: usize,
}

/// `softmax(q kᵀ · scale + bias) v` per cell and head. Each row of `qkv` holds a token's
/// query, key and value projections one after the other, each `heads · head_dim` wide with
/// head `h` in columns `h · head_dim ..`; the result has the layout of one of them.
///
/// # Shapes
/// - `qkv`: `[batch, len, 3 · heads · head_dim]`
/// - `bias`: broadcastable to `[batch, heads, len, len]` through its strides
/// - `out`: `[batch, len, heads · head_dim]`
pub(crate) fn attention(qkv: &[f32], bias: Option<BiasLayout<'_>>, dims: Dims, out: &mut [f32]) {
    let Dims { batch, len, heads, head_dim } = dims;
    let d = heads * head_dim;
    assert!(qkv.len() == 3 * batch * len * d && out.len() == batch * len * d, "attention buffers do not fit {dims:?}");
    if let Some(b) = bias {
        let last = (batch - 1) * b.batch + (heads - 1) * b.head + (len - 1) * b.row + len;
        assert!(batch == 0 || len == 0 || b.data.len() >= last, "attention bias is too short for its strides");
    }
    if out.is_empty() {
        return;
    }
    let scale = 1.0 / (head_dim as f32).sqrt();
    // Smaller query blocks where a large one would leave threads idle (short or few cells).
    let mut qb = QUERY_BLOCK;
    while qb > 32 && batch * len.div_ceil(qb) < 4 * rayon::current_num_threads() {
        qb /= 2;
    }
    out.par_chunks_mut(len * d).enumerate().for_each(|(cell, cell_out)| {
        cell_out.par_chunks_mut(qb * d).enumerate().for_each(|(block, block_out)| {
            let task = Task { qkv, bias, dims, scale, cell, first_query: block * qb };
            task.run(block_out);
        });
    });
}

/// One cell's block of query rows, all heads.
struct Task<'a> {
    qkv: &'a [f32],
    bias: Option<BiasLayout<'a>>,
    dims: Dims,
    scale: f32,
    cell: usize,
    first_query: usize,
}

impl Task<'_> {
    fn run(&self, out: &mut [f32]) {
        let Dims { len, heads, head_dim, .. } = self.dims;
        let d = heads * head_dim;
        let rows = out.len() / d;
        let key_block = KEY_BLOCK.min(len);
        let mut scores = vec![0f32; rows * key_block];
        let mut acc = vec![0f32; rows * head_dim];
        let mut row_max = vec![f32::NEG_INFINITY; rows];
        let mut row_sum = vec![0f32; rows];
        let stride = 3 * d;
        let cell_offset = self.cell * len * stride;
        for head in 0..heads {
            acc.fill(0.0);
            row_max.fill(f32::NEG_INFINITY);
            row_sum.fill(0.0);
            let column = head * head_dim;
            let q = &self.qkv[cell_offset + self.first_query * stride + column..];
            for first_key in (0..len).step_by(key_block) {
                let keys = key_block.min(len - first_key);
                let tile = &mut scores[..rows * keys];
                let k = &self.qkv[cell_offset + first_key * stride + d + column..];
                let v = &self.qkv[cell_offset + first_key * stride + 2 * d + column..];
                // tile = scale · q_block · k_blockᵀ
                // SAFETY: q holds `rows` rows of `stride` from its start, k and v `keys` rows,
                // each head_dim wide (asserted length; first_query + rows ≤ len, first_key +
                // keys ≤ len); the tile is rows × keys, row-major.
                unsafe {
                    gemm::gemm(
                        rows,
                        keys,
                        head_dim,
                        tile.as_mut_ptr(),
                        1,
                        keys as isize,
                        false,
                        q.as_ptr(),
                        1,
                        stride as isize,
                        k.as_ptr(),
                        stride as isize,
                        1,
                        0.0,
                        self.scale,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                for (r, scores) in tile.chunks_exact_mut(keys).enumerate() {
                    if let Some(b) = self.bias {
                        let at = self.cell * b.batch + head * b.head + (self.first_query + r) * b.row + first_key;
                        for (s, b) in scores.iter_mut().zip(&b.data[at..at + keys]) {
                            *s += b;
                        }
                    }
                    let old = row_max[r];
                    let max = old.max(max_of(scores));
                    let sum = exp_minus(scores, max);
                    let correction = if old == f32::NEG_INFINITY { 0.0 } else { (old - max).exp() };
                    if correction != 1.0 {
                        acc[r * head_dim..(r + 1) * head_dim].iter_mut().for_each(|a| *a *= correction);
                    }
                    row_sum[r] = row_sum[r] * correction + sum;
                    row_max[r] = max;
                }
                // acc += tile · v_block
                // SAFETY: as above; acc is rows × head_dim, row-major.
                unsafe {
                    gemm::gemm(
                        rows,
                        head_dim,
                        keys,
                        acc.as_mut_ptr(),
                        1,
                        head_dim as isize,
                        true,
                        tile.as_ptr(),
                        1,
                        keys as isize,
                        v.as_ptr(),
                        1,
                        stride as isize,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            }
            for r in 0..rows {
                let inv = 1.0 / row_sum[r];
                let o = &mut out[r * d + column..r * d + column + head_dim];
                for (o, a) in o.iter_mut().zip(&acc[r * head_dim..(r + 1) * head_dim]) {
                    *o = a * inv;
                }
            }
        }
    }
}

/// The largest element (−∞ for none).
fn max_of(x: &[f32]) -> f32 {
    // Eight running maxima: the compiler vectorises this, where a single fold is sequential.
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l = l.max(*v);
        }
    }
    tail.iter().fold(lanes.into_iter().fold(f32::NEG_INFINITY, f32::max), |m, v| m.max(*v))
}

/// Replaces every `x` by `exp(x − max)` and returns their sum.
fn exp_minus(x: &mut [f32], max: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { avx2::exp_minus(x, max) };
    }
    let mut sum = 0.0;
    for v in x {
        *v = (*v - max).exp();
        sum += *v;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// [`super::exp_minus`] eight lanes at a time.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn exp_minus(x: &mut [f32], max: f32) -> f32 {
        let m = _mm256_set1_ps(max);
        let mut sum = _mm256_setzero_ps();
        let mut chunks = x.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: c holds exactly eight f32.
            let e = exp(_mm256_sub_ps(unsafe { _mm256_loadu_ps(c.as_ptr()) }, m));
            unsafe { _mm256_storeu_ps(c.as_mut_ptr(), e) };
            sum = _mm256_add_ps(sum, e);
        }
        let mut lanes = [0f32; 8];
        // SAFETY: lanes holds eight f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
        let mut total: f32 = lanes.iter().sum();
        for v in chunks.into_remainder() {
            *v = (*v - max).exp();
            total += *v;
        }
        total
    }

    /// `exp` of eight lanes, for arguments ≤ 0 (Cephes' `expf`: 2ⁿ times a degree-6
    /// polynomial on the reduced argument; about 1 ulp). Arguments below −87.3, whose
    /// exponential is below the smallest normal f32, give 0, as `f32::exp` nearly does.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn exp(x: __m256) -> __m256 {
        let underflow = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(-87.3));
        let x = _mm256_max_ps(x, _mm256_set1_ps(-87.3));
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
            x,
            _mm256_set1_ps(std::f32::consts::LOG2_E),
        ));
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm256_set1_ps(1.987_569_1e-4);
        for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0)));
        let scale = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        )));
        _mm256_andnot_ps(underflow, _mm256_mul_ps(p, scale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two-pass softmax attention, written out plainly.
    fn reference(qkv: &[f32], bias: Option<BiasLayout<'_>>, dims: Dims) -> Vec<f32> {
        let Dims { batch, len, heads, head_dim } = dims;
        let d = heads * head_dim;
        let mut out = vec![0f32; batch * len * d];
        for b in 0..batch {
            for h in 0..heads {
                for i in 0..len {
                    // Projection `p` (0 = q, 1 = k, 2 = v) of token `row`, element `e` of head h.
                    let at =
                        |p: usize, row: usize, e: usize| qkv[(b * len + row) * 3 * d + p * d + h * head_dim + e] as f64;
                    let scores: Vec<f64> = (0..len)
                        .map(|j| {
                            let dot: f64 = (0..head_dim).map(|e| at(0, i, e) * at(1, j, e)).sum();
                            let bias = bias.map_or(0.0, |x| x.data[b * x.batch + h * x.head + i * x.row + j] as f64);
                            dot / (head_dim as f64).sqrt() + bias
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let w: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let total: f64 = w.iter().sum();
                    for e in 0..head_dim {
                        let o: f64 = (0..len).map(|j| w[j] * at(2, j, e)).sum();
                        out[(b * len + i) * d + h * head_dim + e] = (o / total) as f32;
                    }
                }
            }
        }
        out
    }

    /// Deterministic pseudo-random values in [-2, 2).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
            })
            .collect()
    }

    #[test]
    fn matches_the_two_pass_softmax_across_tiles_with_any_bias() {
        // 600 keys: two key tiles (512 + 88) and ten query blocks, the last one partial.
        let dims = Dims { batch: 2, len: 600, heads: 3, head_dim: 8 };
        let n = dims.batch * dims.len * dims.heads * dims.head_dim;
        let qkv = values(3 * n, 1);
        // Key padding: the last 100 keys of cell 1 masked with the most negative f32.
        let mut padding = vec![0f32; dims.batch * dims.len];
        padding[dims.len + 500..].fill(f32::MIN);
        let key_bias = BiasLayout { data: &padding, batch: dims.len, head: 0, row: 0 };
        // A full bias per cell and head.
        let full = values(dims.batch * dims.heads * dims.len * dims.len, 4);
        let full_bias = BiasLayout {
            data: &full,
            batch: dims.heads * dims.len * dims.len,
            head: dims.len * dims.len,
            row: dims.len,
        };
        for bias in [None, Some(key_bias), Some(full_bias)] {
            let mut out = vec![f32::NAN; n];
            attention(&qkv, bias, dims, &mut out);
            let expected = reference(&qkv, bias, dims);
            let worst = out.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-5, "max |kernel − reference| = {worst}");
        }
    }

    #[test]
    fn exponentials_agree_with_the_standard_library() {
        let mut x: Vec<f32> = (0..2000).map(|i| -(i as f32) * 0.05).chain([-87.0, -87.5, -100.0, f32::MIN]).collect();
        let expected: Vec<f32> = x.iter().map(|v| v.exp()).collect();
        let sum = exp_minus(&mut x, 0.0);
        for (a, b) in x.iter().zip(&expected) {
            // Below the smallest normal f32 the kernel flushes to 0.
            assert!((a - b).abs() <= 2.0 * f32::EPSILON * b + f32::MIN_POSITIVE, "{a} vs {b}");
        }
        let expected_sum: f32 = expected.iter().sum();
        assert!((sum - expected_sum).abs() < 1e-5 * expected_sum);
    }
}
