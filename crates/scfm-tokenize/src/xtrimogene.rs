//! xTrimoGene / scFoundation model input, exactly as upstream `get_embedding.py` builds it
//! (single-cell input, batch size 1).
//!
//! A cell is aligned to the model's 19,264 genes (by symbol; missing genes are 0), normalised
//! (`values = ln(1 + count / total · 1e4)` for raw counts, with `total` over the aligned genes),
//! and followed by two read-depth tokens: T (the target depth, position 19,264) and
//! S = `log10(total)` (the source depth, position 19,265). The encoder sees only the positions
//! with a value > 0, in ascending order ([`XTrimoGeneCell`]). Upstream computes in f64 (S is a
//! NumPy float64) and rounds to f32 once, at the model's input; so does this module.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use scfm_core::{CellView, GeneTable};
use serde::{Deserialize, Serialize};

use crate::TokenizeError;
use crate::spec::{SchemeOptions, SchemeSpec};
use crate::tokenizer::{PreparedTokenizer, TokenizerInput};

/// How the target depth T is chosen (`--tgthighres`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DepthTarget {
    /// `t<v>`: T = v (e.g. `t4`).
    Fixed(f64),
    /// `f<r>`: T = log10(total · r) (`f1`: T = S).
    Fold(f64),
    /// `a<d>`: T = log10(total) + d.
    Shift(f64),
}

impl FromStr for DepthTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, num) = s.split_at(s.len().min(1));
        let v: f64 = num.parse().map_err(|_| format!("{s:?}: expected t<v>, f<r> or a<d>"))?;
        match kind {
            "t" => Ok(Self::Fixed(v)),
            "f" => Ok(Self::Fold(v)),
            "a" => Ok(Self::Shift(v)),
            _ => Err(format!("{s:?}: expected t<v>, f<r> or a<d>")),
        }
    }
}

/// `t<v>`, `f<r>` or `a<d>`, as [`FromStr`] reads it.
impl std::fmt::Display for DepthTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed(v) => write!(f, "t{v}"),
            Self::Fold(r) => write!(f, "f{r}"),
            Self::Shift(d) => write!(f, "a{d}"),
        }
    }
}

impl DepthTarget {
    /// T for a cell of `total` counts, in f64.
    pub fn value(self, total: f64) -> f64 {
        match self {
            Self::Fixed(v) => v,
            Self::Fold(r) => (total * r).log10(),
            Self::Shift(d) => total.log10() + d,
        }
    }

    /// T in f32 arithmetic, as upstream's `pre_normalized="A"` path on float32 input.
    pub fn value_f32(self, total: f32) -> f32 {
        match self {
            Self::Fixed(v) => v as f32,
            Self::Fold(r) => (total * r as f32).log10(),
            Self::Shift(d) => total.log10() + d as f32,
        }
    }
}

/// The encoder input of one cell: positions with a value > 0, ascending, and their values.
#[derive(Debug, Clone, PartialEq)]
pub struct XTrimoGeneCell<V> {
    /// Model positions (genes 0..19,263, then T = 19,264 and S = 19,265 when positive).
    pub positions: Vec<u32>,
    /// Values at those positions.
    pub values: Vec<V>,
}

/// The name of scFoundation's gene index in a folder.
pub const GENE_INDEX_FILES: [&str; 1] = ["OS_scRNA_gene_index.19264.tsv"];

/// xTrimoGene's input builder over its ordered gene list.
#[derive(Debug, Clone)]
pub struct XTrimoGeneTokenizer {
    genes: Vec<String>,
    /// The target read depth.
    pub target: DepthTarget,
    /// [`crate::Tokenizer::tokenize`] also returns the raw counts on the model's gene positions
    /// ([`Self::align_counts`]), what read-depth-aware pretraining down-samples.
    pub keep_counts: bool,
}

/// How a dataset's columns map onto the model's gene positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XTrimoGenePlan {
    position: Vec<Option<u32>>,
    /// Input columns that found a model gene.
    pub matched: usize,
}

impl XTrimoGenePlan {
    /// Whether input column `i` maps to a model gene.
    pub fn is_mapped(&self, i: usize) -> bool {
        self.position.get(i).is_some_and(Option::is_some)
    }
}

impl XTrimoGeneTokenizer {
    /// A builder over the model's genes (e.g. [`crate::vocab::scfoundation_genes`]).
    pub fn new(genes: Vec<String>, target: DepthTarget) -> Self {
        Self { genes, target, keep_counts: false }
    }

    /// Position of the T token (= number of genes).
    pub fn t_position(&self) -> u32 {
        self.genes.len() as u32
    }

    /// Model sequence length: genes, T and S.
    pub fn seq_len(&self) -> usize {
        self.genes.len() + 2
    }

    /// Aligns a dataset's genes by symbol (upstream `main_gene_selection`).
    pub fn plan(&self, genes: &GeneTable) -> XTrimoGenePlan {
        let pos: HashMap<&str, u32> = self.genes.iter().enumerate().map(|(i, g)| (g.as_str(), i as u32)).collect();
        let names = genes.symbols().unwrap_or(genes.ids());
        let position: Vec<Option<u32>> = names.iter().map(|n| pos.get(n.as_str()).copied()).collect();
        let matched = position.iter().flatten().count();
        XTrimoGenePlan { position, matched }
    }

