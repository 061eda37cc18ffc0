//! PyTorch zip checkpoints (`torch.save` since 1.6): `pytorch_model.bin`, `best_model.pt`,
//! `.pth`, `.ckpt`. The archive holds `{root}/data.pkl` (the object graph) and one record
//! `{root}/data/{key}` per storage; the pickle is read by scfm-core's restricted reader, which
//! executes nothing and refuses every global outside PyTorch's tensor-rebuilding set.

use std::collections::BTreeMap;
use std::path::Path;

use scfm_core::pickle::{self, PyValue, TorchTensor};

use crate::ImportError;
use crate::checkpoint::DType;

/// The stored (uncompressed) members of a zip archive: name → byte range.
fn zip_members(path: &Path, data: &[u8]) -> Result<BTreeMap<String, std::ops::Range<usize>>, ImportError> {
    let bad = |reason: String| ImportError::Format { path: path.to_owned(), kind: "PyTorch zip checkpoint", reason };
    let u16_at = |at: usize| data.get(at..at + 2).map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])));
    let u32_at = |at: usize| data.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4")) as usize);
    // End of central directory: the last PK\x05\x06 within the final 64 KiB + 22 bytes.
    let tail = data.len().saturating_sub(65_557);
    let eocd = (tail..data.len().saturating_sub(21))
        .rev()
        .find(|&i| data[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
        .ok_or_else(|| bad("no zip end-of-central-directory record (a legacy, non-zip torch file?)".into()))?;
    let entries = u16_at(eocd + 10).ok_or_else(|| bad("truncated end record".into()))?;
    let mut at = u32_at(eocd + 16).ok_or_else(|| bad("truncated end record".into()))?;
    if at == 0xffff_ffff || entries == 0xffff {
        // ZIP64: the real values are in the zip64 end record just before.
        let loc = eocd.checked_sub(20).filter(|&l| data[l..l + 4] == [0x50, 0x4b, 0x06, 0x07]);
        let rec =
            loc.and_then(|l| data.get(l + 8..l + 16)).map(|b| u64::from_le_bytes(b.try_into().expect("8")) as usize);
        let rec = rec.filter(|&r| data.get(r..r + 4) == Some(&[0x50, 0x4b, 0x06, 0x06][..]));
        let rec = rec.ok_or_else(|| bad("zip64 archive without a zip64 end record".into()))?;
        at = data
            .get(rec + 48..rec + 56)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8")) as usize)
            .unwrap_or(usize::MAX);
    }
    let mut members = BTreeMap::new();
    while data.get(at..at + 4) == Some(&[0x50, 0x4b, 0x01, 0x02][..]) {
        let field = |off: usize| u32_at(at + off).ok_or_else(|| bad("truncated central directory".into()));
        let method = u16_at(at + 10).ok_or_else(|| bad("truncated central directory".into()))?;
        let (mut size, name_len, extra_len, comment_len) =
            (field(20)?, u16_at(at + 28).unwrap_or(0), u16_at(at + 30).unwrap_or(0), u16_at(at + 32).unwrap_or(0));
        let mut local = field(42)?;
        let name = data.get(at + 46..at + 46 + name_len).ok_or_else(|| bad("truncated member name".into()))?;
        let name = String::from_utf8_lossy(name).into_owned();
        // ZIP64 extra field (id 1): sizes and offset that overflowed 32 bits, in this order.
        let mut extra = at + 46 + name_len;
        let extra_end = extra + extra_len;
        while extra + 4 <= extra_end {
            let (id, len) = (u16_at(extra).unwrap_or(0), u16_at(extra + 2).unwrap_or(0));
            if id == 1 {
                let mut p = extra + 4;
                let mut next = || {
                    let v = data.get(p..p + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8")) as usize);
                    p += 8;
                    v
                };
                if field(24)? == 0xffff_ffff {
                    next();
                }
                if size == 0xffff_ffff {
                    size = next().ok_or_else(|| bad("truncated zip64 field".into()))?;
                }
                if local == 0xffff_ffff {
                    local = next().ok_or_else(|| bad("truncated zip64 field".into()))?;
                }
            }
            extra += 4 + len;
        }
        if method != 0 {
            return Err(bad(format!("member {name} is compressed (method {method}); torch.save stores members")));
        }
        let header_len = 30 + u16_at(local + 26).unwrap_or(0) + u16_at(local + 28).unwrap_or(0);
        let start = local + header_len;
        if data.get(local..local + 4) != Some(&[0x50, 0x4b, 0x03, 0x04][..]) || start + size > data.len() {
            return Err(bad(format!("member {name} lies outside the file")));
        }
        members.insert(name, start..start + size);
        at = extra_end + comment_len;
    }
    Ok(members)
}

/// One tensor of a checkpoint, materialised in C order.
pub(crate) struct RawTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Where its little-endian element bytes are in the output buffer.
    pub bytes: std::ops::Range<usize>,
}

/// A PyTorch zip checkpoint, opened: the object graph of its `data.pkl` (dicts, lists, numbers,
/// strings, and tensors as [`PyValue::TorchTensor`] descriptions) over the archive's bytes.
///
/// Use it to read containers that hold more than a state dict (scBERT's
/// `{epoch, model_state_dict, optimizer_state_dict, …}`, scFoundation's `{gene, cell, rde}`
/// entries with their configs), then [`Self::tensors`] to materialise the tensors of one part.
pub struct TorchArchive {
    path: std::path::PathBuf,
    data: Vec<u8>,
    root: String,
    members: BTreeMap<String, std::ops::Range<usize>>,
    object: PyValue,
}

impl TorchArchive {
    /// Reads the archive and decodes its pickle, executing nothing.
    ///
    /// # Errors
    /// [`ImportError::Io`] and [`ImportError::Format`] (not a zip, compressed members, a pickle
    /// that needs a global outside PyTorch's tensor set, big-endian tensors).
    pub fn open(path: &Path) -> Result<Self, ImportError> {
        let data = std::fs::read(path).map_err(|source| ImportError::Io { path: path.to_owned(), source })?;
        let bad =
            |reason: String| ImportError::Format { path: path.to_owned(), kind: "PyTorch zip checkpoint", reason };
        let members = zip_members(path, &data)?;
        let (pkl_name, pkl) = members
            .iter()
            .find(|(n, _)| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
            .ok_or_else(|| bad("no */data.pkl record".into()))?;
        let root = pkl_name.trim_end_matches("data.pkl").to_owned();
        if let Some(order) = members.get(&format!("{root}byteorder"))
            && &data[order.clone()] != b"little"
        {
            return Err(bad("big-endian tensors are not supported".into()));
        }
        let object = pickle::parse_torch(&data[pkl.clone()]).map_err(|e| bad(e.to_string()))?;
        Ok(Self { path: path.to_owned(), data, root, members, object })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The top-level object (usually a dict).
    pub fn object(&self) -> &PyValue {
        &self.object
    }

    /// The tensors reachable through (nested) dicts of `object` (a part of [`Self::object`]),
    /// named by the dict keys joined with `.` and then passed through `rename` (`None` leaves a
    /// tensor out). Tensors that share a storage (tied weights) are copied apart.
    ///
    /// # Errors
    /// [`ImportError::Format`] for a missing storage record or a view outside its storage.
    pub fn tensors(
        &self,
        object: &PyValue,
        rename: impl Fn(String) -> Option<String>,
    ) -> Result<crate::checkpoint::TensorFile, ImportError> {
        let bad =
            |reason: String| ImportError::Format { path: self.path.clone(), kind: "PyTorch zip checkpoint", reason };
        let mut described = vec![];
        collect(String::new(), object, &mut described);
        let mut out = vec![];
        let mut tensors = Vec::with_capacity(described.len());
        for (name, t) in described {
            let Some(name) = rename(name) else { continue };
            let storage = self
                .members
                .get(&format!("{}data/{}", self.root, t.storage))
                .ok_or_else(|| bad(format!("{name}: storage record {} is missing", t.storage)))?;
            let start = out.len();
            gather(&self.data[storage.clone()], t.dtype.size(), t, &mut out).ok_or_else(|| {
                bad(format!(
                    "{name}: view {:?} (stride {:?}, offset {}) exceeds its storage",
                    t.shape, t.stride, t.offset
                ))
            })?;
            tensors.push(RawTensor { name, dtype: t.dtype, shape: t.shape.clone(), bytes: start..out.len() });
        }
        Ok(crate::checkpoint::TensorFile::from_raw(&self.path, out, tensors))
    }
}

fn collect<'v>(prefix: String, v: &'v PyValue, out: &mut Vec<(String, &'v TorchTensor)>) {
    match v {
        PyValue::TorchTensor(t) => out.push((prefix, t)),
        PyValue::Dict(items) => {
            for (k, v) in items {
                let key = match k {
                    PyValue::Str(s) => s.clone(),
                    PyValue::Int(i) => i.to_string(),
                    _ => continue,
                };
                collect(if prefix.is_empty() { key } else { format!("{prefix}.{key}") }, v, out);
            }
        }
        _ => {}
    }
}

/// Appends the elements of a strided view to `out`, in C order; `None` (nothing appended) when
/// the view exceeds the storage.
fn gather(storage: &[u8], size: usize, t: &TorchTensor, out: &mut Vec<u8>) -> Option<()> {
    let n: usize = t.shape.iter().product();
    if n == 0 {
        return Some(());
    }
    let last = t.offset + t.shape.iter().zip(&t.stride).map(|(d, s)| (d - 1) * s).sum::<usize>();
    if (last + 1) * size > storage.len() {
        return None;
    }
    let mut expected = 1;
    let contiguous = t.shape.iter().zip(&t.stride).rev().all(|(d, s)| {
        let ok = *d == 1 || *s == expected;
        expected *= d;
        ok
    });
    if contiguous {
        out.extend_from_slice(&storage[t.offset * size..(t.offset + n) * size]);
        return Some(());
    }
    out.reserve(n * size);
    let mut index = vec![0usize; t.shape.len()];
    for _ in 0..n {
        let at = t.offset + index.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
        out.extend_from_slice(&storage[at * size..(at + 1) * size]);
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < t.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Some(())
}
