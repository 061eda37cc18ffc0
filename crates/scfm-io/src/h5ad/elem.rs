//! Low-level reading of anndata-encoded HDF5 elements, with errors that name file and element.

use std::ops::Range;
use std::path::{Path, PathBuf};

use hdf5::types::{FixedAscii, FixedUnicode, FloatSize, IntSize, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Dataset, Group, Location, LocationType};

use crate::error::{IoError, Result};

/// The HDF5 file signature (at offset 0 when there is no user block).
const HDF5_MAGIC: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// Opens an HDF5 file read-only, telling a missing file, another format and a damaged HDF5
/// file apart.
pub(crate) fn open_file(path: &Path) -> Result<hdf5::File> {
    if !path.exists() {
        return Err(IoError::NotFound { path: path.to_owned() });
    }
    let mut head = [0u8; 8];
    let n = {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(crate::error::io_err(path))?;
        f.read(&mut head).map_err(crate::error::io_err(path))?
    };
    if n < 8 || &head != HDF5_MAGIC {
        return Err(IoError::NotHdf5 { path: path.to_owned() });
    }
    hdf5::File::open(path).map_err(|_| IoError::NotHdf5 { path: path.to_owned() })
}

/// Error context: the file every element error refers to.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub path: PathBuf,
}

impl Ctx {
    pub fn new(path: &Path) -> Self {
        Self { path: path.to_owned() }
    }

    pub fn h5<T>(&self, element: &str, r: hdf5::Result<T>) -> Result<T> {
        r.map_err(|source| IoError::Hdf5 { path: self.path.clone(), element: element.to_owned(), source })
    }

    pub fn missing(&self, element: &str, hint: &str) -> IoError {
        IoError::MissingElement { path: self.path.clone(), element: element.to_owned(), hint: hint.to_owned() }
    }

    pub fn unsupported(&self, element: &str, encoding: &str, hint: &str) -> IoError {
        IoError::UnsupportedEncoding {
            path: self.path.clone(),
            element: element.to_owned(),
            encoding: encoding.to_owned(),
            hint: hint.to_owned(),
        }
    }

    pub fn wrong_type(&self, element: &str, expected: &'static str, found: impl std::fmt::Debug) -> IoError {
        IoError::WrongType {
            path: self.path.clone(),
            element: element.to_owned(),
            expected,
            found: format!("{found:?}"),
        }
    }

    pub fn invalid(&self, element: &str, reason: impl Into<String>) -> IoError {
        IoError::InvalidMatrix { path: self.path.clone(), element: element.to_owned(), reason: reason.into() }
    }
}

/// A group or dataset found under a group.
pub(crate) enum Node {
    Group(Group),
    Dataset(Dataset),
}

/// Looks up `name` under `parent` (which lives at `parent_path`); `Ok(None)` when absent.
pub(crate) fn node(ctx: &Ctx, parent: &Group, parent_path: &str, name: &str) -> Result<Option<Node>> {
    let element = join(parent_path, name);
    if !parent.link_exists(name) {
        return Ok(None);
    }
    match ctx.h5(&element, parent.loc_type_by_name(name))? {
        LocationType::Group => Ok(Some(Node::Group(ctx.h5(&element, parent.group(name))?))),
        LocationType::Dataset => Ok(Some(Node::Dataset(ctx.h5(&element, parent.dataset(name))?))),
        // Named datatypes, and the type maps HDF5 ≥ 2 (the `static-hdf5` build) adds.
        #[allow(unreachable_patterns)]
        other => Err(ctx.unsupported(&element, &format!("{other:?} object"), "")),
    }
}

pub(crate) fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() || parent == "/" { name.to_owned() } else { format!("{parent}/{name}") }
}

/// Reads a string attribute (variable- or fixed-length); `Ok(None)` when absent or not a string.
pub(crate) fn str_attr(loc: &Location, name: &str) -> Option<String> {
    let attr = loc.attr(name).ok()?;
    let desc = attr.dtype().ok()?.to_descriptor().ok()?;
    if !attr.is_scalar() {
        return None;
    }
    match desc {
        TypeDescriptor::VarLenUnicode => attr.read_scalar::<VarLenUnicode>().ok().map(|s| s.as_str().to_owned()),
        TypeDescriptor::VarLenAscii => attr.read_scalar::<VarLenAscii>().ok().map(|s| s.as_str().to_owned()),
        TypeDescriptor::FixedAscii(_) => attr.read_scalar::<FixedAscii<256>>().ok().map(|s| s.as_str().to_owned()),
        TypeDescriptor::FixedUnicode(_) => attr.read_scalar::<FixedUnicode<1024>>().ok().map(|s| s.as_str().to_owned()),
        _ => None,
    }
}

