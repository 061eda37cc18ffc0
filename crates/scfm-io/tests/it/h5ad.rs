use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use scfm_core::CellSource;
use scfm_io::{H5adOptions, H5adSource, IoError, MatrixSelector};

use crate::{check_facts, data, data_dir, expectations, facts};

fn as_strings(a: &ArrayRef) -> Vec<Option<String>> {
    match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().iter().map(|v| v.map(str::to_owned)).collect(),
        other => panic!("not a string column: {other}"),
    }
}

fn as_f64(a: &ArrayRef) -> Vec<Option<f64>> {
    let a = arrow_cast_f64(a);
    (0..a.len()).map(|i| if a.is_null(i) { None } else { Some(a.value(i)) }).collect()
}

/// Numeric Arrow columns as f64 (test helper; the library never needs this).
fn arrow_cast_f64(a: &ArrayRef) -> arrow_array::Float64Array {
    use arrow_array::types::*;
    macro_rules! conv {
        ($t:ty) => {
            a.as_primitive::<$t>().iter().map(|v| v.map(|x| x as f64)).collect()
        };
    }
    match a.data_type() {
        DataType::Int8 => conv!(Int8Type),
        DataType::Int16 => conv!(Int16Type),
        DataType::Int32 => conv!(Int32Type),
        DataType::Int64 => conv!(Int64Type),
        DataType::UInt8 => conv!(UInt8Type),
        DataType::UInt16 => conv!(UInt16Type),
        DataType::UInt32 => conv!(UInt32Type),
        DataType::UInt64 => conv!(UInt64Type),
        DataType::Float32 => conv!(Float32Type),
        DataType::Float64 => conv!(Float64Type),
        other => panic!("not numeric: {other}"),
    }
}

