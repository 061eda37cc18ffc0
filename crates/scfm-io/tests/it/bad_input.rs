//! Each kind of bad input gives a typed error that names the file and the element.

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use scfm_core::CellSource;
use scfm_io::{H5adOptions, H5adSource, IoError, MatrixSelector};

use crate::data;

const BASE: &str = "h5ad/encodings/anndata-0.13_pandas-3/base.h5ad";

/// A writable copy of a real file, corrupted by `f`.
fn corrupted(dir: &Path, name: &str, f: impl FnOnce(&hdf5::File)) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy(data(BASE), &p).unwrap();
    let mut perm = std::fs::metadata(&p).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(&p, perm).unwrap();
    let file = hdf5::File::open_rw(&p).unwrap();
    f(&file);
    drop(file);
    p
}

fn read_all(p: &Path, require_counts: bool) -> Result<(), IoError> {
    let s = H5adSource::open_with(p, &H5adOptions { require_counts, ..Default::default() })?;
    for c in s.chunks(64) {
        c?;
    }
    Ok(())
}

fn set_str_attr(loc: &hdf5::Location, name: &str, value: &str) {
    loc.delete_attr(name).unwrap();
    loc.new_attr::<VarLenUnicode>()
        .create(name)
        .unwrap()
        .write_scalar(&value.parse::<VarLenUnicode>().unwrap())
        .unwrap();
}

fn overwrite_f32(file: &hdf5::File, path: &str, at: usize, v: f32) {
    let ds = file.dataset(path).unwrap();
    let mut d: Vec<f32> = ds.read_raw().unwrap();
    d[at] = v;
    ds.write_raw(&d).unwrap();
}

#[test]
fn missing_and_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.h5ad");
    assert!(matches!(H5adSource::open(&missing), Err(IoError::NotFound { path }) if path == missing));
    let text = dir.path().join("notes.h5ad");
    std::fs::write(&text, "cell,gene,count\n").unwrap();
    assert!(matches!(H5adSource::open(&text), Err(IoError::NotHdf5 { .. })));
    // Truncated copies of a real file: any prefix is an error, never a panic.
    let real = std::fs::read(data("h5ad/pbmc_sorted_train_490.h5ad")).unwrap();
    for frac in [0.01, 0.3, 0.7, 0.95] {
        let t = dir.path().join(format!("trunc{frac}.h5ad"));
        std::fs::write(&t, &real[..(real.len() as f64 * frac) as usize]).unwrap();
        let r = read_all(&t, false);
        assert!(r.is_err(), "truncated at {frac} read fine");
        assert!(r.unwrap_err().to_string().contains("trunc"), "the error names the file");
    }
}

/// A corruption applied to a copy of a real file.
type Damage = Box<dyn FnOnce(&hdf5::File)>;

