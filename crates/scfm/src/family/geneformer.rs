//! Geneformer (BERT over rank-value tokens): V2 dictionaries for training, V1 or V2 for
//! embeddings; masked-LM pretraining; the BERT pooler + classifier head.

use std::path::{Path, PathBuf};

use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use scfm_models::CellModel;
use scfm_models::geneformer::{Geneformer as Model, GeneformerClassifier, GeneformerConfig};
use scfm_models::layers::Activation;
use scfm_tokenize::geneformer::{GeneformerSpec, GeneformerVersion};
use scfm_tokenize::mask::GeneformerMlm;
use scfm_tokenize::{SchemeKind, SchemeSpec, TokenizerSpec};
use scfm_train::{Cells, MaskedLm, StepReport};

use super::{DatasetColumns, ModelFamily, ModelSize, PretrainRun};
use crate::Error;
use crate::annotate::{Finetune, Finetuned};
use crate::embed::{DenseBatch, EmbedModel, EmbedOptions, Pending, Pooling};

/// The Geneformer family.
pub(crate) struct Geneformer;

/// The V2 token dictionary in `dictionaries` and its number of token ids.
fn v2_vocab_size(dictionaries: &Path) -> Result<(PathBuf, usize), Error> {
    let spec = GeneformerSpec::<2>::in_dir(dictionaries)?;
    let n = scfm_tokenize::vocab::geneformer_token_dictionary(spec.vocabulary())?.id_bound();
    Ok((spec.dictionaries.token_dictionary, n))
}

impl ModelFamily for Geneformer {
    type Model<B: Backend> = Model<B>;
    type Embedder<B: Backend> = (Box<Model<B>>, GeneformerVersion);

    const TITLE: &'static str = "Geneformer";
    const FILE_FIELD: &'static str = "dictionaries";
    const DEFAULT_FILE: &'static str = "vocab/geneformer";
    const PRETRAINED_CHECKPOINT: &'static str = "geneformer-mlm";

    /// Geneformer V2 rank values, at most `max_len` per cell.
    fn scheme<B: Backend>(file: &Path, _model: &Model<B>, max_len: usize, _seed: u64) -> Result<TokenizerSpec, Error> {
        Ok(GeneformerSpec::<2>::in_dir(file)?.at_most(max_len).into())
    }

    fn tokenizer_json(file: &Path, max_len: usize) -> serde_json::Value {
        serde_json::json!({"scheme": "geneformer-v2", "max_len": max_len, "dictionaries": file})
    }

    /// V1's layout (ReLU, post-norm) with dropout 0.02, over the V2 vocabulary.
    fn fresh<B: Backend>(file: &Path, size: &ModelSize, seed: u64, device: &B::Device) -> Result<Model<B>, Error> {
        let (_, vocab_size) = v2_vocab_size(file)?;
        let config = GeneformerConfig {
            vocab_size,
            d_model: size.d_model,
            n_heads: size.n_heads,
            n_layers: size.n_layers,
            d_ff: size.d_ff,
            max_len: size.max_len,
            activation: Activation::Relu,
            dropout: 0.02,
            attention_dropout: 0.02,
            ..GeneformerConfig::v1_10m()
        };
        Ok(<Model<B> as CellModel<B>>::init(&config, seed, device))
    }

    /// The V2 dictionaries' vocabulary, and `max_len` positions.
    fn check<B: Backend>(model: &Model<B>, file: &Path, path: &Path, max_len: usize) -> Result<(), Error> {
        let (token_dictionary, n) = v2_vocab_size(file)?;
        let c = &model.config;
        if c.vocab_size != n {
            return Err(Error::VocabularyMismatch {
                model: path.to_owned(),
                model_has: format!("has a vocabulary of {} tokens", c.vocab_size),
                tokenizer: token_dictionary,
                tokenizer_has: format!("has {n} (the Geneformer V2 dictionaries)"),
            });
        }
        if c.max_len < max_len {
            return Err(Error::VocabularyMismatch {
                model: path.to_owned(),
                model_has: format!("has {} positions", c.max_len),
                tokenizer: file.to_owned(),
                tokenizer_has: format!("is asked for {max_len} tokens per cell"),
            });
        }
        Ok(())
    }

    /// Masked LM.
    fn pretrain<B: AutodiffBackend>(
        run: &PretrainRun<'_, B>,
        model: Model<B>,
        cells: Cells<'_>,
        progress: &mut dyn FnMut(&StepReport),
    ) -> Result<(Model<B>, Vec<f64>), Error> {
        let masker = GeneformerMlm::new(model.config.vocab_size as u32, run.train.seed as u32);
        run.go(model, &MaskedLm { cells, masker }, progress)
    }

