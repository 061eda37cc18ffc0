use std::path::Path;

use burn::tensor::Tensor;
use scfm_models::ImportError;
use scfm_models::Pooling;
use scfm_models::checkpoint::TensorFile;
use scfm_models::xtrimogene::{EncoderInput, Weights, XTrimoGene};

use crate::{B, assert_close, model_fixtures, public_fixture};

fn flat<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().into_vec().unwrap()
}

/// The fixture's cells as the model sees them (`input_vectors`, float64, `.float()`).
fn cells(inputs: &TensorFile) -> (Vec<Vec<f32>>, usize) {
    let e = inputs.get("input_vectors").expect("input_vectors");
    let n = e.shape[1];
    (inputs.f32("input_vectors").unwrap().chunks(n).map(<[f32]>::to_vec).collect(), n)
}

/// Only the first `keep` positions of each `[batch, len, d]` row.
fn first_positions(x: &[f32], len: usize, keep: usize, d: usize) -> Vec<f32> {
    x.chunks(len * d).flat_map(|row| row[..keep * d].to_vec()).collect()
}

#[test]
fn xtrimogene_encoder_input_parity_selection_matches_gather_data() {
    for dir in model_fixtures("scfoundation") {
        let inputs = TensorFile::read_safetensors(&dir.join("inputs.safetensors")).unwrap();
        let (cells, n) = cells(&inputs);
        for (i, c) in cells.iter().enumerate() {
            let one = EncoderInput::gather(&[c], n, 103.0);
            assert_eq!(Some(one.positions.clone()), inputs.i64(&format!("encoder_position_ids.{i}")), "cell {i}");
            assert_eq!(Some(one.values.clone()), inputs.f32(&format!("encoder_values.{i}")), "cell {i}");
        }
        let refs: Vec<&[f32]> = cells.iter().map(Vec::as_slice).collect();
        let batch = EncoderInput::gather(&refs, n, 103.0);
        assert_eq!(Some(batch.values.clone()), inputs.f32("batch.encoder_data"));
        assert_eq!(Some(batch.positions.clone()), inputs.i64("batch.encoder_position_ids"));
        let padded: Vec<i64> = batch.padded().iter().map(|&p| i64::from(p)).collect();
        assert_eq!(Some(padded), inputs.i64("batch.encoder_padding"));
    }
}

fn check_cell_weights(dir: &Path, weights: Weights, cells: &[Vec<f32>], n: usize, outputs: &TensorFile) -> usize {
    let device = Default::default();
    let key = weights.key();
    let model = XTrimoGene::<B>::from_checkpoint(&dir.join("models.ckpt"), weights, &device).unwrap();
    let (mut all, mut max, mut compared) = (vec![], vec![], 0);
    for (i, c) in cells.iter().enumerate() {
        let input = EncoderInput::gather(&[c], n, 103.0);
        let (v, p, m) = input.tensors::<B>(&device);
        let h = model.encode(v, p, m);
        if let Some(want) = outputs.f32(&format!("encoder_output.{key}.{i}")) {
            assert_close(&format!("encoder_output.{key}.{i}"), &flat(h.clone()), &want);
            compared += 1;
        }
        all.extend(flat(XTrimoGene::cell_embeddings(h.clone(), &input.lengths, Pooling::All).unwrap()));
        max.extend(flat(XTrimoGene::cell_embeddings(h, &input.lengths, Pooling::Max).unwrap()));
    }
    let want_all = outputs.f32(&format!("cell_emb.{key}")).unwrap();
    assert_close(&format!("cell_emb.{key}"), &all, &want_all);
    assert_close(&format!("cell_emb_max.{key}"), &max, &outputs.f32(&format!("cell_emb_max.{key}")).unwrap());
    // Batched with padding: the encoder masks padded keys and the pooling skips padded rows,
    // so the cells' embeddings equal the one-cell runs.
    let refs: Vec<&[f32]> = cells.iter().map(Vec::as_slice).collect();
    let batch = EncoderInput::gather(&refs, n, 103.0);
    let (v, p, m) = batch.tensors::<B>(&device);
    let h = model.encode(v, p, m);
    assert_close(
        &format!("batched cell_emb.{key}"),
        &flat(XTrimoGene::cell_embeddings(h, &batch.lengths, Pooling::All).unwrap()),
        &want_all,
    );
    compared + 3
}

