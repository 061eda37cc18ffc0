//! End-to-end jobs that compose the crates: read any input, tokenize, write a dataset.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use scfm_core::arrow_array::cast::AsArray;
use scfm_core::arrow_array::types::Float64Type;
use scfm_core::arrow_array::{
    ArrayRef, Float32Array, Int16Array, Int32Array, Int64Array, ListArray, RecordBatch, UInt8Array, UInt32Array,
};
use scfm_core::arrow_buffer::{OffsetBuffer, ScalarBuffer};
use scfm_core::arrow_schema::{DataType, Field, Schema};
use scfm_core::{CellSource, GeneIdKind, GeneTable};
use scfm_io::hf::HfDatasetWriter;
use scfm_io::{AnySource, IoError, MatrixSelector, ObsSelection, SourceOptions};
use scfm_tokenize::geneformer::{GeneformerDictionaries, GeneformerTokenizer, GeneformerVersion, input_genes};
use scfm_tokenize::scbert::{self, ScBertTokenizer};
use scfm_tokenize::scgpt::{self, ScGptSequence, ScGptTokenizer, TieBreak};
use scfm_tokenize::spec::GeneformerDictionaryFiles;
use scfm_tokenize::tokenizer::Planned;
use scfm_tokenize::vocab::{gencode_symbols, gene_list, scfoundation_genes, scgpt_vocab, string_map};
use scfm_tokenize::xtrimogene::{self, DepthTarget, XTrimoGeneTokenizer};
use scfm_tokenize::{
    GeneMapping, IdWidth, PlannedTokenizer, TokenLayout, TokenizeError, TokenizedCell, Tokenizer, TokenizerSpec,
};
use serde::Serialize;

use crate::Error;

