//! scGPT value binning against upstream `scgpt.preprocess.binning` and helical's variant, on
//! every `scgpt_binning_*` fixture under `$SCFM_PARITY_DIR/tokenizers`.

use scfm_core::CellSource;
use scfm_io::AnySource;
use scfm_tokenize::rng::{NumpyLegacy, NumpyPcg64};
use scfm_tokenize::scgpt::{TieBreak, bin_cell, digitize, quantile_edges};

use crate::data;
use crate::safetensors::Tensors;

#[test]
fn scgpt_binning_parity_on_every_fixture() {
    let (dir, fixtures) = crate::tokenizer_fixtures("scgpt_binning_");
    // The whole-human vocabulary as the checkpoint sees it (genes by exact symbol).
    let vocab = scfm_tokenize::vocab::scgpt_vocab(&data("vocab/scgpt/default_census_vocab.json"), true).unwrap();
    for json in fixtures {
        let name = json.file_stem().unwrap().to_string_lossy().into_owned();
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let n_bins = meta["parameters"]["n_bins"].as_u64().unwrap() as usize;
        let seed = meta["parameters"]["seed"].as_u64().unwrap() as u32;
        // The fixture's special tokens are the vocabulary's.
        for (key, token) in [("cls_token_id", "<cls>"), ("pad_token_id", "<pad>")] {
            if let Some(id) = meta["parameters"][key].as_u64() {
                assert_eq!(vocab.id(token).map(u64::from), Some(id), "{name}: {token}");
            }
        }
        let t = Tensors::open(&dir.join(format!("{name}.safetensors")));
        let (cells, offsets, gene_ids, expr) =
            (t.i64("cell_index"), t.i64("offsets"), t.i64("gene_ids"), t.f32("expr_values"));
        let (edges, left, right) = (t.f64("edges"), t.u8("digitize_left"), t.u8("digitize_right"));
        let (bins_legacy, u_legacy, bins_helical) = (t.u8("bins_legacy"), t.f64("u_legacy"), t.u8("bins_helical"));
        let pcg_u = t.f64("pcg64_seed42_u");

        // The RNG streams themselves.
        let mut mt = NumpyLegacy::new(seed);
        assert!(u_legacy.iter().all(|&u| mt.next_f64() == u), "{name}: MT19937 draws");
        let mut pcg = NumpyPcg64::new(42);
        assert!(pcg_u.iter().all(|&u| pcg.next_f64() == u), "{name}: PCG64(42) draws");

        let src = AnySource::open(data(meta["input"]["file"].as_str().unwrap()), &Default::default()).unwrap();
        let cols: Vec<Option<u32>> = src.genes().ids().iter().map(|g| vocab.id(g)).collect();
        let all = src.read_rows(0..src.n_cells()).unwrap();
        let mut legacy = TieBreak::numpy_legacy(seed);
        let (mut helical, mut deterministic) = (TieBreak::HelicalPcg64, TieBreak::Deterministic);
        let n_edges = n_bins - 1;
        for (i, &row) in cells.iter().enumerate() {
            let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
            // Input: the expressed vocabulary genes in column order.
            let cell = all.cell(row as usize);
            let (ids, values): (Vec<i64>, Vec<f32>) = cell
                .indices
                .iter()
                .zip(cell.values)
                .filter_map(|(&g, &v)| cols[g as usize].map(|id| (i64::from(id), v)))
                .unzip();
            assert_eq!(ids, gene_ids[a..b], "{name} cell {row}: genes");
            assert_eq!(values, expr[a..b], "{name} cell {row}: values");
            let mut sorted: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
            sorted.sort_by(f64::total_cmp);
            let e = quantile_edges(&sorted, n_edges);
            assert_eq!(e, edges[i * n_edges..(i + 1) * n_edges], "{name} cell {row}: edges");
            for (k, &v) in values.iter().enumerate() {
                assert_eq!(
                    digitize(f64::from(v), &e),
                    (left[a + k] as usize, right[a + k] as usize),
                    "{name} cell {row}"
                );
            }
            assert_eq!(bin_cell(&values, n_bins, &mut legacy), bins_legacy[a..b], "{name} cell {row}: legacy bins");
            assert_eq!(bin_cell(&values, n_bins, &mut helical), bins_helical[a..b], "{name} cell {row}: helical bins");
            let det = bin_cell(&values, n_bins, &mut deterministic);
            for k in 0..values.len() {
                let (l, r) = (left[a + k], right[a + k]);
                assert!(
                    det[k] == l && (det[k] > r || l == r),
                    "{name} cell {row}: deterministic bin {} not in [{r}, {l}]",
                    det[k]
                );
            }
        }
    }
}

#[test]
fn zeros_stay_zero_and_bins_cover_the_range() {
    let mut tie = TieBreak::Deterministic;
    let bins = bin_cell(&[0.0, 5.0, 1.0, 0.0, 3.0, 100.0], 51, &mut tie);
    assert_eq!(bins[0], 0);
    assert_eq!(bins[3], 0);
    assert_eq!(bins[2], 1, "the minimum gets bin 1");
    assert_eq!(bins[5], 50, "the maximum gets bin 50");
    assert_eq!(bin_cell(&[0.0, 0.0], 51, &mut tie), vec![0, 0]);
}
