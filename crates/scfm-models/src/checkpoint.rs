//! Tensor containers and the strict key bookkeeping of every import.
//!
//! A [`TensorFile`] is a flat map of named tensors as a checkpoint stores them (shape, element
//! type, little-endian bytes). [`Loader`] builds burn modules from it, converting PyTorch's
//! layouts (a `Linear` weight is `[out, in]` in PyTorch and `[in, out]` in burn), and records
//! every key it takes: at the end, missing, mis-shaped and left-over tensors all go into one
//! [`ImportError::Tensors`].

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::{ImportError, TensorProblem};

/// The object graph of a PyTorch checkpoint, as the restricted pickle reader decodes it.
pub use scfm_core::pickle::PyValue;
/// Element types found in the checkpoints.
pub use scfm_core::pickle::TorchDType as DType;

pub use crate::torch::TorchArchive;

fn dtype_from_safetensors(s: &str) -> Option<DType> {
    Some(match s {
        "F64" => DType::F64,
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "I64" => DType::I64,
        "I32" => DType::I32,
        "I16" => DType::I16,
        "I8" => DType::I8,
        "U8" => DType::U8,
        "BOOL" => DType::Bool,
        _ => return None,
    })
}

/// One stored tensor: where its bytes are in the file's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// Shape, outermost first (C order).
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    bytes: Range<usize>,
}

/// The named tensors of one checkpoint file.
#[derive(Debug, Clone)]
pub struct TensorFile {
    path: PathBuf,
    data: Vec<u8>,
    tensors: BTreeMap<String, TensorEntry>,
}

impl TensorFile {
    /// Reads a safetensors file (as `save_pretrained` and `safetensors.torch.save_file` write).
    ///
    /// # Errors
    /// [`ImportError::Io`] and [`ImportError::Format`] (truncated file, bad header, offsets out of
    /// range or not matching shape × element size, unknown element types).
    pub fn read_safetensors(path: &Path) -> Result<Self, ImportError> {
        let data = std::fs::read(path).map_err(|source| ImportError::Io { path: path.to_owned(), source })?;
        Self::parse_safetensors(path, data)
    }

    /// Reads a PyTorch zip checkpoint (`pytorch_model.bin`, `best_model.pt`, `.pth`, `.ckpt`)
    /// without executing code. Tensors inside nested dicts are named by the joined keys
    /// (`model_state_dict.token_emb.weight`); tensors that share a storage (tied weights) are
    /// copied apart.
    ///
    /// # Errors
    /// [`ImportError::Io`] and [`ImportError::Format`] (not a zip, compressed members, a pickle
    /// that needs a global outside PyTorch's tensor set, views outside their storage).
    pub fn read_torch(path: &Path) -> Result<Self, ImportError> {
        let archive = TorchArchive::open(path)?;
        archive.tensors(archive.object(), Some)
    }

    pub(crate) fn from_raw(path: &Path, data: Vec<u8>, raw: Vec<crate::torch::RawTensor>) -> Self {
        let tensors =
            raw.into_iter().map(|t| (t.name, TensorEntry { shape: t.shape, dtype: t.dtype, bytes: t.bytes })).collect();
        Self { path: path.to_owned(), data, tensors }
    }

