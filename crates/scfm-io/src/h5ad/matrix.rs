//! Expression matrices stored in HDF5 (anndata CSR / CSC / dense, 10x CSC-by-cell), read as
//! canonical CSR row blocks: indices strictly increasing per cell, explicit zeros dropped,
//! duplicate entries summed, every value checked.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use hdf5::Dataset;
use serde::{Deserialize, Serialize};

use super::elem::{self, Ctx, NumKind, NumVec};
use crate::error::{IoError, Result};

/// How a matrix is laid out on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatrixLayout {
    /// Compressed sparse rows (cells): read chunk by chunk.
    Csr,
    /// Compressed sparse columns (genes): transposed once into memory-resident CSR.
    Csc,
    /// A dense 2-D array: read row block by row block.
    Dense,
}

/// CSR rows read from a matrix: `(indptr, indices, values)`, indptr starting at 0.
pub(crate) type CsrParts = (Vec<usize>, Vec<u32>, Vec<f32>);

#[derive(Debug)]
struct Sparse {
    data: Dataset,
    indices: Dataset,
    indptr: Dataset,
    nnz: usize,
}

#[derive(Debug)]
struct InMemory {
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

#[derive(Debug)]
enum Storage {
    Csr(Sparse),
    Csc(Sparse, Mutex<Option<Arc<InMemory>>>),
    Dense(Dataset),
}

/// An opened matrix with `n_rows` cells and `n_cols` genes.
#[derive(Debug)]
pub(crate) struct Matrix {
    pub element: String,
    pub n_rows: usize,
    pub n_cols: usize,
    pub dtype: NumKind,
    storage: Storage,
    /// Reject negative values (NaN and infinities are always rejected).
    pub require_non_negative: bool,
}

impl Matrix {
    /// Opens a sparse matrix from its three datasets. `by_row` is true for CSR (and for 10x
    /// matrices, whose compressed axis is the barcode).
    pub fn sparse(
        ctx: &Ctx,
        element: &str,
        (data, indices, indptr): (Dataset, Dataset, Dataset),
        shape: (usize, usize),
        by_row: bool,
    ) -> Result<Self> {
        let dtype = elem::num_kind(ctx, &format!("{element}/data"), &data, "a numeric matrix")?;
        if dtype == NumKind::Bool {
            return Err(ctx.wrong_type(&format!("{element}/data"), "a numeric matrix", "bool"));
        }
        let nnz = elem::len_1d(ctx, &format!("{element}/data"), &data)?;
        let n_idx = elem::len_1d(ctx, &format!("{element}/indices"), &indices)?;
        if n_idx != nnz {
            return Err(ctx.invalid(element, format!("{n_idx} indices for {nnz} stored values")));
        }
        let n_ptr = elem::len_1d(ctx, &format!("{element}/indptr"), &indptr)?;
        let major = if by_row { shape.0 } else { shape.1 };
        if n_ptr != major + 1 {
            return Err(ctx.invalid(
                element,
                format!("indptr has {n_ptr} entries for {major} {}", if by_row { "rows" } else { "columns" }),
            ));
        }
        let sparse = Sparse { data, indices, indptr, nnz };
        let storage = if by_row { Storage::Csr(sparse) } else { Storage::Csc(sparse, Mutex::new(None)) };
        Ok(Self {
            element: element.to_owned(),
            n_rows: shape.0,
            n_cols: shape.1,
            dtype,
            storage,
            require_non_negative: false,
        })
    }

    /// Opens a dense 2-D matrix.
    pub fn dense(ctx: &Ctx, element: &str, ds: Dataset) -> Result<Self> {
        let dtype = elem::num_kind(ctx, element, &ds, "a numeric matrix")?;
        let shape = ds.shape();
        let [n_rows, n_cols] = shape[..] else {
            return Err(ctx.wrong_type(element, "a 2-D matrix", shape));
        };
        Ok(Self {
            element: element.to_owned(),
            n_rows,
            n_cols,
            dtype,
            storage: Storage::Dense(ds),
            require_non_negative: false,
        })
    }

