use std::any::TypeId;

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType, Tensor, TensorData, bf16, f16};

use super::cpu_linear::{HostLinear, HostValues};
use scfm_kernels::attention::{BiasLayout, Dims};

/// Multi-head scaled dot-product self-attention with separate query/key/value projections
/// (BERT's `BertSelfAttention` + `BertSelfOutput.dense`; PyTorch's `nn.MultiheadAttention` with
/// its stacked `in_proj` split into three).
#[derive(Module, Debug)]
pub struct SelfAttention<B: Backend> {
    pub query: Linear<B>,
    pub key: Linear<B>,
    pub value: Linear<B>,
    pub output: Linear<B>,
    pub dropout: Dropout,
    pub n_heads: usize,
}

/// What [`SelfAttention::forward`] returns.
#[derive(Debug, Clone)]
pub struct AttentionOutput<B: Backend> {
    /// `[batch, len, d_model]`.
    pub context: Tensor<B, 3>,
    /// Attention probabilities `[batch, heads, len (queries), len (keys)]`, when asked for.
    pub probs: Option<Tensor<B, 4>>,
}

/// The additive attention bias of a key-padding mask in the float type `dtype` of the
/// activations it is added to: 0 for real keys, the most negative finite value of that type
/// for padded ones (`f32::MIN` in fp32, as Hugging Face BERT's `torch.finfo(dtype).min`),
/// shaped `[batch, 1, 1, len]` to broadcast over heads and queries.
///
/// # Shapes
/// - `padded`: `[batch, len]`, true = padding.
/// - output: `[batch, 1, 1, len]`.
pub fn key_padding_bias<B: Backend>(padded: Tensor<B, 2, Bool>, dtype: DType) -> Tensor<B, 4> {
    let [b, l] = padded.dims();
    masked_bias(padded, dtype).reshape([b, 1, 1, l])
}

/// An additive attention bias in the float type `dtype`: 0 where `blocked` is false, the most
/// negative finite value of the type where it is true. `f32::MIN` itself rounds to −∞ in
/// bf16, and −∞ in a bias turns `0 · (−∞)` and fully masked rows into NaN.
///
/// # Shapes
/// - `blocked`, output: any, the same.
pub(crate) fn masked_bias<B: Backend, const D: usize>(blocked: Tensor<B, D, Bool>, dtype: DType) -> Tensor<B, D> {
    let zeros = Tensor::<B, D>::zeros(blocked.shape(), (&blocked.device(), dtype));
    let min = match dtype {
        DType::BF16 => bf16::MIN.to_f32(),
        DType::F16 => f16::MIN.to_f32(),
        _ => f32::MIN,
    };
    zeros.mask_fill(blocked, min)
}

impl<B: Backend> SelfAttention<B> {
    /// A layer from its four projections (`d_model` in and out each).
    ///
    /// # Panics
    /// When `n_heads` does not divide `d_model` (a configuration error caught at import).
    pub fn new(
        query: Linear<B>,
        key: Linear<B>,
        value: Linear<B>,
        output: Linear<B>,
        n_heads: usize,
        dropout: f64,
    ) -> Self {
        let d_model = query.weight.dims()[1];
        assert!(n_heads > 0 && d_model.is_multiple_of(n_heads), "{n_heads} heads do not divide d_model {d_model}");
        Self { query, key, value, output, dropout: DropoutConfig::new(dropout).init(), n_heads }
    }

    /// Self-attention over `x`; `bias` is added to the scores (e.g. [`key_padding_bias`]).
    ///
    /// Unless the probabilities are asked for (or dropout is active in training), this runs
    /// the backend's fused attention, which never materialises the `[len, len]` score matrix
    /// per head (burn-flex tiles long sequences with an online softmax), so memory stays
    /// linear in the number of heads at 4,096 tokens.
    ///
    /// # Shapes
    /// - `x`: `[batch, len, d_model]`
    /// - `bias`: broadcastable to `[batch, heads, len, len]`
    /// - output: `context` `[batch, len, d_model]`, `probs` `[batch, heads, len, len]`
    pub fn forward(&self, x: Tensor<B, 3>, bias: Option<Tensor<B, 4>>, return_probs: bool) -> AttentionOutput<B> {
        let [b, l, d] = x.dims();
        let (h, dh) = (self.n_heads, d / self.n_heads);
        if !return_probs && cpu_kernel_applies(&x) {
            let device = x.device();
            let context = self.host_context(HostValues::of(x).as_slice(), [b, l], bias);
            let context = HostLinear::of(&[&self.output]).forward(&context, None);
            return AttentionOutput { context: host_tensor(context, [b, l, d], &device), probs: None };
        }
        let heads = |t: Tensor<B, 3>| t.reshape([b, l, h, dh]).swap_dims(1, 2);
        let q = heads(self.query.forward(x.clone()));
        let k = heads(self.key.forward(x.clone()));
        let v = heads(self.value.forward(x));
        let training = B::ad_enabled(&v.device()) && self.dropout.prob > 0.0;
        if !return_probs && !training {
            // The bias as one [len, len] tile per cell, shared by the heads: burn-flex would
            // otherwise expand a query-broadcast bias over the heads too.
            let context = fused_attention_in_parallel(q, k, v, bias.map(full_bias));
            let context = context.swap_dims(1, 2).reshape([b, l, d]);
            return AttentionOutput { context: self.output.forward(context), probs: None };
        }
        let mut scores = q.matmul(k.swap_dims(2, 3)).div_scalar((dh as f64).sqrt());
        if let Some(bias) = bias {
            scores = scores + bias;
        }
        let probs = softmax(scores, 3);
        let context = self.dropout.forward(probs.clone()).matmul(v).swap_dims(1, 2).reshape([b, l, d]);
        AttentionOutput { context: self.output.forward(context), probs: return_probs.then_some(probs) }
    }
}

