//! One interface over the tokenizers of every family: [`Tokenizer::plan`] maps a dataset's
//! genes onto the model's once (with the mapping report), [`Tokenizer::tokenize`] turns one
//! cell into token ids, values and (for xTrimoGene's pretraining) raw counts, and
//! [`Tokenizer::layout`] says which of those a dataset stores and in which integer type.
//!
//! | tokenizer | plan reads | ids | values | counts |
//! | --- | --- | --- | --- | --- |
//! | [`GeneformerTokenizer`](crate::geneformer::GeneformerTokenizer) | gene ids (V1: symbols through `gene_name_id_dict`) | rank-value tokens (int16 V1, int32 V2) | — | — |
//! | [`ScGptTokenizer`](crate::scgpt::ScGptTokenizer) | symbols | gene ids, `<cls>` first | bins | — |
//! | [`ScBertTokenizer`](crate::scbert::ScBertTokenizer) | symbols | one bin per panel gene (uint8) | — | — |
//! | [`XTrimoGeneTokenizer`](crate::xtrimogene::XTrimoGeneTokenizer) | symbols | encoder positions with T and S | log-normalised values | raw counts on request |

use scfm_core::{CellView, GeneTable};

/// One tokenized cell.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizedCell {
    /// Token ids (xTrimoGene: encoder positions, T and S included).
    pub ids: Vec<u32>,
    /// One value per id (scGPT's bins, xTrimoGene's log-normalised values).
    pub values: Option<Vec<f32>>,
    /// xTrimoGene: the cell's raw counts on the model's gene positions, what its pretraining
    /// down-samples.
    pub counts: Option<Vec<(u32, f64)>>,
}

impl TokenizedCell {
    /// A cell of ids only.
    pub fn ids(ids: Vec<u32>) -> Self {
        Self { ids, values: None, counts: None }
    }

    /// A cell of ids with one value each.
    pub fn with_values(ids: Vec<u32>, values: Vec<f32>) -> Self {
        Self { ids, values: Some(values), counts: None }
    }
}

/// The integer type a dataset stores a tokenizer's ids in (upstream's Arrow types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdWidth {
    /// `int16` (Geneformer V1, whose dictionary holds `numpy.int16` values).
    I16,
    /// `int32`.
    I32,
    /// `uint8` (scBERT's bins).
    U8,
}

/// What a tokenizer's cells hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLayout {
    /// The ids' integer type.
    pub ids: IdWidth,
    /// Cells carry one value per id.
    pub values: bool,
    /// Cells carry raw counts on the model's gene positions.
    pub counts: bool,
    /// [`Tokenizer::tokenize`] reads `n_counts` (Geneformer's total over all input genes); the
    /// others may be given NaN.
    pub uses_n_counts: bool,
}

/// A plan with its mapping report.
#[derive(Debug, Clone)]
pub struct GeneMapping<P> {
    /// The plan.
    pub plan: P,
    /// Input genes that map to the model's genes.
    pub genes_mapped: usize,
    /// Up to three input genes the model does not know.
    pub unknown_examples: Vec<String>,
}

impl<P> GeneMapping<P> {
    /// The report of `plan` over `genes`, where `mapped(&plan, i)` says whether input gene `i`
    /// maps.
    pub fn new(plan: P, genes: &[String], mapped: impl Fn(&P, usize) -> bool) -> Self {
        let genes_mapped = (0..genes.len()).filter(|&i| mapped(&plan, i)).count();
        let unknown_examples =
            genes.iter().enumerate().filter(|&(i, _)| !mapped(&plan, i)).take(3).map(|(_, g)| g.clone()).collect();
        Self { plan, genes_mapped, unknown_examples }
    }
}

/// A family's tokenizer; see the [module documentation](self).
pub trait Tokenizer: Send + Sync {
    /// How a dataset's columns map onto the model's genes.
    type Plan: Send + Sync;

    /// What the cells hold.
    fn layout(&self) -> TokenLayout;

    /// Maps a dataset's genes (ids, and symbols where it has them) onto the model's.
    fn plan(&self, genes: &GeneTable) -> GeneMapping<Self::Plan>;

