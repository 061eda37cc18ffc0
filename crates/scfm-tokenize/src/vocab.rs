//! The vocabulary files of the reference models, read as users have them.
//!
//! | model | file | reader |
//! | --- | --- | --- |
//! | Geneformer | `token_dictionary_gc*.pkl` | [`geneformer_token_dictionary`] |
//! | Geneformer | `gene_median_dictionary_gc*.pkl` | [`geneformer_gene_medians`] |
//! | Geneformer | `gene_name_id_dict_gc*.pkl`, `ensembl_mapping_dict_gc*.pkl` | [`string_map`] |
//! | scGPT | `vocab.json` | [`scgpt_vocab`] |
//! | scBERT | `vocab_gene2vec_16906.pkl` or the one-symbol-per-line text list | [`gene_list`] |
//! | scFoundation | `OS_scRNA_gene_index.19264.tsv` | [`scfoundation_genes`] |

use std::ops::ControlFlow;
use std::path::Path;

use scfm_core::{GeneVocab, StrMap, StringMap};

use crate::error::TokenizeError;
use crate::pickle::{self, Item, PyValue, TopLevel};

/// The special tokens scGPT appends to its gene vocabulary, in order.
pub const SCGPT_SPECIALS: [&str; 3] = ["<pad>", "<cls>", "<eoc>"];

fn read(path: &Path) -> Result<Vec<u8>, TokenizeError> {
    std::fs::read(path).map_err(|source| TokenizeError::Io { path: path.to_owned(), source })
}

/// Reads a pickle with the restricted reader (see [`crate::pickle`]).
///
/// # Errors
/// [`TokenizeError::Io`] or [`TokenizeError::Pickle`].
pub fn read_pickle(path: &Path) -> Result<PyValue, TokenizeError> {
    pickle::parse(&read(path)?).map_err(|source| TokenizeError::Pickle { path: path.to_owned(), source })
}

fn describe(v: &PyValue) -> &'static str {
    match v {
        PyValue::Int(_) => "integer",
        PyValue::Float(_) => "float",
        PyValue::Str(_) => "string",
        PyValue::Bool(_) => "bool",
        PyValue::None => "None",
        PyValue::Bytes(_) => "bytes",
        PyValue::Tuple(_) => "tuple",
        PyValue::List(_) => "list",
        PyValue::Dict(_) => "dict",
        PyValue::Dtype(_) | PyValue::Global(_) => "NumPy object",
        PyValue::TorchStorage { .. } | PyValue::TorchTensor(_) => "PyTorch tensor",
    }
}

/// What a dict looks like, by its first item, for `WrongKind` messages.
fn dict_kind(first: Option<(&PyValue, &PyValue)>) -> String {
    match first {
        None => "an empty dict".into(),
        Some((k, v)) => {
            let hint = match v {
                PyValue::Float(_) => " (a gene median dictionary?)",
                PyValue::Str(_) => " (a gene name/id mapping?)",
                PyValue::Int(_) => " (a token dictionary?)",
                _ => "",
            };
            format!("a dict of {} → {}{hint}", describe(k), describe(v))
        }
    }
}

/// Streams the items of the pickled dict `bytes` (read from `path`) into `insert`, which
/// returns `false` for an item of the wrong kind; without building the dict.
///
/// # Errors
/// [`TokenizeError::Pickle`], and [`TokenizeError::WrongKind`] for a pickle that is not a dict or
/// an item `insert` refuses.
fn read_dict(
    path: &Path,
    bytes: &[u8],
    expected: &'static str,
    mut insert: impl FnMut(Item<'_>, Item<'_>) -> bool,
) -> Result<(), TokenizeError> {
    let mut first = None;
    let top = pickle::parse_dict_items(bytes, |k, v| {
        first.get_or_insert_with(|| dict_kind(Some((&k.clone().into_value(), &v.clone().into_value()))));
        if insert(k, v) { ControlFlow::Continue(()) } else { ControlFlow::Break(()) }
    })
    .map_err(|source| TokenizeError::Pickle { path: path.to_owned(), source })?;
    let wrong = |found: String| Err(TokenizeError::WrongKind { path: path.to_owned(), expected, found });
    match top {
        TopLevel::Dict => Ok(()),
        TopLevel::Stopped => wrong(first.unwrap_or_else(|| dict_kind(None))),
        TopLevel::Other(v) => wrong(format!("a {}", describe(&v))),
    }
}

