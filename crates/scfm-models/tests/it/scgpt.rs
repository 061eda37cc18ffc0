use std::path::Path;

use burn::tensor::{Bool, Tensor, TensorData};
use scfm_models::Pooling;
use scfm_models::checkpoint::{TensorFile, int_tensor};
use scfm_models::scgpt::{ScGpt, ScGptConfig};
use scfm_models::{ImportError, TensorProblem};

use crate::{B, assert_close, model_fixtures, public_fixture, write_safetensors};

/// `got` and `want` `[batch, len, …]` restricted to the real positions (padded = 1 in `mask`).
fn real_positions(got: &[f32], want: &[f32], mask: &[i64]) -> (Vec<f32>, Vec<f32>) {
    let per = got.len() / mask.len();
    let (mut g, mut w) = (vec![], vec![]);
    for (p, &m) in mask.iter().enumerate() {
        if m == 0 {
            g.extend_from_slice(&got[p * per..(p + 1) * per]);
            w.extend_from_slice(&want[p * per..(p + 1) * per]);
        }
    }
    (g, w)
}

fn vec2(t: Tensor<B, 2>) -> Vec<f32> {
    t.into_data().into_vec().unwrap()
}

struct Inputs {
    ids: Tensor<B, 2, burn::tensor::Int>,
    values: Tensor<B, 2>,
    padded: Tensor<B, 2, Bool>,
    mask: Vec<i64>,
    lengths: Vec<usize>,
}

fn inputs(dir: &Path) -> Inputs {
    let device = Default::default();
    let file = TensorFile::read_safetensors(&dir.join("inputs.safetensors")).unwrap();
    let shape = file.get("src").unwrap().shape.clone();
    let (b, l) = (shape[0], shape[1]);
    let mask = file.i64("src_key_padding_mask").unwrap();
    let lengths = mask.chunks(l).map(|row| row.iter().filter(|&&m| m == 0).count()).collect();
    Inputs {
        ids: int_tensor::<B, 2>(file.i64("src").unwrap(), [b, l], &device),
        values: Tensor::from_data(TensorData::new(file.f32("values").unwrap(), [b, l]), &device),
        padded: Tensor::from_data(TensorData::new(mask.iter().map(|&m| m == 1).collect::<Vec<_>>(), [b, l]), &device),
        mask,
        lengths,
    }
}

/// Runs `model` on a fixture's inputs and compares every stored output.
fn check_outputs(name: &str, dir: &Path, model: &ScGpt<B>) {
    let x = inputs(dir);
    let outputs = TensorFile::read_safetensors(&dir.join("outputs.safetensors")).unwrap();
    let want = |key: &str| outputs.f32(key).unwrap_or_else(|| panic!("{name}: no {key}"));
    assert_eq!(outputs.i64("padded_positions").unwrap(), x.mask, "{name}: padded_positions");

    let enc = model.encode(x.ids, x.values, x.padded, false);
    let got: Vec<f32> = enc.output.clone().into_data().into_vec().unwrap();
    let (g, w) = real_positions(&got, &want("transformer_output"), &x.mask);
    assert_close(&format!("{name} transformer_output"), &g, &w);
    let (g, w) = real_positions(&vec2(model.expression(enc.output.clone())), &want("mlm_output"), &x.mask);
    assert_close(&format!("{name} mlm_output"), &g, &w);

    let cell = ScGpt::cell_embeddings(enc.output.clone(), &x.lengths, Pooling::Cls, false).unwrap();
    assert_close(&format!("{name} cell_emb"), &vec2(cell.clone()), &want("cell_emb"));
    let l2 = ScGpt::cell_embeddings(enc.output.clone(), &x.lengths, Pooling::Cls, true).unwrap();
    assert_close(&format!("{name} cell_emb_l2"), &vec2(l2), &want("cell_emb_l2"));

    match (model.mvc(cell.clone(), enc.gene_embeddings), outputs.f32("mvc_output")) {
        (Some(got), Some(w)) => {
            let (g, w) = real_positions(&vec2(got), &w, &x.mask);
            assert_close(&format!("{name} mvc_output"), &g, &w);
        }
        (None, None) => {}
        (got, w) => panic!("{name}: MVC decoder {} but mvc_output {}", got.is_some(), w.is_some()),
    }
    match (model.classify(cell), outputs.f32("cls_output")) {
        (Some(logits), Some(w)) => {
            assert_close(&format!("{name} cls_output"), &vec2(logits.clone()), &w);
            let pred: Vec<i64> = logits.argmax(1).into_data().convert::<i64>().into_vec().unwrap();
            assert_eq!(pred, outputs.i64("cls_pred").unwrap(), "{name}: cls_pred");
        }
        (None, None) => {}
        (got, w) => panic!("{name}: classifier {} but cls_output {}", got.is_some(), w.is_some()),
    }
}

