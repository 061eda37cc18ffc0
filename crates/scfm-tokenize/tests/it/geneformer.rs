//! Token-exact parity with upstream Geneformer on every `geneformer_*` fixture under
//! `$SCFM_PARITY_DIR/tokenizers` (default `../shared/data/parity`).

use std::collections::HashMap;

use scfm_core::{CellChunk, CellSource};
use scfm_io::H5adSource;
use scfm_tokenize::geneformer::{GeneformerDictionaries, GeneformerTokenizer, GeneformerVersion};
use scfm_tokenize::vocab::string_map;

use crate::data;
use crate::safetensors::Tensors;

fn slice<T: Copy>(v: &[T], offsets: &[i64], i: usize) -> Vec<T> {
    v[offsets[i] as usize..offsets[i + 1] as usize].to_vec()
}

#[test]
fn geneformer_matches_upstream_on_every_fixture() {
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
        assert_eq!(meta["parameters"]["model_input_size"].as_u64().unwrap() as usize, version.model_input_size());
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
        let tokenizer = GeneformerTokenizer::new(version, gf_dicts);

        // Input as the fixture prepared it.
        let src = H5adSource::open(data(meta["input"]["file"].as_str().unwrap())).unwrap();
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
        let restricted = GeneformerTokenizer::new(version, scoped).plan(&genes);
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
            let body = if version == GeneformerVersion::V2 { &want[1..want.len() - 1] } else { &want[..] };
            let mut full: Vec<u32> = body.to_vec();
            full.extend(slice(&tail, &tail_offsets, i).into_iter().map(|x| x as u32));
            assert_eq!(ranked.iter().map(|r| r.0).collect::<Vec<_>>(), full, "{name} cell {row}: ranking");
            cells_checked += 1;
        }
    }
    assert_eq!(cells_checked, cells_expected, "every kept cell of every fixture was compared");
}
