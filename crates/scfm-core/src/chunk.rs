use std::sync::Arc;

use arrow_array::{Array, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow_schema::Schema;

use crate::CoreError;

/// A block of cells as compressed sparse rows over a gene table, with their obs metadata.
///
/// Invariants (checked by every constructor): `indptr` has one entry per cell plus one, starts
/// at 0, never decreases and ends at `nnz`; within each cell the gene indices are strictly
/// increasing and below `n_genes`; `obs` has one row per cell.
#[derive(Debug, Clone, PartialEq)]
pub struct CellChunk {
    n_genes: usize,
    cell_ids: Vec<String>,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
    obs: RecordBatch,
}

/// One cell of a chunk: its non-zero genes (strictly increasing) and their values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellView<'a> {
    /// Column positions in the source gene table, strictly increasing.
    pub indices: &'a [u32],
    /// Expression values, one per index.
    pub values: &'a [f32],
}

impl CellView<'_> {
    /// Number of stored (non-zero) genes.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// True when the cell has no stored genes.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Sum of the stored values (the library size for counts), accumulated in f64 over four
    /// interleaved partial sums (four times the throughput of one running sum). Exact for
    /// counts (integers summing below 2^53), whatever the grouping; for non-integer values the
    /// last bits may differ from a left-to-right sum.
    pub fn total(&self) -> f64 {
        let mut lanes = [0f64; 4];
        let quads = self.values.chunks_exact(4);
        let rest: f64 = quads.remainder().iter().map(|&v| f64::from(v)).sum();
        for q in quads {
            for (lane, &v) in lanes.iter_mut().zip(q) {
                *lane += f64::from(v);
            }
        }
        (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + rest
    }
}

fn empty_obs(n: usize) -> RecordBatch {
    RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(n)),
    )
    .expect("an empty schema with an explicit row count is always valid")
}

impl CellChunk {
    /// Builds a chunk from CSR parts, without obs columns.
    ///
    /// # Errors
    /// [`CoreError::InvalidChunk`] when the parts break an invariant listed on the type.
    pub fn from_csr(
        cell_ids: Vec<String>,
        indptr: Vec<usize>,
        indices: Vec<u32>,
        values: Vec<f32>,
        n_genes: usize,
    ) -> Result<Self, CoreError> {
        let obs = empty_obs(cell_ids.len());
        let chunk = Self { n_genes, cell_ids, indptr, indices, values, obs };
        chunk.validate()?;
        Ok(chunk)
    }

    /// An empty chunk (zero cells) with the given obs schema.
    pub fn empty(n_genes: usize, obs_schema: Arc<Schema>) -> Self {
        Self {
            n_genes,
            cell_ids: vec![],
            indptr: vec![0],
            indices: vec![],
            values: vec![],
            obs: RecordBatch::new_empty(obs_schema),
        }
    }

    /// Replaces the obs metadata.
    ///
    /// # Errors
    /// [`CoreError::InvalidChunk`] when `obs` does not have one row per cell.
    pub fn with_obs(mut self, obs: RecordBatch) -> Result<Self, CoreError> {
        if obs.num_rows() != self.n_cells() {
            return Err(CoreError::InvalidChunk(format!(
                "obs has {} rows for {} cells",
                obs.num_rows(),
                self.n_cells()
            )));
        }
        self.obs = obs;
        Ok(self)
    }

    fn validate(&self) -> Result<(), CoreError> {
        let bad = |msg: String| Err(CoreError::InvalidChunk(msg));
        let n = self.cell_ids.len();
        if self.indptr.len() != n + 1 {
            return bad(format!("indptr has {} entries for {n} cells", self.indptr.len()));
        }
        if self.indptr[0] != 0 {
            return bad(format!("indptr starts at {}", self.indptr[0]));
        }
        if self.indices.len() != self.values.len() {
            return bad(format!("{} indices but {} values", self.indices.len(), self.values.len()));
        }
        if self.indptr[n] != self.indices.len() {
            return bad(format!("indptr ends at {} but nnz is {}", self.indptr[n], self.indices.len()));
        }
        for cell in 0..n {
            let (a, b) = (self.indptr[cell], self.indptr[cell + 1]);
            if b < a {
                return bad(format!("indptr decreases at cell {cell}"));
            }
            let row = &self.indices[a..b];
            if let Some(&last) = row.last()
                && last as usize >= self.n_genes
            {
                return bad(format!("cell {cell}: gene index {last} ≥ {} genes", self.n_genes));
            }
            // A branch-free scan (it vectorizes); chunks are validated as they are read.
            if !row.windows(2).fold(true, |acc, w| acc & (w[0] < w[1])) {
                return bad(format!("cell {cell}: gene indices not strictly increasing"));
            }
        }
        if self.obs.num_rows() != n {
            return bad(format!("obs has {} rows for {n} cells", self.obs.num_rows()));
        }
        Ok(())
    }

