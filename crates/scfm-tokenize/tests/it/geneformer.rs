//! Token-exact parity with upstream Geneformer on every `geneformer_*` fixture under
//! `$SCFM_PARITY_DIR/tokenizers` (default `../shared/data/parity`).

use std::collections::HashMap;

use scfm_core::{CellChunk, CellSource};
use scfm_io::AnySource;
use scfm_tokenize::geneformer::{GeneformerDictionaries, GeneformerTokenizer, GeneformerVersion};
use scfm_tokenize::vocab::string_map;

use crate::data;
use crate::safetensors::Tensors;

fn slice<T: Copy>(v: &[T], offsets: &[i64], i: usize) -> Vec<T> {
    v[offsets[i] as usize..offsets[i + 1] as usize].to_vec()
}

#[test]
fn geneformer_tokenizer_parity_on_every_fixture() {
    let (dir, fixtures) = crate::tokenizer_fixtures("geneformer_");
    let mut dict_cache: HashMap<String, GeneformerDictionaries> = HashMap::new();
    let (mut cells_checked, mut cells_expected) = (0, 0);
    for json_path in &fixtures {
        let name = json_path.file_stem().unwrap().to_string_lossy().into_owned();
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(json_path).unwrap()).unwrap();
        cells_expected += meta["input"]["n_cells_kept"].as_u64().unwrap() as usize;
        let version = match meta["parameters"]["model_version"].as_str().unwrap() {
            "V1" => GeneformerVersion::V1,
            "V2" => GeneformerVersion::V2,
            v => panic!("{name}: unknown version {v}"),
        };
        // Every parameter the fixture records: upstream allows any input size, and the
        // specials and target sum are options of their own.
        let params = &meta["parameters"];
        let input_size = params["model_input_size"].as_u64().map_or(version.model_input_size(), |n| n as usize);
        let specials = params["special_token"].as_bool().unwrap_or(version.special_tokens());
        let target_sum = params["target_sum"].as_f64().unwrap_or(10_000.0);
        assert_ne!(params["collapse_gene_ids"], false, "{name}: collapse_gene_ids=False is not implemented");
        let dicts = meta["dictionaries"].as_object().unwrap();
        let file = |key: &str| data(dicts[key]["file"].as_str().unwrap());
        let dict_key = dicts["token_dictionary"]["file"].as_str().unwrap().to_owned();
        let gf_dicts = dict_cache
            .entry(dict_key)
            .or_insert_with(|| {
                GeneformerDictionaries::load(
                    &file("token_dictionary"),
                    &file("gene_median_dictionary"),
                    &file("ensembl_mapping_dict"),
                )
                .unwrap()
            })
            .clone();
        let tokenizer = GeneformerTokenizer::new(version, gf_dicts)
            .with_special_tokens(specials)
            .unwrap()
            .with_input_size(input_size)
            .with_target_sum(target_sum);

        // Input as the fixture prepared it.
        let src = AnySource::open(data(meta["input"]["file"].as_str().unwrap()), &Default::default()).unwrap();
        let mut genes = src.genes().ids().to_vec();
        if let Some((_, d)) = dicts.iter().find(|(k, _)| k.starts_with("gene_name_id_dict")) {
            // The fixture's documented V1 step: symbol → Ensembl id by exact-case lookup.
            let names = string_map(&data(d["file"].as_str().unwrap())).unwrap();
            genes = genes.iter().map(|g| names.get(g).map_or_else(|| g.clone(), str::to_owned)).collect();
        }
        let plan = tokenizer.plan(&genes);
        // Dictionaries whose Ensembl mapping holds only these genes' entries plan them the same.
        let scoped = GeneformerDictionaries::load_for_genes(
            &file("token_dictionary"),
            &file("gene_median_dictionary"),
            &file("ensembl_mapping_dict"),
            &genes,
        )
        .unwrap();
        assert!(scoped.ensembl_mapping.len() <= 2 * genes.len(), "{name}: the mapping is restricted");
        // (Not assert_eq: the plans' debug output is megabytes.)
        let restricted = GeneformerTokenizer::new(version, scoped).with_input_size(input_size).plan(&genes);
        assert!(restricted == plan, "{name}: the plan with the restricted mapping differs");

        let t = Tensors::open(&dir.join(format!("{name}.safetensors")));
        let (ids, offsets, cell_index, n_counts) =
            (t.i64("input_ids"), t.i64("offsets"), t.i64("cell_index"), t.i64("n_counts"));
        let (ranked_values, ranked_offsets) = (t.f64("ranked_values"), t.i64("ranked_offsets"));
        let (tail, tail_offsets) = (t.i64("tail_token_ids"), t.i64("tail_offsets"));
        let all: CellChunk = src.read_rows(0..src.n_cells()).unwrap();
        for (i, &row) in cell_index.iter().enumerate() {
            let cell = all.cell(row as usize);
            assert_eq!(cell.total(), n_counts[i] as f64, "{name} cell {row}: n_counts");
            let got = tokenizer.tokenize(&plan, cell, n_counts[i] as f64).expect("kept cell");
            let want: Vec<u32> = slice(&ids, &offsets, i).into_iter().map(|x| x as u32).collect();
            assert_eq!(got.input_ids, want, "{name} cell {row}: input_ids");
            // The un-truncated ranking and its f64 sort keys, bit for bit.
            let ranked = tokenizer.rank(&plan, cell, n_counts[i] as f64);
            let keys: Vec<f64> = ranked.iter().map(|r| r.1).collect();
            assert_eq!(keys, slice(&ranked_values, &ranked_offsets, i), "{name} cell {row}: sort keys");
            let body = if specials { &want[1..want.len() - 1] } else { &want[..] };
            let mut full: Vec<u32> = body.to_vec();
            full.extend(slice(&tail, &tail_offsets, i).into_iter().map(|x| x as u32));
            assert_eq!(ranked.iter().map(|r| r.0).collect::<Vec<_>>(), full, "{name} cell {row}: ranking");
            cells_checked += 1;
        }
    }
    assert_eq!(cells_checked, cells_expected, "every kept cell of every fixture was compared");
}

