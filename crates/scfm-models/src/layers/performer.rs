//! FAVOR+ linear attention (Choromanski et al. 2021) and the pre-norm Performer stack, exactly as
//! scBERT's fork of `performer_pytorch` computes them (MODELS.md §1.6) — the encoder of scBERT
//! and the decoder of scFoundation.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::activation::gelu;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use scfm_core::NumpyPcg64;

use super::attention::{cpu_kernel_applies, host_tensor};
use super::cpu_linear::{HostLinear, HostValues};
use crate::checkpoint::ModuleSource;
use scfm_kernels::attention::{self as cpu_attention, Dims};

/// The `+ eps` of the softmax-kernel feature maps.
pub(super) const FEATURE_EPS: f64 = cpu_attention::FEATURE_EPS;

/// Multi-head FAVOR+ self-attention with the softmax kernel: `to_q`, `to_k`, `to_v` (with or
/// without bias), the random-feature projection shared by all heads, and `to_out`.
///
/// The projection is the stored buffer; [`Self::forward`] never redraws it. Training code
/// redraws explicitly with [`Self::redraw`].
#[derive(Module, Debug)]
pub struct FavorAttention<B: Backend> {
    pub to_q: Linear<B>,
    pub to_k: Linear<B>,
    pub to_v: Linear<B>,
    pub to_out: Linear<B>,
    /// `[nb_features, dim_head]`; not trained (no gradient).
    pub projection: Param<Tensor<B, 2>>,
    pub heads: usize,
}

impl<B: Backend> FavorAttention<B> {
    /// One attention block over all positions (no mask: neither scBERT nor scFoundation masks).
    ///
    /// The key features subtract one maximum over the whole call — every cell of the batch,
    /// every head, position and feature — as upstream does. Because of the `+1e-4` in the
    /// feature map that maximum does not cancel, so a cell's output depends slightly on the
    /// other cells of its batch (up to ~0.1 on the parity fixtures). Run one cell per call to
    /// reproduce `predict.py` / `get_embedding.py`.
    ///
    /// # Shapes
    /// - `x`: `[batch, len, dim]`
    /// - output: `[batch, len, dim]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, n, _] = x.dims();
        let h = self.heads;
        let inner = self.to_q.weight.dims()[1];
        if cpu_kernel_applies(&x) {
            // scfm's CPU kernel: fp32 inference on burn-flex.
            let device = x.device();
            let qkv = HostLinear::of(&[&self.to_q, &self.to_k, &self.to_v]).forward(HostValues::of(x).as_slice(), None);
            let projection = HostValues::of(self.projection.val());
            let mut out = vec![0f32; b * n * inner];
            let dims = Dims { batch: b, len: n, heads: h, head_dim: inner / h };
            cpu_attention::favor_attention(&qkv, projection.as_slice(), dims, &mut out);
            return self.to_out.forward(host_tensor(out, [b, n, inner], &device));
        }
        let split = |t: Tensor<B, 3>| t.reshape([b, n, h, inner / h]).swap_dims(1, 2);
        let q = split(self.to_q.forward(x.clone()));
        let k = split(self.to_k.forward(x.clone()));
        let v = split(self.to_v.forward(x));
        let out = favor_attention(q, k, v, self.projection.val());
        self.to_out.forward(out.swap_dims(1, 2).reshape([b, n, inner]))
    }

    /// Replaces the projection by a fresh Gaussian orthogonal draw from `seed` (what upstream's
    /// `redraw_projection_matrix` does every `feature_redraw_interval` training steps).
    pub fn redraw(&mut self, seed: u64) {
        let [m, d] = self.projection.dims();
        let projection = orthogonal_projection(m, d, seed, &self.projection.device());
        self.projection = Param::from_tensor(projection).set_require_grad(false);
    }
}

