//! scBERT preprocessing and tokens against upstream `preprocess.py` + `predict.py` on every
//! `scbert_*` fixture under `$SCFM_PARITY_DIR/tokenizers`.

use scfm_core::CellSource;
use scfm_io::AnySource;
use scfm_tokenize::scbert::ScBertTokenizer;
use scfm_tokenize::vocab::gene_list;

use crate::data;
use crate::safetensors::Tensors;

#[test]
fn scbert_tokenizer_parity_on_every_fixture() {
    let (dir, fixtures) = crate::tokenizer_fixtures("scbert_");
    let genes = gene_list(&data("vocab/scbert/vocab_gene2vec_16906.pkl")).unwrap();
    for json in fixtures {
        let name = json.file_stem().unwrap().to_string_lossy().into_owned();
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        // Every parameter the fixture records, upstream's defaults where it records none.
        let params = &meta["parameters"];
        let mut tokenizer = ScBertTokenizer::new(genes.clone());
        if let Some(n) = params["min_genes"].as_u64() {
            tokenizer.min_genes = n as usize;
        }
        if let Some(n) = params["bin_num"].as_u64() {
            tokenizer.bin_num = u8::try_from(n).unwrap();
        }
        if let Some(t) = params["target_sum"].as_f64() {
            tokenizer.target_sum = t as f32;
        }
        assert_eq!(params["log_base"].as_f64().unwrap_or(2.0), 2.0, "{name}: scBERT takes log2");
        if let Some(n) = params["gene_num"].as_u64() {
            assert_eq!(n as usize, genes.len(), "{name}: the fixture's gene panel");
        }
        if let Some(n) = params["seq_len"].as_u64() {
            assert_eq!(n as usize, tokenizer.seq_len(), "{name}: sequence length");
        }
        let t = Tensors::open(&dir.join(format!("{name}.safetensors")));
        let tokens = t.u8("tokens");
        let (kept, given, n_genes) = (t.i64("cell_index"), t.i64("input_cell_index"), t.i64("n_genes"));
        let (log2, log2_idx, log2_ptr) = (t.f32("log2_data"), t.i32("log2_indices"), t.i64("log2_indptr"));
        let src = AnySource::open(data(meta["input"]["file"].as_str().unwrap()), &Default::default()).unwrap();
        let plan = tokenizer.plan(src.genes());
        let all = src.read_rows(0..src.n_cells()).unwrap();
        let seq = tokenizer.seq_len();
        let mut k = 0;
        for &row in &given {
            let cell = all.cell(row as usize);
            let got = tokenizer.tokenize(&plan, cell);
            if kept.get(k) != Some(&row) {
                assert!(got.is_none(), "{name}: cell {row} should be filtered out");
                continue;
            }
            let pre = tokenizer.preprocess(&plan, cell).unwrap();
            assert_eq!(pre.values.len() as i64, n_genes[k], "{name} cell {row}: n_genes");
            let (a, b) = (log2_ptr[k] as usize, log2_ptr[k + 1] as usize);
            let want: Vec<(u32, f32)> = log2_idx[a..b].iter().zip(&log2[a..b]).map(|(&i, &v)| (i as u32, v)).collect();
            assert_eq!(pre.values, want, "{name} cell {row}: log2 values (bit-exact)");
            assert_eq!(got.unwrap(), tokens[k * seq..(k + 1) * seq], "{name} cell {row}: tokens");
            k += 1;
        }
        assert_eq!(k, kept.len(), "{name}: every kept cell compared");
    }
}
