//! anndata dataframes (obs, var, raw/var) as Arrow columns, read by row range.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BooleanArray, DictionaryArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array,
    StringArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, Field};
use hdf5::{Dataset, Group};

use super::elem::{self, Ctx, Node, NumKind, NumVec, join};
use crate::error::{IoError, Result};

/// How one column is stored.
#[derive(Debug)]
enum ColumnKind {
    /// A plain numeric or boolean array.
    Numeric(Dataset, NumKind),
    /// A `string-array` dataset.
    Strings(Dataset),
    /// A `categorical` group: codes into a small categories array (−1 = missing).
    Categorical { codes: Dataset, categories: ArrayRef, ordered: bool },
    /// `nullable-integer` / `nullable-boolean`: values plus a mask (true = missing).
    NullableNum { values: Dataset, mask: Dataset, kind: NumKind },
    /// `nullable-string-array`: string values plus a mask (true = missing).
    NullableStrings { values: Dataset, mask: Dataset },
}

/// One dataframe column.
#[derive(Debug)]
pub(crate) struct Column {
    pub name: String,
    pub element: String,
    kind: ColumnKind,
}

/// An opened anndata dataframe.
#[derive(Debug)]
pub(crate) struct Frame {
    pub n_rows: usize,
    /// The index's strings (a `string-array`, or a nullable one's values) and their element.
    index: (String, Dataset),
    pub columns: Vec<Column>,
}

impl Frame {
    /// Opens the dataframe stored at `element` (e.g. `obs`, `raw/var`).
    pub fn open(ctx: &Ctx, root: &Group, element: &str) -> Result<Self> {
        let (parent_path, name) = match element.rsplit_once('/') {
            Some((p, n)) => (p, n),
            None => ("", element),
        };
        let parent = if parent_path.is_empty() { root.clone() } else { ctx.h5(parent_path, root.group(parent_path))? };
        let group = match elem::node(ctx, &parent, parent_path, name)? {
            None => return Err(ctx.missing(element, "")),
            Some(Node::Dataset(_)) => {
                return Err(ctx.unsupported(
                    element,
                    "compound dataset (anndata < 0.7)",
                    "; this is the pre-0.7 h5ad layout: re-save it with a current anndata \
                     (`anndata.read_h5ad(path).write_h5ad(new_path)`)",
                ));
            }
            Some(Node::Group(g)) => g,
        };
        let enc = elem::encoding_of(&group).unwrap_or_default();
        if enc != "dataframe" {
            return Err(ctx.unsupported(element, &enc, "; expected an anndata dataframe"));
        }
        let index_name =
            elem::str_attr(&group, "_index").ok_or_else(|| ctx.missing(&format!("{element}@_index"), ""))?;
        let index = open_column(ctx, &group, element, &index_name)?;
        let n_rows = index.len(ctx)?;
        let index = match index.kind {
            ColumnKind::Strings(ds) => (index.element, ds),
            ColumnKind::NullableStrings { values, .. } => (format!("{}/values", index.element), values),
            _ => return Err(ctx.wrong_type(&index.element, "a string index", index.data_type())),
        };
        let order = elem::str_array_attr(ctx, element, &group, "column-order")?;
        let mut columns = Vec::with_capacity(order.len());
        for name in order {
            let col = open_column(ctx, &group, element, &name)?;
            let len = col.len(ctx)?;
            if len != n_rows {
                return Err(IoError::LengthMismatch {
                    path: ctx.path.clone(),
                    element: col.element,
                    what: "one per row of the dataframe index",
                    expected: n_rows,
                    found: len,
                });
            }
            columns.push(col);
        }
        Ok(Self { n_rows, index, columns })
    }

    /// The index (obs names / var names) for `rows`; missing entries read as empty strings.
    pub fn index(&self, ctx: &Ctx, rows: Range<usize>) -> Result<Vec<String>> {
        elem::read_strings(ctx, &self.index.0, &self.index.1, rows)
    }