#[test]
fn scgpt_forward_parity_on_every_fixture() {
    let device = Default::default();
    for dir in model_fixtures("scgpt") {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let model = ScGpt::<B>::from_dir(&dir, &device).unwrap_or_else(|e| panic!("{name}: {e}"));
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap();
        let kw = &meta["model_kwargs"];
        assert_eq!(model.config.vocab_size as u64, kw["ntoken"].as_u64().unwrap(), "{name}");
        assert_eq!(model.config.mvc, kw["do_mvc"].as_bool().unwrap(), "{name}");
        assert_eq!(model.config.n_cls.unwrap_or(1) as u64, kw["n_cls"].as_u64().unwrap(), "{name}");
        check_outputs(&name, &dir, &model);
    }
}

/// The fixture's checkpoint as a safetensors file with every key passed through `rename`
/// (`None` drops it) plus `extra` tensors.
fn rewritten(dir: &Path, out: &Path, rename: impl Fn(&str) -> Option<String>, extra: &[(&str, Vec<usize>)]) {
    let ckpt = ["best_model.pt", "model.pt"].iter().map(|n| dir.join(n)).find(|p| p.is_file()).unwrap();
    let file = TensorFile::read_torch(&ckpt).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> =
        file.entries().filter_map(|(k, e)| rename(k).map(|n| (n, e.shape.clone(), file.f32(k).unwrap()))).collect();
    for (k, shape) in extra {
        tensors.push(((*k).to_owned(), shape.clone(), vec![0.5; shape.iter().product()]));
    }
    write_safetensors(out, &tensors);
}

#[test]
fn pytorch_in_proj_names_load_the_same_model_as_the_released_wqkv_layout() {
    let device = Default::default();
    let dir = public_fixture("scgpt", "pretrained_tiny");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("renamed.safetensors");
    rewritten(
        &dir,
        &path,
        |k| {
            Some(
                k.replace("self_attn.Wqkv.weight", "self_attn.in_proj_weight")
                    .replace("self_attn.Wqkv.bias", "self_attn.in_proj_bias"),
            )
        },
        &[],
    );
    let file = TensorFile::read_safetensors(&path).unwrap();
    assert!(file.get("transformer_encoder.layers.0.self_attn.in_proj_weight").is_some());
    let vocab = scfm_tokenize::vocab::scgpt_vocab(&dir.join("vocab.json"), true).unwrap();
    let config = ScGptConfig::from_args_json(&dir.join("args.json"), &vocab).unwrap();
    let model = ScGpt::<B>::from_tensors(&config, &file, &device).unwrap();
    check_outputs("pretrained_tiny (in_proj names)", &dir, &model);
}

#[test]
fn scgpt_checkpoints_that_do_not_fit_are_import_errors_naming_the_tensors() {
    let device = Default::default();
    let (tiny, medium) = (&public_fixture("scgpt", "pretrained_tiny"), &public_fixture("scgpt", "medium_d512"));

    // The tiny checkpoint under the medium folder's args and vocabulary: every tensor misshaped.
    let vocab = scfm_tokenize::vocab::scgpt_vocab(&medium.join("vocab.json"), true).unwrap();
    let config = ScGptConfig::from_args_json(&medium.join("args.json"), &vocab).unwrap();
    let file = TensorFile::read_torch(&tiny.join("best_model.pt")).unwrap();
    let err = ScGpt::<B>::from_tensors(&config, &file, &device).unwrap_err();
    let ImportError::Tensors { problems, .. } = &err else { panic!("{err}") };
    assert!(
        problems.iter().any(|p| matches!(p,
        TensorProblem::Misshaped { key, expected, found }
            if key == "encoder.embedding.weight" && expected == &[1203, 512] && found == &[43, 32])),
        "{err}"
    );

    // Parts the port does not implement (domain-specific batch norm, explicit-zero decoder) are
    // unexpected, never silently skipped; a dropped tensor is missing.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("dsbn.safetensors");
    rewritten(
        tiny,
        &path,
        |k| (k != "decoder.fc.2.bias").then(|| k.to_owned()),
        &[("dsbn.bns.0.running_mean", vec![32]), ("decoder.zero_logit.0.weight", vec![32, 32])],
    );
    let vocab = scfm_tokenize::vocab::scgpt_vocab(&tiny.join("vocab.json"), true).unwrap();
    let config = ScGptConfig::from_args_json(&tiny.join("args.json"), &vocab).unwrap();
    let err = ScGpt::<B>::from_tensors(&config, &TensorFile::read_safetensors(&path).unwrap(), &device).unwrap_err();
    let ImportError::Tensors { problems, .. } = &err else { panic!("{err}") };
    let mut found: Vec<String> = problems.iter().map(ToString::to_string).collect();
    found.sort();
    assert_eq!(
        found,
        [
            "missing decoder.fc.2.bias [32]",
            "unexpected decoder.zero_logit.0.weight [32, 32]",
            "unexpected dsbn.bns.0.running_mean [32]"
        ],
        "{err}"
    );

    // A folder without a checkpoint; args.json of a category-value model.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for f in ["args.json", "vocab.json"] {
        std::fs::copy(tiny.join(f), empty.join(f)).unwrap();
    }
    assert!(matches!(ScGpt::<B>::from_dir(&empty, &device), Err(ImportError::NoCheckpoint { .. })));
    let args = std::fs::read_to_string(tiny.join("args.json")).unwrap().replace("\"continuous\"", "\"category\"");
    std::fs::write(empty.join("args.json"), args).unwrap();
    let err = ScGptConfig::from_args_json(&empty.join("args.json"), &vocab).unwrap_err();
    assert!(matches!(&err, ImportError::Config { reason, .. } if reason.contains("category")), "{err}");
}