/// Non-causal FAVOR+ attention with the softmax kernel (MODELS.md §1.6): with `c = d^(-1/4)`,
/// `ratio = m^(-1/2)`,
/// `q' = ratio·(exp(c·q Wᵀ − c²|q|²/2 − max_row) + 1e-4)`,
/// `k' = ratio·(exp(c·k Wᵀ − c²|k|²/2 − max_all) + 1e-4)`,
/// `out = (q' (k'ᵀ v)) / (q' · Σₙ k')`.
///
/// # Shapes
/// - `q`, `k`, `v`: `[batch, heads, len, dim_head]`
/// - `projection`: `[nb_features, dim_head]`
/// - output: `[batch, heads, len, dim_head]`
pub fn favor_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    projection: Tensor<B, 2>,
) -> Tensor<B, 4> {
    let [_, _, _, d] = q.dims();
    let c = (d as f64).powf(-0.25);
    // `c` scales the (small) projection instead of the data; `ratio = m^(-1/2)` is left out:
    // it multiplies every query and key feature, so it cancels between the numerator
    // `q' (k'ᵀ v)` and the denominator `q' · Σ k'`. Both only move rounding (≤ 1e-6 of the
    // scale on the fixtures) and save passes over the `[batch, heads, len, features]` maps.
    let wt = projection.mul_scalar(c).transpose().unsqueeze::<4>();
    // The maxima are taken over `c·x Wᵀ` before the norm term is subtracted, as upstream does:
    // the norm term does not cancel.
    let kernel = |x: Tensor<B, 4>| {
        let dash = x.clone().matmul(wt.clone());
        let diag = x.powi_scalar(2).sum_dim(3).mul_scalar(c * c / 2.0);
        (dash, diag)
    };
    let (q_dash, q_diag) = kernel(q);
    let q_shift = q_diag + q_dash.clone().max_dim(3);
    let q_feat = (q_dash - q_shift).exp().add_scalar(FEATURE_EPS);
    let (k_dash, k_diag) = kernel(k);
    let k_shift = k_diag + k_dash.clone().max().reshape([1, 1, 1, 1]);
    let k_feat = (k_dash - k_shift).exp().add_scalar(FEATURE_EPS);
    let k_sum = k_feat.clone().sum_dim(2).swap_dims(2, 3);
    let denominator = q_feat.clone().matmul(k_sum);
    let context = k_feat.swap_dims(2, 3).matmul(v);
    q_feat.matmul(context) / denominator
}

/// [`gaussian_orthogonal`] as a `[rows, cols]` tensor on `device`.
pub fn orthogonal_projection<B: Backend>(rows: usize, cols: usize, seed: u64, device: &B::Device) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(gaussian_orthogonal(rows, cols, seed), [rows, cols]), device)
}

/// `gaussian_orthogonal_random_matrix(rows, cols, scaling=0)` of `performer_pytorch`: stacked
/// `cols × cols` orthonormal blocks (Gram–Schmidt of Gaussian matrices), rows scaled by the
/// norms of Gaussian vectors, from a PCG64 generator seeded with `seed`. Row-major
/// `[rows, cols]`. Statistically the upstream draw; not the same numbers as torch's generator.
pub fn gaussian_orthogonal(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut rng = NumpyPcg64::from_entropy(&[seed as u32, (seed >> 32) as u32]);
    let mut normal = move || {
        let (u1, u2) = (1.0 - rng.next_f64(), rng.next_f64());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let mut out = Vec::with_capacity(rows * cols);
    while out.len() < rows * cols {
        // Orthonormalise `cols` Gaussian vectors (modified Gram–Schmidt, re-drawing the rare
        // nearly dependent one).
        let mut block: Vec<Vec<f64>> = Vec::with_capacity(cols);
        while block.len() < cols {
            let mut v: Vec<f64> = (0..cols).map(|_| normal()).collect();
            for u in &block {
                let dot: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
            }
            let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
            if norm > 1e-6 {
                block.push(v.into_iter().map(|a| a / norm).collect());
            }
        }
        for row in block.into_iter().take((rows * cols - out.len()) / cols) {
            out.extend(row.into_iter().map(|a| a as f32));
        }
    }
    for row in out.chunks_mut(cols) {
        let scale = (0..cols).map(|_| normal().powi(2)).sum::<f64>().sqrt() as f32;
        row.iter_mut().for_each(|a| *a *= scale);
    }
    out
}

/// One pre-norm Performer layer: `x + attn(norm1(x))`, then `+ ff2(gelu(ff1(norm2(x))))`.
#[derive(Module, Debug)]
pub struct PerformerLayer<B: Backend> {
    pub attn_norm: LayerNorm<B>,
    pub attention: FavorAttention<B>,
    pub ff_norm: LayerNorm<B>,
    pub ff1: Linear<B>,
    pub ff2: Linear<B>,
}

impl<B: Backend> PerformerLayer<B> {
    /// # Shapes
    /// - `x`, output: `[batch, len, dim]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = x.clone() + self.attention.forward(self.attn_norm.forward(x));
        let f = self.ff2.forward(gelu(self.ff1.forward(self.ff_norm.forward(x.clone()))));
        x + f
    }
}

/// The shape of a Performer stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PerformerShape {
    /// Model width (upstream `dim`).
    #[serde(alias = "dim")]
    pub d_model: usize,
    /// Number of layers (upstream `depth`).
    #[serde(alias = "depth")]
    pub n_layers: usize,
    /// Attention heads (upstream `heads`).
    #[serde(alias = "heads")]
    pub n_heads: usize,
    /// Width per head (upstream `dim_head`: 64 by default, not `d_model / n_heads`).
    #[serde(alias = "dim_head")]
    pub d_head: usize,
    /// Random features per head (upstream `nb_features`: `int(d_head · ln d_head)`).
    #[serde(alias = "nb_features")]
    pub n_features: usize,
    /// Feed-forward width (`4 · d_model`; upstream `ff_mult`).
    #[serde(alias = "ff_dim")]
    pub d_ff: usize,
    /// Whether `to_q`, `to_k`, `to_v` have biases (scFoundation yes, scBERT no).
    pub qkv_bias: bool,
}