/// Geneformer's token dictionary (`dict[str, int]`; V1 stores the ids as NumPy int16 scalars).
///
/// # Errors
/// [`TokenizeError::WrongKind`] for any other dictionary, [`TokenizeError::Vocab`] for duplicate
/// ids, and read errors.
pub fn geneformer_token_dictionary(path: &Path) -> Result<GeneVocab, TokenizeError> {
    const EXPECTED: &str = "a Geneformer token dictionary (gene id → integer token)";
    let bytes = read(path)?;
    let mut vocab = GeneVocab::default();
    // A duplicate or too large id stops the reading too; it is reported as such.
    let mut refused = None;
    let outcome = read_dict(path, &bytes, EXPECTED, |k, v| match (k.as_str(), v) {
        (Some(k), Item::Value(PyValue::Int(i))) if (0..=i64::from(u32::MAX)).contains(&i) => {
            vocab.insert(k, i as u32).map_err(|e| refused = Some(e)).is_ok()
        }
        _ => false,
    });
    match (outcome, refused) {
        (_, Some(source)) => Err(TokenizeError::Vocab { path: path.to_owned(), source }),
        (outcome, None) => outcome.map(|()| vocab),
    }
}

/// Geneformer's gene median dictionary (`dict[str, numpy.float64]`): the non-zero median of each
/// gene's normalised expression over the pretraining corpus.
///
/// # Errors
/// [`TokenizeError::WrongKind`] for any other dictionary, and read errors.
pub fn geneformer_gene_medians(path: &Path) -> Result<StrMap<f64>, TokenizeError> {
    const EXPECTED: &str = "a Geneformer gene median dictionary (gene id → float)";
    let bytes = read(path)?;
    // 36 bytes per gene in the upstream files (a NumPy scalar each), 15 of them the id.
    let mut map = StrMap::with_capacity(bytes.len() / 32, bytes.len() / 2);
    read_dict(path, &bytes, EXPECTED, |k, v| match (k.as_str(), v) {
        (Some(k), Item::Value(PyValue::Float(f))) if f.is_finite() && f > 0.0 => {
            map.insert(k, f);
            true
        }
        _ => false,
    })?;
    Ok(map)
}

/// A `dict[str, str]` pickle: Geneformer's `gene_name_id_dict` (symbol → Ensembl id) or
/// `ensembl_mapping_dict` (upper-cased symbol or any Ensembl id → current Ensembl id).
///
/// # Errors
/// [`TokenizeError::WrongKind`] for any other dictionary, and read errors.
pub fn string_map(path: &Path) -> Result<StringMap, TokenizeError> {
    read_string_map(path, |_| true, true)
}

/// Like [`string_map`], keeping only the keys `keep` accepts (the genes of one dataset: most of
/// Geneformer's 173,697-entry Ensembl mapping is then read past rather than stored). Every item
/// is still checked, so a file of the wrong kind is refused just the same.
///
/// # Errors
/// As [`string_map`].
pub fn string_map_where(path: &Path, keep: impl Fn(&str) -> bool) -> Result<StringMap, TokenizeError> {
    read_string_map(path, keep, false)
}

/// `presize`: room for every item of the file from the start (about 23 bytes per pair in the
/// upstream files).
fn read_string_map(path: &Path, keep: impl Fn(&str) -> bool, presize: bool) -> Result<StringMap, TokenizeError> {
    const EXPECTED: &str = "a gene name/id mapping (string → string)";
    let bytes = read(path)?;
    let mut map = if presize {
        StringMap::with_capacity(bytes.len() / 20, bytes.len() + bytes.len() / 4)
    } else {
        StringMap::default()
    };
    read_dict(path, &bytes, EXPECTED, |k, v| match (k.as_str(), v.as_str()) {
        (Some(k), Some(v)) => {
            if keep(k) {
                map.insert(k, v);
            }
            true
        }
        _ => false,
    })?;
    Ok(map)
}

