//! Linear layers on host buffers for the default CPU backend (burn-flex, fp32 inference): the
//! dense parts of [`super::EncoderLayer`] around the attention kernels, run by
//! [`scfm_kernels::linear`]. Parameters are read where burn-flex keeps them ([`HostValues`]),
//! not copied per forward pass; the tests here compare the host path with burn's layers.

use std::any::Any;

use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorPrimitive};
use burn_flex::FlexTensor;

use super::Activation;
use super::attention::host_f32;

/// A tensor's fp32 values on the host, for reading: borrowed from burn-flex's storage when the
/// tensor is a contiguous fp32 burn-flex tensor (a parameter is shared with its module, so
/// [`host_f32`] would copy it on every forward pass), else a copy.
pub(crate) enum HostValues {
    /// The tensor (its storage shared, not copied) and the range of its values in it.
    Flex(FlexTensor, std::ops::Range<usize>),
    Copied(Vec<f32>),
}

impl HostValues {
    /// The values of `x` (fp32).
    ///
    /// The one `Any` in the models: once the host path is chosen by type
    /// ([`super::attention::cpu_kernel_applies`]), `B`'s float primitive *is* burn-flex's
    /// `FlexTensor`, and the downcast is the safe way to say so (no specialisation in Rust);
    /// it is what lets a parameter's storage be read in place instead of copied on every
    /// forward pass. Any other primitive is copied.
    pub(crate) fn of<B: Backend, const D: usize>(x: Tensor<B, D>) -> Self {
        let n = x.shape().num_elements();
        if let TensorPrimitive::Float(primitive) = x.clone().into_primitive()
            && let Some(t) = (&primitive as &dyn Any).downcast_ref::<FlexTensor>()
            && t.dtype() == DType::F32
            && t.is_contiguous()
        {
            let start = t.layout().start_offset();
            return Self::Flex(t.clone(), start..start + n);
        }
        Self::Copied(host_f32(x))
    }

    pub(crate) fn as_slice(&self) -> &[f32] {
        match self {
            Self::Flex(t, range) => &t.storage::<f32>()[range.clone()],
            Self::Copied(values) => values,
        }
    }
}

/// The weights of one or more linear layers with the same input: `y = x W + b` with the
/// layers' weight columns (and biases) side by side, so one product computes them all (a
/// fused query/key/value projection).
pub(crate) struct HostLinear {
    /// `[d_in, d_out]`, row-major: one layer's own weight (borrowed), or the concatenation.
    weight: HostValues,
    /// `[d_out]`; zeros for a layer without a bias.
    bias: Vec<f32>,
}

impl HostLinear {
    /// `parts` side by side (their inputs must have the same width).
    pub(crate) fn of<B: Backend>(parts: &[&Linear<B>]) -> Self {
        let d_in = parts[0].weight.dims()[0];
        let widths: Vec<usize> = parts.iter().map(|p| p.weight.dims()[1]).collect();
        let d_out = widths.iter().sum();
        let mut weights: Vec<HostValues> = parts.iter().map(|p| HostValues::of(p.weight.val())).collect();
        let weight = if weights.len() == 1 {
            weights.remove(0)
        } else {
            let mut weight = Vec::with_capacity(d_in * d_out);
            for row in 0..d_in {
                for (w, &n) in weights.iter().zip(&widths) {
                    weight.extend_from_slice(&w.as_slice()[row * n..(row + 1) * n]);
                }
            }
            HostValues::Copied(weight)
        };
        let mut bias = Vec::with_capacity(d_out);
        for (p, &n) in parts.iter().zip(&widths) {
            match &p.bias {
                Some(b) => bias.extend_from_slice(HostValues::of(b.val()).as_slice()),
                None => bias.resize(bias.len() + n, 0.0),
            }
        }
        assert_eq!(weight.as_slice().len(), d_in * d_out, "linear weights do not fit [{d_in}, {d_out}]");
        assert_eq!(bias.len(), d_out, "linear biases do not fit [{d_out}]");
        Self { weight, bias }
    }

    /// `x W + b`, plus `residual` when given.
    ///
    /// # Shapes
    /// - `x`: `[rows, d_in]`
    /// - `residual`: `[rows, d_out]`
    /// - output: `[rows, d_out]`
    pub(crate) fn forward(&self, x: &[f32], residual: Option<&[f32]>) -> Vec<f32> {
        self.forward_then(x, residual, None)
    }