    fn parse_safetensors(path: &Path, data: Vec<u8>) -> Result<Self, ImportError> {
        let bad = |reason: String| ImportError::Format { path: path.to_owned(), kind: "safetensors file", reason };
        let n = data.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize);
        let n = n.ok_or_else(|| bad("shorter than its 8-byte header length".into()))?;
        let header = data.get(8..8usize.saturating_add(n)).ok_or_else(|| bad(format!("header of {n} bytes")))?;
        let header: BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(header).map_err(|e| bad(format!("header is not JSON: {e}")))?;
        let base = 8 + n;
        let mut tensors = BTreeMap::new();
        for (name, v) in header {
            if name == "__metadata__" {
                continue;
            }
            let field = |f: &str| v.get(f).ok_or_else(|| bad(format!("{name}: no {f}")));
            let dtype_s = field("dtype")?.as_str().unwrap_or_default();
            let dtype =
                dtype_from_safetensors(dtype_s).ok_or_else(|| bad(format!("{name}: element type {dtype_s:?}")))?;
            let nums = |f: &str| -> Result<Vec<usize>, ImportError> {
                field(f)?
                    .as_array()
                    .and_then(|a| a.iter().map(|x| x.as_u64().map(|x| x as usize)).collect::<Option<Vec<_>>>())
                    .ok_or_else(|| bad(format!("{name}: {f} is not a list of integers")))
            };
            let shape = nums("shape")?;
            let offsets = nums("data_offsets")?;
            let [a, b] = offsets[..] else { return Err(bad(format!("{name}: data_offsets {offsets:?}"))) };
            let expected = shape.iter().product::<usize>().checked_mul(dtype.size());
            if b < a || Some(b - a) != expected || base.checked_add(b).is_none_or(|end| end > data.len()) {
                return Err(bad(format!("{name}: bytes {a}..{b} do not hold {shape:?} × {dtype:?} inside the file")));
            }
            tensors.insert(name, TensorEntry { shape, dtype, bytes: base + a..base + b });
        }
        Ok(Self { path: path.to_owned(), data, tensors })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensor names and entries, sorted by name.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &TensorEntry)> {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The entry of one tensor.
    pub fn get(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors.get(name)
    }

    fn bytes(&self, e: &TensorEntry) -> &[u8] {
        &self.data[e.bytes.clone()]
    }

    /// A floating-point tensor as f32 (f64, f16 and bf16 converted); `None` when absent or not
    /// a float tensor.
    pub fn f32(&self, name: &str) -> Option<Vec<f32>> {
        let e = self.tensors.get(name)?;
        let b = self.bytes(e);
        Some(match e.dtype {
            DType::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4"))).collect(),
            DType::F64 => b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8")) as f32).collect(),
            DType::F16 => b.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
            DType::BF16 => {
                b.chunks_exact(2).map(|c| half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32()).collect()
            }
            _ => return None,
        })
    }

    /// An integer (or bool) tensor as i64; `None` when absent or a float tensor.
    pub fn i64(&self, name: &str) -> Option<Vec<i64>> {
        let e = self.tensors.get(name)?;
        let b = self.bytes(e);
        Some(match e.dtype {
            DType::I64 => b.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8"))).collect(),
            DType::I32 => b.chunks_exact(4).map(|c| i64::from(i32::from_le_bytes(c.try_into().expect("4")))).collect(),
            DType::I16 => b.chunks_exact(2).map(|c| i64::from(i16::from_le_bytes([c[0], c[1]]))).collect(),
            DType::I8 => b.iter().map(|&x| i64::from(x as i8)).collect(),
            DType::U8 | DType::Bool => b.iter().map(|&x| i64::from(x)).collect(),
            _ => return None,
        })
    }
}

/// Writes float32 tensors `(name, shape, values)` as a safetensors file (a state dict under
/// PyTorch names that [`TensorFile::read_safetensors`] and the loaders read back).
///
/// # Errors
/// [`ImportError::Io`] when the file cannot be written; [`ImportError::Format`] when a tensor's
/// values do not fill its shape.
pub fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<(), ImportError> {
    let (mut header, mut data) = (serde_json::Map::new(), Vec::<u8>::new());
    for (name, shape, values) in tensors {
        if values.len() != shape.iter().product::<usize>() {
            return Err(ImportError::Format {
                path: path.to_owned(),
                kind: "safetensors file",
                reason: format!("{name}: {} values for shape {shape:?}", values.len()),
            });
        }
        let start = data.len();
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let header = serde_json::to_vec(&header).expect("a JSON map serialises");
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    bytes.extend(data);
    std::fs::write(path, bytes).map_err(|source| ImportError::Io { path: path.to_owned(), source })
}

/// IEEE half → single precision (exact), through the `half` crate burn already builds.
fn f16_to_f32(h: u16) -> f32 {
    half::f16::from_bits(h).to_f32()
}

/// Builds burn modules from a [`TensorFile`], recording every key taken and every problem.
pub struct Loader<'a, B: Backend> {
    file: &'a TensorFile,
    device: &'a B::Device,
    taken: BTreeSet<String>,
    problems: Vec<TensorProblem>,
}