/// The Geneformer dictionary files of one version, found in a folder by their upstream names.
#[derive(Debug, Clone, Serialize)]
pub struct GeneformerFiles {
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

impl GeneformerFiles {
    /// Finds the files in `dir` (upstream names: `*_gc104M.pkl` for V2, `*_gc30M.pkl` for V1).
    ///
    /// # Errors
    /// [`IoError::MissingElement`] naming the file that is not there.
    pub fn find(dir: &Path, version: GeneformerVersion) -> Result<Self, Error> {
        let suffix = match version {
            GeneformerVersion::V1 => "gc30M",
            GeneformerVersion::V2 => "gc104M",
        };
        let file = |stem: &str| -> Result<PathBuf, Error> {
            let p = dir.join(format!("{stem}_{suffix}.pkl"));
            if p.exists() {
                Ok(p)
            } else {
                Err(IoError::MissingElement {
                    path: dir.to_owned(),
                    element: format!("{stem}_{suffix}.pkl"),
                    hint: format!("; pass the folder holding Geneformer's {version:?} dictionaries"),
                }
                .into())
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

/// How scGPT breaks ties between equal quantile edges (see [`TieBreak`]).
pub use scfm_tokenize::spec::ScGptTies as TieMode;

/// A tokenization scheme and the upstream files it needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Scheme {
    /// Geneformer rank-value encoding.
    Geneformer {
        /// V1 or V2.
        version: GeneformerVersion,
        /// The dictionaries.
        files: GeneformerFiles,
    },
    /// scGPT gene ids and binned values.
    ScGpt {
        /// `vocab.json` (the release's specials are appended when missing).
        vocab: PathBuf,
        /// Sequence settings (`cls_id` is taken from the vocabulary).
        sequence: ScGptSequence,
        /// Tie-breaking of the binning.
        ties: TieMode,
    },
    /// scBERT expression bins over its 16,906 genes.
    ScBert {
        /// The ordered gene list (`vocab_gene2vec_16906.pkl` or the text list).
        genes: PathBuf,
    },
    /// xTrimoGene / scFoundation encoder input.
    XTrimoGene {
        /// `OS_scRNA_gene_index.19264.tsv`.
        genes: PathBuf,
        /// The target read depth (`t4`, `f1`, `a5`, …).
        target: DepthTarget,
    },
}

impl Scheme {
    /// The scheme's command-line name.
    pub fn name(&self) -> &'static str {
        self.spec().name()
    }
}

/// The settings of [`Scheme::named`] that only some schemes read.
#[derive(Debug, Clone)]
pub struct SchemeOptions {
    /// scGPT: the sequence (`max_len`, `<cls>` value, zero genes, seed; `cls_id` comes from
    /// the vocabulary).
    pub sequence: ScGptSequence,
    /// scGPT: how binning ties are broken.
    pub ties: TieMode,
    /// xTrimoGene: the target read depth.
    pub target: DepthTarget,
}

impl Default for SchemeOptions {
    /// scGPT's zero-shot sequence with helical's ties; xTrimoGene's `t4`.
    fn default() -> Self {
        Self { sequence: ScGptSequence::zero_shot(0), ties: TieMode::Helical, target: DepthTarget::Fixed(4.0) }
    }
}

/// `path` itself, or when it is a folder and `names` are given the first of them in it; `what`
/// names the file for the error when none is there.
pub(crate) fn file_in(path: &Path, names: &[&str], what: &str) -> Result<PathBuf, Error> {
    if names.is_empty() || !path.is_dir() {
        return Ok(path.to_owned());
    }
    names.iter().map(|n| path.join(n)).find(|p| p.exists()).ok_or_else(|| {
        IoError::MissingElement {
            path: path.to_owned(),
            element: names.join(" or "),
            hint: format!("; pass {what} or the folder holding it"),
        }
        .into()
    })
}

impl Scheme {
    /// The scheme called `name` (`geneformer-v2` or `geneformer`, `geneformer-v1`, `scgpt`,
    /// `scbert`, `xtrimogene` or `scfoundation`) over the upstream files at `vocab`: the file,
    /// or a folder holding it under its upstream name (Geneformer: the dictionaries' folder).
    ///
    /// # Errors
    /// [`Error::Unknown`] for another name; a folder without the scheme's files.
    pub fn named(name: &str, vocab: &Path, options: &SchemeOptions) -> Result<Self, Error> {
        Ok(match name {
            "geneformer-v2" | "geneformer" => Self::Geneformer {
                version: GeneformerVersion::V2,
                files: GeneformerFiles::find(vocab, GeneformerVersion::V2)?,
            },
            "geneformer-v1" => Self::Geneformer {
                version: GeneformerVersion::V1,
                files: GeneformerFiles::find(vocab, GeneformerVersion::V1)?,
            },
            "scgpt" => Self::ScGpt {
                vocab: file_in(vocab, &scgpt::VOCAB_FILES, "the scGPT vocab.json")?,
                sequence: options.sequence.clone(),
                ties: options.ties,
            },
            "scbert" => Self::ScBert { genes: file_in(vocab, &scbert::GENE_LIST_FILES, "scBERT's gene list")? },
            "xtrimogene" | "scfoundation" => Self::XTrimoGene {
                genes: file_in(vocab, &xtrimogene::GENE_INDEX_FILES, "scFoundation's gene index")?,
                target: options.target,
            },
            other => {
                return Err(Error::Unknown {
                    what: "tokenization scheme",
                    name: other.to_owned(),
                    expected: "geneformer-v2, geneformer-v1, scgpt, scbert, xtrimogene".into(),
                });
            }
        })
    }

    /// The scheme as datasets record it ([`TokenizerSpec`], saved in `scfm_tokenizer.json`).
    pub fn spec(&self) -> TokenizerSpec {
        match self {
            Self::Geneformer { version, files } => {
                let dictionaries = GeneformerDictionaryFiles {
                    token_dictionary: files.token_dictionary.clone(),
                    gene_medians: files.gene_medians.clone(),
                    ensembl_mapping: files.ensembl_mapping.clone(),
                    gene_name_id: files.gene_name_id.clone(),
                };
                let model_input_size = version.model_input_size();
                match version {
                    GeneformerVersion::V1 => TokenizerSpec::GeneformerV1 { dictionaries, model_input_size },
                    GeneformerVersion::V2 => TokenizerSpec::GeneformerV2 { dictionaries, model_input_size },
                }
            }
            Self::ScGpt { vocab, sequence, ties } => TokenizerSpec::ScGpt {
                vocab: vocab.clone(),
                max_len: sequence.max_len,
                cls_value: sequence.cls_value,
                n_bins: sequence.n_bins,
                include_zero_genes: sequence.include_zero_genes,
                seed: sequence.seed,
                ties: *ties,
            },
            Self::ScBert { genes } => {
                let defaults = ScBertTokenizer::new(vec![]);
                TokenizerSpec::ScBert { genes: genes.clone(), min_genes: defaults.min_genes, bin_num: defaults.bin_num }
            }
            Self::XTrimoGene { genes, target } => {
                TokenizerSpec::XTrimoGene { genes: genes.clone(), target: target.to_string() }
            }
        }
    }
}

/// What to do with input genes the model does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum UnknownGenePolicy {
    /// Leave them out and report how many were mapped (upstream behaviour).
    #[default]
    Skip,
    /// Refuse the input.
    Error,
}

/// Options of [`tokenize`].
#[derive(Debug, Clone)]
pub struct TokenizeOptions {
    /// Matrix of h5ad inputs (raw counts).
    pub matrix: MatrixSelector,
    /// Unknown genes: skip (and count) or error.
    pub unknown_genes: UnknownGenePolicy,
    /// GENCODE gene table (Ensembl id → symbol) for symbol-based schemes on Ensembl-only
    /// inputs.
    pub gene_table: Option<PathBuf>,
    /// Obs columns copied into the dataset.
    pub obs_columns: Vec<String>,
    /// Cells read per step; at most `threads + 1` chunks are in flight (512 cells keep a
    /// 20k-gene Geneformer run on two threads under 150 MB; see `docs/benchmarks.md`).
    pub chunk_cells: usize,
    /// Tokenizer threads, each tokenizing whole chunks (the reader and the writer are two
    /// more); `None`: one per available core. Output is identical for any number.
    pub threads: Option<usize>,
}

impl Default for TokenizeOptions {
    fn default() -> Self {
        Self {
            matrix: MatrixSelector::Counts,
            unknown_genes: UnknownGenePolicy::Skip,
            gene_table: None,
            obs_columns: vec![],
            chunk_cells: 512,
            threads: None,
        }
    }
}

/// What a tokenization did; also saved as `scfm_tokenizer.json` next to the dataset.
#[derive(Debug, Clone, Serialize)]
pub struct TokenizeReport {
    /// The scheme (`geneformer-v2`, `scgpt`, …).
    pub scheme: &'static str,
    /// The tokenizer with its files and settings, as a value ([`TokenizerSpec`]).
    pub spec: TokenizerSpec,
    /// The scheme's settings and files.
    pub settings: serde_json::Value,
    /// The input.
    pub input: PathBuf,
    /// Cells read.
    pub cells_in: usize,
    /// Cells written (Geneformer drops cells without a vocabulary gene, scBERT cells below its
    /// 200-gene minimum, as upstream).
    pub cells_out: usize,
    /// Genes in the input.
    pub genes_in: usize,
    /// Input genes that map to the model's genes.
    pub genes_mapped: usize,
}

/// xTrimoGene datasets: the list column of the gene positions of [`COUNTS`].
pub const COUNT_POSITIONS: &str = "count_positions";
/// xTrimoGene datasets: the list column of each cell's raw counts on the model's gene
/// positions ([`COUNT_POSITIONS`]), what read-depth-aware pretraining down-samples.
pub const COUNTS: &str = "counts";

/// One tokenized cell.
pub(crate) type Row = TokenizedCell;

/// scGPT with upstream's legacy RNG: the state that must be consumed in cell order.
struct ScGptLegacy {
    seq: ScGptSequence,
    plan: Vec<Option<u32>>,
    tie: TieBreak,
}

/// A scheme made ready for one dataset: its tokenizer with the plan, and the report.
pub(crate) struct Prepared<'a> {
    /// The tokenizer planned for the dataset.
    pub(crate) tokenizer: Box<dyn PlannedTokenizer + 'a>,
    /// What its cells hold.
    pub(crate) layout: TokenLayout,
    /// A few input genes the model does not know.
    pub(crate) unknown_examples: Vec<String>,
    pub(crate) genes_mapped: usize,
    pub(crate) settings: serde_json::Value,
    legacy: Option<ScGptLegacy>,
}

impl<'a> Prepared<'a> {
    /// `tokenizer` planned for `genes`, with the scheme's `settings` (given the plan).
    fn new<T: Tokenizer + 'a>(
        tokenizer: T,
        genes: &GeneTable,
        settings: impl FnOnce(&T, &T::Plan) -> serde_json::Value,
    ) -> Self {
        let mapping = tokenizer.plan(genes);
        Self::planned(tokenizer, mapping, settings)
    }