    /// Number of cells.
    pub fn n_cells(&self) -> usize {
        self.cell_ids.len()
    }

    /// Number of genes (columns) the indices refer to.
    pub fn n_genes(&self) -> usize {
        self.n_genes
    }

    /// Number of stored values.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Cell identifiers (the obs index), one per cell.
    pub fn cell_ids(&self) -> &[String] {
        &self.cell_ids
    }

    /// CSR row pointer, `n_cells + 1` entries.
    pub fn indptr(&self) -> &[usize] {
        &self.indptr
    }

    /// CSR gene indices.
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// CSR values.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The obs metadata, one row per cell.
    pub fn obs(&self) -> &RecordBatch {
        &self.obs
    }

    /// The obs column `name` as one text label per cell (`None` for a null): string columns
    /// (plain, large, view), categoricals (dictionaries of strings) and integer or boolean
    /// columns, whose values are written out (`"3"`, `"true"`).
    ///
    /// # Errors
    /// [`CoreError::MissingColumn`] when the chunk has no such column (the error lists the
    /// columns it has), [`CoreError::InvalidChunk`] for a float or nested column.
    pub fn obs_labels(&self, name: &str) -> Result<Vec<Option<String>>, CoreError> {
        let Ok(index) = self.obs.schema().index_of(name) else {
            let have = self.obs.schema().fields().iter().map(|f| f.name().clone()).collect();
            return Err(CoreError::MissingColumn { column: name.to_owned(), have });
        };
        labels_of(self.obs.column(index).as_ref(), name)
    }

    /// One cell.
    ///
    /// # Panics
    /// When `i >= n_cells()`.
    pub fn cell(&self, i: usize) -> CellView<'_> {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        CellView { indices: &self.indices[a..b], values: &self.values[a..b] }
    }

    /// Iterates over the cells in order.
    pub fn cells(&self) -> impl ExactSizeIterator<Item = CellView<'_>> + '_ {
        (0..self.n_cells()).map(|i| self.cell(i))
    }

    /// Keeps the cells whose mask entry is true (null counts as false), in order.
    ///
    /// # Errors
    /// [`CoreError::InvalidChunk`] when the mask length differs from the number of cells.
    pub fn filter(&self, mask: &BooleanArray) -> Result<Self, CoreError> {
        if mask.len() != self.n_cells() {
            return Err(CoreError::InvalidChunk(format!(
                "filter mask has {} entries for {} cells",
                mask.len(),
                self.n_cells()
            )));
        }
        let keep: Vec<usize> = (0..mask.len()).filter(|&i| mask.is_valid(i) && mask.value(i)).collect();
        let mut indptr = Vec::with_capacity(keep.len() + 1);
        indptr.push(0);
        let nnz: usize = keep.iter().map(|&i| self.indptr[i + 1] - self.indptr[i]).sum();
        let mut indices = Vec::with_capacity(nnz);
        let mut values = Vec::with_capacity(nnz);
        for &i in &keep {
            let cell = self.cell(i);
            indices.extend_from_slice(cell.indices);
            values.extend_from_slice(cell.values);
            indptr.push(indices.len());
        }
        let obs = if self.obs.num_columns() == 0 {
            empty_obs(keep.len())
        } else {
            arrow_select::filter::filter_record_batch(&self.obs, mask)?
        };
        Ok(Self {
            n_genes: self.n_genes,
            cell_ids: keep.iter().map(|&i| self.cell_ids[i].clone()).collect(),
            indptr,
            indices,
            values,
            obs,
        })
    }

    /// Concatenates chunks over the same genes and obs schema, in order.
    ///
    /// # Errors
    /// [`CoreError::InvalidChunk`] when gene counts or obs schemas differ.
    pub fn concat(chunks: &[CellChunk]) -> Result<Self, CoreError> {
        let Some(first) = chunks.first() else {
            return Err(CoreError::InvalidChunk("nothing to concatenate".into()));
        };
        let mut out = CellChunk::empty(first.n_genes, first.obs.schema());
        let mut batches = Vec::with_capacity(chunks.len());
        for c in chunks {
            if c.n_genes != first.n_genes || c.obs.schema() != first.obs.schema() {
                return Err(CoreError::InvalidChunk("chunks differ in genes or obs schema".into()));
            }
            let base = out.indices.len();
            out.indptr.extend(c.indptr[1..].iter().map(|&p| p + base));
            out.indices.extend_from_slice(&c.indices);
            out.values.extend_from_slice(&c.values);
            out.cell_ids.extend_from_slice(&c.cell_ids);
            batches.push(c.obs.clone());
        }
        let n = out.cell_ids.len();
        out.obs = if first.obs.num_columns() == 0 {
            empty_obs(n)
        } else {
            arrow_select::concat::concat_batches(&first.obs.schema(), &batches)?
        };
        Ok(out)
    }

    /// Splits the chunk into its parts: `(cell_ids, indptr, indices, values, obs)`.
    pub fn into_parts(self) -> (Vec<String>, Vec<usize>, Vec<u32>, Vec<f32>, RecordBatch) {
        (self.cell_ids, self.indptr, self.indices, self.values, self.obs)
    }
}