impl<'a, B: Backend> Loader<'a, B> {
    /// A loader over `file`, creating tensors on `device`.
    pub fn new(file: &'a TensorFile, device: &'a B::Device) -> Self {
        Self { file, device, taken: BTreeSet::new(), problems: vec![] }
    }

    /// The raw f32 values of `key` checked against `shape`; `None` (and a recorded problem)
    /// when missing, mis-shaped or not a float tensor.
    fn values(&mut self, key: &str, shape: &[usize]) -> Option<Vec<f32>> {
        let Some(e) = self.file.get(key) else {
            self.problems.push(TensorProblem::Missing { key: key.into(), expected: shape.to_vec() });
            return None;
        };
        self.taken.insert(key.to_owned());
        if e.shape != shape {
            self.problems.push(TensorProblem::Misshaped {
                key: key.into(),
                expected: shape.to_vec(),
                found: e.shape.clone(),
            });
            return None;
        }
        if !e.dtype.is_float() {
            self.problems.push(TensorProblem::Dtype { key: key.into(), dtype: format!("{:?}", e.dtype) });
            return None;
        }
        self.file.f32(key)
    }

    /// A float tensor of the given shape (zeros when there is a problem; [`Self::finish`] then
    /// fails).
    pub fn tensor<const D: usize>(&mut self, key: &str, shape: [usize; D]) -> Tensor<B, D> {
        match self.values(key, &shape) {
            Some(v) => Tensor::from_data(TensorData::new(v, shape), self.device),
            None => Tensor::zeros(shape, self.device),
        }
    }

    /// Whether the file has `key` (without taking it).
    pub fn has(&self, key: &str) -> bool {
        self.file.get(key).is_some()
    }

    /// The shape of `key` in the file, if present (to size optional heads from the checkpoint).
    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.file.get(key).map(|e| e.shape.as_slice())
    }

    /// Marks keys as known but unused (tied copies, buffers such as `position_ids`).
    pub fn ignore(&mut self, keys: impl IntoIterator<Item = String>) {
        for k in keys {
            if self.file.get(&k).is_some() {
                self.taken.insert(k);
            }
        }
    }

    /// Ends the import: `Ok` only when every needed tensor was present with its shape and no
    /// tensor was left over.
    ///
    /// # Errors
    /// [`ImportError::Tensors`] listing every problem.
    pub fn finish(mut self, model: &str) -> Result<(), ImportError> {
        for (k, e) in self.file.entries() {
            if !self.taken.contains(k) {
                self.problems.push(TensorProblem::Unexpected { key: k.into(), shape: e.shape.clone() });
            }
        }
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ImportError::Tensors { path: self.file.path.clone(), model: model.into(), problems: self.problems })
        }
    }
}

