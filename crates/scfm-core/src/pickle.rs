//! A restricted reader for the Python pickles that single-cell models ship as vocabularies.
//!
//! It understands the opcodes of pickle protocols 2–5 that build plain data (dicts, lists,
//! tuples, strings, bytes, ints, floats, booleans, `None`), and exactly two globals, the ones
//! NumPy uses for scalars (`numpy.core.multiarray.scalar` / `numpy._core.multiarray.scalar` and
//! `numpy.dtype`). Nothing is ever executed: any other global, or any opcode outside this set, is
//! an error. A memo reference to a container (a config dict shared by several entries of a
//! checkpoint) yields a copy of the finished container; a reference to one still being built
//! (a cycle) is an error, and the copies together may not exceed a budget proportional to the
//! file size, so a hostile file cannot blow up memory by nesting shared containers.
//!
//! [`parse_dict_items`] reads a pickle whose top-level object is a dict (the vocabularies) without
//! building it: each item is handed over as soon as it is complete.
//!
//! Before decoding, one pass over the opcodes collects the memo keys that are ever fetched
//! (`BINGET`), so that values memoized but never fetched — nearly all of them — are not copied.
//!
//! [`parse_torch`] additionally reads the `data.pkl` of PyTorch's zip checkpoints
//! (`torch.save`): the persistent ids of tensor storages, `torch._utils._rebuild_tensor_v2` /
//! `_rebuild_parameter`, the storage-type globals and `collections.OrderedDict` — as descriptions
//! ([`PyValue::TorchTensor`]); the tensor bytes live in the archive and are read by the caller.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

/// A value decoded from a pickle.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    /// `None`.
    None,
    /// `bool`.
    Bool(bool),
    /// `int` or a NumPy integer scalar.
    Int(i64),
    /// `float` or a NumPy float scalar.
    Float(f64),
    /// `str`.
    Str(String),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// `tuple`.
    Tuple(Vec<PyValue>),
    /// `list`.
    List(Vec<PyValue>),
    /// `dict`, in insertion order.
    Dict(Vec<(PyValue, PyValue)>),
    /// A NumPy dtype under construction (`numpy.dtype(code, False, True)`).
    Dtype(String),
    /// One of the allowed globals, before it is called.
    Global(AllowedGlobal),
    /// A PyTorch storage reference (a persistent id `('storage', type, key, location, numel)`).
    TorchStorage { dtype: TorchDType, key: String },
    /// A PyTorch tensor: a strided view of the storage `key` in the archive's `data/` folder
    /// (boxed: it is the largest variant, and vocabularies hold millions of small values).
    TorchTensor(Box<TorchTensor>),
}

impl PyValue {
    /// The value of `key` in a dict with string keys.
    pub fn get(&self, key: &str) -> Option<&PyValue> {
        match self {
            Self::Dict(items) => items.iter().find(|(k, _)| matches!(k, Self::Str(s) if s == key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// An `int` (or `bool`) as i64.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::Int(i) => Some(i),
            Self::Bool(b) => Some(i64::from(b)),
            _ => None,
        }
    }

    /// A `float` or `int` as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::Float(f) => Some(f),
            Self::Int(i) => Some(i as f64),
            _ => None,
        }
    }

    /// A `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Element types of PyTorch storages (`torch.FloatStorage`, …) and of the other tensor
/// containers (safetensors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorchDType {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl TorchDType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }

    /// Whether this is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(self, Self::F64 | Self::F32 | Self::F16 | Self::BF16)
    }

    fn from_storage(name: &str) -> Option<Self> {
        Some(match name {
            "DoubleStorage" => Self::F64,
            "FloatStorage" => Self::F32,
            "HalfStorage" => Self::F16,
            "BFloat16Storage" => Self::BF16,
            "LongStorage" => Self::I64,
            "IntStorage" => Self::I32,
            "ShortStorage" => Self::I16,
            "CharStorage" => Self::I8,
            "ByteStorage" => Self::U8,
            "BoolStorage" => Self::Bool,
            _ => return None,
        })
    }
}

/// A tensor of a PyTorch checkpoint, as `_rebuild_tensor_v2` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorchTensor {
    /// Storage record name (`{root}/data/{key}` in the zip archive).
    pub storage: String,
    /// Element type of the storage.
    pub dtype: TorchDType,
    /// Offset into the storage, in elements.
    pub offset: usize,
    /// Shape.
    pub shape: Vec<usize>,
    /// Strides, in elements.
    pub stride: Vec<usize>,
}