/// Reads a 1-D string-array attribute such as `column-order`; an empty numeric array (what
/// anndata writes for a dataframe without columns) reads as no strings.
pub(crate) fn str_array_attr(ctx: &Ctx, element: &str, loc: &Location, name: &str) -> Result<Vec<String>> {
    let Ok(attr) = loc.attr(name) else { return Ok(vec![]) };
    let desc = ctx.h5(element, attr.dtype().and_then(|d| d.to_descriptor()))?;
    if attr.size() == 0 {
        return Ok(vec![]);
    }
    if attr.is_scalar() {
        return Ok(str_attr(loc, name).into_iter().collect());
    }
    let out = match desc {
        TypeDescriptor::VarLenUnicode => strings(ctx.h5(element, attr.read_raw::<VarLenUnicode>())?),
        TypeDescriptor::VarLenAscii => strings(ctx.h5(element, attr.read_raw::<VarLenAscii>())?),
        TypeDescriptor::FixedAscii(_) => strings(ctx.h5(element, attr.read_raw::<FixedAscii<256>>())?),
        TypeDescriptor::FixedUnicode(_) => strings(ctx.h5(element, attr.read_raw::<FixedUnicode<1024>>())?),
        other => return Err(ctx.wrong_type(&format!("{element}@{name}"), "an array of strings", other)),
    };
    Ok(out)
}

/// Reads a small integer array attribute such as a sparse matrix's `shape`.
pub(crate) fn int_array_attr(ctx: &Ctx, element: &str, loc: &Location, name: &str) -> Result<Vec<i64>> {
    let at = format!("{element}@{name}");
    let attr = ctx.h5(&at, loc.attr(name))?;
    let vals = ctx.h5(&at, attr.read_raw::<i64>())?;
    Ok(vals)
}

fn strings<S: AsRef<str>>(v: Vec<S>) -> Vec<String> {
    v.iter().map(|s| s.as_ref().to_owned()).collect()
}

/// The `encoding-type` attribute of an element.
pub(crate) fn encoding_of(loc: &Location) -> Option<String> {
    str_attr(loc, "encoding-type")
}

/// A 1-D numeric (or boolean) vector in its stored type.
#[derive(Debug, Clone)]
pub(crate) enum NumVec {
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
}

/// The stored kind of a numeric dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumKind {
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
    Bool,
}

