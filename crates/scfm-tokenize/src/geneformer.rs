//! Geneformer's rank-value encoding (V1 and V2), exactly as upstream `TranscriptomeTokenizer`.
//!
//! For each cell, every expressed vocabulary gene gets the sort key
//! `x = ((count · (1/n_counts)) · 10000) · (1/median_gene)` in f64 — the reciprocal form is
//! what upstream computes (scipy divides sparse matrices by multiplying with the reciprocal),
//! and it differs from `count / n_counts · 10000 / median` in the last bit for about a third of
//! the entries. Genes are ranked by descending `x` with a **stable** sort (ties keep column
//! order; upstream's NumPy sort is unstable, but no tie occurs in the real data checked), then
//! truncated: V1 keeps the first 2,048 genes, V2 wraps the first 4,094 in `<cls>` … `<eos>`.
//!
//! Gene ids are mapped as upstream's `sum_ensembl_ids` does ([`GenePlan`]): through the
//! Ensembl mapping dictionary restricted to vocabulary genes, either one to one ("map-only"),
//! or — when several inputs map to one gene — dropping unmapped columns and summing the
//! duplicates into columns appended after the others ("collapse").
//!
//! ```no_run
//! use std::path::Path;
//! use scfm_tokenize::geneformer::{GeneformerDictionaries, GeneformerTokenizer, GeneformerVersion};
//!
//! let dir = Path::new("vocab/geneformer");
//! let dicts = GeneformerDictionaries::load(
//!     &dir.join("token_dictionary_gc104M.pkl"),
//!     &dir.join("gene_median_dictionary_gc104M.pkl"),
//!     &dir.join("ensembl_mapping_dict_gc104M.pkl"),
//! )?;
//! let tokenizer = GeneformerTokenizer::new(GeneformerVersion::V2, dicts);
//! # Ok::<(), scfm_tokenize::TokenizeError>(())
//! ```

use std::collections::{HashMap, HashSet};
use std::path::Path;

use scfm_core::{CellView, GeneVocab, StrMap, StringMap};

use crate::error::TokenizeError;
use crate::vocab::{geneformer_gene_medians, geneformer_token_dictionary, string_map};

/// The Geneformer model generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeneformerVersion {
    /// gc30M dictionaries, 2,048 tokens, no special tokens.
    V1,
    /// gc104M dictionaries, 4,096 tokens with `<cls>` first and `<eos>` last.
    V2,
}

impl GeneformerVersion {
    /// The model's input length.
    pub fn model_input_size(self) -> usize {
        match self {
            Self::V1 => 2048,
            Self::V2 => 4096,
        }
    }

    /// Whether `<cls>` / `<eos>` wrap the ranking.
    pub fn special_tokens(self) -> bool {
        self == Self::V2
    }
}

/// The three dictionaries a Geneformer tokenizer needs.
#[derive(Debug, Clone)]
pub struct GeneformerDictionaries {
    /// Gene (Ensembl id) and special tokens → token id.
    pub tokens: GeneVocab,
    /// Ensembl id → non-zero median of normalised expression.
    pub medians: StrMap<f64>,
    /// Upper-cased symbol or any Ensembl id → current Ensembl id.
    pub ensembl_mapping: StringMap,
}

impl GeneformerDictionaries {
    /// Reads the upstream pickles.
    ///
    /// # Errors
    /// Read errors and wrong-kind files ([`TokenizeError::WrongKind`]).
    pub fn load(token_dictionary: &Path, gene_medians: &Path, ensembl_mapping: &Path) -> Result<Self, TokenizeError> {
        Ok(Self {
            tokens: geneformer_token_dictionary(token_dictionary)?,
            medians: geneformer_gene_medians(gene_medians)?,
            ensembl_mapping: string_map(ensembl_mapping)?,
        })
    }
}

/// One model column: a vocabulary gene, its median, and the input columns summed into it.
#[derive(Debug, Clone, PartialEq)]
struct PlanColumn {
    token: u32,
    inv_median: f64,
    /// Several input columns are summed into this one.
    summed: bool,
}

/// Where one input column goes, flattened for the per-cell loop (one memory access per
/// expressed gene): its model column (or [`InputGene::UNMAPPED`], with
/// [`InputGene::SUMMED`] set when it is summed with others), token and median.
#[derive(Debug, Clone, Copy, PartialEq)]
struct InputGene {
    inv_median: f64,
    token: u32,
    col: u32,
}

impl InputGene {
    const UNMAPPED: u32 = u32::MAX;
    const SUMMED: u32 = 1 << 31;
}

