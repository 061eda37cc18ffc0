use burn::tensor::{Bool, Tensor, TensorData};
use scfm_models::Pooling;
use scfm_models::checkpoint::{TensorFile, int_tensor};
use scfm_models::geneformer::{EmbeddingLayer, Geneformer};

use crate::{B, assert_close, model_fixtures, public_fixture};

fn values(t: Tensor<B, 3>) -> Vec<f32> {
    t.into_data().into_vec().unwrap()
}

#[test]
fn geneformer_forward_parity_on_every_fixture() {
    let device = Default::default();
    for dir in model_fixtures("geneformer") {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap();
        let v2 = meta["style"] == "V2";
        let model = Geneformer::<B>::from_hf_dir(&dir, &device).unwrap_or_else(|e| panic!("{name}: {e}"));
        let inputs = TensorFile::read_safetensors(&dir.join("inputs.safetensors")).unwrap();
        let outputs = TensorFile::read_safetensors(&dir.join("outputs.safetensors")).unwrap();
        let shape = &inputs.get("input_ids").unwrap().shape;
        let (b, l) = (shape[0], shape[1]);
        let ids = int_tensor::<B, 2>(inputs.i64("input_ids").unwrap(), [b, l], &device);
        let mask = inputs.i64("attention_mask").unwrap();
        let padded = Tensor::<B, 2, Bool>::from_data(
            TensorData::new(mask.iter().map(|&m| m == 0).collect::<Vec<_>>(), [b, l]),
            &device,
        );
        let lengths: Vec<usize> = inputs.i64("lengths").unwrap().iter().map(|&n| n as usize).collect();

        let (ids_again, padded_again) = (ids.clone(), padded.clone());
        let enc = model.encode(ids, padded, false);
        let n_layers = model.config.n_layers;
        assert_eq!(enc.hidden_states.len(), n_layers + 1);
        for (i, h) in enc.hidden_states.iter().enumerate() {
            let key = format!("hidden_states.{i}");
            assert_close(&format!("{name} {key}"), &values(h.clone()), &outputs.f32(&key).unwrap());
        }
        let logits = model.mlm_logits(enc.last().clone()).expect("pretrained checkpoints have the MLM head");
        let vocab = model.config.vocab_size;
        if let Some(want) = outputs.f32("logits") {
            assert_close(&format!("{name} logits"), &values(logits), &want);
        } else {
            // The real-shape fixture stores logits at a few positions per row and the logsumexp.
            let per_row = outputs.get("logits_positions").unwrap().shape.iter().skip(1).product::<usize>().max(1);
            let positions = outputs.i64("logits_positions").unwrap();
            let all = values(logits.clone());
            let mut got = vec![];
            for (k, &p) in positions.iter().enumerate() {
                let row = k / per_row;
                let at = (row * l + p as usize) * vocab;
                got.extend_from_slice(&all[at..at + vocab]);
            }
            assert_close(&format!("{name} logits_at_positions"), &got, &outputs.f32("logits_at_positions").unwrap());
            let lse: Vec<f32> =
                values(logits.clone().max_dim(2) + (logits.clone() - logits.max_dim(2)).exp().sum_dim(2).log());
            assert_close(&format!("{name} logits_logsumexp"), &lse, &outputs.f32("logits_logsumexp").unwrap());
        }

        let hidden = enc.hidden_states[model.hidden_index(EmbeddingLayer::Penultimate)].clone();
        // The single-state path runs only the layers it needs and gives the same tensor.
        for layer in [EmbeddingLayer::Penultimate, EmbeddingLayer::Index(0)] {
            let i = model.hidden_index(layer);
            let (ids, padded) = (ids_again.clone(), padded_again.clone());
            let one: Vec<f32> = model.hidden_state(ids, padded, i).into_data().into_vec().unwrap();
            assert_eq!(one, values(enc.hidden_states[i].clone()), "{name}: hidden_state({i})");
        }
        let cell = Geneformer::pool(hidden.clone(), &lengths, Pooling::Mean, v2).unwrap();
        assert_close(
            &format!("{name} cell_emb"),
            &cell.into_data().into_vec().unwrap(),
            &outputs.f32("cell_emb").unwrap(),
        );
        if v2 {
            let cls = Geneformer::pool(hidden, &lengths, Pooling::Cls, true).unwrap();
            assert_close(
                &format!("{name} cls_emb"),
                &cls.into_data().into_vec().unwrap(),
                &outputs.f32("cls_emb").unwrap(),
            );
        }
    }
}