/// Where a model's parameters come from while it is assembled: a checkpoint ([`Loader`], keys
/// are PyTorch state-dict names) or a fresh initialisation ([`Fresh`], keys ignored). One
/// assembly function per family serves both, so the imported and the initialised model cannot
/// differ in structure.
pub trait ModuleSource<B: Backend> {
    /// A PyTorch `nn.Linear` (`{prefix}.weight` `[d_out, d_in]`, `{prefix}.bias` `[d_out]`).
    fn linear(&mut self, prefix: &str, d_in: usize, d_out: usize) -> Linear<B>;
    /// A `Linear` from rows `rows` of a stacked PyTorch projection (`in_proj_weight` `[3d, d]`).
    fn linear_rows(&mut self, weight: &str, bias: &str, d_in: usize, stacked: usize, rows: Range<usize>) -> Linear<B>;
    /// A PyTorch `nn.Linear(bias=False)` (`weight` `[d_out, d_in]`).
    fn linear_no_bias(&mut self, weight: &str, d_in: usize, d_out: usize) -> Linear<B>;
    /// A PyTorch `nn.LayerNorm` (`{prefix}.weight`, `{prefix}.bias`) with `epsilon`.
    fn layer_norm(&mut self, prefix: &str, d: usize, epsilon: f64) -> LayerNorm<B>;
    /// A PyTorch `nn.Embedding` (`key` `[n, d]`).
    fn embedding(&mut self, key: &str, n: usize, d: usize) -> Embedding<B>;
    /// A bias-like vector (`key` `[n]`; zeros when fresh).
    fn vector(&mut self, key: &str, n: usize) -> Tensor<B, 1>;
    /// Any other weight of the given shape (`key`; ~ N(0, std) when fresh).
    fn weight<const D: usize>(&mut self, key: &str, shape: [usize; D]) -> Tensor<B, D>;
    /// A FAVOR+ random-feature projection `[nb_features, dim_head]` (`key`, a buffer); when
    /// fresh, a Gaussian orthogonal draw (see [`crate::layers::orthogonal_projection`]).
    fn projection(&mut self, key: &str, nb_features: usize, dim_head: usize) -> Tensor<B, 2>;
}

impl<B: Backend> ModuleSource<B> for Loader<'_, B> {
    /// A PyTorch `nn.Linear` (`{prefix}.weight` `[d_out, d_in]`, `{prefix}.bias` `[d_out]`).
    fn linear(&mut self, prefix: &str, d_in: usize, d_out: usize) -> Linear<B> {
        let weight = self.tensor(&format!("{prefix}.weight"), [d_out, d_in]).transpose();
        let bias = self.tensor(&format!("{prefix}.bias"), [d_out]);
        Linear { weight: Param::from_tensor(weight), bias: Some(Param::from_tensor(bias)) }
    }

    /// A `Linear` from a slice `rows` of a stacked PyTorch weight (`in_proj_weight` `[3d, d]`).
    fn linear_rows(&mut self, weight: &str, bias: &str, d_in: usize, stacked: usize, rows: Range<usize>) -> Linear<B> {
        let w = self.tensor(weight, [stacked, d_in]).slice([rows.clone(), 0..d_in]).transpose();
        let b = self.tensor(bias, [stacked]).slice([rows]);
        Linear { weight: Param::from_tensor(w), bias: Some(Param::from_tensor(b)) }
    }

    fn linear_no_bias(&mut self, weight: &str, d_in: usize, d_out: usize) -> Linear<B> {
        Linear { weight: Param::from_tensor(self.tensor(weight, [d_out, d_in]).transpose()), bias: None }
    }

    /// A PyTorch `nn.LayerNorm` (`{prefix}.weight`, `{prefix}.bias`) with `epsilon`.
    fn layer_norm(&mut self, prefix: &str, d: usize, epsilon: f64) -> LayerNorm<B> {
        let mut norm = LayerNormConfig::new(d).with_epsilon(epsilon).init(self.device);
        norm.gamma = Param::from_tensor(self.tensor(&format!("{prefix}.weight"), [d]));
        norm.beta = Some(Param::from_tensor(self.tensor(&format!("{prefix}.bias"), [d])));
        norm
    }

    /// A PyTorch `nn.Embedding` (`key` `[n, d]`).
    fn embedding(&mut self, key: &str, n: usize, d: usize) -> Embedding<B> {
        Embedding { weight: Param::from_tensor(self.tensor(key, [n, d])) }
    }

    fn vector(&mut self, key: &str, n: usize) -> Tensor<B, 1> {
        self.tensor(key, [n])
    }

    fn weight<const D: usize>(&mut self, key: &str, shape: [usize; D]) -> Tensor<B, D> {
        self.tensor(key, shape)
    }

    fn projection(&mut self, key: &str, nb_features: usize, dim_head: usize) -> Tensor<B, 2> {
        self.tensor(key, [nb_features, dim_head])
    }
}

