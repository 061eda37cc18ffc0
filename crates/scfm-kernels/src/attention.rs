//! A fused multi-head attention kernel on host slices (what the models run for fp32 inference
//! on burn-flex, the default CPU backend), and FAVOR+ ([`favor_attention`]).
//!
//! burn-flex's own fused attention walks every query row for each 64-key tile with a scalar
//! `expf` per score, runs single-threaded, and needs the heads transposed into contiguous
//! `[batch, heads, len, head_dim]` tensors first (two copies per projection and one for the
//! output). This kernel reads the projections where one fused query/key/value product put
//! them (`[batch, len, 3 · heads · head_dim]`, heads side by side), writes the context rows
//! where the output projection reads them, tiles queries as well as keys so the running output
//! block stays in cache, evaluates the exponentials eight at a time with AVX2 where the CPU has it,
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
pub struct BiasLayout<'a> {
    /// The bias values.
    pub data: &'a [f32],
    /// Stride between cells.
    pub batch: usize,
    /// Stride between heads.
    pub head: usize,
    /// Stride between query rows.
    pub row: usize,
}

/// The shapes of one call.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    /// Cells.
    pub batch: usize,
    /// Tokens per cell.
    pub len: usize,
    /// Attention heads.
    pub heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

/// The three projections side by side in each row of a fused `qkv`.
#[derive(Debug, Clone, Copy)]
enum Projection {
    Query = 0,
    Key = 1,
    Value = 2,
}

impl Dims {
    /// The length of a row of a fused `qkv`: `3 · heads · head_dim`.
    fn qkv_stride(&self) -> usize {
        3 * self.heads * self.head_dim
    }

    /// `part` of `head` in a fused `qkv`, from position `first` of `cell` on: `head_dim`
    /// values per row, rows [`Self::qkv_stride`] apart.
    fn rows<'a>(&self, qkv: &'a [f32], part: Projection, cell: usize, head: usize, first: usize) -> &'a [f32] {
        let column = (part as usize * self.heads + head) * self.head_dim;
        &qkv[(cell * self.len + first) * self.qkv_stride() + column..]
    }
}