    /// `tokenizer` with the plan it made (`mapping`), with the scheme's `settings`.
    fn planned<T: Tokenizer + 'a>(
        tokenizer: T,
        GeneMapping { plan, genes_mapped, unknown_examples }: GeneMapping<T::Plan>,
        settings: impl FnOnce(&T, &T::Plan) -> serde_json::Value,
    ) -> Self {
        let settings = settings(&tokenizer, &plan);
        let layout = tokenizer.layout();
        Self {
            tokenizer: Box::new(Planned { tokenizer, plan }),
            layout,
            unknown_examples,
            genes_mapped,
            settings,
            legacy: None,
        }
    }
}

/// The gene table a symbol-based scheme matches against: the source's symbols, or its Ensembl
/// ids translated through GENCODE when it has only ids.
pub(crate) fn symbol_table(source: &AnySource, gene_table: Option<&Path>) -> Result<GeneTable, Error> {
    let genes = source.genes();
    match gene_table {
        Some(p) if genes.symbols().is_none() && genes.id_kind() == GeneIdKind::Ensembl => {
            let map = gencode_symbols(p)?;
            let symbols = genes
                .ids()
                .iter()
                .map(|id| map.get(id.split('.').next().unwrap_or(id)).map_or_else(|| id.clone(), str::to_owned))
                .collect();
            Ok(genes.clone().with_symbols(symbols)?)
        }
        _ => Ok(genes.clone()),
    }
}

