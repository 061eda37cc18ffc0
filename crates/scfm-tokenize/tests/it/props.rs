//! Invariants of every tokenizer on random cells (proptest).

use proptest::prelude::*;
use scfm_core::CellView;
use scfm_core::{CellChunk, GeneVocab, StrMap, StringMap};
use scfm_tokenize::geneformer::{GeneformerDictionaries, GeneformerTokenizer, GeneformerVersion};
use scfm_tokenize::rng::NumpyPcg64;
use scfm_tokenize::scbert::ScBertTokenizer;
use scfm_tokenize::scgpt::{TieBreak, bin_cell, digitize, quantile_edges};
use scfm_tokenize::xtrimogene::{DepthTarget, XTrimoGeneTokenizer};

const N_GENES: usize = 60;

/// A toy Geneformer vocabulary: genes G0..G59 (ids 4..), symbols S0..S59 mapped to them, and
/// S10 and S11 both mapped to G10 (a collapse), medians with deliberate duplicates (ties).
fn toy_dicts() -> GeneformerDictionaries {
    let mut pairs =
        vec![("<pad>".to_owned(), 0), ("<mask>".to_owned(), 1), ("<cls>".to_owned(), 2), ("<eos>".to_owned(), 3)];
    pairs.extend((0..N_GENES).map(|g| (format!("G{g}"), g as u32 + 4)));
    let tokens = GeneVocab::from_pairs(pairs).unwrap();
    let medians: StrMap<f64> = (0..N_GENES).map(|g| (format!("G{g}"), 0.5 + (g % 7) as f64)).collect();
    let mut mapping: StringMap = (0..N_GENES).map(|g| (format!("S{g}"), format!("G{g}"))).collect();
    mapping.insert("S11", "G10");
    for g in 0..N_GENES {
        mapping.insert(&format!("G{g}"), &format!("G{g}"));
    }
    GeneformerDictionaries { tokens, medians, ensembl_mapping: mapping }
}

fn cells() -> impl Strategy<Value = Vec<Vec<(u32, f32)>>> {
    let cell = proptest::collection::btree_map(0..N_GENES as u32, 1u32..50, 0..N_GENES)
        .prop_map(|m| m.into_iter().map(|(g, v)| (g, v as f32)).collect());
    proptest::collection::vec(cell, 1..12)
}

fn chunk(rows: &[Vec<(u32, f32)>]) -> CellChunk {
    let mut indptr = vec![0];
    let (mut idx, mut val) = (vec![], vec![]);
    for r in rows {
        for &(g, v) in r {
            idx.push(g);
            val.push(v);
        }
        indptr.push(idx.len());
    }
    CellChunk::from_csr((0..rows.len()).map(|i| format!("c{i}")).collect(), indptr, idx, val, N_GENES).unwrap()
}