/// Fresh parameters: weights ~ N(0, `std`) (BERT's and scGPT's `initializer_range` 0.02),
/// biases 0, LayerNorm gains 1; FAVOR+ projections drawn from a seeded generator (the first
/// with `seed`, the next with `seed + 1`, …), so a fresh Performer is reproducible.
#[derive(Debug)]
pub struct Fresh<'a, B: Backend> {
    device: &'a B::Device,
    init: Initializer,
    seed: u64,
}

impl<'a, B: Backend> Fresh<'a, B> {
    /// Initialisation with weights ~ N(0, std) on `device`; projections from seed 0.
    pub fn new(device: &'a B::Device, std: f64) -> Self {
        Self { device, init: Initializer::Normal { mean: 0.0, std }, seed: 0 }
    }

    /// The seed of the first FAVOR+ projection drawn.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

impl<B: Backend> ModuleSource<B> for Fresh<'_, B> {
    fn linear(&mut self, _: &str, d_in: usize, d_out: usize) -> Linear<B> {
        let mut l = LinearConfig::new(d_in, d_out).with_initializer(self.init.clone()).init(self.device);
        l.bias = Some(Param::from_tensor(Tensor::zeros([d_out], self.device)));
        l
    }

    fn linear_rows(&mut self, _: &str, _: &str, d_in: usize, _: usize, rows: Range<usize>) -> Linear<B> {
        self.linear("", d_in, rows.len())
    }

    fn linear_no_bias(&mut self, _: &str, d_in: usize, d_out: usize) -> Linear<B> {
        LinearConfig::new(d_in, d_out).with_bias(false).with_initializer(self.init.clone()).init(self.device)
    }

    fn layer_norm(&mut self, _: &str, d: usize, epsilon: f64) -> LayerNorm<B> {
        LayerNormConfig::new(d).with_epsilon(epsilon).init(self.device)
    }

    fn embedding(&mut self, _: &str, n: usize, d: usize) -> Embedding<B> {
        EmbeddingConfig::new(n, d).with_initializer(self.init.clone()).init(self.device)
    }

    fn vector(&mut self, _: &str, n: usize) -> Tensor<B, 1> {
        Tensor::zeros([n], self.device)
    }

    fn weight<const D: usize>(&mut self, _: &str, shape: [usize; D]) -> Tensor<B, D> {
        self.init.init(shape, self.device).val()
    }

    fn projection(&mut self, _: &str, nb_features: usize, dim_head: usize) -> Tensor<B, 2> {
        let projection = crate::layers::orthogonal_projection(nb_features, dim_head, self.seed, self.device);
        self.seed += 1;
        projection
    }
}

/// An integer tensor from i64 values (token ids, masks).
pub fn int_tensor<B: Backend, const D: usize>(
    values: Vec<i64>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_converts_exactly() {
        for (h, f) in [(0x3c00u16, 1.0f32), (0xc000, -2.0), (0x7bff, 65504.0), (0x0001, 5.960_464_5e-8), (0x0000, 0.0)]
        {
            assert_eq!(f16_to_f32(h), f, "{h:#x}");
        }
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        // Every subnormal and normal half round-trips through f64 arithmetic.
        for h in 1u16..0x7c00 {
            let e = (h >> 10) as i32;
            let m = f64::from(h & 0x3ff);
            let expected = if e == 0 { m * 2f64.powi(-24) } else { (1.0 + m / 1024.0) * 2f64.powi(e - 15) };
            assert_eq!(f64::from(f16_to_f32(h)), expected, "{h:#x}");
        }
    }

    #[test]
    fn malformed_safetensors_are_format_errors() {
        let p = Path::new("x.safetensors");
        for data in [vec![], vec![200, 0, 0, 0, 0, 0, 0, 0, b'{'], {
            let h = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#;
            let mut d = (h.len() as u64).to_le_bytes().to_vec();
            d.extend_from_slice(h);
            d.extend_from_slice(&[0; 8]);
            d
        }] {
            let e = TensorFile::parse_safetensors(p, data).unwrap_err();
            assert!(matches!(e, ImportError::Format { .. }), "{e}");
        }
    }
}
