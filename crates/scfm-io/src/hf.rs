//! Datasets in the Hugging Face `datasets` `save_to_disk` layout: Arrow stream files
//! `data-0000k-of-0000n.arrow`, `dataset_info.json` with the features, and `state.json` — what
//! `datasets.load_from_disk` opens, so Python users (Geneformer's trainers among them) read
//! scfm's tokenized output unchanged.
//!
//! Written atomically like corpora: shards under temporary names, `state.json` last.
//! [`HfDataset`] reads such a dataset (scfm's or one `datasets` wrote) in any row order
//! without loading it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int32Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde_json::{Value, json};

use crate::corpus::writer_support::write_atomic;
use crate::error::{IoError, Result, io_err};

/// The `datasets` feature of an Arrow type, or `None` when it has no plain equivalent.
pub fn hf_feature(dt: &DataType) -> Option<Value> {
    let value = |d: &str| json!({"dtype": d, "_type": "Value"});
    Some(match dt {
        DataType::Boolean => value("bool"),
        DataType::Int8 => value("int8"),
        DataType::Int16 => value("int16"),
        DataType::Int32 => value("int32"),
        DataType::Int64 => value("int64"),
        DataType::UInt8 => value("uint8"),
        DataType::UInt16 => value("uint16"),
        DataType::UInt32 => value("uint32"),
        DataType::UInt64 => value("uint64"),
        DataType::Float32 => value("float32"),
        DataType::Float64 => value("float64"),
        DataType::Utf8 => value("string"),
        DataType::LargeUtf8 => value("large_string"),
        DataType::List(f) | DataType::LargeList(f) => {
            json!({"feature": hf_feature(f.data_type())?, "_type": "Sequence"})
        }
        _ => return None,
    })
}

/// Dictionary (categorical) columns become their values: `datasets` reads plain strings.
fn plain_type(dt: &DataType) -> DataType {
    match dt {
        DataType::Dictionary(_, v) => v.as_ref().clone(),
        other => other.clone(),
    }
}

fn plain_column(col: &ArrayRef) -> std::result::Result<ArrayRef, arrow_schema::ArrowError> {
    match col.as_any_dictionary_opt() {
        Some(d) => arrow_select::take::take(d.values(), d.keys(), None),
        None => Ok(col.clone()),
    }
}

/// The shard being written: its temporary path, writer, rows so far, and its write-behind.
struct OpenShard {
    tmp: PathBuf,
    writer: StreamWriter<BufWriter<File>>,
    rows: usize,
    write_behind: WriteBehind,
}

/// Starts the disk write-back of a shard while it is written: a thread syncs the file's data
/// whenever the writer has written more, so the fsync when the shard is closed waits for the last
/// few megabytes, not for the whole file (for 60,000 tokenized cells, a 240 MB shard, that fsync
/// took 0.24 s of a 1.2 s run).
struct WriteBehind {
    poke: std::sync::mpsc::SyncSender<()>,
    handle: std::thread::JoinHandle<std::io::Result<()>>,
}

impl WriteBehind {
    fn start(file: &File, tmp: &Path) -> Result<Self> {
        let file = file.try_clone().map_err(io_err(tmp))?;
        // One poke pending at most: pokes while a sync runs fold into the next one.
        let (poke, pokes) = std::sync::mpsc::sync_channel::<()>(1);
        let handle = std::thread::Builder::new()
            .name("scfm-write-behind".into())
            .spawn(move || {
                for () in pokes {
                    file.sync_data()?;
                }
                Ok(())
            })
            .map_err(io_err(tmp))?;
        Ok(Self { poke, handle })
    }

    /// More was written: sync it when the thread is free.
    fn poke(&self) {
        // Full: a sync is pending and will include these bytes. Disconnected: the thread met an
        // error, which `finish` reports.
        let _ = self.poke.try_send(());
    }

    /// Stops the thread; the first error it met.
    fn finish(self) -> std::io::Result<()> {
        drop(self.poke);
        self.handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// Writes a `save_to_disk` dataset; see the [module documentation](self).
pub struct HfDatasetWriter {
    dir: PathBuf,
    schema: SchemaRef,
    features: Value,
    shard_rows: usize,
    current: Option<OpenShard>,
    shards: Vec<PathBuf>,
    rows: usize,
}

impl std::fmt::Debug for HfDatasetWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfDatasetWriter").field("dir", &self.dir).field("rows", &self.rows).finish()
    }
}

