//! scfm's CPU kernels on host slices: what the models run for fp32 inference on the default
//! CPU backend (burn-flex), without burn or tensors, so that they can be tested and measured on
//! their own and used by any caller that holds its values in memory.
//!
//! | kernel | what |
//! | --- | --- |
//! | [`attention::attention`] | fused multi-head softmax attention from one query/key/value product, online softmax in tiles, any additive bias |
//! | [`attention::favor_attention`] | non-causal FAVOR+ (Performer) attention with the softmax kernel, feature maps in blocks |
//! | [`linear::linear`] | `activation(x W + b + residual)` in one parallel pass |
//! | [`linear::Activation`] | ReLU and the exact GELU, in place |
//!
//! Matrix products are `gemm` calls (the library burn-flex uses), threads are rayon's, and the
//! exponentials of the softmax run eight at a time with AVX2 where the CPU has it. Every
//! kernel agrees with its direct formula to float rounding (unit tests here); the models test
//! each layer's host path against burn's (`scfm-models`).
//!
//! ```
//! use scfm_kernels::linear::{Activation, linear};
//!
//! // Two rows of two inputs through a 2 → 3 layer.
//! let x = [1.0, 2.0, -1.0, 0.5];
//! let weight = [1.0, 0.0, -1.0, 0.0, 1.0, 1.0];
//! let y = linear(&x, &weight, &[0.0, 0.5, 0.0], None, Some(Activation::Relu));
//! assert_eq!(y, vec![1.0, 2.5, 1.0, 0.0, 1.0, 1.5]);
//! ```

pub mod attention;
pub mod linear;