/// `softmax(q kᵀ · scale + bias) v` per cell and head. Each row of `qkv` holds a token's
/// query, key and value projections one after the other, each `heads · head_dim` wide with
/// head `h` in columns `h · head_dim ..`; the result has the layout of one of them.
///
/// # Shapes
/// - `qkv`: `[batch, len, 3 · heads · head_dim]`
/// - `bias`: broadcastable to `[batch, heads, len, len]` through its strides
/// - `out`: `[batch, len, heads · head_dim]`
pub fn attention(qkv: &[f32], bias: Option<BiasLayout<'_>>, dims: Dims, out: &mut [f32]) {
    let Dims { batch, len, heads, head_dim } = dims;
    let d = heads * head_dim;
    assert!(qkv.len() == 3 * batch * len * d && out.len() == batch * len * d, "attention buffers do not fit {dims:?}");
    if out.is_empty() {
        return;
    }
    if let Some(b) = bias {
        let last = (batch - 1) * b.batch + (heads - 1) * b.head + (len - 1) * b.row + len;
        assert!(b.data.len() >= last, "attention bias is too short for its strides");
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
        let stride = self.dims.qkv_stride();
        for head in 0..heads {
            acc.fill(0.0);
            row_max.fill(f32::NEG_INFINITY);
            row_sum.fill(0.0);
            let column = head * head_dim;
            let q = self.dims.rows(self.qkv, Projection::Query, self.cell, head, self.first_query);
            for first_key in (0..len).step_by(key_block) {
                let keys = key_block.min(len - first_key);
                let tile = &mut scores[..rows * keys];
                let k = self.dims.rows(self.qkv, Projection::Key, self.cell, head, first_key);
                let v = self.dims.rows(self.qkv, Projection::Value, self.cell, head, first_key);
                // tile = scale · q_block · k_blockᵀ
                // SAFETY: q holds `rows` rows of `stride` from its start, k and v `keys` rows,
                // each head_dim wide (asserted length; first_query + rows ≤ len, first_key +
                // keys ≤ len); the tile is rows × keys, row-major.
                unsafe {
                    let (q, k) = (Strided::rows(q, stride), Strided::transposed(k, stride));
                    matmul([rows, head_dim, keys], tile.as_mut_ptr(), keys, false, q, k, self.scale);
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
                    let (tile, v) = (Strided::rows(tile, keys), Strided::rows(v, stride));
                    matmul([rows, keys, head_dim], acc.as_mut_ptr(), head_dim, true, tile, v, 1.0);
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

/// The `+ eps` of FAVOR+'s softmax-kernel feature maps (`performer_pytorch`'s `eps`): the
/// burn path of the models adds the same constant.
pub const FEATURE_EPS: f64 = 1e-4;
/// [`FEATURE_EPS`] in the kernel's precision.
const FEATURE_EPS_F32: f32 = FEATURE_EPS as f32;
/// Positions per block of the FAVOR+ feature maps (`[ROW_BLOCK, nb_features]` at a time).
const ROW_BLOCK: usize = 256;

/// Non-causal FAVOR+ attention with the softmax kernel, as
/// `scfm_models::layers::favor_attention` defines it (same formulas, same global key maximum over
/// every cell, head, position and feature of the call), from a fused `qkv` as in
/// [`attention`]. `projection` is the `[nb_features, head_dim]` random-feature matrix.
///
/// The `[len, nb_features]` feature maps are never held whole. Keys go block by block with a
/// running maximum per (cell, head) instead of the global one; because the key features are
/// `exp(· − max) + eps`, their sums `k'ᵀ v` and `Σ k'` split into an exponential part, which
/// one factor `exp(max_head − max_all)` moves onto the global maximum afterwards, and
/// `eps · Σ v`, `eps · len`. The result equals the direct formula up to float rounding.
///
/// # Shapes
/// - `qkv`: `[batch, len, 3 · heads · head_dim]`
/// - `projection`: `[nb_features, head_dim]`
/// - `out`: `[batch, len, heads · head_dim]`
pub fn favor_attention(qkv: &[f32], projection: &[f32], dims: Dims, out: &mut [f32]) {
    let Dims { batch, len, heads, head_dim } = dims;
    let d = heads * head_dim;
    assert!(qkv.len() == 3 * batch * len * d && out.len() == batch * len * d, "attention buffers do not fit {dims:?}");
    assert!(head_dim > 0 && projection.len().is_multiple_of(head_dim), "projection rows are not {head_dim} wide");
    if out.is_empty() {
        return;
    }
    let features = projection.len() / head_dim;
    // `c = head_dim^(-1/4)` scales the projection rather than the data, as the burn path does.
    let c = (head_dim as f32).powf(-0.25);
    let projection: Vec<f32> = projection.iter().map(|w| w * c).collect();
    let half_c2 = c * c / 2.0;
    let map = FeatureMap { qkv, projection: &projection, dims, features, half_c2 };
    let mut sums: Vec<KeySums> =
        (0..batch * heads).into_par_iter().map(|task| map.key_sums(task / heads, task % heads)).collect();
    let global = sums.iter().map(|s| s.max).fold(f32::NEG_INFINITY, f32::max);
    sums.par_iter_mut().for_each(|s| s.finish(global, len, head_dim));
    out.par_chunks_mut(len * d).enumerate().for_each(|(cell, cell_out)| {
        cell_out.par_chunks_mut(ROW_BLOCK * d).enumerate().for_each(|(block, block_out)| {
            map.queries(cell, block * ROW_BLOCK, &sums[cell * heads..(cell + 1) * heads], block_out);
        });
    });
}

/// One head's key summaries: `k'ᵀ v` (`[features, head_dim]`) and `Σ k'` (`[features]`).
struct KeySums {
    /// The running maximum of `c · k Wᵀ` the exponentials are taken against.
    max: f32,
    context: Vec<f32>,
    key_sum: Vec<f32>,
    value_sum: Vec<f32>,
}

impl KeySums {
    /// Moves the sums onto the global maximum and adds the `eps` parts.
    fn finish(&mut self, global: f32, len: usize, head_dim: usize) {
        let scale = if self.max == f32::NEG_INFINITY { 0.0 } else { (self.max - global).exp() };
        for row in self.context.chunks_exact_mut(head_dim) {
            for (c, v) in row.iter_mut().zip(&self.value_sum) {
                *c = *c * scale + FEATURE_EPS_F32 * v;
            }
        }
        self.key_sum.iter_mut().for_each(|k| *k = *k * scale + FEATURE_EPS_F32 * len as f32);
    }
}

/// What the two FAVOR+ phases share.
struct FeatureMap<'a> {
    qkv: &'a [f32],
    /// `c · W`, `[features, head_dim]`.
    projection: &'a [f32],
    dims: Dims,
    features: usize,
    half_c2: f32,
}

impl FeatureMap<'_> {
    /// `dash = c · x Wᵀ` for `rows` positions of projection `part` of `head` from `first` on,
    /// into `dash` (`[rows, features]`); returns the norm terms `c²|x|²/2` per position.
    fn dash(
        &self,
        part: Projection,
        cell: usize,
        head: usize,
        first: usize,
        rows: usize,
        dash: &mut [f32],
    ) -> Vec<f32> {
        let (head_dim, stride) = (self.dims.head_dim, self.dims.qkv_stride());
        let x = self.dims.rows(self.qkv, part, cell, head, first);
        // SAFETY: `rows` rows of `stride` from x (first + rows ≤ len), the projection is
        // features × head_dim, dash rows × features.
        unsafe {
            let (lhs, rhs) = (Strided::rows(x, stride), Strided::transposed(self.projection, head_dim));
            matmul([rows, head_dim, self.features], dash.as_mut_ptr(), self.features, false, lhs, rhs, 1.0);
        }
        (0..rows)
            .map(|r| x[r * stride..r * stride + head_dim].iter().map(|v| v * v).sum::<f32>() * self.half_c2)
            .collect()
    }

    /// The key summaries of one (cell, head), block by block with a running maximum.
    fn key_sums(&self, cell: usize, head: usize) -> KeySums {
        let Dims { len, head_dim, .. } = self.dims;
        let (f, stride) = (self.features, self.dims.qkv_stride());
        let mut sums = KeySums {
            max: f32::NEG_INFINITY,
            context: vec![0.0; f * head_dim],
            key_sum: vec![0.0; f],
            value_sum: vec![0.0; head_dim],
        };
        let mut dash = vec![0f32; ROW_BLOCK.min(len) * f];
        for first in (0..len).step_by(ROW_BLOCK) {
            let rows = ROW_BLOCK.min(len - first);
            let dash = &mut dash[..rows * f];
            let norms = self.dash(Projection::Key, cell, head, first, rows, dash);
            let max = sums.max.max(max_of(dash));
            if max > sums.max && sums.max != f32::NEG_INFINITY {
                let scale = (sums.max - max).exp();
                sums.context.iter_mut().chain(&mut sums.key_sum).for_each(|x| *x *= scale);
            }
            sums.max = max;
            for (row, norm) in dash.chunks_exact_mut(f).zip(&norms) {
                exp_minus(row, norm + max);
                sums.key_sum.iter_mut().zip(row.iter()).for_each(|(s, e)| *s += e);
            }
            let v = self.dims.rows(self.qkv, Projection::Value, cell, head, first);
            for r in 0..rows {
                sums.value_sum.iter_mut().zip(&v[r * stride..r * stride + head_dim]).for_each(|(s, v)| *s += v);
            }
            // context += expᵀ · v
            // SAFETY: dash is rows × features, v `rows` rows of `stride`, context features ×
            // head_dim.
            unsafe {
                let (lhs, rhs) = (Strided::transposed(dash, f), Strided::rows(v, stride));
                matmul([f, rows, head_dim], sums.context.as_mut_ptr(), head_dim, true, lhs, rhs, 1.0);
            }
        }
        sums
    }

    /// The outputs of one cell's block of positions from `first` on, every head:
    /// `q' (k'ᵀ v) / (q' · Σ k')` with `q' = exp(dash − c²|q|²/2 − max_row) + eps`.
    fn queries(&self, cell: usize, first: usize, sums: &[KeySums], out: &mut [f32]) {
        let Dims { heads, head_dim, .. } = self.dims;
        let (f, d) = (self.features, heads * head_dim);
        let rows = out.len() / d;
        let mut dash = vec![0f32; rows * f];
        for (head, sums) in sums.iter().enumerate() {
            let norms = self.dash(Projection::Query, cell, head, first, rows, &mut dash);
            for (row, norm) in dash.chunks_exact_mut(f).zip(&norms) {
                exp_minus(row, norm + max_of(row));
                row.iter_mut().for_each(|x| *x += FEATURE_EPS_F32);
            }
            let o = &mut out[head * head_dim..];
            // SAFETY: dash is rows × features, the context features × head_dim, and out
            // holds `rows` rows of d from head · head_dim.
            unsafe {
                let (lhs, rhs) = (Strided::rows(&dash, f), Strided::rows(&sums.context, head_dim));
                matmul([rows, f, head_dim], o.as_mut_ptr(), d, false, lhs, rhs, 1.0);
            }
            for (r, q) in dash.chunks_exact(f).enumerate() {
                let denominator: f32 = q.iter().zip(&sums.key_sum).map(|(q, k)| q * k).sum();
                o[r * d..r * d + head_dim].iter_mut().for_each(|x| *x /= denominator);
            }
        }
    }
}

/// A strided matrix operand: element `(i, j)` at `ptr + i · rows + j · cols`.
#[derive(Clone, Copy)]
struct Strided {
    ptr: *const f32,
    rows: isize,
    cols: isize,
}

impl Strided {
    /// Row-major rows of `stride` elements from the start of `data`.
    fn rows(data: &[f32], stride: usize) -> Self {
        Self { ptr: data.as_ptr(), rows: stride as isize, cols: 1 }
    }

    /// The transpose of [`Self::rows`].
    fn transposed(data: &[f32], stride: usize) -> Self {
        Self { ptr: data.as_ptr(), rows: 1, cols: stride as isize }
    }
}

/// `dst = scale · lhs · rhs` (`+ dst` when `accumulate`), one thread; `lhs` is `[m, k]`, `rhs`
/// `[k, n]`, `dst` `[m, n]` row-major with rows of `dst_stride`.
///
/// # Safety
/// Every element the shapes and strides address must lie inside the allocation its pointer
/// came from.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul(
    [m, k, n]: [usize; 3],
    dst: *mut f32,
    dst_stride: usize,
    accumulate: bool,
    lhs: Strided,
    rhs: Strided,
    scale: f32,
) {
    // SAFETY: forwarded to the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_stride as isize,
            accumulate,
            lhs.ptr,
            lhs.cols,
            lhs.rows,
            rhs.ptr,
            rhs.cols,
            rhs.rows,
            1.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
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

    /// FAVOR+ by its direct formula (MODELS.md §1.6), in f64, with the global key maximum.
    fn favor_reference(qkv: &[f32], projection: &[f32], dims: Dims) -> Vec<f64> {
        let Dims { batch, len, heads, head_dim } = dims;
        let (d, f) = (heads * head_dim, projection.len() / head_dim);
        let c = (head_dim as f64).powf(-0.25);
        let x = |b: usize, p: usize, i: usize, h: usize| -> Vec<f64> {
            let at = (b * len + i) * 3 * d + p * d + h * head_dim;
            qkv[at..at + head_dim].iter().map(|v| *v as f64).collect()
        };
        let dash = |x: &[f64]| -> Vec<f64> {
            (0..f).map(|j| c * (0..head_dim).map(|e| x[e] * projection[j * head_dim + e] as f64).sum::<f64>()).collect()
        };
        let norm = |x: &[f64]| c * c / 2.0 * x.iter().map(|v| v * v).sum::<f64>();
        let global = (0..batch * heads * len)
            .flat_map(|t| dash(&x(t / (heads * len), 1, t % len, t / len % heads)))
            .fold(f64::NEG_INFINITY, f64::max);
        let mut out = vec![0f64; batch * len * d];
        for b in 0..batch {
            for h in 0..heads {
                let keys: Vec<Vec<f64>> = (0..len)
                    .map(|i| {
                        let k = x(b, 1, i, h);
                        dash(&k).iter().map(|v| (v - norm(&k) - global).exp() + 1e-4).collect()
                    })
                    .collect();
                for i in 0..len {
                    let q = x(b, 0, i, h);
                    let qd = dash(&q);
                    let shift = norm(&q) + qd.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let qf: Vec<f64> = qd.iter().map(|v| (v - shift).exp() + 1e-4).collect();
                    let weights: Vec<f64> = keys.iter().map(|k| qf.iter().zip(k).map(|(a, b)| a * b).sum()).collect();
                    let total: f64 = weights.iter().sum();
                    for e in 0..head_dim {
                        let o: f64 = (0..len).map(|j| weights[j] * x(b, 2, j, h)[e]).sum();
                        out[(b * len + i) * d + h * head_dim + e] = o / total;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn favor_matches_its_direct_formula_over_blocks_and_cells() {
        // 600 positions: three key blocks (256 + 256 + 88), so the running maximum rescales;
        // two cells whose key scales differ, so the global maximum is the other cell's.
        let dims = Dims { batch: 2, len: 600, heads: 2, head_dim: 8 };
        let n = dims.batch * dims.len * dims.heads * dims.head_dim;
        let mut qkv = values(3 * n, 5);
        let half = qkv.len() / 2;
        qkv[half..].iter_mut().for_each(|v| *v *= 1.5);
        let projection = values(13 * dims.head_dim, 6);
        let mut out = vec![f32::NAN; n];
        favor_attention(&qkv, &projection, dims, &mut out);
        let expected = favor_reference(&qkv, &projection, dims);
        let worst = out.iter().zip(&expected).map(|(a, b)| (*a as f64 - b).abs()).fold(0f64, f64::max);
        let scale = expected.iter().fold(0f64, |m, v| m.max(v.abs()));
        assert!(worst < 1e-5 * scale.max(1.0), "max |kernel − reference| = {worst}");
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