/// The tokenizer of `scheme` for `source`'s genes. `with_counts`: xTrimoGene rows carry the
/// aligned raw counts its pretraining down-samples (datasets and training read them; cell
/// embeddings do not).
pub(crate) fn prepare_scheme<'a>(
    scheme: &Scheme,
    source: &AnySource,
    has_n_counts: bool,
    gene_table: Option<&Path>,
    with_counts: bool,
) -> Result<Prepared<'a>, Error> {
    // Symbol-based schemes match against this (Geneformer maps ids through its own files).
    let symbols = || symbol_table(source, gene_table);
    Ok(match scheme {
        Scheme::Geneformer { version, files } => {
            // V1's Ensembl mapping knows no symbols: symbol inputs go through gene_name_id first.
            let names = match &files.gene_name_id {
                Some(p) if *version == GeneformerVersion::V1 && source.genes().id_kind() == GeneIdKind::Symbol => {
                    Some(string_map(p)?)
                }
                _ => None,
            };
            // Only this dataset's part of the Ensembl mapping is kept: the plan is the same.
            let genes = input_genes(source.genes(), names.as_ref());
            let dicts = GeneformerDictionaries::load_for_genes(
                &files.token_dictionary,
                &files.gene_medians,
                &files.ensembl_mapping,
                &genes,
            )?;
            let mut tok = GeneformerTokenizer::new(*version, dicts);
            if let Some(names) = names {
                tok = tok.with_gene_names(names);
            }
            Prepared::new(tok, source.genes(), |tok, plan| {
                serde_json::json!({
                    "model_input_size": tok.input_size(),
                    "dictionaries": files,
                    "collapsed_duplicates": plan.collapsed,
                    "n_counts_from": if has_n_counts { "obs column n_counts" } else { "cell totals over all input genes" },
                })
            })
        }
        Scheme::ScGpt { vocab: path, sequence, ties } => {
            let vocab = scgpt_vocab(path, true)?;
            let mut seq = sequence.clone();
            seq.cls_id = vocab.id("<cls>").expect("specials are appended");
            let settings = serde_json::json!({
                "vocab": path, "max_len": seq.max_len, "cls_value": seq.cls_value, "n_bins": seq.n_bins,
                "include_zero_genes": seq.include_zero_genes, "seed": seq.seed, "ties": ties,
            });
            let tok = ScGptTokenizer { vocab, sequence: seq, helical_ties: *ties == TieMode::Helical };
            let mapping = tok.plan(&symbols()?);
            // Upstream's legacy stream is drawn from in file order, by `tokenize` itself.
            let legacy = (*ties == TieMode::NumpyLegacy).then(|| ScGptLegacy {
                seq: tok.sequence.clone(),
                plan: mapping.plan.clone(),
                tie: TieBreak::numpy_legacy(tok.sequence.seed),
            });
            Prepared { legacy, ..Prepared::planned(tok, mapping, |_, _| settings) }
        }
        Scheme::ScBert { genes } => Prepared::new(
            ScBertTokenizer::new(gene_list(genes)?),
            &symbols()?,
            |tok, _| serde_json::json!({"genes": genes, "seq_len": tok.seq_len(), "min_genes": tok.min_genes, "bin_num": tok.bin_num}),
        ),
        Scheme::XTrimoGene { genes, target } => {
            let mut tok = XTrimoGeneTokenizer::new(scfoundation_genes(genes)?, *target);
            tok.keep_counts = with_counts;
            Prepared::new(
                tok,
                &symbols()?,
                |tok, _| serde_json::json!({"genes": genes, "target": format!("{target:?}"), "seq_len": tok.seq_len(), "values": "computed in f64, rounded once to f32"}),
            )
        }
    })
}

