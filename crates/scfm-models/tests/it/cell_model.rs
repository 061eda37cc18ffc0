//! Every family behind [`CellModel`]: a fresh model under a seed (the same seed, the same
//! model), its per-token states, an embedding for each of its poolings, and the other
//! poolings refused.

use burn::tensor::{Bool, Int, Tensor, TensorData};
use scfm_models::geneformer::{Geneformer, GeneformerBatch, GeneformerConfig};
use scfm_models::scbert::{ScBert, ScBertConfig};
use scfm_models::scgpt::{ScGpt, ScGptBatch, ScGptConfig};
use scfm_models::xtrimogene::{EncoderInput, XTrimoGene, XTrimoGeneBatch, XTrimoGeneConfig};
use scfm_models::{CellModel, Pooling};

use crate::B;

const ALL: [Pooling; 4] = [Pooling::Mean, Pooling::Cls, Pooling::All, Pooling::Max];

/// `M` of `config` through init (twice under one seed, once under another) → encode →
/// embed with every pooling; `width` is its `d_model`, `len` the batch's token count.
fn check<M: CellModel<B>>(config: &M::Config, batch: &M::Batch, (cells, len, width): (usize, usize, usize)) {
    let device = Default::default();
    let values = |t: Tensor<B, 2>| t.into_data().into_vec::<f32>().unwrap();
    let model = M::init(config, 11, &device);
    assert_eq!(model.encode(batch).dims(), [cells, len, width], "{}", M::NAME);
    let first = values(model.embed(batch, M::POOLINGS[0]).unwrap());
    let again = values(M::init(config, 11, &device).embed(batch, M::POOLINGS[0]).unwrap());
    assert_eq!(first, again, "{}: one seed, one model", M::NAME);
    let other = values(M::init(config, 12, &device).embed(batch, M::POOLINGS[0]).unwrap());
    assert_ne!(first, other, "{}: another seed, another model", M::NAME);
    for pooling in ALL {
        match model.embed(batch, pooling) {
            Ok(e) => {
                assert!(M::POOLINGS.contains(&pooling), "{}: {pooling:?}", M::NAME);
                let [n, d] = e.dims();
                assert!(n == cells && d % width == 0, "{}: {pooling:?} gives {:?}", M::NAME, [n, d]);
                assert!(values(e).iter().all(|v| v.is_finite()), "{}: {pooling:?}", M::NAME);
            }
            Err(err) => {
                assert!(!M::POOLINGS.contains(&pooling), "{}: {err}", M::NAME);
                assert_eq!(err.pooling, pooling);
            }
        }
    }
    let json = serde_json::to_value(model.config()).unwrap();
    assert_eq!(json["d_model"].as_u64().or(json["performer"]["d_model"].as_u64()), Some(width as u64), "{json}");
}

fn ids(rows: &[[i64; 4]]) -> Tensor<B, 2, Int> {
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), 4]), &Default::default())
}

fn padded(rows: &[[bool; 4]]) -> Tensor<B, 2, Bool> {
    let flat: Vec<bool> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), 4]), &Default::default())
}

#[test]
fn every_family_inits_under_a_seed_encodes_and_embeds() {
    let pad = [[false, false, false, false], [false, false, false, true]];
    let geneformer = GeneformerConfig {
        vocab_size: 16,
        d_model: 8,
        n_heads: 2,
        n_layers: 2,
        d_ff: 16,
        max_len: 8,
        ..GeneformerConfig::v2_104m()
    };
    let batch = GeneformerBatch {
        ids: ids(&[[2, 5, 6, 3], [2, 7, 3, 0]]),
        padded: padded(&pad),
        lengths: vec![4, 3],
        framed: true,
    };
    check::<Geneformer<B>>(&geneformer, &batch, (2, 4, 8));

    let scgpt = ScGptConfig {
        vocab_size: 16,
        pad_token_id: 0,
        cls_token_id: 1,
        d_model: 8,
        n_heads: 2,
        d_ff: 16,
        n_layers: 1,
        max_len: 8,
        ..ScGptConfig::whole_human()
    };
    let values =
        Tensor::from_data(TensorData::new(vec![0f32, 3., 1., 2., 0., 5., 4., -2.], [2, 4]), &Default::default());
    let batch =
        ScGptBatch { ids: ids(&[[1, 5, 6, 3], [1, 7, 3, 0]]), values, padded: padded(&pad), lengths: vec![4, 3] };
    check::<ScGpt<B>>(&scgpt, &batch, (2, 4, 8));

    let mut scbert = ScBertConfig::released();
    scbert.max_len = 4;
    (scbert.performer.d_model, scbert.performer.n_layers, scbert.performer.n_heads) = (8, 1, 2);
    (scbert.performer.d_head, scbert.performer.d_ff) = (4, 16);
    check::<ScBert<B>>(&scbert, &ids(&[[0, 2, 5, 1], [3, 0, 0, 4]]), (2, 4, 8));

    let mut xtrimogene = XTrimoGeneConfig::released();
    (xtrimogene.max_len, xtrimogene.d_model, xtrimogene.n_layers, xtrimogene.n_heads, xtrimogene.d_ff) =
        (8, 8, 1, 2, 16);
    xtrimogene.bin_num = 10;
    (xtrimogene.decoder.d_model, xtrimogene.decoder.n_layers, xtrimogene.decoder.n_heads) = (8, 1, 2);
    (xtrimogene.decoder.d_head, xtrimogene.decoder.d_ff) = (4, 16);
    // Cells by their selected positions: expressed genes, then T (6) and S (7).
    let cells: [(&[u32], &[f32]); 2] =
        [(&[0, 3, 6, 7], &[1.5, 0.7, 3.1, 3.0]), (&[2, 4, 5, 6, 7], &[0.3, 1.1, 2.0, 2.9, 2.8])];
    let input = EncoderInput::from_selected(&cells, xtrimogene.max_len, xtrimogene.pad_token_id as f32);
    check::<XTrimoGene<B>>(&xtrimogene, &XTrimoGeneBatch::new(&input, &Default::default()), (2, 5, 8));
}