/// `bias` materialised over queries (`[batch, 1, len, len]`, contiguous), the form burn-flex's
/// fused kernel reads without copying it per head; a no-op when it already has that form, so
/// encoders call it once per forward pass and every layer shares the result.
///
/// On the default CPU backend in inference, where [`SelfAttention`] runs scfm's own kernel
/// (which reads a broadcast bias through its strides), the bias is returned as it is.
pub fn full_bias<B: Backend>(bias: Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, x, q, k] = bias.dims();
    if (x == 1 && q == k) || cpu_kernel_applies(&bias) {
        return bias;
    }
    Tensor::zeros([b, 1, k, k], (&bias.device(), bias.dtype())) + bias
}

/// `x` in the float type `dtype`: unchanged when it already is, else cast (a differentiable
/// op). Model inputs built from host data (values, masks) follow the parameters' type this
/// way, so a model whose parameters were cast to bf16 for mixed-precision training computes
/// in bf16 throughout.
pub fn as_dtype<B: Backend, const D: usize>(x: Tensor<B, D>, dtype: DType) -> Tensor<B, D> {
    if x.dtype() == dtype { x } else { x.cast(dtype) }
}

/// The fused attention op split over threads, one part per available core, on burn-flex
/// (whose attention kernel is single-threaded while every other op uses all cores); one call
/// on every other backend, where the device parallelises the op itself. Parts are groups
/// of cells when the batch has several, else groups of heads; each thread's call makes its own
/// part contiguous, so the transposing copies run in parallel too. Heads and cells are
/// independent, so the result is the same as one call.
///
/// # Shapes
/// - `q`, `k`, `v`: `[batch, heads, len, head_dim]`
/// - `bias`: `[batch, 1, len, len]` or broadcastable to it
/// - output: `[batch, heads, len, head_dim]`
fn fused_attention_in_parallel<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    bias: Option<Tensor<B, 4>>,
) -> Tensor<B, 4> {
    let [b, h, _, _] = q.dims();
    let threads = if on_flex::<B>() { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { 1 };
    let by_cell = b > 1;
    let n = if by_cell { b } else { h };
    let threads = threads.min(n);
    if threads <= 1 {
        return attention(q, k, v, None, bias, AttentionModuleOptions::default());
    }
    let per = n.div_ceil(threads);
    let parts: Vec<Tensor<B, 4>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .step_by(per)
            .map(|s| {
                let e = (s + per).min(n);
                let part = |t: &Tensor<B, 4>| {
                    let [tb, th, tl, td] = t.dims();
                    if by_cell {
                        t.clone().slice([s..e, 0..th, 0..tl, 0..td])
                    } else {
                        t.clone().slice([0..tb, s..e, 0..tl, 0..td])
                    }
                };
                let (q, k, v) = (part(&q), part(&k), part(&v));
                let bias = match &bias {
                    Some(t) if by_cell && t.dims()[0] > 1 => Some(part(t)),
                    other => other.clone(),
                };
                scope.spawn(move || attention(q, k, v, None, bias, AttentionModuleOptions::default()))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("attention threads do not panic")).collect()
    });
    Tensor::cat(parts, if by_cell { 0 } else { 1 })
}

/// The fp32 values of a tensor on the host (no copy on burn-flex when `x` is not shared).
pub(super) fn host_f32<B: Backend, const D: usize>(x: Tensor<B, D>) -> Vec<f32> {
    x.into_data().into_vec::<f32>().expect("fp32 values (checked through cpu_kernel_applies)")
}