/// How a dataset's genes map onto the vocabulary; computed once per gene table.
#[derive(Debug, Clone, PartialEq)]
pub struct GenePlan {
    /// For every input column, the model column it adds to, with that column's token and median.
    inputs: Vec<InputGene>,
    columns: Vec<PlanColumn>,
    /// Whether duplicates were summed (upstream's collapse branch).
    pub collapsed: bool,
    /// Input columns that map to a vocabulary gene.
    pub mapped_inputs: usize,
    /// Model columns that sum several input columns.
    pub summed_groups: usize,
}

impl GenePlan {
    /// Number of model columns (distinct vocabulary genes in the dataset, or more in map-only
    /// mode when two inputs map to one gene).
    pub fn n_columns(&self) -> usize {
        self.columns.len()
    }

    /// Whether input column `i` maps to a vocabulary gene.
    pub fn is_mapped(&self, i: usize) -> bool {
        self.inputs.get(i).is_some_and(|g| g.col != InputGene::UNMAPPED)
    }
}

/// Geneformer's tokenizer; see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct GeneformerTokenizer {
    version: GeneformerVersion,
    dicts: GeneformerDictionaries,
    cls: u32,
    eos: u32,
}

/// One tokenized cell.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneformerCell {
    /// Token ids, truncated, with specials for V2.
    pub input_ids: Vec<u32>,
}

impl GeneformerTokenizer {
    /// A tokenizer for `version` with its dictionaries.
    ///
    /// # Panics
    /// When a V2 token dictionary lacks `<cls>` or `<eos>` (a programming error: V1 dictionaries
    /// were given for V2).
    pub fn new(version: GeneformerVersion, dicts: GeneformerDictionaries) -> Self {
        let special = |t: &str| match version {
            GeneformerVersion::V2 => dicts.tokens.id(t).unwrap_or_else(|| panic!("V2 token dictionary has no {t}")),
            GeneformerVersion::V1 => 0,
        };
        let (cls, eos) = (special("<cls>"), special("<eos>"));
        Self { version, dicts, cls, eos }
    }

    /// The version this tokenizer encodes for.
    pub fn version(&self) -> GeneformerVersion {
        self.version
    }

    /// Maps a dataset's gene ids (Ensembl ids or symbols) onto the vocabulary, as upstream's
    /// `sum_ensembl_ids` with `collapse_gene_ids=True`.
    pub fn plan(&self, genes: &[String]) -> GenePlan {
        let vocab = &self.dicts.tokens;
        let mapping = &self.dicts.ensembl_mapping;
        let in_vocab = |target: &&str| vocab.id(target).is_some();
        // Branch test, on the ids as given (not upper-cased).
        let in_map: HashSet<&str> =
            genes.iter().filter(|g| mapping.get(g).is_some_and(|t| in_vocab(&t))).map(String::as_str).collect();
        let targets_of_in_map: HashSet<&str> = in_map.iter().filter_map(|g| mapping.get(g)).collect();
        let collapse = in_map.len() != targets_of_in_map.len();
        // Mapping itself, on upper-cased ids.
        let mapped: Vec<Option<&str>> = genes.iter().map(|g| mapping.get(&g.to_uppercase()).filter(in_vocab)).collect();
        let mut target = vec![None; genes.len()];
        let mut columns = vec![];
        let mut summed_groups = 0;
        let push = |gene: &str, columns: &mut Vec<PlanColumn>| -> Option<u32> {
            let token = vocab.id(gene)?;
            let median = *self.dicts.medians.get(gene)?;
            columns.push(PlanColumn { token, inv_median: 1.0 / median, summed: false });
            Some(columns.len() as u32 - 1)
        };
        if collapse {
            let mut count: HashMap<&str, usize> = HashMap::new();
            for t in mapped.iter().flatten() {
                *count.entry(t).or_default() += 1;
            }
            // Unique targets keep their place; duplicated ones are summed and appended in order
            // of first occurrence.
            for (i, t) in mapped.iter().enumerate() {
                if let Some(t) = t
                    && count[t] == 1
                {
                    target[i] = push(t, &mut columns);
                }
            }
            let mut appended: HashMap<&str, Option<u32>> = HashMap::new();
            for (i, t) in mapped.iter().enumerate() {
                if let Some(t) = t
                    && count[t] > 1
                {
                    let col = *appended.entry(t).or_insert_with(|| {
                        summed_groups += 1;
                        push(t, &mut columns)
                    });
                    target[i] = col;
                }
            }
        } else {
            for (i, t) in mapped.iter().enumerate() {
                if let Some(t) = t {
                    target[i] = push(t, &mut columns);
                }
            }
        }
        let mut sources = vec![0usize; columns.len()];
        for t in target.iter().flatten() {
            sources[*t as usize] += 1;
        }
        for (c, n) in columns.iter_mut().zip(sources) {
            c.summed = n > 1;
        }
        let mapped_inputs = target.iter().filter(|t| t.is_some()).count();
        assert!(columns.len() < InputGene::SUMMED as usize, "fewer than 2^31 vocabulary genes");
        let inputs = target
            .iter()
            .map(|t| match *t {
                None => InputGene { inv_median: 0.0, token: 0, col: InputGene::UNMAPPED },
                Some(col) => {
                    let c = &columns[col as usize];
                    let flag = if c.summed { InputGene::SUMMED } else { 0 };
                    InputGene { inv_median: c.inv_median, token: c.token, col: col | flag }
                }
            })
            .collect();
        GenePlan { inputs, columns, collapsed: collapse, mapped_inputs, summed_groups }
    }