/// Geneformer dictionaries for `n` genes G0.. (ids 4..) with the given medians.
fn wide_dicts(medians: &[f64]) -> GeneformerDictionaries {
    let mut pairs = vec![("<cls>".to_owned(), 2), ("<eos>".to_owned(), 3)];
    pairs.extend((0..medians.len()).map(|g| (format!("G{g}"), g as u32 + 4)));
    GeneformerDictionaries {
        tokens: GeneVocab::from_pairs(pairs).unwrap(),
        medians: medians.iter().enumerate().map(|(g, &m)| (format!("G{g}"), m)).collect(),
        ensembl_mapping: (0..medians.len()).map(|g| (format!("G{g}"), format!("G{g}"))).collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// On cells of up to 3,000 expressed genes (the radix path), the ranking is exactly a stable
    /// descending sort of the keys computed as upstream does, with ties (from repeated medians
    /// and counts) in column order.
    #[test]
    fn geneformer_ranking_is_a_stable_sort_of_upstream_keys(
        distinct_medians in prop_oneof![Just(3usize), Just(50), Just(100_000)],
        seed in any::<u32>(),
        nnz in 0usize..3000,
        fractional in any::<bool>(),
    ) {
        const GENES: usize = 3000;
        let mut rng = scfm_tokenize::rng::NumpyPcg64::new(seed);
        let medians: Vec<f64> =
            (0..GENES).map(|_| 0.01 + (rng.next_u64() % distinct_medians as u64) as f64 * 0.37).collect();
        let tok = GeneformerTokenizer::new(GeneformerVersion::V2, wide_dicts(&medians));
        let genes: Vec<String> = (0..GENES).map(|g| format!("G{g}")).collect();
        let plan = tok.plan(&genes);
        let mut cols: Vec<u32> = (0..GENES as u32).filter(|_| rng.next_u64() % GENES as u64 <= nnz as u64).collect();
        cols.dedup();
        let values: Vec<f32> = cols
            .iter()
            .map(|_| {
                let c = 1 + rng.next_u64() % 40 * (rng.next_u64() % 3);
                if fractional { c as f32 * 0.731 } else { c as f32 }
            })
            .collect();
        let cell = CellView { indices: &cols, values: &values };
        let n = cell.total();
        let mut want: Vec<(u32, f64)> = cols
            .iter()
            .zip(&values)
            .map(|(&g, &v)| (g + 4, ((f64::from(v) * (1.0 / n)) * 10_000.0) * (1.0 / medians[g as usize])))
            .collect();
        want.sort_by(|a, b| b.1.total_cmp(&a.1));
        prop_assert_eq!(tok.rank(&plan, cell, n), want);
    }

    #[test]
    fn geneformer_invariants(rows in cells(), symbols in any::<bool>()) {
        let genes: Vec<String> = (0..N_GENES).map(|g| if symbols { format!("S{g}") } else { format!("G{g}") }).collect();
        let c = chunk(&rows);
        for version in [GeneformerVersion::V1, GeneformerVersion::V2] {
            let tok = GeneformerTokenizer::new(version, toy_dicts());
            let plan = tok.plan(&genes);
            prop_assert_eq!(plan.collapsed, symbols, "only the symbol input has two genes mapping to one");
            for (i, cell) in c.cells().enumerate() {
                let n = cell.total();
                let ranked = tok.rank(&plan, cell, n);
                prop_assert!(ranked.windows(2).all(|w| w[0].1 >= w[1].1), "keys are non-increasing");
                let out = tok.tokenize(&plan, cell, n);
                prop_assert_eq!(out.is_none(), cell.is_empty(), "cell {}: dropped only when empty", i);
                if let Some(out) = out {
                    prop_assert!(out.input_ids.len() <= version.model_input_size());
                    let body = if version == GeneformerVersion::V2 {
                        prop_assert_eq!(out.input_ids[0], 2);
                        prop_assert_eq!(*out.input_ids.last().unwrap(), 3);
                        &out.input_ids[1..out.input_ids.len() - 1]
                    } else {
                        &out.input_ids[..]
                    };
                    prop_assert!(body.iter().all(|&t| (4..4 + N_GENES as u32).contains(&t)));
                    let mut uniq = body.to_vec();
                    uniq.sort_unstable();
                    uniq.dedup();
                    prop_assert_eq!(uniq.len(), body.len(), "a gene appears once");
                    prop_assert_eq!(Some(out), tok.tokenize(&plan, cell, n), "deterministic");
                }
            }
        }
    }

    /// Binning equals a plain transcription of upstream's steps (sort, `np.quantile` edges,
    /// `np.digitize` both ways, one draw per non-zero value in column order), for raw counts
    /// (binned through a histogram, also with wide gaps between the values) and for values that
    /// take the sorting path: a far outlier, fractions, negatives.
    #[test]
    fn scgpt_bins_equal_upstream_steps(
        counts in proptest::collection::vec((0u32..4, 1u32..40), 1..300),
        kind in 0usize..5,
    ) {
        let values: Vec<f32> = counts.iter().enumerate().map(|(i, &(zero, c))| {
            let v = if zero == 0 { 0.0 } else { c as f32 };
            match kind {
                1 if i == 0 => 5e6,
                4 => v * 97.0,
                2 if v != 0.0 => v + 0.25,
                3 if i % 3 == 0 => -v,
                _ => v,
            }
        }).collect();
        let reference = |draw: &mut dyn FnMut() -> f64| -> Vec<u8> {
            let mut sorted: Vec<f64> = values.iter().filter(|&&v| v != 0.0).map(|&v| f64::from(v)).collect();
            if sorted.is_empty() {
                return vec![0; values.len()];
            }
            sorted.sort_by(f64::total_cmp);
            let edges = quantile_edges(&sorted, 50);
            values.iter().map(|&v| {
                if v == 0.0 {
                    return 0;
                }
                let (l, r) = digitize(f64::from(v), &edges);
                (draw() * (r as f64 - l as f64) + l as f64).ceil() as u8
            }).collect()
        };
        prop_assert_eq!(bin_cell(&values, 51, &mut TieBreak::Deterministic), reference(&mut || 0.0));
        let mut pcg = NumpyPcg64::new(42);
        prop_assert_eq!(bin_cell(&values, 51, &mut TieBreak::HelicalPcg64), reference(&mut || pcg.next_f64()));
    }

    #[test]
    fn scgpt_bins_are_in_range_and_helical_is_order_free(rows in cells()) {
        let values: Vec<Vec<f32>> = rows.iter().map(|r| {
            let mut v = vec![0f32; N_GENES];
            for &(g, x) in r { v[g as usize] = x; }
            v
        }).collect();
        let mut forward = TieBreak::HelicalPcg64;
        let a: Vec<Vec<u8>> = values.iter().map(|v| bin_cell(v, 51, &mut forward)).collect();
        let mut backward = TieBreak::HelicalPcg64;
        let mut b: Vec<Vec<u8>> = values.iter().rev().map(|v| bin_cell(v, 51, &mut backward)).collect();
        b.reverse();
        prop_assert_eq!(&a, &b, "helical bins do not depend on cell order");
        let mut legacy = TieBreak::numpy_legacy(0);
        let mut det = TieBreak::Deterministic;
        for v in &values {
            let det_bins = bin_cell(v, 51, &mut det);
            for bins in [bin_cell(v, 51, &mut legacy), det_bins.clone()] {
                for (x, b) in v.iter().zip(&bins) {
                    prop_assert_eq!(*x == 0.0, *b == 0, "zeros and only zeros get bin 0");
                    prop_assert!(*b <= 50);
                }
            }
            if v.iter().any(|&x| x != 0.0) {
                // Deterministic ties take the highest bin, so the maximum always gets 50 (with
                // random tie-breaks a repeated maximum sits on a run of equal edges).
                let max = v.iter().cloned().fold(0f32, f32::max);
                let at = v.iter().position(|&x| x == max).unwrap();
                prop_assert_eq!(det_bins[at], 50, "the maximum gets the top bin");
            }
        }
    }

    #[test]
    fn scbert_and_xtrimogene_invariants(rows in cells()) {
        let names: Vec<String> = (0..N_GENES).map(|g| format!("S{g}")).collect();
        let table = scfm_core::GeneTable::new(names.clone()).unwrap();
        let mut scbert = ScBertTokenizer::new(names.iter().rev().cloned().collect());
        scbert.min_genes = 3;
        let splan = scbert.plan(&table);
        let xt = XTrimoGeneTokenizer::new(names.clone(), DepthTarget::Fixed(4.0));
        let xplan = xt.plan(&table);
        for cell in chunk(&rows).cells() {
            match scbert.tokenize(&splan, cell) {
                None => prop_assert!(cell.nnz() < 3),
                Some(t) => {
                    prop_assert_eq!(t.len(), N_GENES + 1);
                    prop_assert_eq!(*t.last().unwrap(), 0);
                    prop_assert!(t.iter().all(|&x| x <= 5));
                    prop_assert_eq!(t.iter().filter(|&&x| x > 0).count() <= cell.nnz(), true);
                }
            }
            let enc = xt.encode_counts(&xplan, cell);
            prop_assert!(enc.positions.windows(2).all(|w| w[0] < w[1]), "ascending positions");
            prop_assert!(enc.values.iter().all(|&v| v > 0.0));
            prop_assert_eq!(enc.positions.first() == Some(&(N_GENES as u32)), cell.is_empty() , "an empty cell has only T (and S when total > 1)");
            prop_assert_eq!(enc.positions.len(), cell.nnz() + 1 + usize::from(cell.total() > 1.0));
        }
    }
}
