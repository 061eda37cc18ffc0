//! Cell Ranger outputs: the `.h5` matrix (v2 per-genome groups, v3 `matrix/` group) and the
//! Matrix Market folder (`matrix.mtx(.gz)`, `barcodes.tsv(.gz)`, `features.tsv(.gz)` or v2
//! `genes.tsv`).

use std::io::{BufRead, BufReader, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_schema::{Schema, SchemaRef};
use scfm_core::{CellChunk, CellSource, GeneTable};

use crate::error::{IoError, Result, io_err};
use crate::h5ad::matrix::{CsrBuilder, Matrix};
use crate::h5ad::{Ctx, Node, join, len_1d, node, open_file, read_strings};

/// The feature type Cell Ranger gives to genes.
const GENE_EXPRESSION: &str = "Gene Expression";

/// Maps stored feature positions to kept gene positions (non-gene features such as antibody
/// capture are dropped).
#[derive(Debug)]
struct FeatureMap {
    new_index: Vec<Option<u32>>,
}

impl FeatureMap {
    fn from_types(types: Option<&[String]>, n: usize) -> Self {
        let mut next = 0u32;
        let new_index = (0..n)
            .map(|i| match types {
                Some(t) if t[i] != GENE_EXPRESSION => None,
                _ => {
                    next += 1;
                    Some(next - 1)
                }
            })
            .collect();
        Self { new_index }
    }

    fn keep<T: Clone>(&self, v: &[T]) -> Vec<T> {
        v.iter().zip(&self.new_index).filter(|(_, k)| k.is_some()).map(|(x, _)| x.clone()).collect()
    }

    fn is_identity(&self) -> bool {
        self.new_index.iter().all(Option::is_some)
    }

    fn remap(&self, (indptr, indices, values): (Vec<usize>, Vec<u32>, Vec<f32>)) -> (Vec<usize>, Vec<u32>, Vec<f32>) {
        if self.is_identity() {
            return (indptr, indices, values);
        }
        let mut out = CsrBuilder::with_capacity(indptr.len() - 1, indices.len());
        let (mut idx, mut val) = (vec![], vec![]);
        for w in indptr.windows(2) {
            idx.clear();
            val.clear();
            for k in w[0]..w[1] {
                if let Some(g) = self.new_index[indices[k] as usize] {
                    idx.push(g);
                    val.push(values[k]);
                }
            }
            out.push_row(&idx, &val);
        }
        out.finish()
    }
}

fn empty_schema() -> SchemaRef {
    Arc::new(Schema::empty())
}

/// A Cell Ranger `.h5` feature-barcode matrix (v2 or v3 layout), read chunk by chunk.
///
/// Cells are barcodes, genes are the "Gene Expression" features (ids as gene ids, names as
/// symbols); other feature types (antibody capture, CRISPR guides) are left out.
#[derive(Debug)]
pub struct TenxH5Source {
    ctx: Ctx,
    _file: hdf5::File,
    group: String,
    matrix: Matrix,
    barcodes: hdf5::Dataset,
    genes: GeneTable,
    features: FeatureMap,
}

impl TenxH5Source {
    /// Opens a Cell Ranger `.h5` file. For v2 files with several genomes, the first genome
    /// group (alphabetically) is read.
    ///
    /// # Errors
    /// Missing file, not HDF5, not a Cell Ranger layout, inconsistent shapes.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let ctx = Ctx::new(path);
        let file = open_file(path)?;
        let root = ctx.h5("/", file.as_group())?;
        let group = if root.link_exists("matrix") {
            "matrix".to_owned()
        } else {
            let mut names = ctx.h5("/", root.member_names())?;
            names.sort();
            names
                .into_iter()
                .find(|n| root.group(n).is_ok_and(|g| g.link_exists("barcodes") && g.link_exists("indptr")))
                .ok_or_else(|| ctx.missing("matrix", "; not a Cell Ranger v2 or v3 matrix file"))?
        };
        let g = ctx.h5(&group, root.group(&group))?;
        let ds = |parent: &hdf5::Group, parent_path: &str, n: &str| match node(&ctx, parent, parent_path, n)? {
            Some(Node::Dataset(d)) => Ok(d),
            _ => Err(ctx.missing(&join(parent_path, n), "")),
        };
        let shape_ds = ds(&g, &group, "shape")?;
        let shape = crate::h5ad::read_num_all(&ctx, &join(&group, "shape"), &shape_ds)?;
        let [n_features, n_cells] = shape[..] else {
            return Err(ctx.invalid(&group, format!("shape {shape:?} is not 2-D")));
        };
        let (ids, names, types) = if g.link_exists("features") {
            let f = ctx.h5(&join(&group, "features"), g.group("features"))?;
            let fp = join(&group, "features");
            let read = |n: &str| -> Result<Vec<String>> {
                let d = ds(&f, &fp, n)?;
                let el = join(&fp, n);
                let len = len_1d(&ctx, &el, &d)?;
                read_strings(&ctx, &el, &d, 0..len)
            };
            let types = if f.link_exists("feature_type") { Some(read("feature_type")?) } else { None };
            (read("id")?, read("name")?, types)
        } else {
            let read = |n: &str| -> Result<Vec<String>> {
                let d = ds(&g, &group, n)?;
                let el = join(&group, n);
                let len = len_1d(&ctx, &el, &d)?;
                read_strings(&ctx, &el, &d, 0..len)
            };
            (read("genes")?, read("gene_names")?, None)
        };
        for (el, v) in [("id", &ids), ("name", &names)] {
            if v.len() != n_features as usize {
                return Err(IoError::LengthMismatch {
                    path: path.to_owned(),
                    element: join(&group, el),
                    what: "one per feature",
                    expected: n_features as usize,
                    found: v.len(),
                });
            }
        }
        let features = FeatureMap::from_types(types.as_deref(), ids.len());
        let genes_err = |source| IoError::Genes { path: path.to_owned(), element: join(&group, "features/id"), source };
        let genes = GeneTable::new(features.keep(&ids))
            .and_then(|t| t.with_symbols(features.keep(&names)))
            .map_err(genes_err)?;
        // Stored genes × cells in CSC, i.e. compressed by barcode: CSR over cells.
        let mut matrix = Matrix::sparse(
            &ctx,
            &group,
            (ds(&g, &group, "data")?, ds(&g, &group, "indices")?, ds(&g, &group, "indptr")?),
            (n_cells as usize, n_features as usize),
            true,
        )?;
        let barcodes = ds(&g, &group, "barcodes")?;
        let n_bc = len_1d(&ctx, &join(&group, "barcodes"), &barcodes)?;
        if n_bc != n_cells as usize {
            return Err(IoError::LengthMismatch {
                path: path.to_owned(),
                element: join(&group, "barcodes"),
                what: "one per cell",
                expected: n_cells as usize,
                found: n_bc,
            });
        }
        matrix.require_non_negative = true;
        Ok(Self { ctx, _file: file, group, matrix, barcodes, genes, features })
    }
}