#[test]
fn a_fresh_scgpt_has_the_configured_heads_and_pools_only_real_tokens() {
    let device = Default::default();
    let dir = public_fixture("scgpt", "pretrained_tiny");
    let vocab = scfm_tokenize::vocab::scgpt_vocab(&dir.join("vocab.json"), true).unwrap();
    let mut config = ScGptConfig::from_args_json(&dir.join("args.json"), &vocab).unwrap();
    config.n_cls = Some(7);
    let model = config.init::<B>(&device);
    let (cls, pad) = (config.cls_token_id as i64, config.pad_token_id as i64);
    let ids = int_tensor::<B, 2>(vec![cls, 3, 9, 4, cls, 5, pad, pad], [2, 4], &device);
    let values = Tensor::<B, 2>::from_data(TensorData::new(vec![-2., 1., 50., 7., -2., 3., -2., -2.], [2, 4]), &device);
    let padded = Tensor::<B, 2, Bool>::from_data(
        TensorData::new(vec![false, false, false, false, false, false, true, true], [2, 4]),
        &device,
    );
    let enc = model.encode(ids, values, padded, true);
    assert_eq!(enc.output.dims(), [2, 4, 32]);
    assert_eq!(enc.attentions.len(), 2);
    let probs: Vec<f32> = enc.attentions[1].clone().into_data().into_vec().unwrap();
    for h in 0..4 {
        for q in 0..4 {
            for k in [2, 3] {
                let at = ((16 + h * 4 + q) * 4) + k;
                assert!(probs[at] < 1e-30, "head {h} query {q} key {k}: {}", probs[at]);
            }
        }
    }
    let cell = ScGpt::cell_embeddings(enc.output.clone(), &[4, 2], Pooling::Cls, false).unwrap();
    assert_eq!(model.classify(cell).unwrap().dims(), [2, 7]);
    // Mean pooling of row 2 is the mean of its two real positions, whatever the padding holds.
    let mean = vec2(ScGpt::cell_embeddings(enc.output.clone(), &[4, 2], Pooling::Mean, false).unwrap());
    let out: Vec<f32> = enc.output.into_data().into_vec().unwrap();
    let want: Vec<f32> = (0..32).map(|j| (out[4 * 32 + j] + out[5 * 32 + j]) / 2.0).collect();
    assert_close("mean pooling", &mean[32..], &want);
    let l2 = vec2(
        ScGpt::cell_embeddings(
            Tensor::from_data(TensorData::new(out, [2, 4, 32]), &device),
            &[4, 2],
            Pooling::Cls,
            true,
        )
        .unwrap(),
    );
    // A pooling scGPT does not have is refused by name, not computed.
    let any = Tensor::<B, 3>::zeros([2, 4, 32], &device);
    let err = ScGpt::cell_embeddings(any, &[4, 2], Pooling::Max, false).unwrap_err();
    assert_eq!((err.model, err.pooling), ("scGPT", Pooling::Max));
    for row in l2.chunks(32) {
        let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }
}