    /// A cell's counts on the model's gene positions: `(position, count)` of its mapped genes,
    /// ascending by position (what read-depth-aware pretraining down-samples).
    pub fn align_counts(&self, plan: &XTrimoGenePlan, cell: CellView<'_>) -> Vec<(u32, f64)> {
        let mut aligned: Vec<(u32, f64)> = cell
            .indices
            .iter()
            .zip(cell.values)
            .filter_map(|(&g, &v)| plan.position.get(g as usize).copied().flatten().map(|p| (p, f64::from(v))))
            .collect();
        aligned.sort_unstable_by_key(|&(p, _)| p);
        aligned
    }

    /// The encoder input of a raw-count cell (`pre_normalized="F"`), in f64.
    pub fn encode_counts(&self, plan: &XTrimoGenePlan, cell: CellView<'_>) -> XTrimoGeneCell<f64> {
        let aligned = self.align_counts(plan, cell);
        let total: f64 = aligned.iter().map(|&(_, v)| v).sum();
        let mut out = XTrimoGeneCell { positions: vec![], values: vec![] };
        for (p, x) in aligned {
            let v = (x / total * 10_000.0).ln_1p();
            if v > 0.0 {
                out.positions.push(p);
                out.values.push(v);
            }
        }
        self.push_depth(&mut out, self.target.value(total), total.log10());
        out
    }

    /// The encoder input of an already log-normalised float32 cell with its raw total count
    /// (`pre_normalized="A"`): the values are used as given and all arithmetic stays in f32.
    pub fn encode_normalized_f32(&self, values: &[(u32, f32)], total: f32) -> XTrimoGeneCell<f32> {
        let mut out = XTrimoGeneCell { positions: vec![], values: vec![] };
        for &(p, v) in values {
            if v > 0.0 {
                out.positions.push(p);
                out.values.push(v);
            }
        }
        self.push_depth(&mut out, self.target.value_f32(total), total.log10());
        out
    }

    fn push_depth<V: PartialOrd + Default>(&self, out: &mut XTrimoGeneCell<V>, t: V, s: V) {
        for (p, v) in [(self.t_position(), t), (self.t_position() + 1, s)] {
            if v > V::default() {
                out.positions.push(p);
                out.values.push(v);
            }
        }
    }
}

impl crate::Tokenizer for XTrimoGeneTokenizer {
    type Plan = XTrimoGenePlan;

    fn layout(&self) -> crate::TokenLayout {
        crate::TokenLayout { ids: crate::IdWidth::I32, values: true, counts: self.keep_counts, uses_n_counts: false }
    }

    fn plan(&self, genes: &GeneTable) -> crate::GeneMapping<XTrimoGenePlan> {
        crate::GeneMapping::new(XTrimoGeneTokenizer::plan(self, genes), genes.ids(), XTrimoGenePlan::is_mapped)
    }

    /// Positions and values rounded once from f64 to f32.
    fn tokenize(
        &self,
        plan: &XTrimoGenePlan,
        _key: u64,
        cell: CellView<'_>,
        _n_counts: f64,
    ) -> Option<crate::TokenizedCell> {
        let enc = self.encode_counts(plan, cell);
        Some(crate::TokenizedCell {
            ids: enc.positions,
            values: Some(enc.values.into_iter().map(|v| v as f32).collect()),
            counts: self.keep_counts.then(|| self.align_counts(plan, cell)),
        })
    }
}

/// xTrimoGene's (scFoundation's) scheme: log-normalised values of its 19,264 genes with the
/// T and S read-depth tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XTrimoGeneSpec {
    /// The gene index TSV.
    pub genes: PathBuf,
    /// The target read depth (`t4`, `f1`, `a5`, …), as `--target` writes it.
    pub target: String,
}

impl XTrimoGeneSpec {
    /// The gene index `genes` with the read-depth `target`.
    pub fn new(genes: PathBuf, target: DepthTarget) -> Self {
        Self { genes, target: target.to_string() }
    }

    /// The target read depth.
    ///
    /// # Errors
    /// [`TokenizeError::BadSetting`] for a target [`DepthTarget`] does not read.
    pub fn depth_target(&self) -> Result<DepthTarget, TokenizeError> {
        self.target.parse().map_err(|expected| TokenizeError::BadSetting {
            what: "xTrimoGene read-depth target",
            value: self.target.clone(),
            expected,
        })
    }
}

impl SchemeSpec for XTrimoGeneSpec {
    fn from_files(vocab: &Path, options: &SchemeOptions) -> Result<Self, TokenizeError> {
        let genes = crate::vocab::file_in(vocab, &GENE_INDEX_FILES, "scFoundation's gene index")?;
        Ok(Self::new(genes, options.target))
    }

    fn vocabulary(&self) -> &Path {
        &self.genes
    }

    /// Genes match by symbol (through GENCODE for inputs with only Ensembl ids); the raw
    /// counts are kept where `input` asks for them.
    fn prepare(&self, input: &TokenizerInput<'_>) -> Result<PreparedTokenizer, TokenizeError> {
        let target = self.depth_target()?;
        let mut tok = XTrimoGeneTokenizer::new(crate::vocab::scfoundation_genes(&self.genes)?, target);
        tok.keep_counts = input.with_counts;
        let genes = &self.genes;
        Ok(PreparedTokenizer::new(
            tok,
            &crate::vocab::symbol_table(input.genes, input.gencode)?,
            |tok, _| serde_json::json!({"genes": genes, "target": format!("{target:?}"), "seq_len": tok.seq_len(), "values": "computed in f64, rounded once to f32"}),
        ))
    }
}
