//! scBERT's input, exactly as upstream `preprocess.py` + `predict.py` build it.
//!
//! 1. Align the cell to scBERT's 16,906 genes (by symbol, missing genes 0).
//! 2. Drop cells with fewer than 200 expressed aligned genes (`filter_cells(min_genes=200)`).
//! 3. `v = log2(1 + x / (total / 1e4))` with scanpy's float32 arithmetic: `d = f32(total / 1e4)`
//!    over the aligned genes only, `y = log1p_f32(x / d)`, `v = f32(f64(y) / ln 2)`.
//! 4. Token `min(floor(v), 5)` per gene, then one trailing `0`: 16,907 tokens.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use scfm_core::{CellView, GeneTable};
use serde::{Deserialize, Serialize};

use crate::TokenizeError;
use crate::spec::{SchemeOptions, SchemeSpec};
use crate::tokenizer::{PreparedTokenizer, TokenizerInput};

/// The names of scBERT's ordered gene list in a folder, first found first: the release's
/// pickled `gene2vec` order or its text list.
pub const GENE_LIST_FILES: [&str; 2] = ["vocab_gene2vec_16906.pkl", "scbert_panglao_genes_16906.txt"];

/// scBERT's expression-bin tokenizer over its ordered gene list.
#[derive(Debug, Clone)]
pub struct ScBertTokenizer {
    genes: Vec<String>,
    /// Cells with fewer expressed aligned genes are dropped (upstream: 200).
    pub min_genes: usize,
    /// Highest expression token (upstream: 5); token `bin_num + 1` is `[MASK]`.
    pub bin_num: u8,
    /// Each cell's aligned counts are scaled to this total (upstream: 1e4).
    pub target_sum: f32,
}

/// How a dataset's columns map onto scBERT's positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScBertPlan {
    position: Vec<Option<u32>>,
    /// Input columns that found a scBERT gene.
    pub matched: usize,
}

/// A preprocessed cell: scBERT position and log2-normalised value of each expressed gene.
#[derive(Debug, Clone, PartialEq)]
pub struct ScBertCell {
    /// `(position, v)` in position order.
    pub values: Vec<(u32, f32)>,
}

impl ScBertPlan {
    /// Whether input column `i` maps to a model gene.
    pub fn is_mapped(&self, i: usize) -> bool {
        self.position.get(i).is_some_and(Option::is_some)
    }
}

impl ScBertTokenizer {
    /// A tokenizer over scBERT's gene list (e.g. [`crate::vocab::gene_list`] of
    /// `vocab_gene2vec_16906.pkl`), with upstream's settings.
    pub fn new(genes: Vec<String>) -> Self {
        Self { genes, min_genes: 200, bin_num: 5, target_sum: 1e4 }
    }

    /// Number of model positions: the genes plus the trailing slot.
    pub fn seq_len(&self) -> usize {
        self.genes.len() + 1
    }

    /// Aligns a dataset's genes (matched by symbol; the first of duplicate names wins).
    pub fn plan(&self, genes: &GeneTable) -> ScBertPlan {
        let pos: HashMap<&str, u32> = self.genes.iter().enumerate().map(|(i, g)| (g.as_str(), i as u32)).collect();
        let names = genes.symbols().unwrap_or(genes.ids());
        let mut taken = vec![false; self.genes.len()];
        let position: Vec<Option<u32>> = names
            .iter()
            .map(|n| {
                let p = *pos.get(n.as_str())?;
                (!std::mem::replace(&mut taken[p as usize], true)).then_some(p)
            })
            .collect();
        let matched = position.iter().flatten().count();
        ScBertPlan { position, matched }
    }

