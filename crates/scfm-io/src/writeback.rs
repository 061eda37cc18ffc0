//! Writing results back into h5ad files that Python anndata and scanpy open unchanged:
//! embeddings as `obsm[KEY]` (2-D float32) and predictions as categorical `obs[COLUMN]`.
//! Datasets are gzip-compressed (never Blosc, which plain anndata cannot read).
//!
//! Every function writes a complete new file through a temporary name and a rename, so a
//! crash never leaves a half-written h5ad behind.

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use hdf5::{Group, H5Type, Location};

use crate::error::{IoError, Result, io_err};
use crate::h5ad::{Ctx, str_attr};

/// One result to write.
#[derive(Debug, Clone, Copy)]
pub enum Annotation<'a> {
    /// `obsm[key]`: a row-major `n_obs × dim` matrix.
    Obsm {
        /// The obsm key, e.g. `X_scfm_geneformer`.
        key: &'a str,
        /// Row-major values, `n_obs * dim` of them.
        values: &'a [f32],
        /// Columns.
        dim: usize,
    },
    /// `obs[column]`: one label per cell, stored as a categorical.
    ObsLabels {
        /// Column name.
        column: &'a str,
        /// One label per cell.
        labels: &'a [String],
    },
}

/// Copies `src` to `dst` and adds the annotations (replacing existing ones of the same name).
///
/// # Errors
/// [`IoError::LengthMismatch`] when an annotation does not have one row per cell, and any
/// read/write error; on error `dst` is left untouched.
pub fn annotate_copy(src: &Path, dst: &Path, annotations: &[Annotation<'_>]) -> Result<()> {
    let tmp = tmp_name(dst);
    // A fresh file (not fs::copy, which would also copy a read-only mode and leave a copy that
    // cannot be annotated or overwritten later).
    let copied = std::fs::File::open(src).map_err(io_err(src)).and_then(|mut from| {
        let mut to = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        std::io::copy(&mut from, &mut to).map_err(io_err(&tmp))
    });
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let r = annotate_in_place(&tmp, annotations);
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return r;
    }
    std::fs::rename(&tmp, dst).map_err(io_err(dst))
}

fn tmp_name(dst: &Path) -> PathBuf {
    let mut name = dst.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    dst.with_file_name(name)
}