    pub fn layout(&self) -> MatrixLayout {
        match self.storage {
            Storage::Csr(_) => MatrixLayout::Csr,
            Storage::Csc(..) => MatrixLayout::Csc,
            Storage::Dense(_) => MatrixLayout::Dense,
        }
    }

    /// Stored entries (for sparse layouts; `None` for dense).
    pub fn stored_nnz(&self) -> Option<usize> {
        match &self.storage {
            Storage::Csr(s) | Storage::Csc(s, _) => Some(s.nnz),
            Storage::Dense(_) => None,
        }
    }

    /// Reads cells `rows` as canonical CSR.
    pub fn read_rows(&self, ctx: &Ctx, rows: Range<usize>) -> Result<CsrParts> {
        let rows = rows.start.min(self.n_rows)..rows.end.min(self.n_rows);
        match &self.storage {
            Storage::Csr(s) => self.read_csr(ctx, s, rows),
            Storage::Csc(s, cache) => {
                let csr = {
                    let mut guard = cache.lock().unwrap_or_else(|p| p.into_inner());
                    match &*guard {
                        Some(m) => m.clone(),
                        None => {
                            let m = Arc::new(self.transpose_csc(ctx, s)?);
                            *guard = Some(m.clone());
                            m
                        }
                    }
                };
                let (a, b) = (csr.indptr[rows.start], csr.indptr[rows.end]);
                let indptr = csr.indptr[rows.start..=rows.end].iter().map(|p| p - a).collect();
                Ok((indptr, csr.indices[a..b].to_vec(), csr.values[a..b].to_vec()))
            }
            Storage::Dense(ds) => self.read_dense(ctx, ds, rows),
        }
    }

    fn read_ptr(&self, ctx: &Ctx, s: &Sparse, range: Range<usize>) -> Result<Vec<usize>> {
        let el = format!("{}/indptr", self.element);
        let ptr = elem::read_num(ctx, &el, &s.indptr, range.clone())?
            .to_u64()
            .map_err(|(i, v)| ctx.invalid(&el, format!("entry {} is {v}", range.start + i)))?;
        let mut prev = 0u64;
        for (i, &p) in ptr.iter().enumerate() {
            if p < prev || p as usize > s.nnz {
                return Err(ctx.invalid(
                    &el,
                    format!("entry {} is {p} (previous {prev}, {} stored values)", range.start + i, s.nnz),
                ));
            }
            prev = p;
        }
        Ok(ptr.into_iter().map(|p| p as usize).collect())
    }

    fn read_entries(&self, ctx: &Ctx, s: &Sparse, range: Range<usize>, bound: usize) -> Result<(Vec<u32>, Vec<f32>)> {
        let idx_el = format!("{}/indices", self.element);
        let idx =
            elem::read_num(ctx, &idx_el, &s.indices, range.clone())?.into_u32_below(bound).map_err(|(i, v)| {
                ctx.invalid(&idx_el, format!("entry {} is {v}, but the axis has {bound} entries", range.start + i))
            })?;
        let data = to_f32(elem::read_num(ctx, &format!("{}/data", self.element), &s.data, range)?);
        Ok((idx, data))
    }

    fn read_csr(&self, ctx: &Ctx, s: &Sparse, rows: Range<usize>) -> Result<CsrParts> {
        let ptr = self.read_ptr(ctx, s, rows.start..rows.end + 1)?;
        let (a, b) = (ptr[0], ptr[ptr.len() - 1]);
        let (idx, vals) = self.read_entries(ctx, s, a..b, self.n_cols)?;
        // One branch-free pass over the values (it vectorizes): any refused value, any stored
        // zero (±0.0: the bits are zero but for the sign). The cell is looked up on failure.
        let non_negative = self.require_non_negative;
        let (bad, zero) = vals.iter().fold((false, false), |(bad, zero), &v| {
            (bad | is_bad(v, non_negative), zero | (v.to_bits() & 0x7fff_ffff == 0))
        });
        if bad {
            let k = vals.iter().position(|&v| is_bad(v, non_negative)).expect("found above");
            let cell = ptr.partition_point(|&p| p - a <= k) - 1;
            return Err(self.bad_value(ctx, rows.start + cell, idx[k] as usize, f64::from(vals[k])));
        }
        // The common case — every row sorted, no stored zeros — keeps the buffers as read. A row is
        // unsorted where an index does not exceed the one before.
        let canonical = !zero
            && ptr.windows(2).all(|w| {
                let (lo, hi) = (w[0] - a, w[1] - a);
                idx[lo..hi].windows(2).fold(true, |acc, p| acc & (p[0] < p[1]))
            });
        if canonical {
            return Ok((ptr.iter().map(|p| p - a).collect(), idx, vals));
        }
        let mut out = CsrBuilder::with_capacity(rows.len(), idx.len());
        for w in ptr.windows(2) {
            let (lo, hi) = (w[0] - a, w[1] - a);
            out.push_row(&idx[lo..hi], &vals[lo..hi]);
        }
        Ok(out.finish())
    }