impl PerformerShape {
    /// `performer_pytorch`'s default number of random features: `int(d · ln d)` for heads of
    /// width `d_head`.
    pub fn default_n_features(d_head: usize) -> usize {
        ((d_head as f64) * (d_head as f64).ln()) as usize
    }

    /// Reads the shape of the stack under `prefix` (`performer.net.layers`) from a checkpoint:
    /// `n_layers` from the layer indices, `d_head` and `n_features` from the projection
    /// buffer, `n_heads` from `to_q`'s rows. `None` when layer 0 is absent or inconsistent.
    pub fn infer(file: &crate::checkpoint::TensorFile, prefix: &str) -> Option<Self> {
        let shape = |k: &str| file.get(&format!("{prefix}.{k}")).map(|e| e.shape.clone());
        let [n_features, d_head] = shape("0.0.fn.fast_attention.projection_matrix")?[..] else { return None };
        let [inner, d_model] = shape("0.0.fn.to_q.weight")?[..] else { return None };
        let [d_ff, _] = shape("0.1.fn.fn.w1.weight")?[..] else { return None };
        let n_layers = (0..).take_while(|i| file.get(&format!("{prefix}.{i}.0.norm.weight")).is_some()).count();
        (d_head > 0 && inner % d_head == 0).then_some(Self {
            d_model,
            n_layers,
            n_heads: inner / d_head,
            d_head,
            n_features,
            d_ff,
            qkv_bias: file.get(&format!("{prefix}.0.0.fn.to_q.bias")).is_some(),
        })
    }
}

/// Assembles the layers of a Performer stack under `prefix` (`performer.net.layers`,
/// `decoder.performer.net.layers`) with `performer_pytorch`'s names: `{i}.0.norm`,
/// `{i}.0.fn.{to_q,to_k,to_v,to_out}`, `{i}.0.fn.fast_attention.projection_matrix`,
/// `{i}.1.norm`, `{i}.1.fn.fn.{w1,w2}`.
pub fn assemble_performer<B: Backend>(
    s: &PerformerShape,
    prefix: &str,
    src: &mut impl ModuleSource<B>,
) -> Vec<PerformerLayer<B>> {
    let inner = s.n_heads * s.d_head;
    (0..s.n_layers)
        .map(|i| {
            let p = format!("{prefix}.{i}");
            let mut qkv = |name: &str| {
                if s.qkv_bias {
                    src.linear(&format!("{p}.0.fn.{name}"), s.d_model, inner)
                } else {
                    src.linear_no_bias(&format!("{p}.0.fn.{name}.weight"), s.d_model, inner)
                }
            };
            let (to_q, to_k, to_v) = (qkv("to_q"), qkv("to_k"), qkv("to_v"));
            let projection =
                src.projection(&format!("{p}.0.fn.fast_attention.projection_matrix"), s.n_features, s.d_head);
            PerformerLayer {
                attn_norm: src.layer_norm(&format!("{p}.0.norm"), s.d_model, 1e-5),
                attention: FavorAttention {
                    to_q,
                    to_k,
                    to_v,
                    to_out: src.linear(&format!("{p}.0.fn.to_out"), inner, s.d_model),
                    projection: Param::from_tensor(projection).set_require_grad(false),
                    heads: s.n_heads,
                },
                ff_norm: src.layer_norm(&format!("{p}.1.norm"), s.d_model, 1e-5),
                ff1: src.linear(&format!("{p}.1.fn.fn.w1"), s.d_model, s.d_ff),
                ff2: src.linear(&format!("{p}.1.fn.fn.w2"), s.d_ff, s.d_model),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_orthogonal_blocks_are_orthogonal_and_seeded() {
        let (rows, cols) = (20, 8);
        let w = gaussian_orthogonal(rows, cols, 7);
        assert_eq!(w, gaussian_orthogonal(rows, cols, 7));
        assert_ne!(w, gaussian_orthogonal(rows, cols, 8));
        let row = |i: usize| &w[i * cols..(i + 1) * cols];
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum::<f64>();
        // Rows within one block of `cols` are orthogonal; across blocks they need not be.
        for block in [0, cols] {
            for i in block..block + cols {
                for j in block..i {
                    assert!(dot(row(i), row(j)).abs() < 1e-4, "rows {i}, {j}");
                }
            }
        }
        // Row norms are chi-distributed with `cols` degrees of freedom: positive, around √cols.
        let mean_norm = (0..rows).map(|i| dot(row(i), row(i)).sqrt()).sum::<f64>() / rows as f64;
        assert!((mean_norm - (cols as f64).sqrt()).abs() < 1.0, "{mean_norm}");
    }
}