    /// Steps 1–3; `None` for a cell that `filter_cells` drops.
    pub fn preprocess(&self, plan: &ScBertPlan, cell: CellView<'_>) -> Option<ScBertCell> {
        let mut aligned: Vec<(u32, f32)> = cell
            .indices
            .iter()
            .zip(cell.values)
            .filter_map(|(&g, &v)| plan.position.get(g as usize).copied().flatten().map(|p| (p, v)))
            .filter(|&(_, v)| v != 0.0)
            .collect();
        if aligned.len() < self.min_genes {
            return None;
        }
        aligned.sort_unstable_by_key(|&(p, _)| p);
        let total: f32 = aligned.iter().map(|&(_, v)| v).sum();
        let d = total / self.target_sum;
        let values = aligned
            .into_iter()
            .map(|(p, x)| {
                let y = (x / d).ln_1p();
                (p, (f64::from(y) / std::f64::consts::LN_2) as f32)
            })
            .collect();
        Some(ScBertCell { values })
    }

    /// The 16,907 tokens of a cell; `None` for a cell that `filter_cells` drops.
    pub fn tokenize(&self, plan: &ScBertPlan, cell: CellView<'_>) -> Option<Vec<u8>> {
        let pre = self.preprocess(plan, cell)?;
        let mut tokens = vec![0u8; self.seq_len()];
        for (p, v) in pre.values {
            tokens[p as usize] = v.floor().min(f32::from(self.bin_num)) as u8;
        }
        Some(tokens)
    }
}

impl crate::Tokenizer for ScBertTokenizer {
    type Plan = ScBertPlan;

    fn layout(&self) -> crate::TokenLayout {
        crate::TokenLayout { ids: crate::IdWidth::U8, values: false, counts: false, uses_n_counts: false }
    }

    fn plan(&self, genes: &GeneTable) -> crate::GeneMapping<ScBertPlan> {
        crate::GeneMapping::new(ScBertTokenizer::plan(self, genes), genes.ids(), ScBertPlan::is_mapped)
    }

    fn tokenize(
        &self,
        plan: &ScBertPlan,
        _key: u64,
        cell: CellView<'_>,
        _n_counts: f64,
    ) -> Option<crate::TokenizedCell> {
        ScBertTokenizer::tokenize(self, plan, cell)
            .map(|t| crate::TokenizedCell::ids(t.into_iter().map(u32::from).collect()))
    }
}

/// scBERT's scheme: expression bins over its ordered gene panel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScBertSpec {
    /// The ordered gene list (`vocab_gene2vec_16906.pkl` or the text list).
    pub genes: PathBuf,
    /// Cells with fewer expressed panel genes are left out.
    pub min_genes: usize,
    /// Highest expression bin.
    pub bin_num: u8,
}

impl ScBertSpec {
    /// The gene list `genes` with upstream's settings.
    pub fn new(genes: PathBuf) -> Self {
        let defaults = ScBertTokenizer::new(vec![]);
        Self { genes, min_genes: defaults.min_genes, bin_num: defaults.bin_num }
    }
}

impl SchemeSpec for ScBertSpec {
    fn from_files(vocab: &Path, _options: &SchemeOptions) -> Result<Self, TokenizeError> {
        Ok(Self::new(crate::vocab::file_in(vocab, &GENE_LIST_FILES, "scBERT's gene list")?))
    }

    fn vocabulary(&self) -> &Path {
        &self.genes
    }

    /// Genes match by symbol (through GENCODE for inputs with only Ensembl ids).
    fn prepare(&self, input: &TokenizerInput<'_>) -> Result<PreparedTokenizer, TokenizeError> {
        let mut tok = ScBertTokenizer::new(crate::vocab::gene_list(&self.genes)?);
        tok.min_genes = self.min_genes;
        tok.bin_num = self.bin_num;
        let genes = &self.genes;
        Ok(PreparedTokenizer::new(
            tok,
            &crate::vocab::symbol_table(input.genes, input.gencode)?,
            |tok, _| serde_json::json!({"genes": genes, "seq_len": tok.seq_len(), "min_genes": tok.min_genes, "bin_num": tok.bin_num}),
        ))
    }
}