impl CellSource for TenxH5Source {
    type Error = IoError;

    fn genes(&self) -> &GeneTable {
        &self.genes
    }

    fn n_cells(&self) -> usize {
        self.matrix.n_rows
    }

    fn obs_schema(&self) -> SchemaRef {
        empty_schema()
    }

    fn read_rows(&self, rows: Range<usize>) -> Result<CellChunk> {
        let rows = rows.start.min(self.n_cells())..rows.end.min(self.n_cells());
        let parts = self.features.remap(self.matrix.read_rows(&self.ctx, rows.clone())?);
        let ids = read_strings(&self.ctx, &join(&self.group, "barcodes"), &self.barcodes, rows)?;
        CellChunk::from_csr(ids, parts.0, parts.1, parts.2, self.genes.len())
            .map_err(|source| IoError::Chunk { path: self.ctx.path.clone(), source })
    }
}

/// A Cell Ranger Matrix Market folder (`matrix.mtx[.gz]`, `barcodes.tsv[.gz]`,
/// `features.tsv[.gz]` or `genes.tsv[.gz]`).
///
/// Matrix Market is a text format without random access, so the matrix is parsed once into
/// memory-resident CSR (memory ∝ non-zeros; convert to a corpus once, then stream that).
#[derive(Debug)]
pub struct MtxSource {
    path: PathBuf,
    genes: GeneTable,
    barcodes: Vec<String>,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

fn find(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().flat_map(|n| [dir.join(n), dir.join(format!("{n}.gz"))]).find(|p| p.exists())
}

fn open_text(path: &Path) -> Result<Box<dyn BufRead>> {
    let f = std::fs::File::open(path).map_err(io_err(path))?;
    let r: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else {
        Box::new(f)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 20, r)))
}

