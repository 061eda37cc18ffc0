use std::path::{Path, PathBuf};

use burn::tensor::Tensor;
use burn::tensor::activation::softmax;
use scfm_models::ImportError;
use scfm_models::checkpoint::{TensorFile, int_tensor};
use scfm_models::scbert::{ScBert, ScBertConfig};

use crate::{B, assert_close, model_fixtures, public_fixture};

/// The scBERT `.pth` of a fixture folder.
pub fn checkpoint(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "pth"))
        .unwrap_or_else(|| panic!("{}: no .pth checkpoint", dir.display()))
}

fn flat<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().into_vec().unwrap()
}

/// Every output of every fixture: `*_b1` rows run one cell per forward (as `predict.py`),
/// `*_b2` and `*_masked` as the stored batch.
#[test]
fn scbert_forward_parity_on_every_fixture() {
    let device = Default::default();
    for dir in model_fixtures("scbert") {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let model = ScBert::<B>::from_file(&checkpoint(&dir), &device).unwrap_or_else(|e| panic!("{name}: {e}"));
        let inputs = TensorFile::read_safetensors(&dir.join("inputs.safetensors")).unwrap();
        let outputs = TensorFile::read_safetensors(&dir.join("outputs.safetensors")).unwrap();
        let mut compared = 0;
        for (key, entry) in inputs.entries() {
            let Some(run) = key.strip_prefix("ids_") else { continue };
            let [b, n] = entry.shape[..] else { panic!("{name}: {key} {:?}", entry.shape) };
            let ids = inputs.i64(key).unwrap();
            let rows: Vec<Vec<i64>> =
                if run == "b1" { ids.chunks(n).map(<[i64]>::to_vec).collect() } else { vec![ids] };
            let (mut enc, mut logits) = (vec![], vec![]);
            for row in rows {
                let batch = row.len() / n;
                let e = model.encode(int_tensor::<B, 2>(row, [batch, n], &device));
                match (model.lm_logits(e.clone()), model.classify(e.clone())) {
                    (Some(l), None) => logits.extend(flat(l)),
                    (None, Some(l)) => logits.extend(flat(l)),
                    _ => panic!("{name}: exactly one head expected"),
                }
                enc.extend(flat(e));
            }
            assert_eq!(enc.len(), b * n * model.config.performer.d_model);
            if let Some(want) = outputs.f32(&format!("encodings_{run}")) {
                assert_close(&format!("{name} encodings_{run}"), &enc, &want);
                compared += 1;
            }
            let want = outputs.f32(&format!("logits_{run}")).unwrap_or_else(|| panic!("{name}: no logits_{run}"));
            assert_close(&format!("{name} logits_{run}"), &logits, &want);
            compared += 1;
            if let Some(classes) = model.config.classifier.map(|c| c.n_classes) {
                let l = Tensor::<B, 2>::from_data(burn::tensor::TensorData::new(logits.clone(), [b, classes]), &device);
                if let Some(want) = outputs.f32(&format!("probs_{run}")) {
                    assert_close(&format!("{name} probs_{run}"), &flat(softmax(l.clone(), 1)), &want);
                    compared += 1;
                }
                if let Some(want) = outputs.i64(&format!("pred_{run}")) {
                    let got: Vec<i64> = l.argmax(1).into_data().convert::<i64>().into_vec().unwrap();
                    assert_eq!(got, want, "{name} pred_{run}");
                    compared += 1;
                }
            }
        }
        assert!(compared >= 4, "{name}: only {compared} outputs compared");
        eprintln!("{name}: {compared} outputs match");
    }
}

#[test]
fn scbert_configs_come_from_the_checkpoint() {
    let (pre, fine) = (&public_fixture("scbert", "pretrain_tiny"), &public_fixture("scbert", "finetune_tiny"));
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(pre.join("meta.json")).unwrap()).unwrap();
    let arch = &meta["architecture"];
    let model = ScBert::<B>::from_file(&checkpoint(pre), &Default::default()).unwrap();
    let p = &model.config.performer;
    let field = |k: &str| arch[k].as_u64().unwrap() as usize;
    assert_eq!(
        (model.config.vocab_size, model.config.max_len, p.d_model, p.n_layers, p.n_heads, p.d_head, p.n_features),
        (
            field("num_tokens"),
            field("max_seq_len"),
            field("dim"),
            field("depth"),
            field("heads"),
            field("dim_head"),
            field("nb_features")
        )
    );
    assert!(!p.qkv_bias && model.config.classifier.is_none());
    let tuned = ScBert::<B>::from_file(&checkpoint(fine), &Default::default()).unwrap();
    assert_eq!(tuned.config.classifier.map(|c| (c.fc1, c.fc2, c.n_classes)), Some((512, 128, 5)));
    // The released shape, as documented.
    let released = ScBertConfig::released();
    assert_eq!((released.performer.n_features, released.performer.d_ff), (266, 800));
}

#[test]
fn a_file_that_is_not_an_scbert_checkpoint_is_a_config_error() {
    let dir = public_fixture("scgpt", "pretrained_tiny");
    let e = ScBert::<B>::from_file(&dir.join("best_model.pt"), &Default::default()).unwrap_err();
    assert!(matches!(e, ImportError::Config { .. }), "{e}");
    assert!(e.to_string().contains("token_emb.weight"), "{e}");
}