/// scGPT's `vocab.json` (`{gene symbol: id}`). With `append_specials`, the special tokens
/// `<pad>`, `<cls>`, `<eoc>` that are missing get the next free ids in that order, as the released
/// whole-human checkpoint's vocabulary has them.
///
/// # Errors
/// [`TokenizeError::Json`] for malformed JSON or non-integer ids, [`TokenizeError::Vocab`] for
/// duplicate ids, and read errors.
pub fn scgpt_vocab(path: &Path, append_specials: bool) -> Result<GeneVocab, TokenizeError> {
    let json_err = |reason: String| TokenizeError::Json { path: path.to_owned(), reason };
    let entries = json_object_entries(&read(path)?).map_err(|e| json_err(e.to_string()))?;
    let ids = entries.try_map_values(|k, v| {
        v.as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| json_err(format!("id of {k:?} is {v}, not a non-negative integer")))
    })?;
    let mut vocab =
        GeneVocab::from_ids(ids).map_err(|source| TokenizeError::Vocab { path: path.to_owned(), source })?;
    if append_specials {
        for s in SCGPT_SPECIALS {
            if vocab.id(s).is_none() {
                let id = vocab.id_bound() as u32;
                vocab.insert(s, id).map_err(|source| TokenizeError::Vocab { path: path.to_owned(), source })?;
            }
        }
    }
    Ok(vocab)
}

/// The entries of a JSON object of numbers, read straight into one map: keys are borrowed from
/// the text where they hold no escapes (as a `serde_json::Value` the 60,697 entries of scGPT's
/// vocabulary were a `String` and a tree node each, most of a scGPT run's fixed cost). A key
/// given twice keeps its first place and takes the last number, as Python's `json.load`.
fn json_object_entries(bytes: &[u8]) -> Result<StrMap<serde_json::Number>, serde_json::Error> {
    use serde::Deserializer as _;
    use serde::de::{Deserialize, MapAccess, Visitor};
    use std::borrow::Cow;
    use std::fmt;

    struct Key<'a>(Cow<'a, str>);
    impl<'de> Deserialize<'de> for Key<'de> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct KeyVisitor;
            impl<'de> Visitor<'de> for KeyVisitor {
                type Value = Key<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a gene name")
                }
                fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                    Ok(Key(Cow::Borrowed(v)))
                }
                fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                    Ok(Key(Cow::Owned(v.to_owned())))
                }
            }
            d.deserialize_str(KeyVisitor)
        }
    }
    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = StrMap<serde_json::Number>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object {gene: id}")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut entries = StrMap::with_capacity(map.size_hint().unwrap_or(0), 0);
            while let Some(Key(key)) = map.next_key()? {
                entries.insert(&key, map.next_value()?);
            }
            Ok(entries)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let entries = de.deserialize_map(Entries)?;
    de.end()?;
    Ok(entries)
}

/// An ordered gene list: a pickled `list[str]` (scBERT's `vocab_gene2vec_16906.pkl`) or a text
/// file with one gene per line. The order is the model's input order.
///
/// # Errors
/// [`TokenizeError::WrongKind`] for a pickle that is not a list of strings, and read errors.
pub fn gene_list(path: &Path) -> Result<Vec<String>, TokenizeError> {
    const EXPECTED: &str = "a list of gene symbols";
    let bytes = read(path)?;
    if bytes.first() == Some(&0x80) {
        let v = pickle::parse(&bytes).map_err(|source| TokenizeError::Pickle { path: path.to_owned(), source })?;
        let PyValue::List(items) = v else {
            return Err(TokenizeError::WrongKind {
                path: path.to_owned(),
                expected: EXPECTED,
                found: format!("a {}", describe(&v)),
            });
        };
        return items
            .into_iter()
            .map(|i| match i {
                PyValue::Str(s) => Ok(s),
                other => Err(TokenizeError::WrongKind {
                    path: path.to_owned(),
                    expected: EXPECTED,
                    found: format!("a list containing a {}", describe(&other)),
                }),
            })
            .collect();
    }
    let text = String::from_utf8(bytes).map_err(|_| TokenizeError::Parse {
        path: path.to_owned(),
        line: 0,
        reason: "not UTF-8 text".into(),
    })?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect())
}