fn read_lines(path: &Path) -> Result<Vec<String>> {
    open_text(path)?.lines().map(|l| l.map_err(io_err(path))).filter(|l| !matches!(l, Ok(s) if s.is_empty())).collect()
}

impl MtxSource {
    /// Reads a Matrix Market folder.
    ///
    /// # Errors
    /// Missing files, malformed lines (with line numbers), entries out of range, negative or
    /// non-finite counts, duplicate gene ids.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.exists() {
            return Err(IoError::NotFound { path: dir.to_owned() });
        }
        let missing = |what: &str| IoError::MissingElement {
            path: dir.to_owned(),
            element: what.to_owned(),
            hint: "; expected a Cell Ranger matrix folder".into(),
        };
        let mtx = find(dir, &["matrix.mtx"]).ok_or_else(|| missing("matrix.mtx[.gz]"))?;
        let bc_path = find(dir, &["barcodes.tsv"]).ok_or_else(|| missing("barcodes.tsv[.gz]"))?;
        let ft_path = find(dir, &["features.tsv", "genes.tsv"]).ok_or_else(|| missing("features.tsv[.gz]"))?;
        let barcodes: Vec<String> =
            read_lines(&bc_path)?.into_iter().map(|l| l.split('\t').next().unwrap_or("").to_owned()).collect();
        let mut ids = vec![];
        let mut names = vec![];
        let mut types = vec![];
        for (i, line) in read_lines(&ft_path)?.into_iter().enumerate() {
            let mut cols = line.split('\t');
            let id = cols.next().unwrap_or("").to_owned();
            let name = cols.next().ok_or_else(|| IoError::Parse {
                path: ft_path.clone(),
                line: i + 1,
                reason: "expected at least two tab-separated columns (id, name)".into(),
            })?;
            names.push(name.to_owned());
            types.push(cols.next().unwrap_or(GENE_EXPRESSION).to_owned());
            ids.push(id);
        }
        let (n_genes, n_cells, triplets) = parse_mtx(&mtx)?;
        if n_genes != ids.len() || n_cells != barcodes.len() {
            return Err(IoError::Incompatible {
                path: mtx.clone(),
                reason: format!(
                    "matrix is {n_genes} × {n_cells} but there are {} features and {} barcodes",
                    ids.len(),
                    barcodes.len()
                ),
            });
        }
        let features = FeatureMap::from_types(Some(&types), ids.len());
        let genes = GeneTable::new(features.keep(&ids))
            .and_then(|t| t.with_symbols(features.keep(&names)))
            .map_err(|source| IoError::Genes { path: ft_path.clone(), element: "id".into(), source })?;
        // Counting sort of (gene, cell, value) triplets by cell.
        let mut counts = vec![0usize; n_cells + 1];
        for &(_, c, _) in &triplets {
            counts[c as usize + 1] += 1;
        }
        for i in 0..n_cells {
            counts[i + 1] += counts[i];
        }
        let mut next = counts.clone();
        let mut idx = vec![0u32; triplets.len()];
        let mut val = vec![0f32; triplets.len()];
        for &(g, c, v) in &triplets {
            let slot = &mut next[c as usize];
            idx[*slot] = g;
            val[*slot] = v;
            *slot += 1;
        }
        drop(triplets);
        let mut b = CsrBuilder::with_capacity(n_cells, idx.len());
        for c in 0..n_cells {
            b.push_row(&idx[counts[c]..counts[c + 1]], &val[counts[c]..counts[c + 1]]);
        }
        let (indptr, indices, values) = features.remap(b.finish());
        Ok(Self { path: dir.to_owned(), genes, barcodes, indptr, indices, values })
    }
}

