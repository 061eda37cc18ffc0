use scfm_core::CellSource;
use scfm_io::{AnySource, MtxSource, SourceOptions, TenxH5Source};

use crate::{check_facts, data, expectations, facts};

#[test]
fn cell_ranger_files_match_scipy() {
    let exp = expectations();
    for (rel, e) in exp["tenx"].as_object().unwrap() {
        let path = data(rel);
        let src = AnySource::open(&path, &SourceOptions::default()).unwrap();
        let want = if path.is_dir() { "10x-mtx" } else { "10x-h5" };
        assert_eq!(src.format(), want, "{rel}");
        check_facts(rel, &facts(&src, 100), e);
        let bc: Vec<&str> = e["barcodes_head"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(&src.read_rows(0..bc.len()).unwrap().cell_ids(), &bc.as_slice(), "{rel}");
        let ids: Vec<&str> = e["gene_ids_head"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(&src.genes().ids()[..ids.len()], ids.as_slice(), "{rel}");
        assert!(src.genes().symbols().is_some(), "{rel}: gene names");
    }
}

#[test]
fn h5_and_mtx_of_the_same_run_agree() {
    let h5 = TenxH5Source::open(data("10x/v3/filtered_feature_bc_matrix.h5")).unwrap();
    let mtx = MtxSource::open(data("10x/v3/filtered_feature_bc_matrix")).unwrap();
    assert_eq!(h5.genes(), mtx.genes());
    assert_eq!(h5.read_rows(0..h5.n_cells()).unwrap(), mtx.read_rows(0..mtx.n_cells()).unwrap());
}