impl NumKind {
    pub fn of(desc: &TypeDescriptor) -> Option<Self> {
        Some(match desc {
            TypeDescriptor::Integer(IntSize::U1) => Self::I8,
            TypeDescriptor::Integer(IntSize::U2) => Self::I16,
            TypeDescriptor::Integer(IntSize::U4) => Self::I32,
            TypeDescriptor::Integer(IntSize::U8) => Self::I64,
            TypeDescriptor::Unsigned(IntSize::U1) => Self::U8,
            TypeDescriptor::Unsigned(IntSize::U2) => Self::U16,
            TypeDescriptor::Unsigned(IntSize::U4) => Self::U32,
            TypeDescriptor::Unsigned(IntSize::U8) => Self::U64,
            TypeDescriptor::Float(FloatSize::U4) => Self::F32,
            TypeDescriptor::Float(FloatSize::U8) => Self::F64,
            TypeDescriptor::Boolean => Self::Bool,
            TypeDescriptor::Enum(e) if is_bool_enum(e) => Self::Bool,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::I8 => "int8",
            Self::I16 => "int16",
            Self::I32 => "int32",
            Self::I64 => "int64",
            Self::U8 => "uint8",
            Self::U16 => "uint16",
            Self::U32 => "uint32",
            Self::U64 => "uint64",
            Self::F32 => "float32",
            Self::F64 => "float64",
            Self::Bool => "bool",
        }
    }
}

fn is_bool_enum(e: &hdf5::types::EnumType) -> bool {
    e.members.len() == 2 && e.members.iter().all(|m| matches!(m.name.as_str(), "FALSE" | "TRUE" | "false" | "true"))
}

/// The numeric kind of a dataset, or a typed error naming it.
pub(crate) fn num_kind(ctx: &Ctx, element: &str, ds: &Dataset, expected: &'static str) -> Result<NumKind> {
    let desc = ctx.h5(element, ds.dtype().and_then(|d| d.to_descriptor()))?;
    NumKind::of(&desc).ok_or_else(|| ctx.wrong_type(element, expected, desc))
}

macro_rules! read_slice {
    ($ctx:expr, $el:expr, $ds:expr, $range:expr, $t:ty) => {{
        let r: Range<usize> = $range;
        if r.is_empty() {
            Vec::<$t>::new()
        } else {
            $ctx.h5($el, $ds.read_slice_1d::<$t, _>(r)).map(|a| a.into_raw_vec_and_offset().0)?
        }
    }};
}

/// Reads `range` of a 1-D numeric dataset in its stored type.
pub(crate) fn read_num(ctx: &Ctx, element: &str, ds: &Dataset, range: Range<usize>) -> Result<NumVec> {
    let kind = num_kind(ctx, element, ds, "a numeric array")?;
    Ok(match kind {
        NumKind::I8 => NumVec::I8(read_slice!(ctx, element, ds, range, i8)),
        NumKind::I16 => NumVec::I16(read_slice!(ctx, element, ds, range, i16)),
        NumKind::I32 => NumVec::I32(read_slice!(ctx, element, ds, range, i32)),
        NumKind::I64 => NumVec::I64(read_slice!(ctx, element, ds, range, i64)),
        NumKind::U8 => NumVec::U8(read_slice!(ctx, element, ds, range, u8)),
        NumKind::U16 => NumVec::U16(read_slice!(ctx, element, ds, range, u16)),
        NumKind::U32 => NumVec::U32(read_slice!(ctx, element, ds, range, u32)),
        NumKind::U64 => NumVec::U64(read_slice!(ctx, element, ds, range, u64)),
        NumKind::F32 => NumVec::F32(read_slice!(ctx, element, ds, range, f32)),
        NumKind::F64 => NumVec::F64(read_slice!(ctx, element, ds, range, f64)),
        NumKind::Bool => NumVec::Bool(read_bool_slice(ctx, element, ds, range)?),
    })
}

fn read_bool_slice(ctx: &Ctx, element: &str, ds: &Dataset, range: Range<usize>) -> Result<Vec<bool>> {
    // h5py stores bool as an int8 enum; read the raw bytes so any FALSE/TRUE enum works.
    let raw = read_slice!(ctx, element, ds, range, i8);
    Ok(raw.into_iter().map(|v| v != 0).collect())
}

macro_rules! map_all {
    ($self:expr, $v:ident => $e:expr) => {
        match $self {
            NumVec::I8($v) => $e,
            NumVec::I16($v) => $e,
            NumVec::I32($v) => $e,
            NumVec::I64($v) => $e,
            NumVec::U8($v) => $e,
            NumVec::U16($v) => $e,
            NumVec::U32($v) => $e,
            NumVec::U64($v) => $e,
            NumVec::F32($v) => $e,
            NumVec::F64($v) => $e,
            NumVec::Bool(b) => {
                let $v: Vec<u8> = b.iter().map(|&x| u8::from(x)).collect();
                $e
            }
        }
    };
}

impl NumVec {
    /// As f64 (exact for every stored integer below 2^53).
    #[allow(clippy::unnecessary_cast)] // the F64 arm of the macro casts f64 to f64
    pub fn to_f64(&self) -> Vec<f64> {
        map_all!(self, v => v.iter().map(|&x| x as f64).collect())
    }