    fn transpose_csc(&self, ctx: &Ctx, s: &Sparse) -> Result<InMemory> {
        tracing::info!(element = %self.element, nnz = s.nnz, "transposing a CSC matrix into memory");
        let ptr = self.read_ptr(ctx, s, 0..self.n_cols + 1)?;
        let (rows, vals) = self.read_entries(ctx, s, 0..s.nnz, self.n_rows)?;
        let mut counts = vec![0usize; self.n_rows + 1];
        for &r in &rows {
            counts[r as usize + 1] += 1;
        }
        for i in 0..self.n_rows {
            counts[i + 1] += counts[i];
        }
        let mut next = counts.clone();
        let mut t_idx = vec![0u32; rows.len()];
        let mut t_val = vec![0f32; rows.len()];
        for col in 0..self.n_cols {
            for k in ptr[col]..ptr[col + 1] {
                let r = rows[k] as usize;
                t_idx[next[r]] = col as u32;
                t_val[next[r]] = vals[k];
                next[r] += 1;
            }
        }
        // Columns were visited in order, so rows are sorted unless a column repeated a row.
        let mut out = CsrBuilder::with_capacity(self.n_rows, rows.len());
        for r in 0..self.n_rows {
            let (lo, hi) = (counts[r], counts[r + 1]);
            out.push_row(&t_idx[lo..hi], &t_val[lo..hi]);
            self.check_row(ctx, r, out.last_row())?;
        }
        let (indptr, indices, values) = out.finish();
        Ok(InMemory { indptr, indices, values })
    }

    fn read_dense(&self, ctx: &Ctx, ds: &Dataset, rows: Range<usize>) -> Result<CsrParts> {
        let mut out = CsrBuilder::with_capacity(rows.len(), 0);
        if rows.is_empty() {
            return Ok(out.finish());
        }
        let block = ctx.h5(&self.element, ds.read_slice_2d::<f64, _>((rows.clone(), ..)))?;
        let cols: Vec<u32> = (0..self.n_cols as u32).collect();
        for (r, row) in block.outer_iter().enumerate() {
            let vals: Vec<f32> = row.iter().map(|&v| v as f32).collect();
            // NaN and infinities are not zeros, so push_row keeps them and check_row rejects them.
            out.push_row(&cols, &vals);
            self.check_row(ctx, rows.start + r, out.last_row())?;
        }
        Ok(out.finish())
    }

    fn bad_value(&self, ctx: &Ctx, cell: usize, gene: usize, value: f64) -> IoError {
        let what = if value.is_nan() {
            "NaN"
        } else if value.is_infinite() {
            "infinite"
        } else {
            "negative"
        };
        IoError::BadValue { path: ctx.path.clone(), element: self.element.clone(), what, value, cell, gene }
    }