    /// Tokenizes one cell; `None` for a cell upstream leaves out (no vocabulary gene,
    /// scBERT's gene minimum). `key` identifies the cell for seeded draws (its index in the
    /// input); `n_counts` is its total over all input genes where
    /// [`TokenLayout::uses_n_counts`] says so.
    fn tokenize(&self, plan: &Self::Plan, key: u64, cell: CellView<'_>, n_counts: f64) -> Option<TokenizedCell>;
}

/// A tokenizer with its plan for one dataset, behind one object-safe interface.
pub trait PlannedTokenizer: Send + Sync {
    /// What the cells hold.
    fn layout(&self) -> TokenLayout;
    /// [`Tokenizer::tokenize`] with the plan.
    fn tokenize(&self, key: u64, cell: CellView<'_>, n_counts: f64) -> Option<TokenizedCell>;
}

/// `tokenizer` planned for a dataset.
#[derive(Debug)]
pub struct Planned<T: Tokenizer> {
    /// The tokenizer.
    pub tokenizer: T,
    /// Its plan.
    pub plan: T::Plan,
}

impl<T: Tokenizer> PlannedTokenizer for Planned<T> {
    fn layout(&self) -> TokenLayout {
        self.tokenizer.layout()
    }

    fn tokenize(&self, key: u64, cell: CellView<'_>, n_counts: f64) -> Option<TokenizedCell> {
        self.tokenizer.tokenize(&self.plan, key, cell, n_counts)
    }
}

/// A tokenizer whose cells depend on the cells before it (scGPT's legacy NumPy stream, drawn
/// from value by value across cells): it runs on one thread over every cell in file order,
/// cells that are then left out included.
pub trait SequentialTokenizer: Send {
    /// Tokenizes the next cell (`key`: its index in the input).
    fn tokenize(&mut self, key: u64, cell: CellView<'_>) -> TokenizedCell;
}

/// What a scheme needs to know of a dataset to make its tokenizer ready
/// ([`SchemeSpec::prepare`](crate::spec::SchemeSpec::prepare)).
#[derive(Debug, Clone, Copy)]
pub struct TokenizerInput<'a> {
    /// The dataset's genes.
    pub genes: &'a GeneTable,
    /// A GENCODE gene table (Ensembl id → symbol) for symbol-based schemes on inputs that
    /// have only Ensembl ids ([`crate::vocab::symbol_table`]).
    pub gencode: Option<&'a std::path::Path>,
    /// The dataset has an obs column `n_counts` (recorded in Geneformer's settings).
    pub has_n_counts: bool,
    /// xTrimoGene: cells carry their raw counts on the model's gene positions, what its
    /// pretraining down-samples (datasets and training read them; embeddings do not).
    pub with_counts: bool,
}

/// A scheme's tokenizer planned for one dataset, with the mapping report and the settings a
/// dataset records.
pub struct PreparedTokenizer {
    /// The tokenizer with its plan (and what its cells hold: [`PlannedTokenizer::layout`]).
    pub tokenizer: Box<dyn PlannedTokenizer>,
    /// Input genes that map to the model's genes.
    pub genes_mapped: usize,
    /// Up to three input genes the model does not know.
    pub unknown_examples: Vec<String>,
    /// The scheme's settings and files, as `scfm_tokenizer.json` records them.
    pub settings: serde_json::Value,
    /// Set when the cells must instead be tokenized in file order by this one tokenizer
    /// (scGPT's legacy ties); `tokenizer` is then its per-cell counterpart.
    pub sequential: Option<Box<dyn SequentialTokenizer>>,
    /// An obs column whose rows other than 1 upstream leaves out of a tokenized dataset
    /// (Geneformer's `filter_pass`).
    pub filter_column: Option<&'static str>,
}

impl PreparedTokenizer {
    /// `tokenizer` planned for `genes`, with the scheme's `settings` (given the plan).
    pub fn new<T: Tokenizer + 'static>(
        tokenizer: T,
        genes: &GeneTable,
        settings: impl FnOnce(&T, &T::Plan) -> serde_json::Value,
    ) -> Self {
        let mapping = tokenizer.plan(genes);
        Self::planned(tokenizer, mapping, settings)
    }

    /// `tokenizer` with the plan it made (`mapping`), with the scheme's `settings`.
    pub fn planned<T: Tokenizer + 'static>(
        tokenizer: T,
        GeneMapping { plan, genes_mapped, unknown_examples }: GeneMapping<T::Plan>,
        settings: impl FnOnce(&T, &T::Plan) -> serde_json::Value,
    ) -> Self {
        let settings = settings(&tokenizer, &plan);
        Self {
            tokenizer: Box::new(Planned { tokenizer, plan }),
            genes_mapped,
            unknown_examples,
            settings,
            sequential: None,
            filter_column: None,
        }
    }
}

impl std::fmt::Debug for PreparedTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedTokenizer")
            .field("layout", &self.tokenizer.layout())
            .field("genes_mapped", &self.genes_mapped)
            .field("settings", &self.settings)
            .field("sequential", &self.sequential.is_some())
            .field("filter_column", &self.filter_column)
            .finish_non_exhaustive()
    }
}
