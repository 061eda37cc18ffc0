//! One type for "any input scfm reads", chosen by looking at the path.

use std::ops::Range;
use std::path::Path;

use arrow_schema::SchemaRef;
use scfm_core::{CellChunk, CellSource, GeneTable};
use serde::{Deserialize, Serialize};

use crate::corpus::{CorpusReader, MANIFEST_FILE};
use crate::error::{IoError, Result};
use crate::h5ad::{H5adOptions, H5adSource, MatrixSelector, ObsSelection, open_file};
use crate::tenx::{MtxSource, TenxH5Source};

/// Options that apply to whichever input format [`AnySource::open`] finds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SourceOptions {
    /// Matrix of h5ad inputs (other formats have one matrix).
    pub matrix: MatrixSelector,
    /// Obs columns to carry (h5ad and corpora; 10x files have none).
    pub obs: ObsSelection,
    /// Reject negative values.
    pub require_counts: bool,
}

/// Any cell source scfm reads: h5ad, Cell Ranger h5, Matrix Market folder, or scfm corpus.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnySource {
    /// An `.h5ad` file.
    H5ad(H5adSource),
    /// A Cell Ranger `.h5` file.
    TenxH5(TenxH5Source),
    /// A Matrix Market folder.
    Mtx(MtxSource),
    /// An scfm corpus folder.
    Corpus(CorpusReader),
}

impl AnySource {
    /// Opens `path`, detecting the format: a folder with `manifest.json` is a corpus, a folder
    /// with `matrix.mtx[.gz]` a Matrix Market folder; an HDF5 file with `obs` or `X` is an h5ad
    /// file, otherwise a Cell Ranger matrix.
    ///
    /// # Errors
    /// Whatever the detected reader reports.
    pub fn open(path: impl AsRef<Path>, opts: &SourceOptions) -> Result<Self> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(IoError::NotFound { path: path.to_owned() });
        }
        if path.is_dir() {
            if path.join(MANIFEST_FILE).exists() {
                return Ok(Self::Corpus(CorpusReader::open_with(path, &opts.obs)?));
            }
            if path.join(".zgroup").exists() || path.join("zarr.json").exists() {
                return Err(IoError::UnsupportedEncoding {
                    path: path.to_owned(),
                    element: "/".into(),
                    encoding: "zarr store".into(),
                    hint: "; scfm reads h5ad (HDF5): convert with `anndata.read_zarr(path).write_h5ad(new_path)`"
                        .into(),
                });
            }
            return Ok(Self::Mtx(MtxSource::open(path)?));
        }
        let file = open_file(path)?;
        let is_h5ad = file.link_exists("obs") || file.link_exists("X");
        drop(file);
        if is_h5ad {
            let h =
                H5adOptions { matrix: opts.matrix.clone(), obs: opts.obs.clone(), require_counts: opts.require_counts };
            Ok(Self::H5ad(H5adSource::open_with(path, &h)?))
        } else {
            Ok(Self::TenxH5(TenxH5Source::open(path)?))
        }
    }

    /// A short name of the detected format.
    pub fn format(&self) -> &'static str {
        match self {
            Self::H5ad(_) => "h5ad",
            Self::TenxH5(_) => "10x-h5",
            Self::Mtx(_) => "10x-mtx",
            Self::Corpus(_) => "scfm-corpus",
        }
    }
}

macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            AnySource::H5ad($s) => $e,
            AnySource::TenxH5($s) => $e,
            AnySource::Mtx($s) => $e,
            AnySource::Corpus($s) => $e,
        }
    };
}

impl CellSource for AnySource {
    type Error = IoError;

    fn genes(&self) -> &GeneTable {
        each!(self, s => s.genes())
    }

    fn n_cells(&self) -> usize {
        each!(self, s => s.n_cells())
    }

    fn obs_schema(&self) -> SchemaRef {
        each!(self, s => s.obs_schema())
    }

    fn read_rows(&self, rows: Range<usize>) -> Result<CellChunk> {
        each!(self, s => s.read_rows(rows))
    }
}