    /// The column called `name`, if any.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Comma-separated column names, for error messages.
    pub fn column_list(&self) -> String {
        self.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

fn open_column(ctx: &Ctx, group: &Group, frame: &str, name: &str) -> Result<Column> {
    let element = join(frame, name);
    let node = elem::node(ctx, group, frame, name)?.ok_or_else(|| ctx.missing(&element, ""))?;
    let kind = match node {
        Node::Dataset(ds) => {
            let enc = elem::encoding_of(&ds);
            let desc = ctx.h5(&element, ds.dtype().and_then(|d| d.to_descriptor()))?;
            if enc.as_deref() == Some("string-array") || is_string(&desc) {
                ColumnKind::Strings(ds)
            } else if let Some(kind) = NumKind::of(&desc) {
                if ds.ndim() != 1 {
                    return Err(ctx.wrong_type(&element, "a 1-D column", ds.shape()));
                }
                ColumnKind::Numeric(ds, kind)
            } else {
                return Err(ctx.unsupported(
                    &element,
                    &format!("{desc:?}"),
                    "; not a numeric, boolean or string column",
                ));
            }
        }
        Node::Group(g) => {
            let enc = elem::encoding_of(&g).unwrap_or_default();
            let sub = |n: &str| -> Result<Dataset> {
                let e = join(&element, n);
                match elem::node(ctx, &g, &element, n)? {
                    Some(Node::Dataset(d)) => Ok(d),
                    _ => Err(ctx.missing(&e, "")),
                }
            };
            match enc.as_str() {
                "categorical" => {
                    let codes = sub("codes")?;
                    let cats_ds = sub("categories")?;
                    let cats_el = join(&element, "categories");
                    let n = elem::len_1d(ctx, &cats_el, &cats_ds)?;
                    let categories = read_plain(ctx, &cats_el, &cats_ds, 0..n, None)?;
                    let ordered = g.attr("ordered").and_then(|a| a.read_scalar::<bool>()).unwrap_or(false);
                    elem::num_kind(ctx, &join(&element, "codes"), &codes, "integer codes")?;
                    ColumnKind::Categorical { codes, categories, ordered }
                }
                "nullable-integer" | "nullable-boolean" => {
                    let values = sub("values")?;
                    let kind = elem::num_kind(ctx, &join(&element, "values"), &values, "numbers")?;
                    ColumnKind::NullableNum { values, mask: sub("mask")?, kind }
                }
                "nullable-string-array" => ColumnKind::NullableStrings { values: sub("values")?, mask: sub("mask")? },
                other => return Err(ctx.unsupported(&element, other, "")),
            }
        }
    };
    Ok(Column { name: name.to_owned(), element, kind })
}

fn is_string(desc: &hdf5::types::TypeDescriptor) -> bool {
    use hdf5::types::TypeDescriptor as T;
    matches!(desc, T::VarLenUnicode | T::VarLenAscii | T::FixedAscii(_) | T::FixedUnicode(_))
}

fn num_type(kind: NumKind) -> DataType {
    match kind {
        NumKind::I8 => DataType::Int8,
        NumKind::I16 => DataType::Int16,
        NumKind::I32 => DataType::Int32,
        NumKind::I64 => DataType::Int64,
        NumKind::U8 => DataType::UInt8,
        NumKind::U16 => DataType::UInt16,
        NumKind::U32 => DataType::UInt32,
        NumKind::U64 => DataType::UInt64,
        NumKind::F32 => DataType::Float32,
        NumKind::F64 => DataType::Float64,
        NumKind::Bool => DataType::Boolean,
    }
}

/// Builds an Arrow array from numbers in their stored type.
pub(crate) fn num_array(v: NumVec, nulls: Option<NullBuffer>) -> ArrayRef {
    match v {
        NumVec::I8(v) => Arc::new(Int8Array::new(v.into(), nulls)),
        NumVec::I16(v) => Arc::new(Int16Array::new(v.into(), nulls)),
        NumVec::I32(v) => Arc::new(Int32Array::new(v.into(), nulls)),
        NumVec::I64(v) => Arc::new(Int64Array::new(v.into(), nulls)),
        NumVec::U8(v) => Arc::new(UInt8Array::new(v.into(), nulls)),
        NumVec::U16(v) => Arc::new(UInt16Array::new(v.into(), nulls)),
        NumVec::U32(v) => Arc::new(UInt32Array::new(v.into(), nulls)),
        NumVec::U64(v) => Arc::new(UInt64Array::new(v.into(), nulls)),
        NumVec::F32(v) => Arc::new(Float32Array::new(v.into(), nulls)),
        NumVec::F64(v) => Arc::new(Float64Array::new(v.into(), nulls)),
        NumVec::Bool(v) => Arc::new(BooleanArray::new(v.into(), nulls)),
    }
}

/// Reads a plain dataset (strings or numbers) as an Arrow array.
fn read_plain(
    ctx: &Ctx,
    element: &str,
    ds: &Dataset,
    rows: Range<usize>,
    nulls: Option<NullBuffer>,
) -> Result<ArrayRef> {
    let desc = ctx.h5(element, ds.dtype().and_then(|d| d.to_descriptor()))?;
    if is_string(&desc) {
        let s = elem::read_strings(ctx, element, ds, rows)?;
        let arr: StringArray = match &nulls {
            None => s.iter().map(Some).collect(),
            Some(n) => s.iter().enumerate().map(|(i, v)| n.is_valid(i).then_some(v)).collect(),
        };
        Ok(Arc::new(arr))
    } else {
        Ok(num_array(elem::read_num(ctx, element, ds, rows)?, nulls))
    }
}

/// Mask dataset (true = missing) → Arrow validity (true = present).
fn read_mask(ctx: &Ctx, element: &str, mask: &Dataset, rows: Range<usize>) -> Result<Option<NullBuffer>> {
    let el = join(element, "mask");
    let m = match elem::read_num(ctx, &el, mask, rows)? {
        NumVec::Bool(b) => b,
        other => other.to_f64().into_iter().map(|x| x != 0.0).collect(),
    };
    if m.iter().any(|&missing| missing) {
        Ok(Some(NullBuffer::from(m.into_iter().map(|missing| !missing).collect::<Vec<_>>())))
    } else {
        Ok(None)
    }
}

impl Column {
    /// Number of rows stored.
    pub fn len(&self, ctx: &Ctx) -> Result<usize> {
        match &self.kind {
            ColumnKind::Numeric(ds, _) | ColumnKind::Strings(ds) => elem::len_1d(ctx, &self.element, ds),
            ColumnKind::Categorical { codes, .. } => elem::len_1d(ctx, &join(&self.element, "codes"), codes),
            ColumnKind::NullableNum { values, .. } | ColumnKind::NullableStrings { values, .. } => {
                elem::len_1d(ctx, &join(&self.element, "values"), values)
            }
        }
    }

    /// The Arrow type this column reads as (categoricals as `Dictionary<Int32, _>`).
    pub fn data_type(&self) -> DataType {
        match &self.kind {
            ColumnKind::Numeric(_, k) | ColumnKind::NullableNum { kind: k, .. } => num_type(*k),
            ColumnKind::Strings(_) | ColumnKind::NullableStrings { .. } => DataType::Utf8,
            ColumnKind::Categorical { categories, .. } => {
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(categories.data_type().clone()))
            }
        }
    }

    /// The Arrow field of this column; ordered categoricals carry `scfm:ordered = true`.
    pub fn field(&self) -> Field {
        let f = Field::new(&self.name, self.data_type(), true);
        match &self.kind {
            ColumnKind::Categorical { ordered: true, .. } => {
                f.with_metadata(HashMap::from([("scfm:ordered".to_owned(), "true".to_owned())]))
            }
            _ => f,
        }
    }

    /// Reads `rows` of this column.
    pub fn read(&self, ctx: &Ctx, rows: Range<usize>) -> Result<ArrayRef> {
        let el = &self.element;
        match &self.kind {
            ColumnKind::Numeric(ds, _) | ColumnKind::Strings(ds) => read_plain(ctx, el, ds, rows, None),
            ColumnKind::NullableNum { values, mask, .. } => {
                let nulls = read_mask(ctx, el, mask, rows.clone())?;
                read_plain(ctx, &join(el, "values"), values, rows, nulls)
            }
            ColumnKind::NullableStrings { values, mask } => {
                let nulls = read_mask(ctx, el, mask, rows.clone())?;
                read_plain(ctx, &join(el, "values"), values, rows, nulls)
            }
            ColumnKind::Categorical { codes, categories, .. } => {
                let codes_el = join(el, "codes");
                let raw = elem::read_num(ctx, &codes_el, codes, rows.clone())?.to_f64();
                let n_cat = categories.len() as f64;
                let mut keys = Vec::with_capacity(raw.len());
                for (i, c) in raw.into_iter().enumerate() {
                    if c < 0.0 {
                        keys.push(None);
                    } else if c < n_cat && c.fract() == 0.0 {
                        keys.push(Some(c as i32));
                    } else {
                        return Err(ctx.invalid(
                            &codes_el,
                            format!("code {c} at row {} is outside the {n_cat} categories", rows.start + i),
                        ));
                    }
                }
                let dict = DictionaryArray::<Int32Type>::try_new(Int32Array::from(keys), categories.clone())
                    .map_err(|e| ctx.invalid(&codes_el, e.to_string()))?;
                Ok(Arc::new(dict))
            }
        }
    }
}
