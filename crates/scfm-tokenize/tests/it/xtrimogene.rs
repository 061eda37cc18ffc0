//! xTrimoGene / scFoundation input against upstream `get_embedding.py` on every
//! `scfoundation_*` fixture under `$SCFM_PARITY_DIR/tokenizers`.

use std::path::Path;

use scfm_core::{CellChunk, CellSource, GeneTable};
use scfm_io::AnySource;
use scfm_tokenize::vocab::scfoundation_genes;
use scfm_tokenize::xtrimogene::{DepthTarget, XTrimoGeneTokenizer};

use crate::data;
use crate::safetensors::Tensors;

/// The demo CSV: an index column, then one column per gene.
fn read_csv(path: &Path) -> (GeneTable, CellChunk) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let genes: Vec<String> = lines.next().unwrap().split(',').skip(1).map(str::to_owned).collect();
    let (mut ids, mut indptr, mut idx, mut val) = (vec![], vec![0], vec![], vec![]);
    for line in lines {
        let mut f = line.split(',');
        ids.push(f.next().unwrap().to_owned());
        for (g, v) in f.enumerate() {
            let v: f32 = v.parse().unwrap();
            if v != 0.0 {
                idx.push(g as u32);
                val.push(v);
            }
        }
        indptr.push(idx.len());
    }
    let n = genes.len();
    (GeneTable::new(genes).unwrap(), CellChunk::from_csr(ids, indptr, idx, val, n).unwrap())
}

/// A C-order little-endian float32 2-D `.npy`.
fn read_npy_f32(path: &Path) -> (usize, usize, Vec<f32>) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..6], b"\x93NUMPY");
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
    assert!(header.contains("'<f4'") && header.contains("'fortran_order': False"), "{header}");
    let shape = &header[header.find("'shape': (").unwrap() + 10..];
    let dims: Vec<usize> = shape[..shape.find(')').unwrap()].split(',').filter_map(|s| s.trim().parse().ok()).collect();
    let data = b[10 + hlen..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    (dims[0], dims[1], data)
}

#[test]
fn xtrimogene_tokenizer_parity_on_every_fixture() {
    let (dir, fixtures) = crate::tokenizer_fixtures("scfoundation_");
    let genes = scfoundation_genes(&data("vocab/scfoundation/OS_scRNA_gene_index.19264.tsv")).unwrap();
    let (mut checked, mut expected) = (0, 0);
    for json in fixtures {
        let name = json.file_stem().unwrap().to_string_lossy().into_owned();
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let params = &meta["parameters"];
        if let Some(n) = params["seq_len"].as_u64() {
            assert_eq!(n as usize, genes.len() + 2, "{name}: the fixture's sequence (genes, T, S)");
        }
        let variants: Vec<DepthTarget> = params["variants_tgthighres"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().parse().unwrap())
            .collect();
        let t = Tensors::open(&dir.join(format!("{name}.safetensors")));
        let (cells, offsets, positions) = (t.i64("cell_index"), t.i64("offsets"), t.i64("gathered_positions"));
        let input = data(meta["input"]["file"].as_str().unwrap());
        let n = cells.len();
        expected += n * variants.len();
        for (vi, &variant) in variants.iter().enumerate() {
            let tok = XTrimoGeneTokenizer::new(genes.clone(), variant);
            let t_pos = i64::from(tok.t_position());
            let with_t = |i: usize, want: &mut Vec<i64>| {
                let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
                want.extend_from_slice(&positions[a..b]);
                (a, b)
            };
            if params["pre_normalized"] == "A" {
                let (rows, cols, x) = read_npy_f32(&input);
                assert_eq!(cols, genes.len() + 1);
                let (values, s, tv) = (t.f32("gathered_values"), t.f32("S"), t.f32("T_by_variant"));
                for (i, &row) in cells.iter().enumerate() {
                    assert!((row as usize) < rows);
                    let r = &x[row as usize * cols..(row as usize + 1) * cols];
                    let given: Vec<(u32, f32)> =
                        r[..cols - 1].iter().enumerate().map(|(p, &v)| (p as u32, v)).collect();
                    let got = tok.encode_normalized_f32(&given, r[cols - 1]);
                    let mut want = vec![];
                    let (a, b) = with_t(i, &mut want);
                    assert_eq!(
                        got.positions.iter().map(|&p| i64::from(p)).collect::<Vec<_>>(),
                        want,
                        "{name} cell {row}"
                    );
                    let mut want_vals = values[a..b].to_vec();
                    let k = positions[a..b].iter().position(|&p| p == t_pos).unwrap();
                    want_vals[k] = tv[vi * n + i];
                    assert_eq!(got.values, want_vals, "{name} cell {row}: values ({variant:?})");
                    assert_eq!(*got.values.last().unwrap(), s[i], "{name} cell {row}: S");
                    checked += 1;
                }
            } else {
                let (table, chunk) = if input.extension().is_some_and(|e| e == "csv") {
                    read_csv(&input)
                } else {
                    let src = AnySource::open(&input, &Default::default()).unwrap();
                    (src.genes().clone(), src.read_rows(0..src.n_cells()).unwrap())
                };
                let plan = tok.plan(&table);
                let (values, s, tv) = (t.f64("gathered_values"), t.f64("S"), t.f64("T_by_variant"));
                for (i, &row) in cells.iter().enumerate() {
                    let got = tok.encode_counts(&plan, chunk.cell(row as usize));
                    let mut want = vec![];
                    let (a, b) = with_t(i, &mut want);
                    assert_eq!(
                        got.positions.iter().map(|&p| i64::from(p)).collect::<Vec<_>>(),
                        want,
                        "{name} cell {row}"
                    );
                    let mut want_vals = values[a..b].to_vec();
                    let k = positions[a..b].iter().position(|&p| p == t_pos).unwrap();
                    want_vals[k] = tv[vi * n + i];
                    assert_eq!(got.values, want_vals, "{name} cell {row}: values ({variant:?})");
                    assert_eq!(*got.values.last().unwrap(), s[i], "{name} cell {row}: S");
                    if let (0, Some(dense)) = (vi, t.try_f32("input_f32")) {
                        // The dense float32 model input (first variant), rounded once.
                        let seq = tok.seq_len();
                        let mut x = vec![0f32; seq];
                        for (&p, &v) in got.positions.iter().zip(&got.values) {
                            x[p as usize] = v as f32;
                        }
                        assert_eq!(x, dense[i * seq..(i + 1) * seq], "{name} cell {row}: float32 input");
                    }
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, expected, "every cell of every variant was compared");
}