    /// The BERT pooler + classifier, reading the stage's head pooling.
    fn finetune<B: AutodiffBackend>(
        stage: &Finetune<'_, B>,
        model: Model<B>,
        n_classes: usize,
        head_seed: u64,
        progress: &mut dyn FnMut(&StepReport),
    ) -> Result<Finetuned, Error> {
        let pooling = stage.head_pooling;
        let head = stage.head(head_seed, |device| GeneformerClassifier::new(model, n_classes, device));
        stage.run(head.with_pooling(pooling)?, progress)
    }

    /// `input_ids` of V2 datasets (or Geneformer's own), cut to `max_len` as the tokenizer cuts.
    fn dataset_columns(file: &Path, _pretraining: bool, max_len: usize) -> Result<DatasetColumns, Error> {
        let spec = GeneformerSpec::<2>::in_dir(file)?;
        Ok(DatasetColumns {
            truncate: Some(max_len),
            accepts_unknown_scheme: true,
            ..DatasetColumns::new(SchemeKind::GeneformerV2, spec.vocabulary().to_owned(), "input_ids", None)
        })
    }

    /// A Hugging Face folder and the dictionaries' folder (`vocab`); V1 for checkpoints with
    /// 2,048 positions unless the version is given.
    fn load_embedder<B: Backend>(
        spec: &EmbedModel,
        _opts: &EmbedOptions,
        device: &B::Device,
    ) -> Result<(Self::Embedder<B>, TokenizerSpec), Error> {
        let checkpoint = &spec.checkpoint;
        let dictionaries = spec.vocab_file(Self::TITLE, "the folder of its dictionaries", &[])?;
        let m = Model::<B>::from_hf_dir(checkpoint, device)?;
        let version = spec.version.unwrap_or(if m.config.max_len == 2048 {
            GeneformerVersion::V1
        } else {
            GeneformerVersion::V2
        });
        if version.model_input_size() > m.config.max_len {
            return Err(Error::VocabularyMismatch {
                model: checkpoint.clone(),
                model_has: format!("has {} position embeddings", m.config.max_len),
                tokenizer: dictionaries.clone(),
                tokenizer_has: format!(
                    "(the {version:?} tokenizer) writes up to {} tokens",
                    version.model_input_size()
                ),
            });
        }
        let scheme: TokenizerSpec = match version {
            GeneformerVersion::V1 => GeneformerSpec::<1>::in_dir(&dictionaries)?.into(),
            GeneformerVersion::V2 => GeneformerSpec::<2>::in_dir(&dictionaries)?.into(),
        };
        let tokens = scfm_tokenize::vocab::geneformer_token_dictionary(scheme.vocabulary())?;
        if tokens.id_bound() > m.config.vocab_size {
            return Err(Error::VocabularyMismatch {
                model: checkpoint.clone(),
                model_has: format!("has a vocabulary of {} tokens", m.config.vocab_size),
                tokenizer: scheme.vocabulary().to_owned(),
                tokenizer_has: format!("has {} token ids: dictionaries of another version?", tokens.id_bound()),
            });
        }
        Ok(((Box::new(m), version), scheme))
    }

    fn poolings<B: Backend>((_, version): &Self::Embedder<B>) -> (&'static [Pooling], &'static str) {
        match version {
            GeneformerVersion::V1 => (&[Pooling::Mean], " (V1 has no <cls> token)"),
            GeneformerVersion::V2 => (&[Pooling::Mean, Pooling::Cls], ""),
        }
    }

    fn embedding_dim<B: Backend>((m, _): &Self::Embedder<B>, _pooling: Pooling) -> usize {
        m.config.d_model
    }

    /// The chosen layer (upstream's `emb_layer`), pooled over the real genes or at `<cls>`.
    fn embed_batch<B: Backend>(
        (m, version): &Self::Embedder<B>,
        batch: &[Pending],
        len: usize,
        pooling: Pooling,
        opts: &EmbedOptions,
        device: &B::Device,
    ) -> Result<Tensor<B, 2>, Error> {
        let dense = DenseBatch::new(batch, len, m.config.vocab_size, m.config.pad_token_id, 0.0, device)?;
        let hidden = m.hidden_state(dense.ids, dense.padded, m.hidden_index(opts.geneformer_layer));
        Ok(Model::pool(hidden, &dense.lengths, pooling, version.special_tokens())?)
    }
}
