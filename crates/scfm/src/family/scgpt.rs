//! scGPT (gene ids + binned values): generative GEP + GEPC or masked-value pretraining;
//! `cls_decoder` on `<cls>`; embeddings at `<cls>`, L2-normalised as upstream's `embed_data`.

use std::path::Path;

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use scfm_models::CellModel;
use scfm_models::scgpt::{ScGpt as Model, ScGptConfig};
use scfm_tokenize::mask::ScGptValueMask;
use scfm_tokenize::scgpt::{ScGptSequence, ScGptSpec, ScGptTies};
use scfm_tokenize::{SchemeKind, TokenizerSpec};
use scfm_train::{Cells, ScGptPretraining, ScGptTask, StepReport};

use super::{DatasetColumns, ModelFamily, ModelSize, PretrainRun};
use crate::Error;
use crate::annotate::{Finetune, Finetuned};
use crate::embed::{DenseBatch, EmbedModel, EmbedOptions, Pending, Pooling};

/// The scGPT family.
pub(crate) struct ScGpt;

/// The vocabulary size, `<pad>` and `<cls>` ids of a scGPT `vocab.json` (specials appended
/// as the release does).
fn vocab_ids(vocab: &Path) -> Result<(usize, usize, usize), Error> {
    let v = scfm_tokenize::vocab::scgpt_vocab(vocab, true)?;
    let id = |token: &'static str| {
        v.id(token).map(|i| i as usize).ok_or_else(|| Error::MissingToken { file: vocab.to_owned(), token })
    };
    Ok((v.id_bound(), id("<pad>")?, id("<cls>")?))
}

impl ModelFamily for ScGpt {
    type Model<B: Backend> = Model<B>;
    type Embedder<B: Backend> = Box<Model<B>>;

    const TITLE: &'static str = "scGPT";
    const FILE_FIELD: &'static str = "vocab";
    const DEFAULT_FILE: &'static str = "vocab/scgpt/default_cellxgene_vocab.json";
    const PRETRAINED_CHECKPOINT: &'static str = "scgpt";
    const L2_NORMALIZE: bool = true;

    /// The model's bins and `<cls>` value (the pad value, as upstream's pretraining),
    /// `max_len` tokens, ties broken as helical does.
    fn scheme<B: Backend>(file: &Path, model: &Model<B>, max_len: usize, seed: u64) -> Result<TokenizerSpec, Error> {
        let c = &model.config;
        let sequence = ScGptSequence {
            max_len,
            seed: seed as u32,
            n_bins: c.n_bins,
            cls_value: c.pad_value,
            ..ScGptSequence::zero_shot(c.cls_token_id as u32)
        };
        Ok(ScGptSpec::new(file.to_owned(), &sequence, ScGptTies::Helical).into())
    }

    fn tokenizer_json(file: &Path, max_len: usize) -> serde_json::Value {
        serde_json::json!({"scheme": "scgpt", "max_len": max_len, "vocab": file, "cls_value": "pad_value", "ties": "helical"})
    }

    /// The whole-human layout (MVC decoder, flag embedding, 51 bins).
    fn fresh<B: Backend>(file: &Path, size: &ModelSize, seed: u64, device: &B::Device) -> Result<Model<B>, Error> {
        let (vocab_size, pad, cls) = vocab_ids(file)?;
        let config = ScGptConfig {
            vocab_size,
            pad_token_id: pad,
            cls_token_id: cls,
            d_model: size.d_model,
            n_heads: size.n_heads,
            d_ff: size.d_ff,
            n_layers: size.n_layers,
            max_len: size.max_len,
            ..ScGptConfig::whole_human()
        };
        Ok(<Model<B> as CellModel<B>>::init(&config, seed, device))
    }

    /// The same vocabulary, `<pad>` and `<cls>`.
    fn check<B: Backend>(model: &Model<B>, file: &Path, path: &Path, _max_len: usize) -> Result<(), Error> {
        let (n, pad, cls) = vocab_ids(file)?;
        let c = &model.config;
        if (c.vocab_size, c.pad_token_id, c.cls_token_id) != (n, pad, cls) {
            return Err(Error::VocabularyMismatch {
                model: path.to_owned(),
                model_has: format!(
                    "has a vocabulary of {} tokens (<pad> {}, <cls> {})",
                    c.vocab_size, c.pad_token_id, c.cls_token_id
                ),
                tokenizer: file.to_owned(),
                tokenizer_has: format!("has {n} (<pad> {pad}, <cls> {cls}): tokenize with the model's own vocab.json"),
            });
        }
        Ok(())
    }

