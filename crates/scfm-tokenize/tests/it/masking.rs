//! The masking schemes: exact counts, untouched specials, determinism under a seed, and the
//! 80/10/10 rates over many tokens.

use proptest::prelude::*;
use scfm_tokenize::mask::{GeneformerMlm, IGNORE, ScBertMask, ScGptValueMask, XTrimoGeneMask};

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn maskers_are_deterministic_and_respect_their_rules(
        ids in proptest::collection::vec(0u32..200, 1..300),
        bins in proptest::collection::vec(0u8..7, 1..300),
        values in proptest::collection::vec(prop_oneof![Just(0.0f32), Just(-2.0f32), 0.5f32..50.0], 1..300),
        cell in any::<u64>(),
        seed in any::<u32>(),
    ) {
        let gf = GeneformerMlm::new(200, seed);
        let (masked, labels) = gf.mask(&ids, cell);
        prop_assert_eq!(gf.mask(&ids, cell), (masked.clone(), labels.clone()), "same seed and cell, same mask");
        for ((&orig, &m), &l) in ids.iter().zip(&masked).zip(&labels) {
            if l == IGNORE {
                prop_assert_eq!(orig, m, "unselected tokens are untouched");
            } else {
                prop_assert_eq!(l, i64::from(orig));
                prop_assert!(!gf.special.contains(&orig), "specials are never selected");
            }
        }

        let sb = ScBertMask::new(seed);
        let (out, lab) = sb.mask(&bins, cell);
        let candidates = bins.iter().filter(|b| !sb.excluded.contains(b)).count();
        let chosen: Vec<usize> = (0..bins.len()).filter(|&i| lab[i] != sb.mask_token).collect();
        prop_assert_eq!(chosen.len(), (0.15 * candidates as f64).ceil() as usize, "exactly ceil(15 %) of the candidates");
        for i in 0..bins.len() {
            if chosen.contains(&i) {
                prop_assert!(!sb.excluded.contains(&bins[i]));
                prop_assert!(out[i] == bins[i] || out[i] == sb.mask_token);
            } else {
                prop_assert_eq!(out[i], bins[i]);
            }
        }

        let sg = ScGptValueMask::new(0.4, seed);
        let (vals, pos) = sg.mask(&values, cell);
        let n = values.iter().filter(|&&v| v != sg.pad_value).count();
        prop_assert_eq!(pos.len(), (n as f64 * 0.4) as usize);
        prop_assert!(pos.iter().all(|&p| values[p] != sg.pad_value && vals[p] == sg.mask_value));
        let (prompt, generated) = sg.generative_split(values.len(), 0.5, cell);
        prop_assert_eq!(prompt.len() + generated.len(), values.len(), "a partition");
        prop_assert!(prompt.first() == Some(&0) && !generated.contains(&0), "<cls> stays in the prompt");

        let xt = XTrimoGeneMask::new(seed);
        let dense: Vec<f64> = values.iter().map(|&v| f64::from(v.max(0.0))).collect();
        let (xv, sel) = xt.mask(&dense, cell);
        prop_assert_eq!(xt.mask(&dense, cell), (xv.clone(), sel.clone()));
        for i in 0..dense.len() {
            if !sel.contains(&i) {
                prop_assert_eq!(xv[i], dense[i]);
            }
        }
    }
}

#[test]
fn rates_match_the_published_schemes() {
    let ids: Vec<u32> = (0..100_000).map(|i| 2 + (i % 1000)).collect();
    let gf = GeneformerMlm::new(1002, 7);
    let (masked, labels) = gf.mask(&ids, 0);
    let selected: Vec<usize> = (0..ids.len()).filter(|&i| labels[i] != IGNORE).collect();
    let frac = selected.len() as f64 / ids.len() as f64;
    assert!((0.145..0.155).contains(&frac), "selected {frac}");
    let to_mask = selected.iter().filter(|&&i| masked[i] == gf.mask_id).count() as f64 / selected.len() as f64;
    let kept = selected.iter().filter(|&&i| masked[i] == ids[i]).count() as f64 / selected.len() as f64;
    assert!((0.78..0.82).contains(&to_mask), "<mask> share {to_mask}");
    assert!((0.09..0.115).contains(&kept), "unchanged share {kept} (includes random hits of the same id)");
    assert_ne!(gf.mask(&ids, 1), (masked, labels), "another cell, another mask");

    let dense: Vec<f64> = (0..200_000).map(|i| if i % 2 == 0 { 0.0 } else { 1.5 }).collect();
    let (_, sel) = XTrimoGeneMask::new(3).mask(&dense, 0);
    let nz = sel.iter().filter(|&&i| dense[i] != 0.0).count() as f64 / 100_000.0;
    let z = sel.iter().filter(|&&i| dense[i] == 0.0).count() as f64 / 100_000.0;
    assert!((0.29..0.31).contains(&nz) && (0.025..0.035).contains(&z), "{nz} {z}");
}
