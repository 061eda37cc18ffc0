//! Shard file formats: Arrow IPC (always) and Parquet (feature `parquet`).

use std::io::Write;

use arrow_array::RecordBatch;
use arrow_ipc::writer::FileWriter;
use arrow_schema::{ArrowError, SchemaRef};
use serde::{Deserialize, Serialize};

/// The file format of corpus shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ShardFormat {
    /// Arrow IPC files (`.arrow`): fastest to write and read, memory-mappable.
    #[default]
    ArrowIpc,
    /// Parquet files (`.parquet`, Snappy-compressed): smaller, readable by every data tool.
    #[cfg(feature = "parquet")]
    Parquet,
}

impl ShardFormat {
    /// The file extension of shards in this format.
    pub fn extension(self) -> &'static str {
        match self {
            Self::ArrowIpc => "arrow",
            #[cfg(feature = "parquet")]
            Self::Parquet => "parquet",
        }
    }
}

impl std::str::FromStr for ShardFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "arrow" | "ipc" | "arrow-ipc" => Ok(Self::ArrowIpc),
            #[cfg(feature = "parquet")]
            "parquet" => Ok(Self::Parquet),
            #[cfg(not(feature = "parquet"))]
            "parquet" => Err("this build has no Parquet support (enable the `parquet` feature)".into()),
            other => Err(format!("unknown shard format {other:?}: use arrow or parquet")),
        }
    }
}

/// A shard being written, one record batch (IPC) or row group (Parquet) per chunk.
pub(crate) enum ShardWriter<W: Write + Send> {
    Ipc(FileWriter<W>),
    #[cfg(feature = "parquet")]
    Parquet(parquet::arrow::ArrowWriter<W>),
}

#[cfg(feature = "parquet")]
fn pq(e: parquet::errors::ParquetError) -> ArrowError {
    ArrowError::ExternalError(Box::new(e))
}

impl<W: Write + Send> ShardWriter<W> {
    pub fn create(format: ShardFormat, sink: W, schema: &SchemaRef) -> Result<Self, ArrowError> {
        Ok(match format {
            ShardFormat::ArrowIpc => Self::Ipc(FileWriter::try_new(sink, schema)?),
            #[cfg(feature = "parquet")]
            ShardFormat::Parquet => {
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::SNAPPY)
                    .build();
                Self::Parquet(parquet::arrow::ArrowWriter::try_new(sink, schema.clone(), Some(props)).map_err(pq)?)
            }
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        match self {
            Self::Ipc(w) => w.write(batch),
            #[cfg(feature = "parquet")]
            Self::Parquet(w) => {
                w.write(batch).map_err(pq)?;
                // One row group per chunk, so that readers can fetch row ranges.
                w.flush().map_err(pq)
            }
        }
    }

    pub fn finish(self) -> Result<W, ArrowError> {
        match self {
            Self::Ipc(mut w) => {
                w.finish()?;
                w.into_inner()
            }
            #[cfg(feature = "parquet")]
            Self::Parquet(w) => w.into_inner().map_err(pq),
        }
    }
}

/// Writes one table (e.g. cell embeddings) as a single Arrow IPC or Parquet file, through a
/// temporary name and a rename, so a crash never leaves a half-written file at `path`.
///
/// # Errors
/// [`crate::IoError::Io`] and [`crate::IoError::Arrow`]; on error `path` is left untouched.
pub fn write_table(path: &std::path::Path, format: ShardFormat, batch: &RecordBatch) -> crate::Result<()> {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let arrow = |source| crate::IoError::Arrow { path: path.to_owned(), source };
    let write = || -> crate::Result<()> {
        let file = std::fs::File::create(&tmp).map_err(crate::error::io_err(&tmp))?;
        let mut w = ShardWriter::create(format, std::io::BufWriter::new(file), &batch.schema()).map_err(arrow)?;
        w.write(batch).map_err(arrow)?;
        w.finish().map_err(arrow)?.flush().map_err(crate::error::io_err(&tmp))?;
        std::fs::rename(&tmp, path).map_err(crate::error::io_err(path))
    };
    let r = write();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Reads record batch (IPC) or row group (Parquet) `index` of a shard file.
pub(crate) fn read_shard_batch(
    path: &std::path::Path,
    index: usize,
    n_rows: usize,
) -> Result<(SchemaRef, RecordBatch), ArrowError> {
    let file = std::fs::File::open(path)?;
    #[cfg(feature = "parquet")]
    if path.extension().is_some_and(|e| e == "parquet") {
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq)?;
        let schema = builder.schema().clone();
        let reader = builder.with_row_groups(vec![index]).with_batch_size(n_rows.max(1)).build().map_err(pq)?;
        let batches = reader.collect::<Result<Vec<_>, _>>()?;
        let batch = arrow_select::concat::concat_batches(&schema, &batches)?;
        return Ok((schema, batch));
    }
    let _ = n_rows;
    let mut r = arrow_ipc::reader::FileReader::try_new(std::io::BufReader::new(file), None)?;
    let schema = r.schema();
    r.set_index(index)?;
    let batch = r.next().ok_or_else(|| ArrowError::IpcError(format!("record batch {index} is missing")))??;
    Ok((schema, batch))
}