/// Any `model_input_size` cuts the ranking as upstream slices it (the fixtures' README): V2
/// `[<cls>] + ranking[:size-2] + [<eos>]`, without specials `ranking[:size]`; a V1 token
/// dictionary has no `<cls>` to frame with.
#[test]
fn input_size_and_specials_cut_the_ranking_as_upstream_slices_it() {
    let dir = data("vocab/geneformer");
    let dicts = GeneformerDictionaries::load(
        &dir.join("token_dictionary_gc104M.pkl"),
        &dir.join("gene_median_dictionary_gc104M.pkl"),
        &dir.join("ensembl_mapping_dict_gc104M.pkl"),
    )
    .unwrap();
    let src = AnySource::open(data("h5ad/pbmc_sorted_train_490.h5ad"), &Default::default()).unwrap();
    let chunk = src.read_rows(0..20).unwrap();
    let base = GeneformerTokenizer::new(GeneformerVersion::V2, dicts);
    let (cls, eos) = (2, 3);
    let plan = base.plan(src.genes().ids());
    for size in [1, 2, 3, 17, 512, 100_000] {
        for specials in [true, false] {
            let tok = base.clone().with_special_tokens(specials).unwrap().with_input_size(size);
            assert_eq!((tok.input_size(), tok.special_tokens()), (size, specials));
            for cell in chunk.cells() {
                let n = cell.total();
                let ranking: Vec<u32> = tok.rank(&plan, cell, n).into_iter().map(|r| r.0).collect();
                let want: Vec<u32> = if specials && size < 2 {
                    // A context shorter than the frame keeps its start, as truncation did.
                    vec![cls]
                } else if specials {
                    [cls].into_iter().chain(ranking.iter().copied().take(size - 2)).chain([eos]).collect()
                } else {
                    ranking.iter().copied().take(size).collect()
                };
                assert_eq!(tok.tokenize(&plan, cell, n).unwrap().input_ids, want, "size {size}, specials {specials}");
            }
        }
    }
    // A target sum scales every key alike: the order stays, the keys scale.
    let doubled = base.clone().with_target_sum(20_000.0);
    let cell = chunk.cell(0);
    let (a, b) = (base.rank(&plan, cell, cell.total()), doubled.rank(&plan, cell, cell.total()));
    assert_eq!(a.iter().map(|r| r.0).collect::<Vec<_>>(), b.iter().map(|r| r.0).collect::<Vec<_>>());
    assert!(a.iter().zip(&b).all(|(x, y)| (y.1 / x.1 - 2.0).abs() < 1e-12));
    let v1 = data("vocab/geneformer/v1_gc30M");
    let v1 = GeneformerDictionaries::load(
        &v1.join("token_dictionary_gc30M.pkl"),
        &v1.join("gene_median_dictionary_gc30M.pkl"),
        &v1.join("ensembl_mapping_dict_gc30M.pkl"),
    )
    .unwrap();
    let err = GeneformerTokenizer::new(GeneformerVersion::V1, v1).with_special_tokens(true).unwrap_err();
    assert!(err.to_string().contains("<cls>"), "{err}");
}