#[test]
fn a_checkpoint_that_does_not_fit_its_config_is_an_import_error_naming_the_tensors() {
    use scfm_models::geneformer::GeneformerConfig;
    use scfm_models::{ImportError, TensorProblem};
    let device = Default::default();
    let root = public_fixture("geneformer", "v2_tiny").parent().unwrap().to_owned();
    // v2_tiny's architecture with v1_tiny's weights: every tensor has the wrong shape.
    let config = GeneformerConfig::from_hf_json(&public_fixture("geneformer", "v2_tiny").join("config.json")).unwrap();
    let file =
        TensorFile::read_safetensors(&public_fixture("geneformer", "v1_tiny").join("model.safetensors")).unwrap();
    let err = Geneformer::<B>::from_tensors(&config, &file, &device).unwrap_err();
    let ImportError::Tensors { problems, .. } = &err else { panic!("{err}") };
    assert!(problems.iter().any(|p| matches!(p,
        TensorProblem::Misshaped { key, expected, found }
            if key == "bert.embeddings.word_embeddings.weight" && expected == &[64, 48] && found == &[60, 32])));
    let message = err.to_string();
    assert!(message.contains("bert.embeddings.word_embeddings.weight"), "{message}");

    // One layer more than the file has: that layer's tensors are missing.
    let mut deeper = GeneformerConfig::from_hf_json(&root.join("v2_tiny/config.json")).unwrap();
    deeper.n_layers += 1;
    let file = TensorFile::read_safetensors(&root.join("v2_tiny/model.safetensors")).unwrap();
    let err = Geneformer::<B>::from_tensors(&deeper, &file, &device).unwrap_err();
    let ImportError::Tensors { problems, .. } = &err else { panic!("{err}") };
    assert_eq!(problems.len(), 16, "{err}");
    assert!(
        problems
            .iter()
            .all(|p| matches!(p, TensorProblem::Missing { key, .. } if key.starts_with("bert.encoder.layer.3.")))
    );

    // One layer fewer: the last layer's tensors are unexpected.
    let mut shallower = deeper;
    shallower.n_layers -= 2;
    let err = Geneformer::<B>::from_tensors(&shallower, &file, &device).unwrap_err();
    let ImportError::Tensors { problems, .. } = &err else { panic!("{err}") };
    assert!(
        problems
            .iter()
            .all(|p| matches!(p, TensorProblem::Unexpected { key, .. } if key.starts_with("bert.encoder.layer.2.")))
    );

    // A folder without weights, and a config of another model type.
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path();
    std::fs::copy(root.join("v2_tiny/config.json"), empty.join("config.json")).unwrap();
    assert!(matches!(Geneformer::<B>::from_hf_dir(empty, &device), Err(ImportError::NoCheckpoint { .. })));
    std::fs::write(empty.join("config.json"), br#"{"model_type": "gpt2", "vocab_size": 3}"#).unwrap();
    assert!(matches!(GeneformerConfig::from_hf_json(&empty.join("config.json")), Err(ImportError::Config { .. })));
}

#[test]
fn a_fresh_model_has_the_configured_shapes_and_masks_padding() {
    use scfm_models::geneformer::GeneformerConfig;
    let device = Default::default();
    let config = GeneformerConfig::from_hf_json(&public_fixture("geneformer", "v2_tiny").join("config.json")).unwrap();
    let model = config.init::<B>(&device);
    let ids = int_tensor::<B, 2>(vec![2, 5, 6, 3, 2, 7, 3, 0], [2, 4], &device);
    let padded = Tensor::<B, 2, Bool>::from_data(
        TensorData::new(vec![false, false, false, false, false, false, false, true], [2, 4]),
        &device,
    );
    let enc = model.encode(ids.clone(), padded, true);
    assert_eq!(enc.last().dims(), [2, 4, 48]);
    assert_eq!(enc.attentions.len(), 3);
    let probs: Vec<f32> = enc.attentions[0].clone().into_data().into_vec().unwrap();
    // Row 2 (index 1): no query attends to the padded key 3.
    for h in 0..4 {
        for q in 0..4 {
            let at = ((16 + h * 4 + q) * 4) + 3;
            assert!(probs[at] < 1e-30, "head {h} query {q}: {}", probs[at]);
        }
    }
    assert_eq!(model.mlm_logits(enc.last().clone()).unwrap().dims(), [2, 4, 64]);
}

#[test]
fn geneformer_bin_parity_pytorch_model_bin_holds_the_same_tensors_as_model_safetensors() {
    use scfm_models::geneformer::GeneformerConfig;
    let device = Default::default();
    let mut checked = 0;
    for dir in model_fixtures("geneformer") {
        let bin = dir.join("pytorch_model.bin");
        if !bin.is_file() {
            continue;
        }
        let st_path = dir.join("model.safetensors");
        if !st_path.is_file() {
            continue;
        }
        let torch = TensorFile::read_torch(&bin).unwrap();
        let st = TensorFile::read_safetensors(&st_path).unwrap();
        for (name, e) in st.entries() {
            let t = torch.get(name).unwrap_or_else(|| panic!("{}: {name} missing", bin.display()));
            assert_eq!((&t.shape, t.dtype), (&e.shape, e.dtype), "{name}");
            assert_eq!(torch.f32(name), st.f32(name), "{name}");
        }
        // The extra keys are the tied decoder (same values as the word embeddings).
        let extra: Vec<&str> = torch.entries().map(|(n, _)| n).filter(|n| st.get(n).is_none()).collect();
        assert!(extra.contains(&"cls.predictions.decoder.weight"), "{extra:?}");
        assert_eq!(torch.f32("cls.predictions.decoder.weight"), st.f32("bert.embeddings.word_embeddings.weight"));
        // And the model loads from it (its extra keys are documented ignorable ones).
        let config = GeneformerConfig::from_hf_json(&dir.join("config.json")).unwrap();
        Geneformer::<B>::from_tensors(&config, &torch, &device).unwrap();
        checked += 1;
    }
    eprintln!("{checked} fixtures ship both pytorch_model.bin and model.safetensors");
}