fn annotate_in_place(path: &Path, annotations: &[Annotation<'_>]) -> Result<()> {
    let ctx = Ctx::new(path);
    crate::h5ad::open_file(path)?;
    let file = ctx.h5("/", hdf5::File::open_rw(path))?;
    let obs = ctx.h5("obs", file.group("obs"))?;
    let n_obs = obs_len(&ctx, &obs)?;
    for a in annotations {
        match *a {
            Annotation::Obsm { key, values, dim } => {
                let el = format!("obsm/{key}");
                if dim == 0 || values.len() != n_obs * dim {
                    return Err(IoError::LengthMismatch {
                        path: path.to_owned(),
                        element: el,
                        what: "n_obs × dim values",
                        expected: n_obs * dim.max(1),
                        found: values.len(),
                    });
                }
                let obsm = dict_group(&ctx, file.as_group().map_err(|e| hdf5_err(&ctx, "/", e))?, "obsm")?;
                if obsm.link_exists(key) {
                    ctx.h5(&el, obsm.unlink(key))?;
                }
                let ds = ctx.h5(
                    &el,
                    obsm.new_dataset::<f32>()
                        .shape([n_obs, dim])
                        .chunk([n_obs.clamp(1, 4096), dim])
                        .deflate(4)
                        .create(key),
                )?;
                ctx.h5(&el, ds.write_raw(values))?;
                encoding_attrs(&ctx, &el, &ds, "array", "0.2.0")?;
            }
            Annotation::ObsLabels { column, labels } => {
                let el = format!("obs/{column}");
                if labels.len() != n_obs {
                    return Err(IoError::LengthMismatch {
                        path: path.to_owned(),
                        element: el,
                        what: "one label per cell",
                        expected: n_obs,
                        found: labels.len(),
                    });
                }
                write_categorical(&ctx, &obs, column, labels)?;
            }
        }
    }
    Ok(())
}

fn hdf5_err(ctx: &Ctx, el: &str, source: hdf5::Error) -> IoError {
    IoError::Hdf5 { path: ctx.path.clone(), element: el.to_owned(), source }
}

fn obs_len(ctx: &Ctx, obs: &Group) -> Result<usize> {
    let index = str_attr(obs, "_index").ok_or_else(|| ctx.missing("obs@_index", ""))?;
    let el = format!("obs/{index}");
    let ds = if obs.group(&index).is_ok() {
        ctx.h5(&el, obs.dataset(&format!("{index}/values")))?
    } else {
        ctx.h5(&el, obs.dataset(&index))?
    };
    Ok(ds.size())
}

fn vlen(s: &str) -> VarLenUnicode {
    s.parse().expect("a Rust string is always valid UTF-8 without NUL handling issues")
}

fn str_attr_write(ctx: &Ctx, el: &str, loc: &Location, name: &str, value: &str) -> Result<()> {
    if loc.attr(name).is_ok() {
        ctx.h5(el, loc.delete_attr(name))?;
    }
    let a = ctx.h5(el, loc.new_attr::<VarLenUnicode>().create(name))?;
    ctx.h5(el, a.write_scalar(&vlen(value)))
}

fn encoding_attrs(ctx: &Ctx, el: &str, loc: &Location, kind: &str, version: &str) -> Result<()> {
    str_attr_write(ctx, el, loc, "encoding-type", kind)?;
    str_attr_write(ctx, el, loc, "encoding-version", version)
}

fn dict_group(ctx: &Ctx, root: Group, name: &str) -> Result<Group> {
    if root.link_exists(name) {
        return ctx.h5(name, root.group(name));
    }
    let g = ctx.h5(name, root.create_group(name))?;
    encoding_attrs(ctx, name, &g, "dict", "0.1.0")?;
    Ok(g)
}

fn write_codes<T: H5Type + Copy>(ctx: &Ctx, el: &str, g: &Group, codes: &[T]) -> Result<()> {
    let ds = ctx.h5(
        el,
        g.new_dataset::<T>().shape([codes.len()]).chunk([codes.len().clamp(1, 65536)]).deflate(4).create("codes"),
    )?;
    ctx.h5(el, ds.write_raw(codes))?;
    encoding_attrs(ctx, el, &ds, "array", "0.2.0")
}

fn write_categorical(ctx: &Ctx, obs: &Group, column: &str, labels: &[String]) -> Result<()> {
    let el = format!("obs/{column}");
    if obs.link_exists(column) {
        ctx.h5(&el, obs.unlink(column))?;
    }
    let mut cats: Vec<&str> = labels.iter().map(String::as_str).collect();
    cats.sort_unstable();
    cats.dedup();
    let g = ctx.h5(&el, obs.create_group(column))?;
    encoding_attrs(ctx, &el, &g, "categorical", "0.2.0")?;
    let ordered = ctx.h5(&el, g.new_attr::<bool>().create("ordered"))?;
    ctx.h5(&el, ordered.write_scalar(&false))?;
    let cat_values: Vec<VarLenUnicode> = cats.iter().map(|c| vlen(c)).collect();
    let cds = ctx.h5(&el, g.new_dataset::<VarLenUnicode>().shape([cats.len()]).create("categories"))?;
    ctx.h5(&el, cds.write_raw(&cat_values))?;
    encoding_attrs(ctx, &format!("{el}/categories"), &cds, "string-array", "0.2.0")?;
    let code = |l: &String| cats.binary_search(&l.as_str()).expect("every label is a category");
    let codes_el = format!("{el}/codes");
    if cats.len() <= i8::MAX as usize {
        write_codes(ctx, &codes_el, &g, &labels.iter().map(|l| code(l) as i8).collect::<Vec<_>>())?;
    } else if cats.len() <= i16::MAX as usize {
        write_codes(ctx, &codes_el, &g, &labels.iter().map(|l| code(l) as i16).collect::<Vec<_>>())?;
    } else {
        write_codes(ctx, &codes_el, &g, &labels.iter().map(|l| code(l) as i32).collect::<Vec<_>>())?;
    }
    // Register the column in the dataframe's column order.
    let mut order = crate::h5ad::str_array_attr(ctx, "obs", obs, "column-order")?;
    if !order.iter().any(|c| c == column) {
        order.push(column.to_owned());
    }
    if obs.attr("column-order").is_ok() {
        ctx.h5("obs", obs.delete_attr("column-order"))?;
    }
    let values: Vec<VarLenUnicode> = order.iter().map(|c| vlen(c)).collect();
    let a = ctx.h5("obs", obs.new_attr::<VarLenUnicode>().shape([values.len()]).create("column-order"))?;
    ctx.h5("obs", a.write_raw(&values))
}