    /// `activation(x W + b)`, the activation applied to each block of rows right after its
    /// product, in the same parallel task.
    ///
    /// # Shapes
    /// - `x`: `[rows, d_in]`
    /// - output: `[rows, d_out]`
    pub(crate) fn forward_activated(&self, x: &[f32], activation: Activation) -> Vec<f32> {
        self.forward_then(x, None, Some(activation))
    }

    /// [`scfm_kernels::linear::linear`] over the layers' weights.
    fn forward_then(&self, x: &[f32], residual: Option<&[f32]>, activation: Option<Activation>) -> Vec<f32> {
        scfm_kernels::linear::linear(x, self.weight.as_slice(), &self.bias, residual, activation.map(Activation::host))
    }
}

impl Activation {
    /// The same activation as the host kernels name it.
    pub(crate) fn host(self) -> scfm_kernels::linear::Activation {
        match self {
            Self::Relu => scfm_kernels::linear::Activation::Relu,
            Self::Gelu => scfm_kernels::linear::Activation::Gelu,
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use burn::nn::LinearConfig;
    use burn::tensor::{Distribution, TensorData};

    use super::*;

    type B = Flex;

    fn values<const D: usize>(x: Tensor<B, D>) -> Vec<f32> {
        x.into_data().into_vec().unwrap()
    }

    #[test]
    fn fused_layers_with_a_residual_match_burns_linear_layers() {
        let device = Default::default();
        let (rows, d_in) = (70, 12);
        let a = LinearConfig::new(d_in, 5).init::<B>(&device);
        let b = LinearConfig::new(d_in, 3).with_bias(false).init::<B>(&device);
        let x = Tensor::<B, 2>::random([rows, d_in], Distribution::Normal(0.0, 1.0), &device);
        let residual = Tensor::<B, 2>::random([rows, 8], Distribution::Normal(0.0, 1.0), &device);
        let want = values(Tensor::cat(vec![a.forward(x.clone()), b.forward(x.clone())], 1) + residual.clone());
        let got = HostLinear::of(&[&a, &b]).forward(&values(x), Some(&values(residual)));
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{g} vs {w}");
        }
    }

    #[test]
    fn activated_layers_match_burns_linear_then_activation() {
        let device = Default::default();
        // 70 rows: blocks of 16-row multiples and a short last block.
        let (rows, d_in, d_out) = (70, 12, 9);
        let layer = LinearConfig::new(d_in, d_out).init::<B>(&device);
        let x = Tensor::<B, 2>::random([rows, d_in], Distribution::Normal(0.0, 1.0), &device);
        for activation in [Activation::Relu, Activation::Gelu] {
            let want = values(activation.apply(layer.forward(x.clone())));
            let got = HostLinear::of(&[&layer]).forward_activated(&values(x.clone()), activation);
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{activation:?}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn host_values_read_a_slice_where_burn_flex_keeps_it() {
        let device = Default::default();
        let x = Tensor::<B, 2>::random([6, 4], Distribution::Normal(0.0, 1.0), &device);
        let rows = x.clone().slice([2..4, 0..4]);
        let host = HostValues::of(rows.clone());
        assert!(matches!(host, HostValues::Flex(..)), "a contiguous slice is borrowed");
        assert_eq!(host.as_slice(), values(rows).as_slice());
        // A transposed view is not contiguous: its values are copied in logical order.
        let t = x.clone().transpose();
        let host = HostValues::of(t.clone());
        assert!(matches!(host, HostValues::Copied(_)));
        assert_eq!(host.as_slice(), values(t).as_slice());
    }

    #[test]
    fn activations_in_place_give_burn_flex_values() {
        let device = Default::default();
        let x = Tensor::<B, 1>::from_data(
            TensorData::new((-400..400).map(|i| i as f32 / 37.0).collect::<Vec<_>>(), [800]),
            &device,
        );
        for (activation, want) in [
            (Activation::Gelu, Activation::Gelu.apply(x.clone())),
            (Activation::Relu, Activation::Relu.apply(x.clone())),
        ] {
            let mut got = values(x.clone());
            activation.host().apply_to_slice(&mut got);
            assert_eq!(got, values(want), "{activation:?}");
        }
    }
}