    fn check_row(&self, ctx: &Ctx, cell: usize, (idx, vals): (&[u32], &[f32])) -> Result<()> {
        let non_negative = self.require_non_negative;
        // A branch-free scan first (it vectorizes); the position is looked up only on failure.
        if vals.iter().fold(false, |acc, &v| acc | is_bad(v, non_negative)) {
            let k = vals.iter().position(|&v| is_bad(v, non_negative)).expect("found above");
            return Err(self.bad_value(ctx, cell, idx[k] as usize, f64::from(vals[k])));
        }
        Ok(())
    }
}

/// Whether `v` is refused: NaN or ±∞, or negative where counts are required. On the bits,
/// without branches: NaN and ±∞ have every exponent bit set, negative values the sign bit (and
/// −0.0, which is not negative, only that one).
fn is_bad(v: f32, non_negative: bool) -> bool {
    let b = v.to_bits();
    let magnitude = if non_negative { b } else { b & 0x7fff_ffff };
    (magnitude >= 0x7f80_0000) & (b != 0x8000_0000)
}

/// Converts stored numbers to f32 (exact for integers below 2^24 and for f32 data).
pub(crate) fn to_f32(v: NumVec) -> Vec<f32> {
    match v {
        NumVec::F32(v) => v,
        NumVec::F64(v) => v.into_iter().map(|x| x as f32).collect(),
        NumVec::I32(v) => v.into_iter().map(|x| x as f32).collect(),
        NumVec::I64(v) => v.into_iter().map(|x| x as f32).collect(),
        NumVec::U32(v) => v.into_iter().map(|x| x as f32).collect(),
        NumVec::U64(v) => v.into_iter().map(|x| x as f32).collect(),
        NumVec::I16(v) => v.into_iter().map(f32::from).collect(),
        NumVec::U16(v) => v.into_iter().map(f32::from).collect(),
        NumVec::I8(v) => v.into_iter().map(f32::from).collect(),
        NumVec::U8(v) => v.into_iter().map(f32::from).collect(),
        NumVec::Bool(v) => v.into_iter().map(|b| f32::from(u8::from(b))).collect(),
    }
}

/// Accumulates canonical CSR rows.
pub(crate) struct CsrBuilder {
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
    scratch: Vec<(u32, f32)>,
}

impl CsrBuilder {
    pub fn with_capacity(rows: usize, nnz: usize) -> Self {
        let mut indptr = Vec::with_capacity(rows + 1);
        indptr.push(0);
        Self { indptr, indices: Vec::with_capacity(nnz), values: Vec::with_capacity(nnz), scratch: vec![] }
    }

    /// Appends one row: sorts by gene when needed, sums duplicate genes, drops zeros.
    pub fn push_row(&mut self, idx: &[u32], vals: &[f32]) {
        if idx.windows(2).all(|w| w[0] < w[1]) {
            for (&i, &v) in idx.iter().zip(vals) {
                if v != 0.0 {
                    self.indices.push(i);
                    self.values.push(v);
                }
            }
        } else {
            self.scratch.clear();
            self.scratch.extend(idx.iter().copied().zip(vals.iter().copied()));
            self.scratch.sort_by_key(|&(i, _)| i);
            let mut k = 0;
            while k < self.scratch.len() {
                let (g, mut v) = self.scratch[k];
                k += 1;
                while k < self.scratch.len() && self.scratch[k].0 == g {
                    v += self.scratch[k].1;
                    k += 1;
                }
                if v != 0.0 {
                    self.indices.push(g);
                    self.values.push(v);
                }
            }
        }
        self.indptr.push(self.indices.len());
    }

    pub fn last_row(&self) -> (&[u32], &[f32]) {
        let n = self.indptr.len();
        let lo = if n >= 2 { self.indptr[n - 2] } else { 0 };
        (&self.indices[lo..], &self.values[lo..])
    }

    pub fn finish(self) -> CsrParts {
        (self.indptr, self.indices, self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::is_bad;

    #[test]
    fn bad_values_are_the_non_finite_and_the_negative_ones() {
        let specials =
            [0.0f32, -0.0, 1.0, -1.0, f32::MIN_POSITIVE, -f32::MIN_POSITIVE, 1e-45, -1e-45, f32::MAX, f32::MIN];
        let nonfinite = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -f32::NAN];
        let bits = (0..100_000u32).map(|i| f32::from_bits(i.wrapping_mul(0x9e37_79b9)));
        for v in specials.into_iter().chain(nonfinite).chain(bits) {
            assert_eq!(is_bad(v, false), !v.is_finite(), "{v:e}");
            assert_eq!(is_bad(v, true), !v.is_finite() || v < 0.0, "{v:e}");
        }
    }
}