impl HfDatasetWriter {
    /// Starts a dataset in `dir` for batches of `schema` (dictionary columns are written as
    /// their values); at most `shard_rows` rows per file.
    ///
    /// # Errors
    /// [`IoError::Corpus`] for a column type `datasets` has no feature for; folder errors.
    pub fn create(dir: impl AsRef<Path>, schema: &Schema, shard_rows: usize) -> Result<Self> {
        let dir = dir.as_ref().to_owned();
        let fields: Vec<Field> =
            schema.fields().iter().map(|f| Field::new(f.name(), plain_type(f.data_type()), f.is_nullable())).collect();
        let mut features = serde_json::Map::new();
        for f in &fields {
            let feat = hf_feature(f.data_type()).ok_or_else(|| IoError::Corpus {
                path: dir.clone(),
                reason: format!("column {:?} of type {} has no Hugging Face feature", f.name(), f.data_type()),
            })?;
            features.insert(f.name().clone(), feat);
        }
        let features = Value::Object(features);
        let meta = json!({"info": {"features": features}}).to_string();
        let metadata = std::collections::HashMap::from([("huggingface".to_owned(), meta)]);
        let schema = Arc::new(Schema::new(fields).with_metadata(metadata));
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let state = dir.join("state.json");
        if state.exists() {
            std::fs::remove_file(&state).map_err(io_err(&state))?;
        }
        Ok(Self { dir, schema, features, shard_rows: shard_rows.max(1), current: None, shards: vec![], rows: 0 })
    }

    /// The schema written (dictionaries replaced by their values, `huggingface` metadata).
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Appends rows.
    ///
    /// # Errors
    /// Arrow and file errors; a batch whose columns differ from the schema.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let arrow = |source| IoError::Arrow { path: self.dir.clone(), source };
        let cols =
            batch.columns().iter().map(plain_column).collect::<std::result::Result<Vec<_>, _>>().map_err(arrow)?;
        let batch = RecordBatch::try_new(self.schema.clone(), cols).map_err(arrow)?;
        let mut start = 0;
        while start < batch.num_rows() {
            if self.current.is_none() {
                let tmp = self.dir.join(format!("shard-{:05}.arrow.tmp", self.shards.len()));
                let file = File::create(&tmp).map_err(io_err(&tmp))?;
                let write_behind = WriteBehind::start(&file, &tmp)?;
                let writer = StreamWriter::try_new(BufWriter::with_capacity(1 << 20, file), &self.schema)
                    .map_err(|source| IoError::Arrow { path: tmp.clone(), source })?;
                self.current = Some(OpenShard { tmp, writer, rows: 0, write_behind });
            }
            let shard = self.current.as_mut().expect("opened above");
            let take = (self.shard_rows - shard.rows).min(batch.num_rows() - start);
            shard
                .writer
                .write(&batch.slice(start, take))
                .map_err(|source| IoError::Arrow { path: shard.tmp.clone(), source })?;
            shard.write_behind.poke();
            shard.rows += take;
            self.rows += take;
            start += take;
            if shard.rows >= self.shard_rows {
                self.close_shard()?;
            }
        }
        Ok(())
    }

    fn close_shard(&mut self) -> Result<()> {
        let Some(OpenShard { tmp, mut writer, write_behind, .. }) = self.current.take() else { return Ok(()) };
        writer.finish().map_err(|source| IoError::Arrow { path: tmp.clone(), source })?;
        let mut inner = writer.into_inner().map_err(|source| IoError::Arrow { path: tmp.clone(), source })?;
        inner.flush().map_err(io_err(&tmp))?;
        write_behind.finish().map_err(io_err(&tmp))?;
        inner.get_ref().sync_all().map_err(io_err(&tmp))?;
        self.shards.push(tmp);
        Ok(())
    }

    /// Completes the dataset; returns the number of rows.
    ///
    /// # Errors
    /// File errors.
    pub fn finish(mut self) -> Result<usize> {
        self.close_shard()?;
        if self.shards.is_empty() {
            // An empty dataset still has one (empty) data file.
            let tmp = self.dir.join("shard-00000.arrow.tmp");
            let file = File::create(&tmp).map_err(io_err(&tmp))?;
            let mut w = StreamWriter::try_new(BufWriter::new(file), &self.schema)
                .map_err(|source| IoError::Arrow { path: tmp.clone(), source })?;
            w.finish().map_err(|source| IoError::Arrow { path: tmp.clone(), source })?;
            self.shards.push(tmp);
        }
        let n = self.shards.len();
        let mut files = vec![];
        let mut fingerprint = blake3::Hasher::new();
        for (k, tmp) in self.shards.iter().enumerate() {
            let name = format!("data-{k:05}-of-{n:05}.arrow");
            let dest = self.dir.join(&name);
            std::fs::rename(tmp, &dest).map_err(io_err(&dest))?;
            fingerprint.update(name.as_bytes());
            fingerprint.update(&std::fs::metadata(&dest).map_err(io_err(&dest))?.len().to_le_bytes());
            files.push(json!({"filename": name}));
        }
        let info = json!({"citation": "", "description": "", "features": self.features, "homepage": "", "license": ""});
        write_atomic(
            &self.dir.join("dataset_info.json"),
            serde_json::to_string_pretty(&info).expect("json").as_bytes(),
        )?;
        let state = json!({
            "_data_files": files,
            "_fingerprint": &fingerprint.finalize().to_hex().as_str()[..16],
            "_format_columns": null,
            "_format_kwargs": {},
            "_format_type": null,
            "_output_all_columns": false,
            "_split": null
        });
        write_atomic(&self.dir.join("state.json"), serde_json::to_string_pretty(&state).expect("json").as_bytes())?;
        Ok(self.rows)
    }
}