/// GENCODE's gene table as CELLxGENE ships it (`gencode_v48_genes_homo_sapiens.csv.gz`:
/// `ensembl_id,symbol,…` without a header, gzip or plain): Ensembl id (version suffix removed)
/// → gene symbol.
///
/// # Errors
/// [`TokenizeError::Parse`] for a line without two fields, and read errors.
pub fn gencode_symbols(path: &Path) -> Result<StringMap, TokenizeError> {
    use std::io::Read;
    let bytes = read(path)?;
    let mut text = String::new();
    let parse_err =
        |line: usize, reason: &str| TokenizeError::Parse { path: path.to_owned(), line, reason: reason.into() };
    if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .map_err(|_| parse_err(0, "not gzip-compressed UTF-8 text"))?;
    } else {
        text = String::from_utf8(bytes).map_err(|_| parse_err(0, "not UTF-8 text"))?;
    }
    let mut map = StringMap::with_capacity(0, text.len() / 4);
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let mut f = line.split(',');
        let (Some(id), Some(symbol)) = (f.next(), f.next()) else {
            return Err(parse_err(i + 1, "expected ensembl_id,symbol,…"));
        };
        let id = id.split('.').next().unwrap_or(id);
        // The first row of an id wins.
        if !map.contains_key(id) {
            map.insert(id, symbol);
        }
    }
    Ok(map)
}

/// scFoundation's gene index TSV (`gene_name<TAB>index` with a header), 19,264 symbols in model
/// order; the index column must count 0, 1, 2, ….
///
/// # Errors
/// [`TokenizeError::Parse`] naming the line of a malformed or out-of-order row, and read errors.
pub fn scfoundation_genes(path: &Path) -> Result<Vec<String>, TokenizeError> {
    let text = String::from_utf8(read(path)?).map_err(|_| TokenizeError::Parse {
        path: path.to_owned(),
        line: 0,
        reason: "not UTF-8 text".into(),
    })?;
    let mut genes = vec![];
    for (i, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
        let err = |reason: String| TokenizeError::Parse { path: path.to_owned(), line: i + 1, reason };
        let (name, index) = line.split_once('\t').ok_or_else(|| err("expected gene_name<TAB>index".into()))?;
        let index: usize = index.trim().parse().map_err(|_| err(format!("index {index:?} is not a number")))?;
        if index != genes.len() {
            return Err(err(format!("index {index} where {} was expected", genes.len())));
        }
        genes.push(name.to_owned());
    }
    Ok(genes)
}

/// The gene table a symbol-based scheme matches against: `genes` itself, or, when it has only
/// Ensembl ids and a GENCODE table (`gencode`, [`gencode_symbols`]) is given, with each id's
/// symbol (ids GENCODE does not know stand for themselves).
///
/// # Errors
/// Reading `gencode`.
pub fn symbol_table(
    genes: &scfm_core::GeneTable,
    gencode: Option<&Path>,
) -> Result<scfm_core::GeneTable, TokenizeError> {
    match gencode {
        Some(p) if genes.symbols().is_none() && genes.id_kind() == scfm_core::GeneIdKind::Ensembl => {
            let map = gencode_symbols(p)?;
            let symbols = genes
                .ids()
                .iter()
                .map(|id| map.get(id.split('.').next().unwrap_or(id)).map_or_else(|| id.clone(), str::to_owned))
                .collect();
            genes.clone().with_symbols(symbols).map_err(|source| TokenizeError::Vocab { path: p.to_owned(), source })
        }
        _ => Ok(genes.clone()),
    }
}

/// `path` itself, or, when it is a folder and `names` are given, the first of them in it;
/// `what` names the file for the error when none is there.
///
/// # Errors
/// [`TokenizeError::MissingFile`] for a folder holding none of `names`.
pub fn file_in(path: &Path, names: &[&str], what: &str) -> Result<std::path::PathBuf, TokenizeError> {
    if names.is_empty() || !path.is_dir() {
        return Ok(path.to_owned());
    }
    names.iter().map(|n| path.join(n)).find(|p| p.exists()).ok_or_else(|| TokenizeError::MissingFile {
        dir: path.to_owned(),
        file: names.join(" or "),
        hint: format!("; pass {what} or the folder holding it"),
    })
}