/// Text labels of an Arrow array (see [`CellChunk::obs_labels`]).
fn labels_of(array: &dyn Array, name: &str) -> Result<Vec<Option<String>>, CoreError> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{
        Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
    };
    use arrow_schema::DataType;

    fn each<T: ToString>(a: &dyn Array, value: impl Fn(usize) -> T) -> Vec<Option<String>> {
        (0..a.len()).map(|i| a.is_valid(i).then(|| value(i).to_string())).collect()
    }
    Ok(match array.data_type() {
        DataType::Utf8 => each(array, |i| array.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => each(array, |i| array.as_string::<i64>().value(i)),
        DataType::Utf8View => each(array, |i| array.as_string_view().value(i)),
        DataType::Boolean => each(array, |i| array.as_boolean().value(i)),
        DataType::Int8 => each(array, |i| array.as_primitive::<Int8Type>().value(i)),
        DataType::Int16 => each(array, |i| array.as_primitive::<Int16Type>().value(i)),
        DataType::Int32 => each(array, |i| array.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => each(array, |i| array.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => each(array, |i| array.as_primitive::<UInt8Type>().value(i)),
        DataType::UInt16 => each(array, |i| array.as_primitive::<UInt16Type>().value(i)),
        DataType::UInt32 => each(array, |i| array.as_primitive::<UInt32Type>().value(i)),
        DataType::UInt64 => each(array, |i| array.as_primitive::<UInt64Type>().value(i)),
        DataType::Dictionary(..) => {
            let dict = array.as_any_dictionary();
            let values = labels_of(dict.values().as_ref(), name)?;
            let keys = dict.normalized_keys();
            (0..array.len()).map(|i| if array.is_valid(i) { values[keys[i]].clone() } else { None }).collect()
        }
        other => {
            return Err(CoreError::InvalidChunk(format!(
                "obs column {name:?} holds {other} values, not labels (strings, categories, integers)"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_cell_total_of_counts_is_exact() {
        // Every remainder length, and counts whose running f32 sum would round (2^24 + 1).
        for len in 0..10u32 {
            let values: Vec<f32> = (0..len).map(|i| (1 + i * 7) as f32).collect();
            let indices: Vec<u32> = (0..len).collect();
            let want: u64 = values.iter().map(|&v| v as u64).sum();
            assert_eq!(CellView { indices: &indices, values: &values }.total(), want as f64, "{len} values");
        }
        let values = [16_777_216.0f32, 1.0, 1.0, 1.0, 1.0, 3.0];
        let cell = CellView { indices: &[0, 1, 2, 3, 4, 5], values: &values };
        assert_eq!(cell.total(), 16_777_223.0);
    }

    fn chunk(rows: &[Vec<(u32, f32)>], n_genes: usize) -> CellChunk {
        let mut indptr = vec![0];
        let (mut idx, mut val) = (vec![], vec![]);
        for r in rows {
            for &(i, v) in r {
                idx.push(i);
                val.push(v);
            }
            indptr.push(idx.len());
        }
        let ids = (0..rows.len()).map(|i| format!("c{i}")).collect();
        CellChunk::from_csr(ids, indptr, idx, val, n_genes).unwrap()
    }

    #[test]
    fn obs_labels_read_categories_strings_and_integers() {
        use arrow_array::{DictionaryArray, Float32Array, Int64Array, StringArray, types::Int8Type};
        let cats: DictionaryArray<Int8Type> = vec![Some("NK"), None, Some("B")].into_iter().collect();
        let obs = RecordBatch::try_from_iter([
            ("cell_type", Arc::new(cats) as Arc<dyn Array>),
            ("donor", Arc::new(StringArray::from(vec!["d1", "d2", "d1"])) as _),
            ("plate", Arc::new(Int64Array::from(vec![1, 2, 3])) as _),
            ("score", Arc::new(Float32Array::from(vec![0.5, 0.1, 0.2])) as _),
        ])
        .unwrap();
        let c = chunk(&[vec![], vec![], vec![]], 2).with_obs(obs).unwrap();
        assert_eq!(c.obs_labels("cell_type").unwrap(), vec![Some("NK".into()), None, Some("B".into())]);
        assert_eq!(c.obs_labels("donor").unwrap()[1].as_deref(), Some("d2"));
        assert_eq!(c.obs_labels("plate").unwrap()[2].as_deref(), Some("3"));
        assert!(matches!(c.obs_labels("score"), Err(CoreError::InvalidChunk(_))));
        assert!(matches!(c.obs_labels("tissue"), Err(CoreError::MissingColumn { .. })));
    }

    #[test]
    fn rejects_broken_csr() {
        let ids = vec!["a".to_string()];
        let err = |indptr: Vec<usize>, idx: Vec<u32>, n_genes| {
            CellChunk::from_csr(ids.clone(), indptr, idx.clone(), vec![1.0; idx.len()], n_genes)
                .unwrap_err()
                .to_string()
        };
        assert!(err(vec![0, 2], vec![1, 0], 3).contains("strictly increasing"));
        assert!(err(vec![0, 1], vec![5], 3).contains("gene index 5"));
        assert!(err(vec![0, 3], vec![0, 1], 3).contains("indptr ends at 3"));
        assert!(err(vec![0], vec![], 3).contains("indptr has 1 entries"));
    }

    proptest! {
        #[test]
        fn filter_then_concat_roundtrips(
            rows in proptest::collection::vec(
                proptest::collection::btree_map(0u32..50, 0.0f32..100.0, 0..10), 0..20),
            keep in proptest::collection::vec(any::<bool>(), 20),
        ) {
            let rows: Vec<Vec<(u32, f32)>> = rows.into_iter().map(|m| m.into_iter().collect()).collect();
            let c = chunk(&rows, 50);
            let mask = BooleanArray::from(keep[..rows.len()].to_vec());
            let f = c.filter(&mask).unwrap();
            let kept: Vec<_> = rows.iter().zip(&keep).filter(|(_, k)| **k).map(|(r, _)| r.clone()).collect();
            prop_assert_eq!(&f, &chunk(&kept, 50).with_obs(f.obs().clone()).unwrap().clone_ids_from(&f));
            let halves = if rows.is_empty() { vec![c.clone()] } else {
                let m = rows.len() / 2;
                vec![chunk(&rows[..m], 50), chunk(&rows[m..], 50)]
            };
            let joined = CellChunk::concat(&halves).unwrap();
            prop_assert_eq!(joined.indptr(), c.indptr());
            prop_assert_eq!(joined.indices(), c.indices());
            prop_assert_eq!(joined.values(), c.values());
        }
    }

    impl CellChunk {
        fn clone_ids_from(mut self, other: &CellChunk) -> Self {
            self.cell_ids = other.cell_ids.clone();
            self
        }
    }
}
