//! What is in a file: shape, matrices, obs columns with their types, count-likeness, gene id
//! kind, CELLxGENE schema — the answer to "can I use this file, and how?".

use std::path::{Path, PathBuf};

use scfm_core::{CellSource, GeneIdKind};
use serde::Serialize;

use crate::error::Result;
use crate::h5ad::{H5adOptions, H5adSource, MatrixLayout, MatrixSelector, ObsSelection};
use crate::source::{AnySource, SourceOptions};

/// Cells looked at by the count check.
pub const COUNT_CHECK_CELLS: usize = 1000;

/// Whether a matrix looks like raw counts, judged on its first [`COUNT_CHECK_CELLS`] cells.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountCheck {
    /// Cells examined.
    pub cells_checked: usize,
    /// Non-zero values examined.
    pub values_checked: usize,
    /// Every value is a whole number.
    pub integer: bool,
    /// No value is negative.
    pub non_negative: bool,
    /// Smallest non-zero value seen.
    pub min: Option<f32>,
    /// Largest value seen.
    pub max: Option<f32>,
}

impl CountCheck {
    /// True when the values look like raw counts (non-negative whole numbers).
    pub fn looks_like_counts(&self) -> bool {
        self.integer && self.non_negative
    }
}

/// One matrix of a file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatrixInfo {
    /// How to select it (`X`, `raw`, `layer:NAME`).
    pub name: String,
    /// Storage layout.
    pub layout: Option<MatrixLayout>,
    /// Stored number type.
    pub dtype: String,
    /// Cells.
    pub n_cells: usize,
    /// Genes.
    pub n_genes: usize,
    /// Stored entries of sparse matrices.
    pub stored_nnz: Option<usize>,
    /// Count-likeness.
    pub counts: CountCheck,
}

/// One obs column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnInfo {
    /// Name.
    pub name: String,
    /// Arrow type it reads as.
    pub arrow_type: String,
}

/// CELLxGENE schema findings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellxgeneInfo {
    /// `uns/schema_version`, when present.
    pub schema_version: Option<String>,
    /// The `*_ontology_term_id` obs columns present.
    pub ontology_columns: Vec<String>,
    /// var has `feature_name` (symbols next to the Ensembl index).
    pub has_feature_name: bool,
}

/// The summary of one input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The input.
    pub path: PathBuf,
    /// Detected format.
    pub format: String,
    /// Cells.
    pub n_cells: usize,
    /// Genes of the default matrix.
    pub n_genes: usize,
    /// What the gene ids are.
    pub gene_id_kind: GeneIdKind,
    /// A few gene ids.
    pub first_genes: Vec<String>,
    /// Whether symbols are available next to the ids.
    pub has_gene_symbols: bool,
    /// Matrices present.
    pub matrices: Vec<MatrixInfo>,
    /// The matrix [`MatrixSelector::Counts`] picks.
    pub counts_matrix: Option<String>,
    /// Obs columns.
    pub obs_columns: Vec<ColumnInfo>,
    /// CELLxGENE schema findings, when the file follows it.
    pub cellxgene: Option<CellxgeneInfo>,
}

/// Checks the first cells of a source for count-likeness.
///
/// # Errors
/// Read errors of the source.
pub fn count_check<S: CellSource>(source: &S) -> Result<CountCheck, S::Error> {
    let chunk = source.read_rows(0..COUNT_CHECK_CELLS.min(source.n_cells()))?;
    let v = chunk.values();
    Ok(CountCheck {
        cells_checked: chunk.n_cells(),
        values_checked: v.len(),
        integer: v.iter().all(|x| x.fract() == 0.0),
        non_negative: v.iter().all(|x| *x >= 0.0),
        min: v.iter().copied().reduce(f32::min),
        max: v.iter().copied().reduce(f32::max),
    })
}

/// Summarises any input scfm reads.
///
/// # Errors
/// Whatever opening and reading the input reports.
pub fn inspect(path: impl AsRef<Path>) -> Result<Summary> {
    let path = path.as_ref();
    let any = AnySource::open(path, &SourceOptions::default())?;
    let mut summary = Summary {
        path: path.to_owned(),
        format: any.format().to_owned(),
        n_cells: any.n_cells(),
        n_genes: any.genes().len(),
        gene_id_kind: any.genes().id_kind(),
        first_genes: any.genes().ids().iter().take(5).cloned().collect(),
        has_gene_symbols: any.genes().symbols().is_some(),
        matrices: vec![],
        counts_matrix: None,
        obs_columns: any
            .obs_schema()
            .fields()
            .iter()
            .map(|f| ColumnInfo { name: f.name().clone(), arrow_type: f.data_type().to_string() })
            .collect(),
        cellxgene: None,
    };
    match &any {
        AnySource::H5ad(h) => {
            let file = crate::h5ad::open_file(path)?;
            let mut selectors = vec![MatrixSelector::X, MatrixSelector::Raw];
            if let Ok(layers) = file.group("layers") {
                selectors.extend(layers.member_names().unwrap_or_default().into_iter().map(MatrixSelector::Layer));
            }
            for sel in selectors {
                let opts = H5adOptions { matrix: sel.clone(), obs: ObsSelection::None, require_counts: false };
                // A selector whose matrix is absent is simply not listed.
                let Ok(m) = H5adSource::open_with(path, &opts) else { continue };
                summary.matrices.push(MatrixInfo {
                    name: sel.to_string(),
                    layout: Some(m.layout()),
                    dtype: m.dtype().to_owned(),
                    n_cells: m.n_cells(),
                    n_genes: m.genes().len(),
                    stored_nnz: m.stored_nnz(),
                    counts: count_check(&m)?,
                });
            }
            let counts = H5adSource::open_with(
                path,
                &H5adOptions { matrix: MatrixSelector::Counts, obs: ObsSelection::None, require_counts: false },
            )?;
            summary.counts_matrix = Some(if counts.matrix_element() == "raw/X" { "raw".into() } else { "X".into() });
            let ontology: Vec<String> =
                h.obs_column_names().into_iter().filter(|c| c.ends_with("_ontology_term_id")).collect();
            if !ontology.is_empty() {
                let schema_version = file
                    .dataset("uns/schema_version")
                    .ok()
                    .and_then(|d| d.read_scalar::<hdf5::types::VarLenUnicode>().ok())
                    .map(|s| s.as_str().to_owned());
                summary.cellxgene = Some(CellxgeneInfo {
                    schema_version,
                    ontology_columns: ontology,
                    has_feature_name: h.genes().symbols().is_some(),
                });
            }
        }
        other => {
            summary.matrices.push(MatrixInfo {
                name: "X".into(),
                layout: None,
                dtype: "counts".into(),
                n_cells: other.n_cells(),
                n_genes: other.genes().len(),
                stored_nnz: None,
                counts: count_check(other)?,
            });
            summary.counts_matrix = Some("X".into());
        }
    }
    Ok(summary)
}