/// Tokenizes any input (h5ad, 10x, corpus) with one scheme into a Hugging Face dataset:
/// `input_ids`, `values` (scGPT, xTrimoGene), `length`, and the requested obs columns; the
/// report is saved as `scfm_tokenizer.json` next to the data.
///
/// # Errors
/// Read, vocabulary and write errors; [`TokenizeError::WrongKind`] when no gene maps to the
/// model (wrong species or id kind) or the matrix does not hold integer counts.
pub fn tokenize(
    input: &Path,
    out: &Path,
    scheme: &Scheme,
    opts: &TokenizeOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<TokenizeReport, Error> {
    let source = AnySource::open(
        input,
        &SourceOptions { matrix: opts.matrix.clone(), obs: ObsSelection::All, require_counts: true },
    )?;
    require_counts(&source, input)?;
    let obs_schema = source.obs_schema();
    let n_counts_col = obs_schema.index_of("n_counts").ok();
    // Upstream Geneformer tokenizes only rows whose optional `filter_pass` equals 1.
    let filter_col =
        matches!(scheme, Scheme::Geneformer { .. }).then(|| obs_schema.index_of("filter_pass").ok()).flatten();
    let Prepared { tokenizer, layout, unknown_examples, genes_mapped, settings, mut legacy } =
        prepare_scheme(scheme, &source, n_counts_col.is_some(), opts.gene_table.as_deref(), true)?;
    let (has_values, has_counts) = (layout.values, layout.counts);
    let genes_in = source.genes().len();
    if opts.unknown_genes == UnknownGenePolicy::Error && genes_mapped < genes_in {
        return Err(TokenizeError::UnknownGenes {
            path: input.to_owned(),
            unknown: genes_in - genes_mapped,
            total: genes_in,
            examples: format!("{unknown_examples:?}"),
        }
        .into());
    }
    require_mapped(&source, input, genes_mapped)?;
    let carried: Vec<usize> = opts
        .obs_columns
        .iter()
        .map(|c| {
            obs_schema.index_of(c).map_err(|_| IoError::UnknownColumn {
                path: input.to_owned(),
                column: c.clone(),
                available: obs_schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", "),
            })
        })
        .collect::<Result<_, _>>()?;
    let list_of = |t: DataType| DataType::List(Arc::new(Field::new_list_field(t, true)));
    let mut fields = vec![Field::new("input_ids", list_of(Ids::data_type(layout.ids)), true)];
    if has_values {
        fields.push(Field::new("values", list_of(DataType::Float32), true));
    }
    if has_counts {
        fields.push(Field::new(COUNT_POSITIONS, list_of(DataType::Int32), true));
        fields.push(Field::new(COUNTS, list_of(DataType::Float32), true));
    }
    fields.push(Field::new("length", DataType::Int64, true));
    fields.extend(carried.iter().map(|&i| obs_schema.field(i).clone()));
    let schema = Arc::new(Schema::new(fields));

    let mut writer = HfDatasetWriter::create(out, &schema, 200_000)?;
    let (mut cells_in, mut cells_out) = (0, 0);
    let total_cells = source.n_cells();
    let threads = opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    // Upstream's legacy NumPy stream is consumed cell after cell in file order: one worker.
    let workers: Vec<Option<&mut ScGptLegacy>> = match legacy.as_mut() {
        Some(l) => vec![Some(l)],
        None => (0..threads).map(|_| None).collect(),
    };
    let tokenize_chunk = |legacy: &mut Option<&mut ScGptLegacy>, base: u64, chunk: scfm_core::CellChunk| {
        let n_counts = n_counts(&chunk, n_counts_col, layout.uses_n_counts);
        // Upstream Geneformer leaves out rows whose `filter_pass` is not 1: they are not tokenized.
        let pass = filter_col.and_then(|i| numeric_f64(chunk.obs().column(i)));
        let passes = |i: usize| pass.as_ref().is_none_or(|p| p[i] == 1.0);
        // Rows are made one at a time and go straight into the batch's flat columns.
        let rows = chunk.cells().enumerate().map(|(i, c)| match legacy {
            Some(l) => {
                // Every cell draws from the stream, as upstream, before any row is left out.
                let (ids, values) = l.seq.tokenize(&l.plan, c, base + i as u64, &mut l.tie);
                passes(i).then(|| Row::with_values(ids, values))
            }
            None => passes(i).then(|| tokenizer.tokenize(base + i as u64, c, n_counts[i])).flatten(),
        });
        let batch = build_batch(&schema, layout.ids, (has_values, has_counts), rows, &chunk, &carried, out)?;
        Ok((chunk.n_cells(), batch))
    };
    in_file_order(&source, opts.chunk_cells, workers, tokenize_chunk, |(n_in, batch)| {
        cells_out += batch.num_rows();
        writer.write(&batch)?;
        cells_in += n_in;
        progress(cells_in, total_cells);
        Ok(())
    })?;
    writer.finish()?;
    let report = TokenizeReport {
        scheme: scheme.name(),
        spec: scheme.spec(),
        settings,
        input: input.to_owned(),
        cells_in,
        cells_out,
        genes_in,
        genes_mapped,
    };
    let spec = out.join("scfm_tokenizer.json");
    std::fs::write(&spec, serde_json::to_vec_pretty(&report).expect("serializable"))
        .map_err(|source| IoError::Io { path: spec.clone(), source })?;
    Ok(report)
}

