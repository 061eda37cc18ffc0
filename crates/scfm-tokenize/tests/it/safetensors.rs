//! A minimal safetensors reader for the parity fixtures (little-endian, C order).

use std::collections::HashMap;
use std::path::Path;

pub struct Tensors {
    bytes: Vec<u8>,
    header: HashMap<String, serde_json::Value>,
    base: usize,
}

impl Tensors {
    pub fn open(path: &Path) -> Self {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: HashMap<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        Self { bytes, header, base: 8 + n }
    }

    fn raw(&self, name: &str, dtype: &str, width: usize) -> &[u8] {
        let h = self.header.get(name).unwrap_or_else(|| panic!("no tensor {name}"));
        assert_eq!(h["dtype"], dtype, "{name}");
        let off = h["data_offsets"].as_array().unwrap();
        let (a, b) = (off[0].as_u64().unwrap() as usize, off[1].as_u64().unwrap() as usize);
        assert_eq!((b - a) % width, 0);
        &self.bytes[self.base + a..self.base + b]
    }

    pub fn i64(&self, name: &str) -> Vec<i64> {
        self.raw(name, "I64", 8).chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
    }

    pub fn f64(&self, name: &str) -> Vec<f64> {
        self.raw(name, "F64", 8).chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
    }

    pub fn u8(&self, name: &str) -> Vec<u8> {
        self.raw(name, "U8", 1).to_vec()
    }

    pub fn f32(&self, name: &str) -> Vec<f32> {
        self.raw(name, "F32", 4).chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    }

    pub fn i32(&self, name: &str) -> Vec<i32> {
        self.raw(name, "I32", 4).chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect()
    }
}

impl Tensors {
    /// The float32 tensor `name`, or `None` when the fixture does not hold it.
    pub fn try_f32(&self, name: &str) -> Option<Vec<f32>> {
        self.header.contains_key(name).then(|| self.f32(name))
    }
}