#[test]
fn xtrimogene_forward_parity_on_every_fixture() {
    let device = Default::default();
    for dir in model_fixtures("scfoundation") {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let inputs = TensorFile::read_safetensors(&dir.join("inputs.safetensors")).unwrap();
        let outputs = TensorFile::read_safetensors(&dir.join("outputs.safetensors")).unwrap();
        let (cells, n) = cells(&inputs);
        let mut compared = 0;
        for weights in [Weights::Cell, Weights::Rde] {
            compared += check_cell_weights(&dir, weights, &cells, n, &outputs);
        }
        // The decoder path with the `gene` weights: one cell per forward, then all at once.
        let model = XTrimoGene::<B>::from_checkpoint(&dir.join("models.ckpt"), Weights::Gene, &device).unwrap();
        let genes = model.config.n_genes();
        let d = model.config.decoder.d_model;
        let (mut emb, mut expr) = (vec![], vec![]);
        for c in &cells {
            let input = EncoderInput::gather(&[c], n, 103.0);
            let (v, p, m) = input.tensors::<B>(&device);
            let decoded = model.decode(model.encode(v, p, m), &input);
            emb.extend(first_positions(&flat(decoded.clone()), n, genes, d));
            expr.extend(first_positions(&flat(model.expression(decoded)), n, genes, 1));
        }
        assert_close(&format!("{name} gene_emb"), &emb, &outputs.f32("gene_emb").unwrap());
        assert_close(&format!("{name} pred_expression"), &expr, &outputs.f32("pred_expression").unwrap());
        let refs: Vec<&[f32]> = cells.iter().map(Vec::as_slice).collect();
        let batch = EncoderInput::gather(&refs, n, 103.0);
        let (v, p, m) = batch.tensors::<B>(&device);
        let decoded = flat(model.decode(model.encode(v, p, m), &batch));
        assert_close(
            &format!("{name} gene_emb_batch"),
            &first_positions(&decoded, n, genes, d),
            &outputs.f32("gene_emb_batch").unwrap(),
        );
        compared += 3;
        eprintln!("{name}: {compared} outputs match");
    }
}

#[test]
fn xtrimogene_import_errors_name_the_problem() {
    let device = Default::default();
    // A scBERT container has none of the entries.
    let scbert = public_fixture("scbert", "pretrain_tiny");
    let pth = crate::scbert::checkpoint(&scbert);
    let e = XTrimoGene::<B>::from_checkpoint(&pth, Weights::Cell, &device).unwrap_err();
    assert!(matches!(e, ImportError::Config { .. }) && e.to_string().contains("'cell'"), "{e}");
    // Tensors of the right file under the wrong config: mis-shaped tensors, listed.
    let dir = public_fixture("scfoundation", "mae_autobin_tiny");
    let model = XTrimoGene::<B>::from_checkpoint(&dir.join("models.ckpt"), Weights::Cell, &device).unwrap();
    let archive = scfm_models::checkpoint::TorchArchive::open(&dir.join("models.ckpt")).unwrap();
    let state = archive.object().get("cell").and_then(|c| c.get("state_dict")).unwrap();
    let file = archive.tensors(state, |k| k.strip_prefix("model.").map(str::to_owned)).unwrap();
    let mut config = model.config.clone();
    config.bin_num += 1;
    let e = XTrimoGene::<B>::from_tensors(&config, &file, &device).unwrap_err();
    assert!(e.to_string().contains("token_emb.mlp.weight: expected shape"), "{e}");
    config.n_heads = 3;
    let e = XTrimoGene::<B>::from_tensors(&config, &file, &device).unwrap_err();
    assert!(matches!(e, ImportError::Config { .. }) && e.to_string().contains("heads"), "{e}");
}