/// Refuses a matrix whose first 200 cells hold non-integer values (every tokenizer needs raw
/// counts).
pub(crate) fn require_counts(source: &AnySource, input: &Path) -> Result<(), Error> {
    let probe = source.read_rows(0..source.n_cells().min(200))?;
    if let Some(v) = probe.values().iter().find(|v| v.fract() != 0.0) {
        return Err(TokenizeError::WrongKind {
            path: input.to_owned(),
            expected: "raw integer counts (choose them with --matrix counts, raw or layer:NAME)",
            found: format!("non-integer values such as {v} in the selected matrix"),
        }
        .into());
    }
    Ok(())
}

/// Refuses an input none of whose genes the model knows (wrong species or id kind).
pub(crate) fn require_mapped(source: &AnySource, input: &Path, genes_mapped: usize) -> Result<(), Error> {
    if genes_mapped == 0 {
        let ids = source.genes().ids();
        return Err(TokenizeError::WrongKind {
            path: input.to_owned(),
            expected: "genes that the model's vocabulary knows (human Ensembl ids or symbols)",
            found: format!("none of its {} genes (e.g. {:?})", ids.len(), ids.iter().take(3).collect::<Vec<_>>()),
        }
        .into());
    }
    Ok(())
}

/// The record batch of one chunk's tokenized cells (cells without tokens are left out).
fn build_batch(
    schema: &Arc<Schema>,
    ids: IdWidth,
    (has_values, has_counts): (bool, bool),
    rows: impl Iterator<Item = Option<Row>>,
    chunk: &scfm_core::CellChunk,
    carried: &[usize],
    out: &Path,
) -> Result<RecordBatch, Error> {
    let mut keep = vec![];
    let (mut offsets, mut count_offsets) = (vec![0i32], vec![0i32]);
    // Room for every expressed gene and two specials per cell: one allocation in most schemes.
    let room = chunk.nnz() + 2 * chunk.n_cells();
    let mut flat_ids = Ids::with_capacity(ids, room);
    let mut flat_values = Vec::with_capacity(if has_values { room } else { 0 });
    let mut lengths = vec![];
    let (mut count_positions, mut counts) = (vec![], vec![]);
    for (i, row) in rows.enumerate() {
        let Some(row) = row.filter(|r| !r.ids.is_empty()) else { continue };
        keep.push(i as u32);
        lengths.push(row.ids.len() as i64);
        flat_ids.extend(&row.ids);
        flat_values.extend(row.values.into_iter().flatten());
        for (p, c) in row.counts.into_iter().flatten() {
            count_positions.push(p as i32);
            counts.push(c as f32);
        }
        offsets.push(flat_ids.len() as i32);
        count_offsets.push(counts.len() as i32);
    }
    let arrow = |source| IoError::Arrow { path: out.to_owned(), source };
    let ids = flat_ids.into_array();
    // The columns in the schema's order: ids, values, count positions and counts (where the
    // scheme has them), length; the carried obs columns follow. List items are nullable fields
    // named as Arrow names list items, as `tokenize` declares them.
    let list = |offsets: &[i32], values: ArrayRef| -> Result<ArrayRef, Error> {
        let item = Arc::new(Field::new_list_field(values.data_type().clone(), true));
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets.to_vec()));
        Ok(Arc::new(ListArray::try_new(item, offsets, values, None).map_err(arrow)?))
    };
    let mut cols = vec![list(&offsets, ids)?];
    if has_values {
        cols.push(list(&offsets, Arc::new(Float32Array::from(flat_values)))?);
    }
    if has_counts {
        cols.push(list(&count_offsets, Arc::new(Int32Array::from(count_positions)))?);
        cols.push(list(&count_offsets, Arc::new(Float32Array::from(counts)))?);
    }
    cols.push(Arc::new(Int64Array::from(lengths)));
    let take = UInt32Array::from(keep);
    for &c in carried {
        cols.push(scfm_core::arrow_select::take::take(chunk.obs().column(c), &take, None).map_err(arrow)?);
    }
    Ok(RecordBatch::try_new(schema.clone(), cols).map_err(arrow)?)
}

