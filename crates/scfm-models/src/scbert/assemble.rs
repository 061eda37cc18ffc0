//! Assembles scBERT from a module source (fresh weights or a checkpoint), and the constructors
//! built on it.
//!
//! The key map of scBERT checkpoints (`PerformerLM.state_dict()` names, inside the
//! `model_state_dict` entry of `utils.save_ckpt`'s container).

use std::path::Path;

use burn::module::Param;
use burn::tensor::backend::Backend;

use super::{ScBert, ScBertClassifier, ScBertClassifierShape, ScBertConfig};
use crate::ImportError;
use crate::checkpoint::{Fresh, Loader, ModuleSource, TensorFile, TorchArchive};
use crate::layers::{PerformerShape, assemble_performer};

const LAYERS: &str = "performer.net.layers";

/// Buffers of the state dict that inference does not read.
const IGNORABLE: [&str; 1] = ["performer.calls_since_last_redraw"];

pub(super) fn assemble<B: Backend>(c: &ScBertConfig, src: &mut impl ModuleSource<B>) -> ScBert<B> {
    let d = c.performer.d_model;
    let token_emb = src.embedding("token_emb.weight", c.vocab_size, d);
    let pos_emb = Param::from_tensor(src.weight("pos_emb.emb.weight", [c.max_len, d])).set_require_grad(false);
    let layers = assemble_performer(&c.performer, LAYERS, src);
    let norm = src.layer_norm("norm", d, 1e-5);
    let (lm_head, classifier) = match c.classifier {
        None => (Some(src.linear("to_out", d, c.vocab_size)), None),
        Some(h) => (None, Some(classifier(c, h, src))),
    };
    ScBert { token_emb, pos_emb, layers, norm, lm_head, classifier, config: c.clone() }
}

/// `finetune.py`'s head (`to_out.*`) of shape `h`, from `src`.
pub(super) fn classifier<B: Backend>(
    c: &ScBertConfig,
    h: ScBertClassifierShape,
    src: &mut impl ModuleSource<B>,
) -> ScBertClassifier<B> {
    let d = c.performer.d_model;
    let conv_w = src.weight("to_out.conv1.weight", [1, 1, 1, d]).reshape([d, 1]);
    let conv_b = src.vector("to_out.conv1.bias", 1);
    // The reshape is an op: detached, the weight is a leaf that can require gradients.
    let conv = burn::nn::Linear { weight: Param::from_tensor(conv_w.detach()), bias: Some(Param::from_tensor(conv_b)) };
    ScBertClassifier {
        conv,
        fc1: src.linear("to_out.fc1", c.max_len, h.fc1),
        fc2: src.linear("to_out.fc2", h.fc1, h.fc2),
        fc3: src.linear("to_out.fc3", h.fc2, h.n_classes),
    }
}

impl ScBertConfig {
    /// Reads the architecture from a checkpoint's tensor shapes (scBERT ships no config file):
    /// tokens and width from `token_emb.weight`, positions from `pos_emb.emb.weight`, the
    /// Performer from its layers, the head from `to_out.*`.
    ///
    /// # Errors
    /// [`ImportError::Config`] when the tensors that fix the shape are absent.
    pub fn from_tensors(file: &TensorFile) -> Result<Self, ImportError> {
        let bad = |reason: &str| ImportError::Config {
            path: file.path().to_owned(),
            reason: format!("not an scBERT PerformerLM state dict: {reason}"),
        };
        let shape = |k: &str| file.get(k).map(|e| e.shape.clone());
        let Some([vocab_size, _]) = shape("token_emb.weight").and_then(|s| <[usize; 2]>::try_from(s).ok()) else {
            return Err(bad("no 2-D token_emb.weight"));
        };
        let Some([max_len, _]) = shape("pos_emb.emb.weight").and_then(|s| <[usize; 2]>::try_from(s).ok()) else {
            return Err(bad("no 2-D pos_emb.emb.weight (gene2vec positions)"));
        };
        let performer =
            PerformerShape::infer(file, LAYERS).ok_or_else(|| bad("no readable performer.net.layers.0 tensors"))?;
        let classifier = match (shape("to_out.fc1.weight"), shape("to_out.fc2.weight"), shape("to_out.fc3.weight")) {
            (Some(f1), Some(f2), Some(f3)) => Some(ScBertClassifierShape { fc1: f1[0], fc2: f2[0], n_classes: f3[0] }),
            _ => None,
        };
        Ok(Self { vocab_size, max_len, performer, classifier })
    }
}

impl<B: Backend> ScBert<B> {
    /// Loads a scBERT checkpoint: `utils.save_ckpt`'s container (`model_state_dict`; the
    /// optimiser and scheduler states are not read) or a bare state dict, with or without a
    /// `module.` prefix (DataParallel); or a `.safetensors` file of the state dict. The head
    /// follows the checkpoint.
    ///
    /// # Errors
    /// [`ImportError`]: an unreadable file, a container without a state dict, and
    /// [`ImportError::Tensors`] listing every missing, unexpected or mis-shaped tensor.
    pub fn from_file(path: &Path, device: &B::Device) -> Result<Self, ImportError> {
        if path.extension().is_some_and(|e| e == "safetensors") {
            return Self::from_tensors(&TensorFile::read_safetensors(path)?, device);
        }
        let archive = TorchArchive::open(path)?;
        let top = archive.object();
        let state = top.get("model_state_dict").unwrap_or(top);
        let file = archive.tensors(state, |k| Some(k.strip_prefix("module.").map(str::to_owned).unwrap_or(k)))?;
        Self::from_tensors(&file, device)
    }

    /// Builds the model the tensors describe ([`ScBertConfig::from_tensors`]).
    ///
    /// # Errors
    /// As [`Self::from_file`].
    pub fn from_tensors(file: &TensorFile, device: &B::Device) -> Result<Self, ImportError> {
        let config = ScBertConfig::from_tensors(file)?;
        let mut loader = Loader::new(file, device);
        let model = assemble(&config, &mut loader);
        loader.ignore(IGNORABLE.map(String::from));
        let p = &config.performer;
        loader.finish(&format!("scBERT ({} layers, dim {}, {} positions)", p.n_layers, p.d_model, config.max_len))?;
        Ok(model)
    }
}

impl ScBertConfig {
    /// A freshly initialised model (weights ~ N(0, 0.02), random gene2vec table, projections
    /// drawn from `seed`).
    pub fn init<B: Backend>(&self, device: &B::Device, seed: u64) -> ScBert<B> {
        assemble(self, &mut Fresh::new(device, 0.02).with_seed(seed))
    }
}

impl<B: Backend> ScBert<B> {
    /// The model with `finetune.py`'s head for `n_classes` cell types in place of its
    /// masked-LM output layer (or of another head), freshly initialised: what upstream's
    /// fine-tuning does to the pretrained model.
    pub fn with_classifier(mut self, n_classes: usize, device: &B::Device) -> Self {
        self.config = self.config.with_classifier(n_classes);
        let shape = self.config.classifier.expect("just set");
        self.classifier = Some(classifier(&self.config, shape, &mut Fresh::new(device, 0.02)));
        self.lm_head = None;
        self
    }
}