    /// Generative GEP + GEPC (the flag encoder added when missing), or masked values at 0.4.
    fn pretrain<B: AutodiffBackend>(
        run: &PretrainRun<'_, B>,
        mut model: Model<B>,
        cells: Cells<'_>,
        progress: &mut dyn FnMut(&StepReport),
    ) -> Result<(Model<B>, Vec<f64>), Error> {
        let seed = run.train.seed as u32;
        let task = if run.scgpt_generative {
            if model.flag_encoder.is_none() {
                let device = &run.devices[0];
                model = scfm_train::seeded(device, run.train.seed, || model.with_flag_encoder(device));
            }
            ScGptTask::generative(seed)
        } else {
            ScGptTask::MaskedValues { masker: ScGptValueMask::new(0.4, seed) }
        };
        run.go(model, &ScGptPretraining { cells, task, gepc: true }, progress)
    }

    /// `cls_decoder` on `<cls>`.
    fn finetune<B: AutodiffBackend>(
        stage: &Finetune<'_, B>,
        model: Model<B>,
        n_classes: usize,
        head_seed: u64,
        progress: &mut dyn FnMut(&StepReport),
    ) -> Result<Finetuned, Error> {
        stage.run_head(head_seed, |device| model.with_classifier(n_classes, device), progress)
    }

    /// `input_ids` and their binned `values`.
    fn dataset_columns(file: &Path, _pretraining: bool, _max_len: usize) -> Result<DatasetColumns, Error> {
        Ok(DatasetColumns::new(SchemeKind::ScGpt, file.to_owned(), "input_ids", Some("values")))
    }

    /// A released folder (`args.json`, `vocab.json`, `best_model.pt`), its own `vocab.json`.
    fn load_embedder<B: Backend>(
        spec: &EmbedModel,
        opts: &EmbedOptions,
        device: &B::Device,
    ) -> Result<(Self::Embedder<B>, TokenizerSpec), Error> {
        if let Some(vocab) = &spec.vocab {
            // A vocabulary other than the checkpoint's own would give its genes wrong ids.
            return Err(Error::UnusedOption {
                checkpoint: spec.checkpoint.clone(),
                option: "--vocab",
                given: vocab.display().to_string(),
                reason: "scGPT reads the checkpoint folder's own vocab.json",
            });
        }
        let m = Model::<B>::from_dir(&spec.checkpoint, device)?;
        let mut sequence = ScGptSequence::zero_shot(m.config.cls_token_id as u32);
        sequence.max_len = m.config.max_len;
        sequence.cls_value = m.config.pad_value;
        sequence.n_bins = m.config.n_bins;
        sequence.seed = opts.seed;
        let scheme = ScGptSpec::new(spec.checkpoint.join("vocab.json"), &sequence, ScGptTies::Helical);
        Ok((Box::new(m), scheme.into()))
    }

    fn poolings<B: Backend>(_model: &Self::Embedder<B>) -> (&'static [Pooling], &'static str) {
        (Model::<B>::POOLINGS, "")
    }

    fn embedding_dim<B: Backend>(m: &Self::Embedder<B>, _pooling: Pooling) -> usize {
        m.config.d_model
    }

    fn embed_batch<B: Backend>(
        m: &Self::Embedder<B>,
        batch: &[Pending],
        len: usize,
        pooling: Pooling,
        _opts: &EmbedOptions,
        device: &B::Device,
    ) -> Result<Tensor<B, 2>, Error> {
        let (vocab, pad_id, pad_value) = (m.config.vocab_size, m.config.pad_token_id, m.config.pad_value);
        let dense = DenseBatch::new(batch, len, vocab, pad_id, pad_value, device)?;
        let values = Tensor::<B, 2>::from_data(TensorData::new(dense.values, [batch.len(), len]), device);
        let enc = m.encode(dense.ids, values, dense.padded, false);
        Ok(Model::cell_embeddings(enc.output, &dense.lengths, pooling, false)?)
    }
}
