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
use std::path::{Path, PathBuf};

use scfm_core::{CellView, GeneVocab, StrMap, StringMap};
use serde::{Deserialize, Serialize};

use crate::error::TokenizeError;
use crate::spec::{SchemeOptions, SchemeSpec};
use crate::tokenizer::{PreparedTokenizer, TokenizerInput};
use crate::vocab::{geneformer_gene_medians, geneformer_token_dictionary, string_map, string_map_where};

/// The Geneformer model generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum), value(rename_all = "lower"))]
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

/// The files Geneformer's tokenizer reads, found in a folder by their upstream names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneformerDictionaryFiles {
    /// `token_dictionary_gc*.pkl`.
    pub token_dictionary: PathBuf,
    /// `gene_median_dictionary_gc*.pkl`.
    pub gene_medians: PathBuf,
    /// `ensembl_mapping_dict_gc*.pkl`.
    pub ensembl_mapping: PathBuf,
    /// `gene_name_id_dict_gc*.pkl` (symbol → Ensembl id), used to map symbol inputs for V1,
    /// whose Ensembl mapping knows no symbols.
    pub gene_name_id: Option<PathBuf>,
}

impl GeneformerDictionaryFiles {
    /// Finds the files in `dir` (upstream names: `*_gc104M.pkl` for V2, `*_gc30M.pkl` for V1).
    ///
    /// # Errors
    /// [`TokenizeError::MissingFile`] naming the file that is not there.
    pub fn find(dir: &Path, version: GeneformerVersion) -> Result<Self, TokenizeError> {
        let suffix = match version {
            GeneformerVersion::V1 => "gc30M",
            GeneformerVersion::V2 => "gc104M",
        };
        let file = |stem: &str| -> Result<PathBuf, TokenizeError> {
            let name = format!("{stem}_{suffix}.pkl");
            let p = dir.join(&name);
            if p.exists() {
                Ok(p)
            } else {
                Err(TokenizeError::MissingFile {
                    dir: dir.to_owned(),
                    file: name,
                    hint: format!("; pass the folder holding Geneformer's {version:?} dictionaries"),
                })
            }
        };
        Ok(Self {
            token_dictionary: file("token_dictionary")?,
            gene_medians: file("gene_median_dictionary")?,
            ensembl_mapping: file("ensembl_mapping_dict")?,
            gene_name_id: file("gene_name_id_dict").ok(),
        })
    }
}

/// Geneformer's rank-value scheme of version `V` (1: gc30M, 2: gc104M with `<cls>` … `<eos>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneformerSpec<const V: u8> {
    /// The dictionaries.
    pub dictionaries: GeneformerDictionaryFiles,
    /// Tokens per cell, specials included (upstream's `model_input_size`).
    pub model_input_size: usize,
}

impl<const V: u8> GeneformerSpec<V> {
    /// The version.
    pub const VERSION: GeneformerVersion = match V {
        1 => GeneformerVersion::V1,
        2 => GeneformerVersion::V2,
        _ => panic!("Geneformer's versions are 1 and 2"),
    };

    /// The version's dictionaries in `dir` (see [`GeneformerDictionaryFiles::find`]), the
    /// version's own input size.
    ///
    /// # Errors
    /// [`TokenizeError::MissingFile`] naming a file that is not there.
    pub fn in_dir(dir: &Path) -> Result<Self, TokenizeError> {
        let dictionaries = GeneformerDictionaryFiles::find(dir, Self::VERSION)?;
        Ok(Self { dictionaries, model_input_size: Self::VERSION.model_input_size() })
    }

    /// The same scheme with `size` tokens per cell (see
    /// [`GeneformerTokenizer::with_input_size`]).
    pub fn with_input_size(mut self, size: usize) -> Self {
        self.model_input_size = size;
        self
    }

    /// The same scheme with at most `max_len` tokens per cell: the highest-ranked genes, V2's
    /// `<cls>` … `<eos>` frame kept (a model's shorter context; longer ones change nothing).
    pub fn at_most(self, max_len: usize) -> Self {
        let size = self.model_input_size.min(max_len);
        self.with_input_size(size)
    }
}