/// The globals the reader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowedGlobal {
    /// `numpy.core.multiarray.scalar(dtype, bytes)`.
    NumpyScalar,
    /// `numpy.dtype(code, align, copy)`.
    NumpyDtype,
    /// `collections.OrderedDict` (torch dialect).
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2` (torch dialect).
    RebuildTensor,
    /// `torch._utils._rebuild_parameter` (torch dialect).
    RebuildParameter,
    /// A storage type such as `torch.FloatStorage` (torch dialect).
    Storage(TorchDType),
}

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleError {
    /// Byte offset of the opcode.
    pub offset: usize,
    /// What is wrong.
    pub reason: String,
}

impl std::error::Error for PickleError {}

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pickle byte {}: {}", self.offset, self.reason)
    }
}

enum Slot<'a> {
    Value(PyValue),
    /// A string, borrowed from the pickle: made a `String` only when it goes into a container,
    /// so that dict items handed over by [`parse_dict_items`] and memoized strings cost no
    /// allocation.
    Text(&'a str),
    Mark,
}

struct Machine<'a, 's> {
    /// Whether the PyTorch globals and persistent ids are accepted.
    torch: bool,
    data: &'a [u8],
    pos: usize,
    op_at: usize,
    stack: Vec<Slot<'a>>,
    /// Memo entries under keys 0, 1, 2, … (what picklers write); any other key goes to `sparse`.
    memo: Vec<MemoEntry<'a>>,
    sparse_memo: HashMap<u32, MemoEntry<'a>>,
    /// Memoized dicts and lists still being built: (stack index, memo key). They are copied into
    /// the memo when they leave the stack, i.e. once complete.
    open: Vec<(usize, u32)>,
    /// Stack indices of open containers that were copied by a memo reference: modifying one
    /// afterwards would make the copy wrong (a cycle), so it is an error.
    copied: Vec<usize>,
    /// How many more values copies out of the memo may create.
    budget: usize,
    /// The memo keys that some opcode fetches; the others are not stored.
    fetched: Fetched,
    /// [`parse_dict_items`]: where the items of the top-level dict go.
    sink: Option<Sink<'a, 's>>,
    /// The top-level dict (stack index 0) streams its items into `sink`.
    streaming_root: bool,
}

/// The memo keys fetched by `BINGET` / `LONG_BINGET`, from a pass over the opcodes.
enum Fetched {
    /// The pass met an opcode it does not know: keep every memo entry.
    All,
    /// Keys below the pickle's length (every `MEMOIZE` key is) as a bit set; the others.
    Keys { dense: Vec<u64>, sparse: HashSet<u32> },
}

impl Fetched {
    /// Collects the fetched keys and counts the memo entries (`MEMOIZE`, `BINPUT`, …), walking
    /// the opcodes without decoding their values.
    fn scan(data: &[u8]) -> (Self, usize) {
        let mut dense = vec![0u64; data.len().div_ceil(64)];
        let mut sparse = HashSet::new();
        let mut puts = 0usize;
        let mut pos = 0usize;
        let int = |at: usize, n: usize| -> Option<u64> {
            let b = data.get(at..at.checked_add(n)?)?;
            Some(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
        };
        let all = (Self::All, 0);
        loop {
            let Some(&op) = data.get(pos) else { return all };
            pos += 1;
            // The length of the opcode's argument.
            let arg = match op {
                b'.' => break,
                b'}'
                | b']'
                | b')'
                | b'('
                | b'N'
                | 0x88
                | 0x89
                | b't'
                | 0x85..=0x87
                | b's'
                | b'u'
                | b'a'
                | b'e'
                | 0x93
                | b'R'
                | b'Q'
                | b'b' => 0,
                0x94 => {
                    puts += 1;
                    0
                }
                b'K' | 0x80 => 1,
                b'M' => 2,
                b'J' => 4,
                0x95 | b'G' => 8,
                b'q' | b'r' => {
                    puts += 1;
                    if op == b'q' { 1 } else { 4 }
                }
                b'h' | b'j' => {
                    let n = if op == b'h' { 1 } else { 4 };
                    let Some(key) = int(pos, n) else { return all };
                    match usize::try_from(key).ok().filter(|&k| k < data.len()) {
                        Some(k) => dense[k / 64] |= 1 << (k % 64),
                        None => {
                            sparse.insert(key as u32);
                        }
                    }
                    n
                }
                0x8a | 0x8c | b'C' => match int(pos, 1) {
                    Some(n) => 1 + n as usize,
                    None => return all,
                },
                b'X' | b'B' => match int(pos, 4) {
                    Some(n) => 4 + n as usize,
                    None => return all,
                },
                0x8d => match int(pos, 8).and_then(|n| usize::try_from(n).ok()) {
                    Some(n) => 8usize.saturating_add(n),
                    None => return all,
                },
                b'c' => {
                    // Two newline-terminated lines.
                    let lines = data[pos..].iter().enumerate().filter(|&(_, &b)| b == b'\n').nth(1);
                    match lines {
                        Some((end, _)) => end + 1,
                        None => return all,
                    }
                }
                _ => return all,
            };
            pos = pos.saturating_add(arg);
        }
        (Self::Keys { dense, sparse }, puts)
    }

    fn contains(&self, key: u32) -> bool {
        match self {
            Self::All => true,
            Self::Keys { dense, sparse } => match dense.get(key as usize / 64) {
                Some(word) => word & (1 << (key % 64)) != 0,
                None => sparse.contains(&key),
            },
        }
    }
}

/// One memo slot.
enum MemoEntry<'a> {
    /// Never fetched (see [`Fetched`]).
    Unused,
    /// A dict or list still on the stack: fetching it copies its current state, and it may not
    /// change afterwards.
    Open,
    /// A string of the pickle.
    Str(&'a str),
    /// Any other shareable value (boxed, to keep the memo small).
    Value(Box<PyValue>),
}

impl<'a> Machine<'a, '_> {
    fn err(&self, reason: impl Into<String>) -> PickleError {
        PickleError { offset: self.op_at, reason: reason.into() }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or_else(|| self.err("truncated"))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PickleError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn len(&mut self, n: u64) -> Result<usize, PickleError> {
        let n = usize::try_from(n).map_err(|_| self.err("length too large"))?;
        if n > self.data.len() - self.pos {
            return Err(self.err("length runs past the end of the file"));
        }
        Ok(n)
    }

    /// Pushes the next `n` bytes as a string.
    fn string(&mut self, n: usize) -> Result<(), PickleError> {
        let b = self.take(n)?;
        let s = std::str::from_utf8(b).map_err(|_| self.err("string is not UTF-8"))?;
        self.stack.push(Slot::Text(s));
        Ok(())
    }

    fn push(&mut self, v: PyValue) {
        self.stack.push(Slot::Value(v));
    }

    /// The top value, strings borrowed from the pickle.
    fn pop_item(&mut self) -> Result<Item<'a>, PickleError> {
        match self.stack.pop() {
            Some(Slot::Value(v)) => {
                self.leave(self.stack.len(), &v)?;
                Ok(Item::Value(v))
            }
            Some(Slot::Text(s)) => Ok(Item::Str(s)),
            Some(Slot::Mark) => Err(self.err("unexpected mark")),
            None => Err(self.err("stack underflow")),
        }
    }

    fn pop(&mut self) -> Result<PyValue, PickleError> {
        self.pop_item().map(Item::into_value)
    }

    /// `v` left the stack from `index`: if it is a memoized dict or list, it is complete now and
    /// its copy goes into the memo.
    fn leave(&mut self, index: usize, v: &PyValue) -> Result<(), PickleError> {
        if index == 0 && self.streaming_root {
            return Err(self.err("the top-level dict, whose items were handed over, is put into another object"));
        }
        self.copied.retain(|&at| at < index);
        while let Some(&(at, key)) = self.open.last()
            && at >= index
        {
            self.open.pop();
            if at == index {
                self.charge(v)?;
                self.memo_set(key, MemoEntry::Value(Box::new(v.clone())));
            }
        }
        Ok(())
    }

    /// Counts the values of a copy against the budget.
    fn charge(&mut self, v: &PyValue) -> Result<(), PickleError> {
        fn count(v: &PyValue) -> usize {
            match v {
                PyValue::Tuple(t) | PyValue::List(t) => 1 + t.iter().map(count).sum::<usize>(),
                PyValue::Dict(d) => 1 + d.iter().map(|(k, v)| count(k) + count(v)).sum::<usize>(),
                _ => 1,
            }
        }
        let n = count(v);
        self.budget =
            self.budget.checked_sub(n).ok_or_else(|| self.err("shared containers expand beyond the size budget"))?;
        Ok(())
    }

    /// The top of the stack, to be modified in place.
    fn top(&mut self) -> Result<&mut PyValue, PickleError> {
        let at = self.op_at;
        if self.copied.last().is_some_and(|&i| i + 1 == self.stack.len()) {
            return Err(self.err("a container is modified after a reference to it was taken (a cycle)"));
        }
        match self.stack.last_mut() {
            Some(Slot::Value(v)) => Ok(v),
            _ => Err(PickleError { offset: at, reason: "expected a value on the stack".into() }),
        }
    }

    /// The values above the topmost mark, bottom first, strings borrowed from the pickle; the mark
    /// is removed.
    fn pop_mark_items(&mut self) -> Result<Vec<Item<'a>>, PickleError> {
        let mark =
            self.stack.iter().rposition(|s| matches!(s, Slot::Mark)).ok_or_else(|| self.err("mark not found"))?;
        let slots = self.stack.split_off(mark + 1);
        self.stack.pop();
        // Containers leave the stack top first, as if popped one by one.
        for (i, slot) in slots.iter().enumerate().rev() {
            if let Slot::Value(v) = slot {
                self.leave(mark + 1 + i, v)?;
            }
        }
        Ok(slots
            .into_iter()
            .map(|slot| match slot {
                Slot::Value(v) => Item::Value(v),
                Slot::Text(s) => Item::Str(s),
                Slot::Mark => unreachable!("the topmost mark is below"),
            })
            .collect())
    }

    fn pop_mark(&mut self) -> Result<Vec<PyValue>, PickleError> {
        Ok(self.pop_mark_items()?.into_iter().map(Item::into_value).collect())
    }

    fn memo_put(&mut self, key: u32) -> Result<(), PickleError> {
        let entry = match self.stack.last() {
            None | Some(Slot::Mark) => return Err(self.err("nothing to memoize")),
            _ if !self.fetched.contains(key) => MemoEntry::Unused,
            Some(&Slot::Text(s)) => MemoEntry::Str(s),
            // Dicts and lists are filled after they are memoized: they are copied once complete.
            Some(Slot::Value(PyValue::List(_) | PyValue::Dict(_))) => {
                self.open.push((self.stack.len() - 1, key));
                MemoEntry::Open
            }
            Some(Slot::Value(v)) => {
                let v = v.clone();
                self.charge(&v)?;
                MemoEntry::Value(Box::new(v))
            }
        };
        self.memo_set(key, entry);
        Ok(())
    }

    /// Streaming: hands `(key, value)` pairs of the top-level dict to the sink; `false` when
    /// the sink stops the decoding.
    fn hand_over(&mut self, pairs: impl IntoIterator<Item = (Item<'a>, Item<'a>)>) -> bool {
        let sink = self.sink.as_mut().expect("streaming has a sink");
        pairs.into_iter().all(|(k, v)| sink(k, v).is_continue())
    }

    fn memo_set(&mut self, key: u32, entry: MemoEntry<'a>) {
        match (key as usize).cmp(&self.memo.len()) {
            std::cmp::Ordering::Less => self.memo[key as usize] = entry,
            std::cmp::Ordering::Equal => self.memo.push(entry),
            std::cmp::Ordering::Greater => {
                self.sparse_memo.insert(key, entry);
            }
        }
    }

    fn memo_get(&mut self, key: u32) -> Result<(), PickleError> {
        let entry = self.memo.get(key as usize).or_else(|| self.sparse_memo.get(&key));
        let v = match entry {
            Some(MemoEntry::Value(v)) => (**v).clone(),
            Some(&MemoEntry::Str(s)) => {
                self.charge(&PyValue::None)?;
                self.stack.push(Slot::Text(s));
                return Ok(());
            }
            Some(MemoEntry::Open) => {
                let at = self.open.iter().find(|(_, k)| *k == key).map(|&(at, _)| at);
                if self.streaming_root && at == Some(0) {
                    return Err(self.err("the top-level dict refers to itself"));
                }
                match at.and_then(|at| self.stack.get(at).map(|s| (at, s))) {
                    Some((at, Slot::Value(v))) => {
                        let v = v.clone();
                        if self.copied.last() != Some(&at) {
                            self.copied.push(at);
                            self.copied.sort_unstable();
                        }
                        v
                    }
                    _ => return Err(self.err(format!("memo entry {key} is missing"))),
                }
            }
            Some(MemoEntry::Unused) | None => return Err(self.err(format!("memo entry {key} is missing"))),
        };
        self.charge(&v)?;
        self.push(v);
        Ok(())
    }

    fn global(&self, module: &str, name: &str) -> Result<PyValue, PickleError> {
        match (module, name) {
            ("numpy.core.multiarray" | "numpy._core.multiarray", "scalar") => {
                Ok(PyValue::Global(AllowedGlobal::NumpyScalar))
            }
            ("numpy", "dtype") => Ok(PyValue::Global(AllowedGlobal::NumpyDtype)),
            ("collections", "OrderedDict") if self.torch => Ok(PyValue::Global(AllowedGlobal::OrderedDict)),
            ("torch._utils", "_rebuild_tensor_v2") if self.torch => Ok(PyValue::Global(AllowedGlobal::RebuildTensor)),
            ("torch._utils", "_rebuild_parameter") if self.torch => {
                Ok(PyValue::Global(AllowedGlobal::RebuildParameter))
            }
            ("torch", storage) if self.torch && TorchDType::from_storage(storage).is_some() => {
                Ok(PyValue::Global(AllowedGlobal::Storage(TorchDType::from_storage(storage).expect("checked"))))
            }
            _ => Err(self.err(format!("refusing to load the global {module}.{name} (only NumPy scalars are allowed)"))),
        }
    }

    fn reduce(&self, callable: PyValue, args: PyValue) -> Result<PyValue, PickleError> {
        let PyValue::Tuple(args) = args else { return Err(self.err("REDUCE arguments are not a tuple")) };
        match (callable, args.as_slice()) {
            (PyValue::Global(AllowedGlobal::NumpyDtype), [PyValue::Str(code), ..]) => Ok(PyValue::Dtype(code.clone())),
            (PyValue::Global(AllowedGlobal::NumpyScalar), [PyValue::Dtype(code), PyValue::Bytes(b)]) => {
                numpy_scalar(code, b)
                    .ok_or_else(|| self.err(format!("unsupported NumPy scalar {code:?} of {} bytes", b.len())))
            }
            (PyValue::Global(AllowedGlobal::OrderedDict), []) => Ok(PyValue::Dict(vec![])),
            (
                PyValue::Global(AllowedGlobal::RebuildTensor),
                [
                    PyValue::TorchStorage { dtype, key },
                    PyValue::Int(offset),
                    PyValue::Tuple(shape),
                    PyValue::Tuple(stride),
                    ..,
                ],
            ) => {
                let dims = |t: &[PyValue]| -> Option<Vec<usize>> {
                    t.iter().map(|d| if let PyValue::Int(d) = d { usize::try_from(*d).ok() } else { None }).collect()
                };
                match (dims(shape), dims(stride), usize::try_from(*offset)) {
                    (Some(shape), Some(stride), Ok(offset)) if shape.len() == stride.len() => {
                        Ok(PyValue::TorchTensor(Box::new(TorchTensor {
                            storage: key.clone(),
                            dtype: *dtype,
                            offset,
                            shape,
                            stride,
                        })))
                    }
                    _ => Err(self.err("malformed tensor shape, stride or offset")),
                }
            }
            (PyValue::Global(AllowedGlobal::RebuildParameter), [t @ PyValue::TorchTensor(_), ..]) => Ok(t.clone()),
            (c, a) => Err(self.err(format!("refusing to call {c:?} with {} arguments", a.len()))),
        }
    }
}

/// Decodes a little-endian NumPy scalar (`<` or `|` byte order; the dtype's BUILD state is
/// checked for big-endian order separately).
fn numpy_scalar(code: &str, b: &[u8]) -> Option<PyValue> {
    let code = code.trim_start_matches(['<', '|', '=']);
    Some(match (code, b.len()) {
        ("i1", 1) => PyValue::Int(i64::from(b[0] as i8)),
        ("u1", 1) => PyValue::Int(i64::from(b[0])),
        ("i2", 2) => PyValue::Int(i64::from(i16::from_le_bytes(b.try_into().ok()?))),
        ("u2", 2) => PyValue::Int(i64::from(u16::from_le_bytes(b.try_into().ok()?))),
        ("i4", 4) => PyValue::Int(i64::from(i32::from_le_bytes(b.try_into().ok()?))),
        ("u4", 4) => PyValue::Int(i64::from(u32::from_le_bytes(b.try_into().ok()?))),
        ("i8", 8) => PyValue::Int(i64::from_le_bytes(b.try_into().ok()?)),
        ("f4", 4) => PyValue::Float(f64::from(f32::from_le_bytes(b.try_into().ok()?))),
        ("f8", 8) => PyValue::Float(f64::from_le_bytes(b.try_into().ok()?)),
        ("b1", 1) => PyValue::Bool(b[0] != 0),
        _ => return None,
    })
}

/// Decodes a pickle into a value; see the module documentation for what is accepted.
///
/// # Errors
/// [`PickleError`] with the byte offset for truncated data, unknown opcodes and refused globals.
pub fn parse(data: &[u8]) -> Result<PyValue, PickleError> {
    run_whole(data, false)
}

/// A key or a value handed over by [`parse_dict_items`]: a string borrowed from the pickle's
/// bytes, or any other value, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Item<'a> {
    /// A `str`.
    Str(&'a str),
    /// Anything else.
    Value(PyValue),
}

impl<'a> Item<'a> {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            Self::Value(v) => v.as_str(),
        }
    }

    /// The value, strings as owned `PyValue::Str`.
    pub fn into_value(self) -> PyValue {
        match self {
            Self::Str(s) => PyValue::Str(s.to_owned()),
            Self::Value(v) => v,
        }
    }
}

/// What [`parse_dict_items`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum TopLevel {
    /// A dict: every item was handed over.
    Dict,
    /// The callback stopped the decoding.
    Stopped,
    /// Not a dict: the value, as [`parse`] decodes it.
    Other(PyValue),
}

/// Decodes a pickle whose top-level object is a dict — the vocabularies — handing each item to
/// `item` as soon as it is complete, in order, instead of building the dict (a tree of several
/// hundred thousand values for Geneformer's Ensembl mapping); strings are borrowed from `data`,
/// so a dict of strings is read without an allocation per item. `item` returns
/// [`ControlFlow::Break`] to stop early (an item of the wrong kind). Items are handed over as
/// the pickle sets them: a key set twice comes twice, the later one winning in a Python dict.
///
/// # Errors
/// [`PickleError`] as [`parse`], and for a top-level dict that refers to itself or ends up inside
/// another object after its items were handed over.
pub fn parse_dict_items<'a>(
    data: &'a [u8],
    mut item: impl FnMut(Item<'a>, Item<'a>) -> ControlFlow<()>,
) -> Result<TopLevel, PickleError> {
    Ok(match run(data, false, Some(&mut item))? {
        Outcome::Value(v) => TopLevel::Other(v),
        Outcome::Dict => TopLevel::Dict,
        Outcome::Stopped => TopLevel::Stopped,
    })
}

/// Decodes the `data.pkl` of a PyTorch zip checkpoint: like [`parse`], plus the PyTorch
/// globals and storage persistent ids (see the module documentation). Tensors come back as
/// [`PyValue::TorchTensor`] descriptions.
///
/// # Errors
/// [`PickleError`] as [`parse`]; any other global (custom classes, `torch.device`, …) is refused.
pub fn parse_torch(data: &[u8]) -> Result<PyValue, PickleError> {
    run_whole(data, true)
}

/// [`run`] without a sink: the whole top-level value.
fn run_whole(data: &[u8], torch: bool) -> Result<PyValue, PickleError> {
    match run(data, torch, None)? {
        Outcome::Value(v) => Ok(v),
        Outcome::Dict | Outcome::Stopped => unreachable!("no sink was given"),
    }
}

/// How [`run`] ended.
enum Outcome {
    /// The top-level value.
    Value(PyValue),
    /// The top-level dict, whose items went to the sink.
    Dict,
    /// The sink stopped it.
    Stopped,
}

/// Where [`parse_dict_items`] sends the items.
type Sink<'a, 's> = &'s mut (dyn FnMut(Item<'a>, Item<'a>) -> ControlFlow<()> + 's);

fn run<'a>(data: &'a [u8], torch: bool, sink: Option<Sink<'a, '_>>) -> Result<Outcome, PickleError> {
    let (fetched, puts) = Fetched::scan(data);
    let mut m = Machine {
        torch,
        data,
        pos: 0,
        op_at: 0,
        stack: vec![],
        memo: Vec::with_capacity(puts),
        sparse_memo: HashMap::new(),
        open: vec![],
        copied: vec![],
        budget: data.len().saturating_mul(4).saturating_add(1 << 16),
        fetched,
        sink,
        streaming_root: false,
    };
    loop {
        m.op_at = m.pos;
        let op = m.u8()?;
        match op {
            0x80 => {
                let proto = m.u8()?;
                if !(2..=5).contains(&proto) {
                    return Err(m.err(format!("pickle protocol {proto} is not supported (2 to 5 are)")));
                }
            }
            0x95 => {
                m.u64()?; // FRAME: a length hint only
            }
            // The result is returned as is: no copy of a memoized top-level container.
            b'.' => {
                let streamed = m.streams_into_root();
                return match m.stack.pop() {
                    Some(Slot::Value(_)) if streamed => Ok(Outcome::Dict),
                    Some(Slot::Value(v)) => Ok(Outcome::Value(v)),
                    Some(Slot::Text(s)) => Ok(Outcome::Value(PyValue::Str(s.to_owned()))),
                    _ => Err(m.err("STOP without a value")),
                };
            }
            b'}' => {
                // With a sink, a dict that is the pickle's first value streams its items.
                // (Nothing leaves the stack before STOP, so an empty stack means the first value.)
                m.streaming_root |= m.sink.is_some() && m.stack.is_empty();
                m.push(PyValue::Dict(vec![]));
            }
            b']' => m.push(PyValue::List(vec![])),
            b')' => m.push(PyValue::Tuple(vec![])),
            b'(' => m.stack.push(Slot::Mark),
            b'N' => m.push(PyValue::None),
            0x88 => m.push(PyValue::Bool(true)),
            0x89 => m.push(PyValue::Bool(false)),
            b'J' => {
                let v = m.u32()? as i32;
                m.push(PyValue::Int(i64::from(v)));
            }
            b'K' => {
                let v = m.u8()?;
                m.push(PyValue::Int(i64::from(v)));
            }
            b'M' => {
                let v = m.u16()?;
                m.push(PyValue::Int(i64::from(v)));
            }
            0x8a => {
                let n = usize::from(m.u8()?);
                let b = m.take(n)?;
                if n > 8 {
                    return Err(m.err("integer wider than 64 bits"));
                }
                let neg = b.last().is_some_and(|&x| x & 0x80 != 0);
                let mut buf = [if neg { 0xff } else { 0 }; 8];
                buf[..n].copy_from_slice(b);
                m.push(PyValue::Int(i64::from_le_bytes(buf)));
            }
            b'G' => {
                let v = f64::from_be_bytes(m.take(8)?.try_into().expect("8 bytes"));
                m.push(PyValue::Float(v));
            }
            0x8c => {
                let n = usize::from(m.u8()?);
                m.string(n)?;
            }
            b'X' => {
                let n = m.u32()?;
                let n = m.len(u64::from(n))?;
                m.string(n)?;
            }
            0x8d => {
                let n = m.u64()?;
                let n = m.len(n)?;
                m.string(n)?;
            }
            b'C' => {
                let n = usize::from(m.u8()?);
                let b = m.take(n)?.to_vec();
                m.push(PyValue::Bytes(b));
            }
            b'B' => {
                let n = m.u32()?;
                let n = m.len(u64::from(n))?;
                let b = m.take(n)?.to_vec();
                m.push(PyValue::Bytes(b));
            }
            0x94 => {
                // MEMOIZE numbers entries by the memo's size, as Python does.
                let key = u32::try_from(m.memo.len() + m.sparse_memo.len()).map_err(|_| m.err("memo overflow"))?;
                m.memo_put(key)?;
            }
            b'q' => {
                let k = u32::from(m.u8()?);
                m.memo_put(k)?;
            }
            b'r' => {
                let k = m.u32()?;
                m.memo_put(k)?;
            }
            b'h' => {
                let k = u32::from(m.u8()?);
                m.memo_get(k)?;
            }
            b'j' => {
                let k = m.u32()?;
                m.memo_get(k)?;
            }
            b't' => {
                let items = m.pop_mark()?;
                m.push(PyValue::Tuple(items));
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let mut items = (0..n).map(|_| m.pop()).collect::<Result<Vec<_>, _>>()?;
                items.reverse();
                m.push(PyValue::Tuple(items));
            }
            b's' => {
                let v = m.pop_item()?;
                let k = m.pop_item()?;
                if m.streams_into_root() {
                    if !m.hand_over([(k, v)]) {
                        return Ok(Outcome::Stopped);
                    }
                    continue;
                }
                let (k, v) = (k.into_value(), v.into_value());
                match m.top()? {
                    PyValue::Dict(d) => d.push((k, v)),
                    _ => return Err(m.err("SETITEM on a non-dict")),
                }
            }
            b'u' => {
                let items = m.pop_mark_items()?;
                if items.len() % 2 != 0 {
                    return Err(m.err("odd number of items for SETITEMS"));
                }
                let mut it = items.into_iter();
                let pairs = std::iter::from_fn(|| Some((it.next()?, it.next()?)));
                if m.streams_into_root() {
                    if !m.hand_over(pairs) {
                        return Ok(Outcome::Stopped);
                    }
                    continue;
                }
                let pairs: Vec<_> = pairs.map(|(k, v)| (k.into_value(), v.into_value())).collect();
                match m.top()? {
                    PyValue::Dict(d) => d.extend(pairs),
                    _ => return Err(m.err("SETITEMS on a non-dict")),
                }
            }
            b'a' => {
                let v = m.pop()?;
                match m.top()? {
                    PyValue::List(l) => l.push(v),
                    _ => return Err(m.err("APPEND on a non-list")),
                }
            }
            b'e' => {
                let items = m.pop_mark()?;
                match m.top()? {
                    PyValue::List(l) => l.extend(items),
                    _ => return Err(m.err("APPENDS on a non-list")),
                }
            }
            b'c' => {
                let module = m.line()?;
                let name = m.line()?;
                let g = m.global(&module, &name)?;
                m.push(g);
            }
            0x93 => {
                let name = m.pop()?;
                let module = m.pop()?;
                let (PyValue::Str(module), PyValue::Str(name)) = (module, name) else {
                    return Err(m.err("STACK_GLOBAL needs two strings"));
                };
                let g = m.global(&module, &name)?;
                m.push(g);
            }
            b'R' => {
                let args = m.pop()?;
                let callable = m.pop()?;
                let v = m.reduce(callable, args)?;
                m.push(v);
            }
            b'Q' if m.torch => {
                // BINPERSID: ('storage', storage type, key, location, numel).
                let pid = m.pop()?;
                let storage = match &pid {
                    PyValue::Tuple(t) => match t.as_slice() {
                        [PyValue::Str(kind), PyValue::Global(AllowedGlobal::Storage(dtype)), PyValue::Str(key), ..]
                            if kind == "storage" =>
                        {
                            Some(PyValue::TorchStorage { dtype: *dtype, key: key.clone() })
                        }
                        _ => None,
                    },
                    _ => None,
                };
                let storage = storage.ok_or_else(|| m.err(format!("unsupported persistent id {pid:?}")))?;
                m.push(storage);
            }
            b'b' if m.torch
                && matches!(m.stack.get(m.stack.len().saturating_sub(2)), Some(Slot::Value(PyValue::Dict(_)))) =>
            {
                // BUILD on an OrderedDict sets attributes (a state dict's `_metadata`): ignored.
                m.pop()?;
            }
            b'b' => {
                // BUILD on a dtype sets its state: (version, byte order, …). Only little-endian
                // or byte-order-free dtypes are accepted.
                let state = m.pop()?;
                let order = match &state {
                    PyValue::Tuple(t) => t.get(1).cloned(),
                    _ => None,
                };
                match (m.top()?, order) {
                    (PyValue::Dtype(_), Some(PyValue::Str(o))) if o == "<" || o == "|" || o == "=" => {}
                    (PyValue::Dtype(code), o) => {
                        let code = code.clone();
                        return Err(m.err(format!("NumPy dtype {code:?} with byte order {o:?} is not supported")));
                    }
                    _ => return Err(m.err("BUILD is only accepted on NumPy dtypes")),
                }
            }
            other => return Err(m.err(format!("opcode 0x{other:02x} is not supported by this restricted reader"))),
        }
    }
}

impl Machine<'_, '_> {
    /// Whether the dict that `SETITEM(S)` sets items in is the streamed top-level dict.
    fn streams_into_root(&self) -> bool {
        self.streaming_root && self.stack.len() == 1
    }

    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.data[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or_else(|| self.err("unterminated line"))?;
        let s = std::str::from_utf8(&rest[..end]).map_err(|_| self.err("line is not UTF-8"))?.to_owned();
        self.pos += end + 1;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `os.system("true")` as protocol 2 would pickle it.
    const HOSTILE: &[u8] = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R.";

    #[test]
    fn memo_entries_under_any_key_share_strings_but_not_containers() {
        // {"a": "x", "b": <memo 7>, "c": <memo 4000000000>}: "x" is stored under key 7 (BINPUT)
        // and under a huge sparse key (LONG_BINPUT), and fetched back from both.
        let p = b"\x80\x02}(X\x01\x00\x00\x00aX\x01\x00\x00\x00xq\x07r\x00\x28\x6b\xeeX\x01\x00\x00\x00bh\x07X\x01\x00\x00\x00cj\x00\x28\x6b\xeeu.";
        let d = parse(p).unwrap();
        let PyValue::Dict(items) = d else { panic!("{d:?}") };
        let values: Vec<&PyValue> = items.iter().map(|(_, v)| v).collect();
        assert_eq!(values, [&PyValue::Str("x".into()); 3]);
        // A list that appends itself is a cycle: refused.
        let cycle = b"\x80\x02]q\x00h\x00a.";
        assert!(parse(cycle).unwrap_err().reason.contains("cycle"));
    }

    #[test]
    fn finished_containers_are_shared_by_copy_within_a_budget() {
        // {"gene": {"n": 62}, "cell": <memo 1>} — what torch.save writes for one config dict
        // referenced by two checkpoint entries.
        let p = b"\x80\x02}q\x00(X\x04\x00\x00\x00gene}q\x01X\x01\x00\x00\x00nK>sX\x04\x00\x00\x00cellh\x01u.";
        let d = parse(p).unwrap();
        assert_eq!(d.get("cell"), d.get("gene"));
        assert_eq!(d.get("cell").and_then(|c| c.get("n")).and_then(PyValue::as_i64), Some(62));
        // A "billion laughs": l0 = [0]; l(i+1) = [l(i), l(i)]; 40 levels double each time.
        let mut p = b"\x80\x02]r\x00\x00\x00\x00K\x00a".to_vec();
        for i in 0u32..40 {
            p.extend_from_slice(b"]r");
            p.extend_from_slice(&(i + 1).to_le_bytes());
            p.extend_from_slice(b"j");
            p.extend_from_slice(&i.to_le_bytes());
            p.extend_from_slice(b"aj");
            p.extend_from_slice(&i.to_le_bytes());
            p.extend_from_slice(b"a");
        }
        p.push(b'.');
        assert!(parse(&p).unwrap_err().reason.contains("budget"));
    }

    #[test]
    fn code_executing_globals_are_refused_in_both_dialects() {
        for result in [parse(HOSTILE), parse_torch(HOSTILE)] {
            let e = result.unwrap_err();
            assert!(e.reason.contains("os.system"), "{e}");
        }
    }

    #[test]
    fn torch_globals_and_persistent_ids_are_refused_outside_the_torch_dialect() {
        let rebuild = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n.";
        assert!(parse(rebuild).is_err());
        assert!(matches!(parse_torch(rebuild), Ok(PyValue::Global(AllowedGlobal::RebuildTensor))));
        let pid = b"\x80\x02X\x01\x00\x00\x00aQ.";
        assert!(parse(pid).unwrap_err().reason.contains("0x51"));
        assert!(parse_torch(pid).unwrap_err().reason.contains("persistent id"));
    }
}
