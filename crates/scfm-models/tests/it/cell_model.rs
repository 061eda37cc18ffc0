//! Every family behind [`CellModel`]: a fresh model under a seed (the same seed, the same
//! model), its per-token states, an embedding for each of its poolings, and the other
//! poolings refused.

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
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

fn ids<Bk: Backend>(rows: &[[i64; 4]]) -> Tensor<Bk, 2, Int> {
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), 4]), &Default::default())
}

fn padded<Bk: Backend>() -> Tensor<Bk, 2, Bool> {
    let flat = vec![false, false, false, false, false, false, false, true];
    Tensor::from_data(TensorData::new(flat, [2, 4]), &Default::default())
}

/// Tiny models without dropout (burn applies dropout whenever autodiff is on, which the
/// host-versus-burn comparison uses).
fn geneformer() -> GeneformerConfig {
    GeneformerConfig {
        dropout: 0.0,
        attention_dropout: 0.0,
        vocab_size: 16,
        d_model: 8,
        n_heads: 2,
        n_layers: 2,
        d_ff: 16,
        max_len: 8,
        ..GeneformerConfig::v2_104m()
    }
}

fn geneformer_batch<Bk: Backend>() -> GeneformerBatch<Bk> {
    GeneformerBatch { ids: ids(&[[2, 5, 6, 3], [2, 7, 3, 0]]), padded: padded(), lengths: vec![4, 3], framed: true }
}

fn scgpt() -> ScGptConfig {
    ScGptConfig {
        vocab_size: 16,
        pad_token_id: 0,
        cls_token_id: 1,
        d_model: 8,
        n_heads: 2,
        d_ff: 16,
        n_layers: 1,
        max_len: 8,
        dropout: 0.0,
        ..ScGptConfig::whole_human()
    }
}

fn scgpt_batch<Bk: Backend>() -> ScGptBatch<Bk> {
    let values = TensorData::new(vec![0f32, 3., 1., 2., 0., 5., 4., -2.], [2, 4]);
    let values = Tensor::from_data(values, &Default::default());
    ScGptBatch { ids: ids(&[[1, 5, 6, 3], [1, 7, 3, 0]]), values, padded: padded(), lengths: vec![4, 3] }
}

fn scbert() -> ScBertConfig {
    let mut c = ScBertConfig::released();
    c.max_len = 4;
    (c.performer.d_model, c.performer.n_layers, c.performer.n_heads) = (8, 1, 2);
    (c.performer.d_head, c.performer.d_ff) = (4, 16);
    c
}

fn scbert_batch<Bk: Backend>() -> Tensor<Bk, 2, Int> {
    ids(&[[0, 2, 5, 1], [3, 0, 0, 4]])
}

fn xtrimogene() -> XTrimoGeneConfig {
    let mut c = XTrimoGeneConfig::released();
    (c.max_len, c.d_model, c.n_layers, c.n_heads, c.d_ff) = (8, 8, 1, 2, 16);
    c.bin_num = 10;
    (c.decoder.d_model, c.decoder.n_layers, c.decoder.n_heads) = (8, 1, 2);
    (c.decoder.d_head, c.decoder.d_ff) = (4, 16);
    c
}

fn xtrimogene_batch<Bk: Backend>() -> XTrimoGeneBatch<Bk> {
    // Cells by their selected positions: expressed genes, then T (6) and S (7).
    let cells: [(&[u32], &[f32]); 2] =
        [(&[0, 3, 6, 7], &[1.5, 0.7, 3.1, 3.0]), (&[2, 4, 5, 6, 7], &[0.3, 1.1, 2.0, 2.9, 2.8])];
    let c = xtrimogene();
    XTrimoGeneBatch::new(&EncoderInput::from_selected(&cells, c.max_len, c.pad_token_id as f32), &Default::default())
}

#[test]
fn every_family_inits_under_a_seed_encodes_and_embeds() {
    check::<Geneformer<B>>(&geneformer(), &geneformer_batch(), (2, 4, 8));
    check::<ScGpt<B>>(&scgpt(), &scgpt_batch(), (2, 4, 8));
    check::<ScBert<B>>(&scbert(), &scbert_batch(), (2, 4, 8));
    check::<XTrimoGene<B>>(&xtrimogene(), &xtrimogene_batch(), (2, 5, 8));
}

/// The per-token states of `M` on burn-flex without autodiff, where the layers run scfm's host
/// kernels, and with autodiff, where they run burn's own ops, from the same seeded weights.
fn host_and_burn_paths_agree<M, N>(config: &M::Config, host: &M::Batch, burn: &N::Batch)
where
    M: CellModel<B>,
    N: CellModel<Autodiff<B>, Config = M::Config>,
{
    let device = Default::default();
    let on_host = M::init(config, 5, &device).encode(host).into_data().into_vec::<f32>().unwrap();
    let by_burn = N::init(config, 5, &device).encode(burn).into_data().into_vec::<f32>().unwrap();
    crate::assert_close(M::NAME, &on_host, &by_burn);
}

/// One check per layer kind against burn's path: the fused self-attention and the encoder
/// layer's host linears (Geneformer, scGPT, xTrimoGene's encoder) and the FAVOR+ Performer
/// layer (scBERT).
#[test]
fn host_kernels_match_burns_path_in_every_family() {
    host_and_burn_paths_agree::<Geneformer<B>, Geneformer<Autodiff<B>>>(
        &geneformer(),
        &geneformer_batch(),
        &geneformer_batch(),
    );
    host_and_burn_paths_agree::<ScGpt<B>, ScGpt<Autodiff<B>>>(&scgpt(), &scgpt_batch(), &scgpt_batch());
    host_and_burn_paths_agree::<ScBert<B>, ScBert<Autodiff<B>>>(&scbert(), &scbert_batch(), &scbert_batch());
    host_and_burn_paths_agree::<XTrimoGene<B>, XTrimoGene<Autodiff<B>>>(
        &xtrimogene(),
        &xtrimogene_batch(),
        &xtrimogene_batch(),
    );
}