impl<const V: u8> SchemeSpec for GeneformerSpec<V> {
    fn from_files(vocab: &Path, _options: &SchemeOptions) -> Result<Self, TokenizeError> {
        Self::in_dir(vocab)
    }

    fn vocabulary(&self) -> &Path {
        &self.dictionaries.token_dictionary
    }

    /// Only the input's part of the Ensembl mapping is read (the plan is the same); V1 maps
    /// symbol inputs through `gene_name_id_dict` first, its Ensembl mapping knowing no symbols.
    /// Rows whose obs `filter_pass` is not 1 are left out, as upstream.
    fn prepare(&self, input: &TokenizerInput<'_>) -> Result<PreparedTokenizer, TokenizeError> {
        let (version, files) = (Self::VERSION, &self.dictionaries);
        let names = match &files.gene_name_id {
            Some(p) if version == GeneformerVersion::V1 && input.genes.id_kind() == scfm_core::GeneIdKind::Symbol => {
                Some(string_map(p)?)
            }
            _ => None,
        };
        let genes = input_genes(input.genes, names.as_ref());
        let dicts = GeneformerDictionaries::load_for_genes(
            &files.token_dictionary,
            &files.gene_medians,
            &files.ensembl_mapping,
            &genes,
        )?;
        let mut tok = GeneformerTokenizer::new(version, dicts).with_input_size(self.model_input_size);
        if let Some(names) = names {
            tok = tok.with_gene_names(names);
        }
        let has_n_counts = input.has_n_counts;
        let prepared = PreparedTokenizer::new(tok, input.genes, |tok, plan| {
            serde_json::json!({
                "model_input_size": tok.input_size(),
                "dictionaries": files,
                "collapsed_duplicates": plan.collapsed,
                "n_counts_from": if has_n_counts { "obs column n_counts" } else { "cell totals over all input genes" },
            })
        });
        Ok(PreparedTokenizer { filter_column: Some("filter_pass"), ..prepared })
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
    /// Reads the upstream pickles, the three at once (for gc104M, the Ensembl mapping alone
    /// takes about 65 ms, the medians 35 ms).
    ///
    /// # Errors
    /// Read errors and wrong-kind files ([`TokenizeError::WrongKind`]); the token dictionary's
    /// error first, then the medians', then the mapping's.
    pub fn load(token_dictionary: &Path, gene_medians: &Path, ensembl_mapping: &Path) -> Result<Self, TokenizeError> {
        Self::load_with(token_dictionary, gene_medians, || string_map(ensembl_mapping))
    }

    /// Like [`load`](Self::load), but the Ensembl mapping keeps only the entries that
    /// [`GeneformerTokenizer::plan`] looks up for `genes` — each id as given and upper-cased —
    /// instead of all 173,697 (the largest part of a run's fixed cost). Planning exactly these
    /// genes gives the same plan as with the whole mapping; any other gene finds no entry and is
    /// left unmapped, so plan other datasets with dictionaries of their own.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn load_for_genes(
        token_dictionary: &Path,
        gene_medians: &Path,
        ensembl_mapping: &Path,
        genes: &[String],
    ) -> Result<Self, TokenizeError> {
        let mut wanted: StrMap<()> = genes.iter().map(|g| (g.as_str(), ())).collect();
        for g in genes.iter().filter(|g| needs_upper_casing(g)) {
            wanted.insert(&g.to_uppercase(), ());
        }
        Self::load_with(token_dictionary, gene_medians, || {
            string_map_where(ensembl_mapping, |k| wanted.contains_key(k))
        })
    }

    /// The three files read at once; errors in the order token dictionary, medians, mapping.
    fn load_with(
        token_dictionary: &Path,
        gene_medians: &Path,
        mapping: impl FnOnce() -> Result<StringMap, TokenizeError> + Send,
    ) -> Result<Self, TokenizeError> {
        std::thread::scope(|scope| {
            let mapping = scope.spawn(mapping);
            let medians = scope.spawn(|| geneformer_gene_medians(gene_medians));
            let tokens = geneformer_token_dictionary(token_dictionary);
            let (medians, mapping) = (join(medians), join(mapping));
            Ok(Self { tokens: tokens?, medians: medians?, ensembl_mapping: mapping? })
        })
    }
}

fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Whether upper-casing changes `g` (upstream looks genes up upper-cased).
fn needs_upper_casing(g: &str) -> bool {
    !g.bytes().all(|b| b.is_ascii() && !b.is_ascii_lowercase())
}

/// One model column: a vocabulary gene, its median, and the input columns summed into it.
#[derive(Debug, Clone, PartialEq)]
struct PlanColumn {
    token: u32,
    inv_median: f64,
    /// Several input columns are summed into this one.
    summed: bool,
}

/// Where one input column goes, flattened for the per-cell loop (one 12-byte load per expressed
/// gene): the reciprocal median and the token of its model column; or, with
/// [`InputGene::SUMMED`] set, the model column it is summed into; or [`InputGene::UNMAPPED`].
/// Unmapped and summed inputs have `inv_median` 0, so the per-cell loop gives them a zero key
/// (not ranked) without a branch.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, packed(4))]
struct InputGene {
    inv_median: f64,
    tag: u32,
}

impl InputGene {
    const UNMAPPED: u32 = u32::MAX;
    const SUMMED: u32 = 1 << 31;
    const UNMAPPED_GENE: Self = Self { inv_median: 0.0, tag: Self::UNMAPPED };
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
        self.inputs.get(i).is_some_and(|g| g.tag != InputGene::UNMAPPED)
    }
}

/// One cell's ranking, borrowed from the per-thread buffers.
struct Ranking<'a> {
    sorted: crate::radix::Sorted<'a>,
    /// Complemented key bits, by position.
    keys: &'a [u64],
    tokens: &'a [u32],
}

impl Ranking<'_> {
    fn len(&self) -> usize {
        self.keys.len()
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Tokens by descending key.
    fn tokens(&self) -> impl Iterator<Item = u32> + '_ {
        self.sorted.positions().map(|i| self.tokens[i])
    }

    /// `(token, key)` by descending key.
    fn pairs(&self) -> impl Iterator<Item = (u32, f64)> + '_ {
        self.sorted.positions().map(|i| (self.tokens[i], f64::from_bits(!self.keys[i])))
    }
}

/// The ids of `<cls>` and `<eos>` in a token dictionary.
fn special_ids(tokens: &GeneVocab) -> Result<(u32, u32), TokenizeError> {
    let id = |t: &str| {
        tokens.id(t).ok_or_else(|| TokenizeError::MissingToken {
            token: t.to_owned(),
            vocabulary: "Geneformer token dictionary",
        })
    };
    Ok((id("<cls>")?, id("<eos>")?))
}