/// Token ids in the dataset's integer type (the tokenizer's [`IdWidth`]), filled row by row.
enum Ids {
    I16(Vec<i16>),
    U8(Vec<u8>),
    I32(Vec<i32>),
}

impl Ids {
    fn with_capacity(width: IdWidth, capacity: usize) -> Self {
        match width {
            IdWidth::I16 => Self::I16(Vec::with_capacity(capacity)),
            IdWidth::U8 => Self::U8(Vec::with_capacity(capacity)),
            IdWidth::I32 => Self::I32(Vec::with_capacity(capacity)),
        }
    }

    /// The Arrow type of ids of `width`.
    fn data_type(width: IdWidth) -> DataType {
        match width {
            IdWidth::I16 => DataType::Int16,
            IdWidth::U8 => DataType::UInt8,
            IdWidth::I32 => DataType::Int32,
        }
    }

    /// Appends ids, which the scheme's vocabulary size keeps within the type.
    fn extend(&mut self, ids: &[u32]) {
        match self {
            Self::I16(v) => v.extend(ids.iter().map(|&t| t as i16)),
            Self::U8(v) => v.extend(ids.iter().map(|&t| t as u8)),
            Self::I32(v) => v.extend(ids.iter().map(|&t| t as i32)),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::I16(v) => v.len(),
            Self::U8(v) => v.len(),
            Self::I32(v) => v.len(),
        }
    }

    fn into_array(self) -> ArrayRef {
        match self {
            Self::I16(v) => Arc::new(Int16Array::from(v)),
            Self::U8(v) => Arc::new(UInt8Array::from(v)),
            Self::I32(v) => Arc::new(Int32Array::from(v)),
        }
    }
}