#[test]
fn structural_damage_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: Vec<(&str, Damage, &str)> = vec![
        ("no_x", Box::new(|f| f.unlink("X").unwrap()), "\"X\" is missing"),
        (
            "bad_encoding",
            Box::new(|f| set_str_attr(&f.group("X").unwrap(), "encoding-type", "coo_matrix")),
            "unsupported encoding \"coo_matrix\"",
        ),
        (
            "string_data",
            Box::new(|f| {
                let g = f.group("X").unwrap();
                let n = g.dataset("data").unwrap().size();
                g.unlink("data").unwrap();
                let v: Vec<VarLenUnicode> = (0..n).map(|_| "1".parse().unwrap()).collect();
                g.new_dataset::<VarLenUnicode>().shape([n]).create("data").unwrap().write_raw(&v).unwrap();
            }),
            "X/data",
        ),
        (
            "indptr_range",
            Box::new(|f| {
                let ds = f.dataset("X/indptr").unwrap();
                let mut p: Vec<i32> = ds.read_raw().unwrap();
                p[250] = 1_000_000;
                ds.write_raw(&p).unwrap();
            }),
            "X/indptr",
        ),
        (
            "indices_range",
            Box::new(|f| {
                let ds = f.dataset("X/indices").unwrap();
                let mut p: Vec<i32> = ds.read_raw().unwrap();
                p[17] = 5000;
                ds.write_raw(&p).unwrap();
            }),
            "X/indices",
        ),
        ("nan", Box::new(|f| overwrite_f32(f, "X/data", 3, f32::NAN)), "NaN value"),
        ("inf", Box::new(|f| overwrite_f32(f, "X/data", 3, f32::INFINITY)), "infinite value"),
        (
            "duplicate_genes",
            Box::new(|f| {
                let ds = f.dataset("var/_index").or_else(|_| f.dataset("var/_index/values")).unwrap();
                let mut v: Vec<VarLenUnicode> = ds.read_raw().unwrap();
                v[7] = v[3].clone();
                ds.write_raw(&v).unwrap();
            }),
            "duplicate gene identifier",
        ),
        (
            "zero_genes",
            Box::new(|f| {
                let g = f.group("X").unwrap();
                g.delete_attr("shape").unwrap();
                g.new_attr::<i64>().shape([2]).create("shape").unwrap().write_raw(&[500i64, 0]).unwrap();
            }),
            "is empty (500 cells × 0 genes)",
        ),
        (
            "obs_length",
            Box::new(|f| {
                let obs = f.group("obs").unwrap();
                obs.unlink("total").unwrap();
                obs.new_dataset::<f64>().shape([10]).create("total").unwrap().write_raw(&[1.0; 10]).unwrap();
            }),
            "obs/total",
        ),
    ];
    for (name, damage, expected) in cases {
        let p = corrupted(d, &format!("{name}.h5ad"), damage);
        let err = read_all(&p, false).expect_err(name).to_string();
        assert!(err.contains(expected), "{name}: {err}");
        assert!(err.contains(&format!("{name}.h5ad")), "{name}: the error names the file: {err}");
    }
    // Negative values are only an error where counts are required.
    let p = corrupted(d, "negative.h5ad", |f| overwrite_f32(f, "X/data", 3, -2.0));
    read_all(&p, false).unwrap();
    let err = read_all(&p, true).unwrap_err();
    assert!(matches!(err, IoError::BadValue { what: "negative", .. }), "{err}");
    // A NaN names its cell and gene, found from the file's own CSR arrays (chunks of 64 cells).
    let file = hdf5::File::open(data(BASE)).unwrap();
    let indptr: Vec<i64> = file.dataset("X/indptr").unwrap().read_raw().unwrap();
    let indices: Vec<i64> = file.dataset("X/indices").unwrap().read_raw().unwrap();
    drop(file);
    for at in [3, indices.len() / 2, indices.len() - 1] {
        let p = corrupted(d, &format!("nan_{at}.h5ad"), |f| overwrite_f32(f, "X/data", at, f32::NAN));
        let cell = indptr.iter().rposition(|&p| p as usize <= at).unwrap();
        match read_all(&p, false).unwrap_err() {
            IoError::BadValue { what: "NaN", cell: c, gene, .. } => {
                assert_eq!((c, gene), (cell, indices[at] as usize), "entry {at}")
            }
            other => panic!("entry {at}: {other}"),
        }
    }
}

#[test]
fn zarr_stores_are_named_as_such() {
    let err = scfm_io::AnySource::open(data("h5ad/scanpy_mouse_10k_subset.zarr"), &Default::default()).unwrap_err();
    assert!(matches!(err, IoError::UnsupportedEncoding { .. }), "{err}");
    assert!(err.to_string().contains("zarr store") && err.to_string().contains("write_h5ad"), "{err}");
}

#[test]
fn missing_layer_lists_what_exists() {
    let err = H5adSource::open_with(
        data(BASE),
        &H5adOptions { matrix: MatrixSelector::Layer("spliced".into()), ..Default::default() },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("layers/spliced") && err.contains("matrices present: X"), "{err}");
    let err = H5adSource::open_with(
        data(BASE),
        &H5adOptions { obs: scfm_io::ObsSelection::Columns(vec!["tissue".into()]), ..Default::default() },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no obs column \"tissue\"") && err.contains("cell_type"), "{err}");
    let s = H5adSource::open(data(BASE)).unwrap();
    assert_eq!(s.read_rows(495..10_000).unwrap().n_cells(), 5, "reads past the end are clamped");
}