/// A tensor of `shape` on `device` holding `values` (the inverse of [`host_f32`]: the CPU
/// kernels' results going back to burn, without a copy on burn-flex).
pub(super) fn host_tensor<B: Backend, const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Whether attention over `x` (activations or a bias) runs scfm's CPU kernel
/// ([`scfm_kernels::attention`]): fp32 inference (no autodiff) on burn-flex, the default CPU
/// backend. Everything else (training, bf16, GPU backends) takes burn's fused attention op.
pub(super) fn cpu_kernel_applies<B: Backend, const D: usize>(x: &Tensor<B, D>) -> bool {
    let device = x.device();
    x.dtype() == DType::F32 && !B::ad_enabled(&device) && on_flex::<B>()
}

/// Whether `B` computes on burn-flex, the default CPU backend, with or without autodiff: a
/// check on types, not on backend names. Autodiff keeps its inner backend's device type, so
/// `B::Device` is burn-flex's exactly when the tensors live in burn-flex's memory.
///
/// A type check rather than burn's backend-extension pattern (a `B: HostKernels` bound with
/// one impl per backend): that bound would ride on every generic model, objective and
/// pipeline of five crates and shut out backends scfm does not know, for a choice that is
/// made once per forward pass.
fn on_flex<B: Backend>() -> bool {
    TypeId::of::<B::Device>() == TypeId::of::<burn_flex::FlexDevice>()
}

impl<B: Backend> SelfAttention<B> {
    /// scfm's CPU path ([`cpu_kernel_applies`]): the attention context before the output
    /// projection, from one fused query/key/value product and [`scfm_kernels::attention::attention`]
    /// on host buffers (no head transposes).
    ///
    /// # Shapes
    /// - `x`: `[batch, len, d_model]` (host values)
    /// - `bias`: broadcastable to `[batch, heads, len, len]`
    /// - output: `[batch, len, d_model]`
    pub(super) fn host_context(&self, x: &[f32], [batch, len]: [usize; 2], bias: Option<Tensor<B, 4>>) -> Vec<f32> {
        let heads = self.n_heads;
        let d = self.query.weight.dims()[1];
        let qkv = HostLinear::of(&[&self.query, &self.key, &self.value]).forward(x, None);
        // The bias values and their strides over (cell, head, query); a stride of 0 broadcasts.
        let bias = bias.map(|bias| {
            let [bb, bh, bq, bk] = bias.dims();
            assert!(
                bk == len && (bq == 1 || bq == len),
                "attention bias {:?} does not fit {len} positions",
                bias.dims()
            );
            assert!(bh == 1 || bh == heads, "attention bias over {bh} heads for {heads} heads");
            let stride = |n: usize, s: usize| if n == 1 { 0 } else { s };
            (
                HostValues::of(as_dtype(bias, DType::F32)),
                [stride(bb, bh * bq * bk), stride(bh, bq * bk), stride(bq, bk)],
            )
        });
        // A bias of zeros (cells without padding, the usual one-cell batch) adds nothing: skip
        // the add per score.
        let bias = bias.filter(|(data, _)| data.as_slice().iter().any(|v| *v != 0.0));
        let layout = bias.as_ref().map(|(data, [batch, head, row])| BiasLayout {
            data: data.as_slice(),
            batch: *batch,
            head: *head,
            row: *row,
        });
        let mut out = vec![0f32; batch * len * d];
        let dims = Dims { batch, len, heads, head_dim: d / heads };
        scfm_kernels::attention::attention(&qkv, layout, dims, &mut out);
        out
    }
}

/// A [`SelfAttention`] from a stacked `[Q; K; V]` projection (`weight` `[3d, d]`, `bias` `[3d]`:
/// PyTorch's `in_proj_*`, flash's `Wqkv`) and the output projection `{out}.weight|bias`.
pub fn stacked_self_attention<B: Backend>(
    src: &mut impl crate::checkpoint::ModuleSource<B>,
    (weight, bias, out): (&str, &str, &str),
    d: usize,
    heads: usize,
    dropout: f64,
) -> SelfAttention<B> {
    SelfAttention::new(
        src.linear_rows(weight, bias, d, 3 * d, 0..d),
        src.linear_rows(weight, bias, d, 3 * d, d..2 * d),
        src.linear_rows(weight, bias, d, 3 * d, 2 * d..3 * d),
        src.linear(out, d, d),
        heads,
        dropout,
    )
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, Flex};

    use super::on_flex;

    #[test]
    fn burn_flex_is_recognised_under_autodiff_too() {
        assert!(on_flex::<Flex>());
        // Training on the CPU: the fused attention op is still split over the cores.
        assert!(on_flex::<Autodiff<Flex>>());
    }
}