    /// The un-truncated ranking of one cell: `(token, sort key)` by descending key. `n_counts`
    /// is the cell's total raw count over all genes of the input (upstream's `obs["n_counts"]`).
    pub fn rank(&self, plan: &GenePlan, cell: CellView<'_>, n_counts: f64) -> Vec<(u32, f64)> {
        self.with_sorted_keys(plan, cell, n_counts, |keys| {
            keys.iter().map(|&k| (k as u32, f64::from_bits(!((k >> 64) as u64)))).collect()
        })
    }

    /// Calls `f` with the ranking packed as `(!key_bits << 64) | (model column << 32) | token`,
    /// ascending: keys are positive finite f64, whose bit patterns order like their values, so
    /// an ascending sort of the packed integers is descending by key with ties in model-column
    /// order — exactly a stable descending sort. Buffers are reused per thread.
    fn with_sorted_keys<R>(
        &self,
        plan: &GenePlan,
        cell: CellView<'_>,
        n_counts: f64,
        f: impl FnOnce(&[u128]) -> R,
    ) -> R {
        /// Per-thread buffers: packed keys, sort scratch, summed (collapsed) columns.
        #[derive(Default)]
        struct Buffers {
            keys: Vec<u128>,
            scratch: crate::radix::Scratch,
            summed: Vec<(u32, f64)>,
        }
        thread_local! {
            static BUFFERS: std::cell::RefCell<Buffers> = Default::default();
        }
        let inv_n = 1.0 / n_counts;
        let key = |col: u32, token: u32, inv_median: f64, count: f64| -> Option<u128> {
            let x = ((count * inv_n) * 10_000.0) * inv_median;
            // Zero and non-finite keys (an n_counts of 0) are not ranked.
            (x > 0.0 && x.is_finite())
                .then(|| (u128::from(!x.to_bits()) << 64) | (u128::from(col) << 32) | u128::from(token))
        };
        BUFFERS.with_borrow_mut(|Buffers { keys, scratch, summed }| {
            keys.clear();
            summed.clear();
            for (&g, &v) in cell.indices.iter().zip(cell.values) {
                let Some(&InputGene { inv_median, token, col }) = plan.inputs.get(g as usize) else { continue };
                if col == InputGene::UNMAPPED {
                    continue;
                }
                if col & InputGene::SUMMED != 0 {
                    summed.push((col & !InputGene::SUMMED, f64::from(v)));
                } else if let Some(k) = key(col, token, inv_median, f64::from(v)) {
                    keys.push(k);
                }
            }
            if !summed.is_empty() {
                // Sum in input-column order, as upstream adds the duplicated columns.
                summed.sort_by_key(|&(c, _)| c);
                summed.dedup_by(|next, kept| {
                    let same = next.0 == kept.0;
                    if same {
                        kept.1 += next.1;
                    }
                    same
                });
                keys.extend(summed.iter().filter_map(|&(col, n)| {
                    let c = &plan.columns[col as usize];
                    key(col, c.token, c.inv_median, n)
                }));
            }
            crate::radix::sort_by_high_stable(keys, scratch);
            f(keys)
        })
    }

    /// Tokenizes one cell; `None` when it expresses no vocabulary gene (upstream drops such cells).
    pub fn tokenize(&self, plan: &GenePlan, cell: CellView<'_>, n_counts: f64) -> Option<GeneformerCell> {
        self.with_sorted_keys(plan, cell, n_counts, |ranked| {
            if ranked.is_empty() {
                return None;
            }
            let size = self.version.model_input_size();
            let input_ids = if self.version.special_tokens() {
                let mut ids = Vec::with_capacity(size.min(ranked.len() + 2));
                ids.push(self.cls);
                ids.extend(ranked.iter().take(size - 2).map(|&k| k as u32));
                ids.push(self.eos);
                ids
            } else {
                ranked.iter().take(size).map(|&k| k as u32).collect()
            };
            Some(GeneformerCell { input_ids })
        })
    }
}