type Triplets = Vec<(u32, u32, f32)>;

fn parse_mtx(path: &Path) -> Result<(usize, usize, Triplets)> {
    let perr = |line: usize, reason: String| IoError::Parse { path: path.to_owned(), line, reason };
    let mut lines = open_text(path)?.lines().enumerate();
    let (_, header) = lines.next().ok_or_else(|| perr(1, "empty file".into()))?;
    let header = header.map_err(io_err(path))?.to_ascii_lowercase();
    if !header.starts_with("%%matrixmarket matrix coordinate") || !header.ends_with("general") {
        return Err(perr(1, format!("unsupported Matrix Market header {header:?} (need coordinate general)")));
    }
    if header.contains("complex") || header.contains("pattern") {
        return Err(perr(1, "complex and pattern matrices are not expression counts".into()));
    }
    let mut size: Option<(usize, usize, usize)> = None;
    let mut out = Vec::new();
    for (i, line) in lines {
        let line = line.map_err(io_err(path))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('%') {
            continue;
        }
        let mut f = line.split_ascii_whitespace();
        let mut next = |what: &str| f.next().ok_or_else(|| perr(i + 1, format!("missing {what}")));
        match size {
            None => {
                let p = |s: &str| s.parse::<usize>().map_err(|e| perr(i + 1, format!("bad size {s:?}: {e}")));
                let (r, c, n) = (p(next("rows")?)?, p(next("columns")?)?, p(next("entries")?)?);
                out.reserve(n);
                size = Some((r, c, n));
            }
            Some((r, c, _)) => {
                let p = |s: &str, max: usize| -> Result<u32> {
                    match s.parse::<usize>() {
                        Ok(v) if (1..=max).contains(&v) => Ok((v - 1) as u32),
                        _ => Err(perr(i + 1, format!("index {s:?} outside 1..={max}"))),
                    }
                };
                let g = p(next("row")?, r)?;
                let cell = p(next("column")?, c)?;
                let vs = next("value")?;
                let v: f64 = vs.parse().map_err(|_| perr(i + 1, format!("value {vs:?} is not a number")))?;
                if !v.is_finite() || v < 0.0 {
                    return Err(perr(i + 1, format!("value {v} is not a count")));
                }
                out.push((g, cell, v as f32));
            }
        }
    }
    let (r, c, n) = size.ok_or_else(|| perr(1, "no size line".into()))?;
    if out.len() != n {
        return Err(perr(0, format!("header announces {n} entries, found {}", out.len())));
    }
    Ok((r, c, out))
}

impl CellSource for MtxSource {
    type Error = IoError;

    fn genes(&self) -> &GeneTable {
        &self.genes
    }

    fn n_cells(&self) -> usize {
        self.barcodes.len()
    }

    fn obs_schema(&self) -> SchemaRef {
        empty_schema()
    }

    fn read_rows(&self, rows: Range<usize>) -> Result<CellChunk> {
        let rows = rows.start.min(self.n_cells())..rows.end.min(self.n_cells());
        let (a, b) = (self.indptr[rows.start], self.indptr[rows.end]);
        let indptr = self.indptr[rows.start..=rows.end].iter().map(|p| p - a).collect();
        CellChunk::from_csr(
            self.barcodes[rows].to_vec(),
            indptr,
            self.indices[a..b].to_vec(),
            self.values[a..b].to_vec(),
            self.genes.len(),
        )
        .map_err(|source| IoError::Chunk { path: self.path.clone(), source })
    }
}