/// Every h5ad file in the shared data, every matrix, every obs column, against anndata.
#[test]
fn every_h5ad_file_matches_anndata() {
    let exp = expectations();
    let files = exp["files"].as_object().unwrap();
    assert!(files.len() >= 40, "expectations cover {} files", files.len());
    let mut checked = 0;
    for (rel, e) in files {
        let path = data(rel);
        if rel.ends_with("pbmc68k_reduced_legacy.h5ad") {
            // Pre-0.7 layout: rejected with a clear error naming the element.
            let err = H5adSource::open(&path).unwrap_err();
            assert!(matches!(err, IoError::UnsupportedEncoding { ref element, .. } if element == "obs"), "{err}");
            assert!(err.to_string().contains("anndata < 0.7"), "{err}");
            continue;
        }
        for (matrix, m) in e["matrices"].as_object().unwrap() {
            let sel: MatrixSelector = matrix.parse().unwrap();
            let src = H5adSource::open_with(&path, &H5adOptions { matrix: sel, ..Default::default() })
                .unwrap_or_else(|err| panic!("{rel} {matrix}: {err}"));
            // An odd chunk size exercises chunk boundaries everywhere.
            check_facts(&format!("{rel} {matrix}"), &facts(&src, 97), m);
            let names_key = if matrix == "raw" { "raw_var_names_head" } else { "var_names_head" };
            let heads: Vec<&str> = e[names_key].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            assert_eq!(&src.genes().ids()[..heads.len()], heads.as_slice(), "{rel} {matrix}: var names");
            checked += 1;
        }
        let src = H5adSource::open(&path).unwrap();
        let chunk = src.read_rows(0..5).unwrap();
        let obs_names: Vec<&str> =
            e["obs_names_head"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(chunk.cell_ids(), obs_names.as_slice(), "{rel}: obs names");
        let cols = e["obs"].as_object().unwrap();
        assert_eq!(src.obs_schema().fields().len(), cols.len(), "{rel}: obs columns");
        let all = src.read_rows(0..src.n_cells()).unwrap();
        for (name, c) in cols {
            let arr = all.obs().column_by_name(name).unwrap_or_else(|| panic!("{rel}: no column {name}"));
            // pandas counts NaN in float columns as missing; Arrow keeps NaN as a value.
            let nan = if arr.data_type().is_floating() {
                as_f64(arr).iter().filter(|v| v.is_some_and(f64::is_nan)).count()
            } else {
                0
            };
            assert_eq!((arr.null_count() + nan) as u64, c["nulls"].as_u64().unwrap(), "{rel}/{name}: nulls");
            let head = arr.slice(0, 5.min(arr.len()));
            match c["kind"].as_str().unwrap() {
                "categorical" => {
                    let d = arr.as_dictionary::<Int32Type>();
                    let cats: Vec<String> =
                        c["categories"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
                    let got: Vec<String> = if let Some(s) = d.values().as_string_opt::<i32>() {
                        s.iter().map(|v| v.unwrap().to_owned()).collect()
                    } else {
                        as_f64(d.values()).into_iter().map(|v| format!("{}", v.unwrap())).collect()
                    };
                    if d.values().as_string_opt::<i32>().is_some() {
                        assert_eq!(got, cats, "{rel}/{name}: categories");
                    } else {
                        assert_eq!(got.len(), cats.len(), "{rel}/{name}: categories");
                    }
                    let codes: Vec<i64> = d.keys().iter().take(5).map(|k| k.map_or(-1, i64::from)).collect();
                    let want: Vec<i64> =
                        c["codes_head"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
                    assert_eq!(codes, want, "{rel}/{name}: codes");
                }
                "string" => {
                    let want: Vec<Option<String>> = serde_json::from_value(c["head"].clone()).unwrap();
                    assert_eq!(as_strings(&head), want, "{rel}/{name}");
                }
                "bool" => {
                    assert_eq!(arr.data_type(), &DataType::Boolean, "{rel}/{name}");
                    let want: Vec<Option<bool>> = serde_json::from_value(c["head"].clone()).unwrap();
                    assert_eq!(head.as_boolean().iter().collect::<Vec<_>>(), want, "{rel}/{name}");
                }
                kind @ ("int" | "float") => {
                    assert!(arr.data_type().is_numeric(), "{rel}/{name}: {} for {kind}", arr.data_type());
                    assert_eq!(arr.data_type().is_floating(), kind == "float", "{rel}/{name}: {}", arr.data_type());
                    let want: Vec<Option<f64>> = serde_json::from_value(c["head"].clone()).unwrap();
                    let got = as_f64(&head);
                    for (g, w) in got.iter().zip(&want) {
                        match (g, w) {
                            (Some(g), None) if g.is_nan() => {}
                            (Some(g), Some(w)) => {
                                assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{rel}/{name}: {g} vs {w}")
                            }
                            _ => assert_eq!(g.is_some(), w.is_some(), "{rel}/{name}: nulls in head"),
                        }
                    }
                }
                other => panic!("unknown kind {other}"),
            }
        }
    }
    assert!(checked >= 45, "checked {checked} matrices");
    assert!(data_dir().join("h5ad/encodings/anndata-0.13_pandas-3").is_dir());
}

#[test]
fn obsm_matrices_match_anndata() {
    let exp = expectations();
    let mut checked = 0;
    for (rel, e) in exp["files"].as_object().unwrap() {
        let Some(obsm) = e.get("obsm_values") else { continue };
        if rel.contains("legacy") {
            continue;
        }
        let src = H5adSource::open(data(rel)).unwrap();
        for (key, v) in obsm.as_object().unwrap() {
            let shape = &e["obsm"][key];
            let m = src.read_obsm(key, 0..src.n_cells()).unwrap_or_else(|err| panic!("{rel} {key}: {err}"));
            assert_eq!(m.dim as u64, shape[1].as_u64().unwrap(), "{rel} {key}");
            assert_eq!(m.values.len() as u64, shape[0].as_u64().unwrap() * shape[1].as_u64().unwrap());
            let sum: f64 = m.values.iter().sum();
            let want = v["sum"].as_f64().unwrap();
            assert!((sum - want).abs() <= 1e-9 * want.abs().max(1.0), "{rel} {key}: sum {sum} vs {want}");
            let first: Vec<f64> = serde_json::from_value(v["first_row"].clone()).unwrap();
            assert_eq!(&m.values[..m.dim], first.as_slice(), "{rel} {key}: first row");
            let end = 3.min(src.n_cells());
            let tail = src.read_obsm(key, 1..end).unwrap();
            assert_eq!(tail.values, m.values[m.dim..end * m.dim], "{rel} {key}: row range");
            checked += 1;
        }
    }
    assert!(checked >= 8, "checked {checked} obsm matrices");
    let src = H5adSource::open(data("h5ad/pbmc_sorted_train_490.h5ad")).unwrap();
    let err = src.read_obsm("X_pca", 0..10).unwrap_err().to_string();
    assert!(err.contains("obsm/X_pca") && err.contains("missing"), "{err}");
}

#[test]
fn counts_selector_picks_raw_for_cellxgene_layout() {
    let path = data("h5ad/cxg_heart_320_ensembl.h5ad");
    let src =
        H5adSource::open_with(&path, &H5adOptions { matrix: MatrixSelector::Counts, ..Default::default() }).unwrap();
    assert_eq!(src.matrix_element(), "raw/X");
    let src = H5adSource::open_with(
        data("h5ad/pbmc_sorted_train_490.h5ad"),
        &H5adOptions { matrix: MatrixSelector::Counts, ..Default::default() },
    )
    .unwrap();
    assert_eq!(src.matrix_element(), "X");
}

#[test]
fn cellxgene_files_carry_feature_names_as_symbols() {
    let src = H5adSource::open(data("h5ad/cxg_example_valid_2x7.h5ad")).unwrap();
    assert_eq!(src.genes().id_kind(), scfm_core::GeneIdKind::Ensembl);
    // Submission-format fixtures: CELLxGENE adds `feature_name` only on publication.
    assert!(src.genes().symbols().is_none());
    let s = scfm_io::inspect::inspect(data("h5ad/cxg_example_valid_2x7.h5ad")).unwrap();
    let cxg = s.cellxgene.expect("CELLxGENE schema recognised");
    assert!(cxg.ontology_columns.iter().any(|c| c == "cell_type_ontology_term_id"));
    assert!(!cxg.has_feature_name);
    assert_eq!(s.counts_matrix.as_deref(), Some("raw"));
    let raw = s.matrices.iter().find(|m| m.name == "raw").unwrap();
    assert!(raw.counts.looks_like_counts());
}

#[test]
fn inspect_reports_count_likeness_and_gene_ids() {
    let s = scfm_io::inspect::inspect(data("h5ad/pbmc68k_reduced_modern.h5ad")).unwrap();
    let x = s.matrices.iter().find(|m| m.name == "X").unwrap();
    assert!(!x.counts.looks_like_counts(), "X holds z-scores");
    assert_eq!(s.gene_id_kind, scfm_core::GeneIdKind::Symbol);
    let s = scfm_io::inspect::inspect(data("h5ad/cellbench_celseq2_5cl.h5ad")).unwrap();
    assert_eq!(s.gene_id_kind, scfm_core::GeneIdKind::Ensembl);
    assert!(s.matrices[0].counts.looks_like_counts());
}

#[test]
fn chunking_does_not_change_the_cells() {
    let src = H5adSource::open(data("h5ad/pbmc_sorted_train_490.h5ad")).unwrap();
    let whole = src.read_rows(0..src.n_cells()).unwrap();
    for size in [1, 7, 128, 10_000] {
        let parts: Vec<_> = src.chunks(size).map(Result::unwrap).collect();
        assert_eq!(scfm_core::CellChunk::concat(&parts).unwrap(), whole, "chunk size {size}");
    }
}