/// A `save_to_disk` dataset opened for reading rows in any order (a training run's shuffled
/// batches). The Arrow files are memory-mapped and their record batches decoded without
/// copying, so a row's values are read from the file when it is asked for: resident memory is
/// the operating system's page cache of the rows in use, which it can drop again, not the
/// dataset's size.
pub struct HfDataset {
    dir: PathBuf,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    /// First row of every batch, then the number of rows.
    starts: Vec<usize>,
}

impl std::fmt::Debug for HfDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfDataset").field("dir", &self.dir).field("rows", &self.len()).finish()
    }
}

impl HfDataset {
    /// Whether `dir` looks like a `save_to_disk` dataset (it has `state.json` and
    /// `dataset_info.json`).
    pub fn is_dataset(dir: &Path) -> bool {
        dir.join("state.json").is_file() && dir.join("dataset_info.json").is_file()
    }

    /// Opens the dataset in `dir`: the files `state.json` lists, in its order.
    ///
    /// # Errors
    /// [`IoError::Corpus`] for a missing or malformed `state.json` or files whose schemas
    /// differ; file and Arrow errors.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_owned();
        let bad = |reason: String| IoError::Corpus { path: dir.clone(), reason };
        let state_path = dir.join("state.json");
        let state: Value = serde_json::from_slice(&std::fs::read(&state_path).map_err(io_err(&state_path))?)
            .map_err(|e| bad(format!("state.json: {e}")))?;
        let files: Vec<String> = state["_data_files"]
            .as_array()
            .ok_or_else(|| bad("state.json lists no _data_files".into()))?
            .iter()
            .map(|f| {
                f["filename"].as_str().map(str::to_owned).ok_or_else(|| bad("a data file without filename".into()))
            })
            .collect::<Result<_>>()?;
        let (mut schema, mut batches, mut starts) = (None::<SchemaRef>, vec![], vec![0]);
        for name in files {
            let path = dir.join(&name);
            let file = File::open(&path).map_err(io_err(&path))?;
            // SAFETY: the map is read-only and lives as long as the buffers built on it (the
            // `Arc` below is their owner). Like every memory map it assumes nobody truncates
            // the file while it is open; datasets are written once, under temporary names.
            let map = Arc::new(unsafe { memmap2::Mmap::map(&file) }.map_err(io_err(&path))?);
            let Some(ptr) = std::ptr::NonNull::new(map.as_ptr().cast_mut()) else { continue };
            // SAFETY: `ptr` points at `map.len()` readable bytes owned by `map`.
            let mut buffer = unsafe { Buffer::from_custom_allocation(ptr, map.len(), map.clone()) };
            let arrow = |source| IoError::Arrow { path: path.clone(), source };
            let mut decoder = StreamDecoder::new();
            while !buffer.is_empty() {
                if let Some(batch) = decoder.decode(&mut buffer).map_err(arrow)? {
                    starts.push(starts.last().copied().unwrap_or(0) + batch.num_rows());
                    batches.push(batch);
                }
            }
            decoder.finish().map_err(arrow)?;
            let file_schema = decoder.schema().ok_or_else(|| bad(format!("{name} holds no Arrow stream")))?;
            match &schema {
                Some(s) if s.fields() != file_schema.fields() => {
                    return Err(bad(format!("{name} has other columns than the first data file")));
                }
                Some(_) => {}
                None => schema = Some(file_schema),
            }
        }
        let schema = schema.ok_or_else(|| bad("the dataset has no data file".into()))?;
        Ok(Self { dir, schema, batches, starts })
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.starts.last().copied().unwrap_or(0)
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The columns.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn column_index(&self, column: &str) -> Result<usize> {
        self.schema.index_of(column).map_err(|_| IoError::UnknownColumn {
            path: self.dir.clone(),
            column: column.to_owned(),
            available: self.schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", "),
        })
    }

    /// The record batch and the row in it of `row`.
    fn locate(&self, row: usize) -> (&RecordBatch, usize) {
        let b = self.starts.partition_point(|&s| s <= row) - 1;
        (&self.batches[b], row - self.starts[b])
    }

    /// The list in `column` at `row` as an array of its values.
    fn list_at(&self, column: usize, row: usize) -> Result<ArrayRef> {
        let (batch, r) = self.locate(row);
        let col = batch.column(column);
        match (col.as_list_opt::<i32>(), col.as_list_opt::<i64>()) {
            (Some(l), _) => Ok(l.value(r)),
            (_, Some(l)) => Ok(l.value(r)),
            _ => Err(IoError::Corpus {
                path: self.dir.clone(),
                reason: format!("column {:?} is {}, not a list", self.schema.field(column).name(), col.data_type()),
            }),
        }
    }

    /// The string column `column` of every row (`None` at nulls), e.g. a carried cell-type
    /// label; plain (`string`, `large_string`) or dictionary-encoded.
    ///
    /// # Errors
    /// [`IoError::UnknownColumn`]; [`IoError::Corpus`] for a column of another type.
    pub fn strings(&self, column: &str) -> Result<Vec<Option<String>>> {
        let c = self.column_index(column)?;
        let mut out = Vec::with_capacity(self.len());
        for batch in &self.batches {
            let col = batch.column(c);
            let plain = plain_column(col).map_err(|source| IoError::Arrow { path: self.dir.clone(), source })?;
            match (plain.as_string_opt::<i32>(), plain.as_string_opt::<i64>()) {
                (Some(a), _) => out.extend(a.iter().map(|v| v.map(str::to_owned))),
                (_, Some(a)) => out.extend(a.iter().map(|v| v.map(str::to_owned))),
                _ => {
                    return Err(IoError::Corpus {
                        path: self.dir.clone(),
                        reason: format!("column {column:?} is {}, not strings", col.data_type()),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The number of elements of the list column `column` in every row, read from the list
    /// offsets alone.
    ///
    /// # Errors
    /// [`IoError::UnknownColumn`]; [`IoError::Corpus`] when it is not a list column.
    pub fn list_lengths(&self, column: &str) -> Result<Vec<usize>> {
        let c = self.column_index(column)?;
        let mut out = Vec::with_capacity(self.len());
        for batch in &self.batches {
            let col = batch.column(c);
            match (col.as_list_opt::<i32>(), col.as_list_opt::<i64>()) {
                (Some(l), _) => out.extend(l.offsets().lengths()),
                (_, Some(l)) => out.extend(l.offsets().lengths()),
                _ => {
                    return Err(IoError::Corpus {
                        path: self.dir.clone(),
                        reason: format!("column {column:?} is {}, not a list", col.data_type()),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The integers of the list column `column` (any integer type, e.g. `input_ids`) at
    /// `row`, as token ids.
    ///
    /// # Errors
    /// [`IoError::UnknownColumn`]; [`IoError::Corpus`] for a column of another type, or a
    /// negative or null value.
    pub fn ids(&self, column: &str, row: usize) -> Result<Vec<u32>> {
        let values = self.list_at(self.column_index(column)?, row)?;
        let ints = arrow_cast_u32(&values).ok_or_else(|| IoError::Corpus {
            path: self.dir.clone(),
            reason: format!("row {row} of {column:?}: {} values are not token ids", values.data_type()),
        })?;
        Ok(ints)
    }

    /// The float32 list column `column` (e.g. `values`) at `row`.
    ///
    /// # Errors
    /// [`IoError::UnknownColumn`]; [`IoError::Corpus`] for a column of another type or nulls.
    pub fn floats(&self, column: &str, row: usize) -> Result<Vec<f32>> {
        let values = self.list_at(self.column_index(column)?, row)?;
        match values.as_primitive_opt::<Float32Type>() {
            Some(v) if v.null_count() == 0 => Ok(v.values().to_vec()),
            _ => Err(IoError::Corpus {
                path: self.dir.clone(),
                reason: format!("row {row} of {column:?}: {} values with nulls or not float32", values.data_type()),
            }),
        }
    }
}

/// Non-negative, non-null integers of any Arrow integer type as `u32`.
fn arrow_cast_u32(values: &ArrayRef) -> Option<Vec<u32>> {
    use arrow_array::types::{Int8Type, Int16Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type};
    if values.null_count() > 0 {
        return None;
    }
    macro_rules! convert {
        ($($t:ty),*) => {
            $(if let Some(v) = values.as_primitive_opt::<$t>() {
                return v.values().iter().map(|&x| u32::try_from(x).ok()).collect();
            })*
        };
    }
    convert!(Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type);
    None
}