/// Geneformer's tokenizer; see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct GeneformerTokenizer {
    version: GeneformerVersion,
    dicts: GeneformerDictionaries,
    /// `<cls>` and `<eos>` ids when the ranking is framed by them (upstream `special_token`).
    specials: Option<(u32, u32)>,
    /// Tokens per cell, specials included (upstream `model_input_size`).
    input_size: usize,
    /// Counts are scaled to this total before the medians divide them (upstream `target_sum`).
    target_sum: f64,
    /// Symbol → Ensembl id (`gene_name_id_dict`), applied to inputs with symbols before the
    /// plan: V1's Ensembl mapping knows no symbols.
    gene_names: Option<StringMap>,
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
        let specials = version
            .special_tokens()
            .then(|| special_ids(&dicts.tokens).unwrap_or_else(|e| panic!("{e} (V2 needs them)")));
        Self {
            version,
            dicts,
            specials,
            input_size: version.model_input_size(),
            target_sum: 10_000.0,
            gene_names: None,
        }
    }

    /// The same tokenizer with `input_size` tokens per cell, specials included (upstream's
    /// `model_input_size`; the version's own size by default). With specials, the ranking is
    /// cut to `input_size − 2` genes, as upstream slices it.
    #[must_use]
    pub fn with_input_size(mut self, input_size: usize) -> Self {
        self.input_size = input_size;
        self
    }

    /// The same tokenizer with the ranking framed by `<cls>` and `<eos>` or not (upstream's
    /// `special_token`; on for V2, off for V1 by default).
    ///
    /// # Errors
    /// [`TokenizeError::MissingToken`] when specials are asked for and the token dictionary
    /// has no `<cls>` or `<eos>` (the V1 dictionaries).
    pub fn with_special_tokens(mut self, on: bool) -> Result<Self, TokenizeError> {
        self.specials = if on { Some(special_ids(&self.dicts.tokens)?) } else { None };
        Ok(self)
    }

    /// The same tokenizer scaling every cell to `target_sum` counts (upstream's `target_sum`,
    /// 10,000 by default).
    #[must_use]
    pub fn with_target_sum(mut self, target_sum: f64) -> Self {
        self.target_sum = target_sum;
        self
    }

    /// The same tokenizer mapping symbol inputs to Ensembl ids through `names`
    /// (`gene_name_id_dict`) before planning them ([`crate::Tokenizer::plan`]; see
    /// [`input_genes`]).
    #[must_use]
    pub fn with_gene_names(mut self, names: StringMap) -> Self {
        self.gene_names = Some(names);
        self
    }

    /// The version this tokenizer encodes for.
    pub fn version(&self) -> GeneformerVersion {
        self.version
    }

    /// Tokens per cell, specials included.
    pub fn input_size(&self) -> usize {
        self.input_size
    }

    /// Whether `<cls>` and `<eos>` frame the ranking.
    pub fn special_tokens(&self) -> bool {
        self.specials.is_some()
    }

    /// Maps a dataset's gene ids (Ensembl ids or symbols) onto the vocabulary, as upstream's
    /// `sum_ensembl_ids` with `collapse_gene_ids=True`.
    pub fn plan(&self, genes: &[String]) -> GenePlan {
        let vocab = &self.dicts.tokens;
        let mapping = &self.dicts.ensembl_mapping;
        // One lookup per gene and dictionary (the dictionaries are megabytes, so every lookup is a
        // few cache misses): each gene's target and token, on the id as given and — for ids that
        // change when upper-cased — on the upper-cased id.
        let target_of = |g: &str| -> Option<(&str, u32)> {
            let t = mapping.get(g)?;
            Some((t, vocab.id(t)?))
        };
        let as_given: Vec<Option<(&str, u32)>> = genes.iter().map(|g| target_of(g)).collect();
        // Branch test, on the ids as given (not upper-cased).
        let in_map: HashSet<&str> =
            genes.iter().zip(&as_given).filter(|(_, t)| t.is_some()).map(|(g, _)| g.as_str()).collect();
        let targets_of_in_map: HashSet<&str> = as_given.iter().flatten().map(|&(t, _)| t).collect();
        let collapse = in_map.len() != targets_of_in_map.len();
        // Mapping itself, on upper-cased ids.
        let mapped: Vec<Option<(&str, u32)>> = genes
            .iter()
            .zip(&as_given)
            .map(|(g, &given)| if needs_upper_casing(g) { target_of(&g.to_uppercase()) } else { given })
            .collect();
        let mut target = vec![None; genes.len()];
        let mut columns = vec![];
        let mut summed_groups = 0;
        let push = |(gene, token): (&str, u32), columns: &mut Vec<PlanColumn>| -> Option<u32> {
            let median = *self.dicts.medians.get(gene)?;
            columns.push(PlanColumn { token, inv_median: 1.0 / median, summed: false });
            Some(columns.len() as u32 - 1)
        };
        if collapse {
            let mut count: HashMap<&str, usize> = HashMap::new();
            for (t, _) in mapped.iter().flatten() {
                *count.entry(t).or_default() += 1;
            }
            // Unique targets keep their place; duplicated ones are summed and appended in order
            // of first occurrence.
            for (i, t) in mapped.iter().enumerate() {
                if let &Some(t) = t
                    && count[t.0] == 1
                {
                    target[i] = push(t, &mut columns);
                }
            }
            let mut appended: HashMap<&str, Option<u32>> = HashMap::new();
            for (i, t) in mapped.iter().enumerate() {
                if let &Some(t) = t
                    && count[t.0] > 1
                {
                    let col = *appended.entry(t.0).or_insert_with(|| {
                        summed_groups += 1;
                        push(t, &mut columns)
                    });
                    target[i] = col;
                }
            }
        } else {
            for (i, t) in mapped.iter().enumerate() {
                if let &Some(t) = t {
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
        // Columns are fewer than input genes, which number less than 2^31 (u32 positions); tokens
        // are at most `GeneVocab::MAX_ID`: both leave the SUMMED bit free.
        let inputs = target
            .iter()
            .map(|t| match *t {
                None => InputGene::UNMAPPED_GENE,
                Some(col) => {
                    let c = &columns[col as usize];
                    if c.summed {
                        InputGene { inv_median: 0.0, tag: col | InputGene::SUMMED }
                    } else {
                        InputGene { inv_median: c.inv_median, tag: c.token }
                    }
                }
            })
            .collect();
        GenePlan { inputs, columns, collapsed: collapse, mapped_inputs, summed_groups }
    }

    /// The un-truncated ranking of one cell: `(token, sort key)` by descending key. `n_counts`
    /// is the cell's total raw count over all genes of the input (upstream's `obs["n_counts"]`).
    pub fn rank(&self, plan: &GenePlan, cell: CellView<'_>, n_counts: f64) -> Vec<(u32, f64)> {
        self.with_ranking(plan, cell, n_counts, |ranked| ranked.pairs().collect())
    }

    /// Calls `f` with the ranking: `(token, key)` by descending key, ties in model-column order —
    /// exactly a stable descending sort. Keys are positive finite f64, whose bit patterns order
    /// like their values, so their complements sort ascending in the wanted order. They are
    /// pushed in model-column order (input columns are strictly increasing, and summed columns
    /// come after all others, in order), so the stable argsort keeps ties in that order.
    /// Buffers are reused per thread.
    fn with_ranking<R>(
        &self,
        plan: &GenePlan,
        cell: CellView<'_>,
        n_counts: f64,
        f: impl FnOnce(Ranking<'_>) -> R,
    ) -> R {
        /// Per-thread buffers: complemented key bits and tokens by position, sort scratch,
        /// summed (collapsed) columns.
        #[derive(Default)]
        struct Buffers {
            keys: Vec<u64>,
            tokens: Vec<u32>,
            scratch: crate::radix::Scratch,
            summed: Vec<(u32, f64)>,
        }
        thread_local! {
            static BUFFERS: std::cell::RefCell<Buffers> = Default::default();
        }
        let inv_n = 1.0 / n_counts;
        let target_sum = self.target_sum;
        // Zero and non-finite keys (unmapped and summed inputs, an n_counts of 0) are not ranked:
        // `x > 0.0 && x < ∞` is `0 < bits < bits(∞)`, one comparison of `bits − 1` (negative
        // values have the sign bit set and NaNs lie above ∞). `move`: the key loop reads
        // 1/n_counts from a register, not through a reference to it.
        let key = move |inv_median: f64, count: f64| -> (u64, bool) {
            let bits = (((count * inv_n) * target_sum) * inv_median).to_bits();
            (!bits, bits.wrapping_sub(1) < f64::INFINITY.to_bits() - 1)
        };
        BUFFERS.with_borrow_mut(|Buffers { keys, tokens, scratch, summed }| {
            // Every expressed gene is written at `len`, which only advances for ranked ones:
            // no branch per gene. Summed columns are fewer than their (unranked) inputs.
            let nnz = cell.nnz();
            if keys.len() < nnz {
                keys.resize(nnz, 0);
                tokens.resize(nnz, 0);
            }
            // Each key and token go in at the next position; the sorter makes the key its radix
            // item there and keeps the range of the ranked keys. (A closure for these four lines,
            // shared with the summed columns below, ran slower in the criterion benchmark.)
            let mut sorter = crate::radix::PushedKeys::new(nnz, scratch);
            let (key_slots, token_slots) = (&mut keys[..nnz], &mut tokens[..nnz]);
            for (&g, &v) in cell.indices.iter().zip(cell.values) {
                let gene = plan.inputs.get(g as usize).copied().unwrap_or(InputGene::UNMAPPED_GENE);
                let (k, ranked) = key(gene.inv_median, f64::from(v));
                let len = sorter.len();
                key_slots[len] = k;
                token_slots[len] = gene.tag;
                sorter.push(k, ranked);
            }
            summed.clear();
            if plan.summed_groups > 0 {
                for (&g, &v) in cell.indices.iter().zip(cell.values) {
                    let tag = plan.inputs.get(g as usize).map_or(InputGene::UNMAPPED, |gene| gene.tag);
                    if tag != InputGene::UNMAPPED && tag & InputGene::SUMMED != 0 {
                        summed.push((tag & !InputGene::SUMMED, f64::from(v)));
                    }
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
                for &(col, n) in summed.iter() {
                    let c = &plan.columns[col as usize];
                    let (k, ranked) = key(c.inv_median, n);
                    let len = sorter.len();
                    key_slots[len] = k;
                    token_slots[len] = c.token;
                    sorter.push(k, ranked);
                }
            }
            let len = sorter.len();
            let (keys, tokens) = (&keys[..len], &tokens[..len]);
            let sorted = sorter.sort(keys);
            f(Ranking { sorted, keys, tokens })
        })
    }

    /// Tokenizes one cell; `None` when it expresses no vocabulary gene (upstream drops such cells).
    pub fn tokenize(&self, plan: &GenePlan, cell: CellView<'_>, n_counts: f64) -> Option<GeneformerCell> {
        self.with_ranking(plan, cell, n_counts, |ranked| {
            if ranked.is_empty() {
                return None;
            }
            let size = self.input_size;
            let input_ids = if let Some((cls, eos)) = self.specials {
                let mut ids = Vec::with_capacity(size.min(ranked.len() + 2));
                ids.push(cls);
                ids.extend(ranked.tokens().take(size.saturating_sub(2)));
                ids.push(eos);
                // Never more than `size` tokens: below 2, the frame itself is cut (upstream's
                // `[:size - 2]` would count from the end there).
                ids.truncate(size);
                ids
            } else {
                ranked.tokens().take(size).collect()
            };
            Some(GeneformerCell { input_ids })
        })
    }
}

/// The gene ids a Geneformer plan reads for `genes`: its ids, or, when they are symbols and
/// `names` (`gene_name_id_dict`, symbol → Ensembl id) is given, each symbol's id (exact case;
/// symbols it does not know are kept and then dropped by the plan).
pub fn input_genes(genes: &scfm_core::GeneTable, names: Option<&StringMap>) -> Vec<String> {
    let ids = genes.ids();
    match names {
        Some(names) if genes.id_kind() == scfm_core::GeneIdKind::Symbol => {
            ids.iter().map(|g| names.get(g).map_or_else(|| g.clone(), str::to_owned)).collect()
        }
        _ => ids.to_vec(),
    }
}

impl crate::Tokenizer for GeneformerTokenizer {
    type Plan = GenePlan;

    fn layout(&self) -> crate::TokenLayout {
        let ids = if self.version == GeneformerVersion::V1 { crate::IdWidth::I16 } else { crate::IdWidth::I32 };
        crate::TokenLayout { ids, values: false, counts: false, uses_n_counts: true }
    }

    fn plan(&self, genes: &scfm_core::GeneTable) -> crate::GeneMapping<GenePlan> {
        let genes = input_genes(genes, self.gene_names.as_ref());
        let mapping = crate::GeneMapping::new(GeneformerTokenizer::plan(self, &genes), &genes, GenePlan::is_mapped);
        // Upstream's count: inputs with a mapping target (summed duplicates count each).
        crate::GeneMapping { genes_mapped: mapping.plan.mapped_inputs, ..mapping }
    }

    fn tokenize(&self, plan: &GenePlan, _key: u64, cell: CellView<'_>, n_counts: f64) -> Option<crate::TokenizedCell> {
        GeneformerTokenizer::tokenize(self, plan, cell, n_counts).map(|t| crate::TokenizedCell::ids(t.input_ids))
    }
}
