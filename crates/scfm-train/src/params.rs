//! A module's parameters by path (`encoder.layers.0.attention.query.weight`): exported to and
//! restored from safetensors, keeping each parameter's id so optimiser state still applies.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use scfm_models::checkpoint::TensorFile;

/// Every float parameter of a module: (path, shape, values) and path → parameter id.
pub(crate) type Exported = (Vec<(String, Vec<usize>, Vec<f32>)>, BTreeMap<String, u64>);

struct Exporter {
    path: Vec<String>,
    tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
    ids: BTreeMap<String, u64>,
}

impl<B: Backend> ModuleVisitor<B> for Exporter {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_owned());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let key = self.path.join(".");
        let tensor = param.val();
        let shape = tensor.dims().to_vec();
        let values = tensor.into_data().convert::<f32>().into_vec::<f32>().unwrap_or_default();
        self.ids.insert(key.clone(), param.id.val());
        self.tensors.push((key, shape, values));
    }
}

/// The float parameters of `module` with their ids.
pub(crate) fn export<B: Backend, M: Module<B>>(module: &M) -> Exported {
    let mut e = Exporter { path: vec![], tensors: vec![], ids: BTreeMap::new() };
    module.visit(&mut e);
    (e.tensors, e.ids)
}

struct Importer<'a, B: Backend> {
    path: Vec<String>,
    file: &'a TensorFile,
    ids: &'a BTreeMap<String, u64>,
    device: B::Device,
    seen: Vec<String>,
    problems: Vec<String>,
}

impl<B: Backend> ModuleMapper<B> for Importer<'_, B> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_owned());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let key = self.path.join(".");
        let expected = param.val().dims().to_vec();
        let Some(entry) = self.file.get(&key) else {
            self.problems.push(format!("{key}: missing"));
            return param;
        };
        if entry.shape != expected {
            self.problems.push(format!("{key}: shape {:?}, the model has {expected:?}", entry.shape));
            return param;
        }
        let (Some(values), Some(&id)) = (self.file.f32(&key), self.ids.get(&key)) else {
            self.problems.push(format!("{key}: no f32 values or no parameter id"));
            return param;
        };
        self.seen.push(key);
        let tensor = Tensor::<B, D>::from_data(TensorData::new(values, expected), &self.device);
        param.transform_for_load(tensor, ParamId::from(id))
    }
}

/// Replaces every float parameter of `module` by the tensor of the same path in `file`, with
/// the saved parameter id. Returns the problems (missing, mis-shaped or unexpected tensors)
/// when there are any.
pub(crate) fn import<B: Backend, M: Module<B>>(
    module: M,
    file: &TensorFile,
    ids: &BTreeMap<String, u64>,
    device: &B::Device,
) -> Result<M, Vec<String>> {
    let mut i = Importer { path: vec![], file, ids, device: device.clone(), seen: vec![], problems: vec![] };
    let module = module.map(&mut i);
    let mut problems = i.problems;
    let seen: std::collections::BTreeSet<&str> = i.seen.iter().map(String::as_str).collect();
    problems.extend(file.entries().filter(|(k, _)| !seen.contains(k)).map(|(k, _)| format!("{k}: unexpected")));
    if problems.is_empty() { Ok(module) } else { Err(problems) }
}