/// Runs `work` on the chunks of `source` on one thread per entry of `workers` (each with its
/// own state), while one more thread reads the next chunks, and hands the results to `sink` in
/// file order. `work` gets the index of the chunk's first cell.
///
/// Not a rayon parallel iterator: the chunks come one at a time from a reader thread and must
/// reach the writer in file order with at most `workers + 1` in memory, and scGPT's legacy
/// stream needs its one worker to keep its state across chunks; a `par_bridge` would neither
/// bound the chunks in flight nor keep their order.
///
/// Whole chunks go to the workers, so each keeps its per-thread buffers warm and builds its
/// own output; a chunk is read, worked on and written by three different threads at once.
/// At most `workers + 1` chunks are in flight (being read, queued, worked on, or waiting for
/// their turn to be written), so memory is bounded by the chunk size, not by the number of
/// cells. The first error, in file order, is returned; the threads then stop.
pub(crate) fn in_file_order<W: Send, T: Send>(
    source: &AnySource,
    chunk_cells: usize,
    workers: Vec<W>,
    work: impl Fn(&mut W, u64, scfm_core::CellChunk) -> Result<T, Error> + Sync,
    mut sink: impl FnMut(T) -> Result<(), Error>,
) -> Result<(), Error> {
    use std::panic::AssertUnwindSafe;
    use std::sync::mpsc::sync_channel;
    use std::sync::{Mutex, PoisonError};
    let window = workers.len() + 1;
    let (chunk_tx, chunk_rx) = sync_channel(workers.len());
    let chunk_rx = Arc::new(Mutex::new(chunk_rx));
    // One permit per chunk in flight: the reader takes one per chunk, the writer gives it back.
    let (permit_tx, permit_rx) = sync_channel(window);
    for _ in 0..window {
        permit_tx.send(()).expect("the permit channel holds the whole window");
    }
    let (done_tx, done_rx) = sync_channel::<(usize, std::thread::Result<Result<T, Error>>)>(window);
    let work = &work;
    // `move`: the scope's own ends of the channels close as soon as it returns, early on an
    // error too, so the reader and the workers see closed channels and stop.
    std::thread::scope(move |scope| {
        scope.spawn(move || {
            let mut first = 0u64;
            for (seq, chunk) in source.chunks(chunk_cells).enumerate() {
                if permit_rx.recv().is_err() {
                    return;
                }
                let n = chunk.as_ref().map_or(0, |c| c.n_cells());
                let failed = chunk.is_err();
                // A closed channel means the workers stopped; stop reading.
                if chunk_tx.send((seq, first, chunk)).is_err() || failed {
                    return;
                }
                first += n as u64;
            }
        });
        for mut state in workers {
            let (chunk_rx, done_tx) = (chunk_rx.clone(), done_tx.clone());
            scope.spawn(move || {
                loop {
                    let next = chunk_rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok((seq, first, chunk)) = next else { return };
                    // A panic is handed to the writer, which re-raises it.
                    let out = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        chunk.map_err(Error::from).and_then(|chunk| work(&mut state, first, chunk))
                    }));
                    if done_tx.send((seq, out)).is_err() {
                        return;
                    }
                }
            });
        }
        drop((chunk_rx, done_tx));
        let mut waiting = std::collections::BTreeMap::new();
        let mut next = 0;
        for (seq, out) in done_rx {
            waiting.insert(seq, out);
            while let Some(out) = waiting.remove(&next) {
                sink(out.unwrap_or_else(|panic| std::panic::resume_unwind(panic))?)?;
                next += 1;
                // The reader may have finished: a refused permit is fine.
                let _ = permit_tx.send(());
            }
        }
        Ok(())
    })
}

/// Each cell's `n_counts`: the obs column `col` when there is one (Geneformer's convention), else
/// the cell's total over all input genes.
pub(crate) fn n_counts(chunk: &scfm_core::CellChunk, col: Option<usize>, used: bool) -> Vec<f64> {
    if !used {
        return vec![f64::NAN; chunk.n_cells()];
    }
    match col.and_then(|i| numeric_f64(chunk.obs().column(i))) {
        Some(v) => v,
        None => chunk.cells().map(|c| c.total()).collect(),
    }
}

/// A numeric obs column as f64 (nulls as NaN); `None` for other types.
fn numeric_f64(col: &ArrayRef) -> Option<Vec<f64>> {
    use scfm_core::arrow_array::Array;
    use scfm_core::arrow_array::types::{Float32Type, Int32Type, Int64Type, UInt32Type, UInt64Type};
    macro_rules! conv {
        ($t:ty) => {{
            let a = col.as_primitive::<$t>();
            Some((0..a.len()).map(|i| if a.is_null(i) { f64::NAN } else { a.value(i) as f64 }).collect())
        }};
    }
    match col.data_type() {
        DataType::Boolean => {
            let a = col.as_boolean();
            Some((0..a.len()).map(|i| if a.is_null(i) { f64::NAN } else { f64::from(u8::from(a.value(i))) }).collect())
        }
        DataType::Float64 => conv!(Float64Type),
        DataType::Float32 => conv!(Float32Type),
        DataType::Int64 => conv!(Int64Type),
        DataType::Int32 => conv!(Int32Type),
        DataType::UInt64 => conv!(UInt64Type),
        DataType::UInt32 => conv!(UInt32Type),
        _ => None,
    }
}