    /// As non-negative integers (indptr, indices, codes ≥ 0); `Err(position, value)` for the
    /// first negative or non-integer entry.
    pub fn to_u64(&self) -> Result<Vec<u64>, (usize, f64)> {
        let as_f = |v: &[f64]| -> Result<Vec<u64>, (usize, f64)> {
            v.iter()
                .enumerate()
                .map(|(i, &x)| if x >= 0.0 && x.fract() == 0.0 { Ok(x as u64) } else { Err((i, x)) })
                .collect()
        };
        match self {
            NumVec::U64(v) => Ok(v.clone()),
            NumVec::U32(v) => Ok(v.iter().map(|&x| u64::from(x)).collect()),
            NumVec::I64(v) => v.iter().enumerate().map(|(i, &x)| u64::try_from(x).map_err(|_| (i, x as f64))).collect(),
            NumVec::I32(v) => {
                v.iter().enumerate().map(|(i, &x)| u64::try_from(x).map_err(|_| (i, f64::from(x)))).collect()
            }
            other => as_f(&other.to_f64()),
        }
    }
}

impl NumVec {
    /// As gene/cell positions below `bound`; `Err(position, value)` for the first entry that is
    /// negative, fractional or out of range. 32-bit inputs are converted in place.
    pub fn into_u32_below(self, bound: usize) -> Result<Vec<u32>, (usize, f64)> {
        match self {
            NumVec::I32(v) => {
                // Negative entries are 2^31 or more as u32, above every bound an i32 can meet.
                let v: Vec<u32> = v.into_iter().map(|x| x as u32).collect();
                match first_at_or_above(&v, bound.min(1 << 31)) {
                    Some(i) => Err((i, f64::from(v[i] as i32))),
                    None => Ok(v),
                }
            }
            NumVec::U32(v) => match first_at_or_above(&v, bound) {
                Some(i) => Err((i, f64::from(v[i]))),
                None => Ok(v),
            },
            other => {
                let v = other.to_u64()?;
                v.iter()
                    .enumerate()
                    .map(|(i, &x)| if (x as usize) < bound { Ok(x as u32) } else { Err((i, x as f64)) })
                    .collect()
            }
        }
    }
}

/// The position of the first entry `≥ bound`: a branch-free scan first (it vectorizes), the
/// position only on failure.
fn first_at_or_above(v: &[u32], bound: usize) -> Option<usize> {
    // Every u32 lies below a larger bound.
    let bound = u32::try_from(bound).ok()?;
    let max = v.iter().fold(0u32, |m, &x| m.max(x));
    (!v.is_empty() && max >= bound).then(|| v.iter().position(|&x| x >= bound).expect("the maximum is"))
}

/// Reads `range` of a 1-D string dataset (variable-length or fixed-length, UTF-8 or ASCII).
pub(crate) fn read_strings(ctx: &Ctx, element: &str, ds: &Dataset, range: Range<usize>) -> Result<Vec<String>> {
    let desc = ctx.h5(element, ds.dtype().and_then(|d| d.to_descriptor()))?;
    Ok(match desc {
        TypeDescriptor::VarLenUnicode => strings(read_slice!(ctx, element, ds, range, VarLenUnicode)),
        TypeDescriptor::VarLenAscii => strings(read_slice!(ctx, element, ds, range, VarLenAscii)),
        TypeDescriptor::FixedAscii(n) if n <= 256 => strings(read_slice!(ctx, element, ds, range, FixedAscii<256>)),
        TypeDescriptor::FixedUnicode(n) if n <= 1024 => {
            strings(read_slice!(ctx, element, ds, range, FixedUnicode<1024>))
        }
        other => return Err(ctx.wrong_type(element, "an array of strings", other)),
    })
}

/// Length of a 1-D dataset.
pub(crate) fn len_1d(ctx: &Ctx, element: &str, ds: &Dataset) -> Result<usize> {
    let shape = ds.shape();
    match shape.as_slice() {
        [n] => Ok(*n),
        _ => Err(ctx.wrong_type(element, "a 1-D array", shape)),
    }
}

#[cfg(test)]
mod tests {
    use super::NumVec;

    #[test]
    fn indices_are_checked_against_the_axis_length() {
        assert_eq!(NumVec::I32(vec![0, 4, 2]).into_u32_below(5), Ok(vec![0, 4, 2]));
        assert_eq!(NumVec::I32(vec![0, 5, 7]).into_u32_below(5), Err((1, 5.0)));
        assert_eq!(NumVec::I32(vec![0, 1, -3, 9]).into_u32_below(5), Err((2, -3.0)));
        // Negative entries are refused whatever the bound.
        assert_eq!(NumVec::I32(vec![3, i32::MIN]).into_u32_below(usize::MAX), Err((1, f64::from(i32::MIN))));
        assert_eq!(NumVec::U32(vec![3, 1]).into_u32_below(4), Ok(vec![3, 1]));
        assert_eq!(NumVec::U32(vec![3, 4, 1]).into_u32_below(4), Err((1, 4.0)));
        assert_eq!(NumVec::U32(vec![u32::MAX]).into_u32_below(1 << 40), Ok(vec![u32::MAX]));
        assert_eq!(NumVec::U32(vec![]).into_u32_below(0), Ok(vec![]));
        assert_eq!(NumVec::I64(vec![1, 6]).into_u32_below(5), Err((1, 6.0)));
    }
}
