use std::collections::HashMap;

use proptest::prelude::*;
use scfm_tokenize::TokenizeError;
use scfm_tokenize::pickle::{PyValue, TopLevel, parse, parse_dict_items};
use scfm_tokenize::vocab::{
    gene_list, geneformer_gene_medians, geneformer_token_dictionary, scfoundation_genes, scgpt_vocab, string_map,
};

use crate::data;

/// A two-column TSV export with a header.
fn tsv(rel: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(data(rel)).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let (a, b) = l.split_once('\t').unwrap();
            (a.to_owned(), b.to_owned())
        })
        .collect()
}

#[test]
fn geneformer_dictionaries_match_their_tsv_exports() {
    for (dir, suffix, n_tokens) in [("geneformer", "gc104M", 20_275), ("geneformer/v1_gc30M", "gc30M", 25_426)] {
        let tokens = geneformer_token_dictionary(&data(&format!("vocab/{dir}/token_dictionary_{suffix}.pkl"))).unwrap();
        let export = tsv(&format!("vocab/{dir}/geneformer_token_dictionary_{suffix}.tsv"));
        assert_eq!(tokens.len(), n_tokens, "{suffix}");
        assert_eq!(export.len(), n_tokens, "{suffix}");
        for (t, id) in &export {
            assert_eq!(tokens.id(t), Some(id.parse().unwrap()), "{suffix} {t}");
        }
        assert_eq!((tokens.id("<pad>"), tokens.id("<mask>")), (Some(0), Some(1)));

        let medians =
            geneformer_gene_medians(&data(&format!("vocab/{dir}/gene_median_dictionary_{suffix}.pkl"))).unwrap();
        let export = tsv(&format!("vocab/{dir}/geneformer_gene_median_dictionary_{suffix}.tsv"));
        assert_eq!(medians.len(), export.len(), "{suffix}");
        for (g, m) in &export {
            // Bit-exact: the TSV holds Python's shortest round-trip repr of the float64.
            assert_eq!(medians.get(g), Some(&m.parse::<f64>().unwrap()), "{suffix} {g}");
        }

        let names = string_map(&data(&format!("vocab/{dir}/gene_name_id_dict_{suffix}.pkl"))).unwrap();
        let export: HashMap<String, String> =
            tsv(&format!("vocab/{dir}/geneformer_gene_name_id_dict_{suffix}.tsv")).into_iter().collect();
        assert_eq!(names.len(), export.len(), "{suffix}");
        for (k, v) in &export {
            assert_eq!(names.get(k), Some(v.as_str()), "{suffix} {k}");
        }
    }
    assert_eq!(
        geneformer_token_dictionary(&data("vocab/geneformer/token_dictionary_gc104M.pkl")).unwrap().id("<eos>"),
        Some(3)
    );
    let mapping = string_map(&data("vocab/geneformer/ensembl_mapping_dict_gc104M.pkl")).unwrap();
    assert_eq!(mapping.len(), 173_697);
    assert!(mapping.iter().all(|(_, v)| v.starts_with("ENSG")));
}

#[test]
fn scgpt_vocab_with_specials_is_the_checkpoint_vocabulary() {
    let v = scgpt_vocab(&data("vocab/scgpt/default_census_vocab.json"), true).unwrap();
    let export = tsv("vocab/scgpt/scgpt_human_vocab_60697.tsv");
    assert_eq!(v.len(), 60_697);
    for (t, id) in &export {
        assert_eq!(v.id(t), Some(id.parse().unwrap()), "{t}");
    }
    assert_eq!([v.id("<pad>"), v.id("<cls>"), v.id("<eoc>")], [Some(60_694), Some(60_695), Some(60_696)]);
    let plain = scgpt_vocab(&data("vocab/scgpt/default_census_vocab.json"), false).unwrap();
    assert_eq!(plain.len(), 60_694);
}

#[test]
fn scgpt_vocab_json_as_python_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    // Escaped keys (read into owned strings), and a key given twice: Python's `json.load` keeps
    // the last id.
    let v = scgpt_vocab(&write("ok.json", r#"{"A\u00e9\"B": 3, "X": 1, "GAPDH": 7, "X": 2}"#), false).unwrap();
    assert_eq!((v.len(), v.id("A\u{e9}\"B"), v.id("X"), v.id("GAPDH")), (3, Some(3), Some(2), Some(7)));
    for (text, says) in [
        (r#"{"A": 1.5}"#, "not a non-negative integer"),
        (r#"{"A": -1}"#, "not a non-negative integer"),
        (r#"{"A": 4294967296}"#, "not a non-negative integer"),
        (r#"{"A": "1"}"#, "invalid type"),
        (r#"["A", "B"]"#, "expected an object {gene: id}"),
        (r#"{"A": 1} {"B": 2}"#, "trailing characters"),
        (r#"{"A": 1"#, "EOF"),
    ] {
        let err = scgpt_vocab(&write("bad.json", text), false).unwrap_err();
        assert!(matches!(err, TokenizeError::Json { .. }) && err.to_string().contains(says), "{text}: {err}");
    }
}

#[test]
fn scbert_and_scfoundation_gene_lists() {
    let pkl = gene_list(&data("vocab/scbert/vocab_gene2vec_16906.pkl")).unwrap();
    let txt = gene_list(&data("vocab/scbert/scbert_panglao_genes_16906.txt")).unwrap();
    assert_eq!(pkl.len(), 16_906);
    assert_eq!(pkl, txt, "the pickle and the text list give the same order");
    let sf = scfoundation_genes(&data("vocab/scfoundation/OS_scRNA_gene_index.19264.tsv")).unwrap();
    assert_eq!(sf.len(), 19_264);
    assert_eq!(&sf[..2], ["A1BG", "A1CF"]);
}

#[test]
fn files_of_the_wrong_kind_are_named() {
    let medians = data("vocab/geneformer/gene_median_dictionary_gc104M.pkl");
    let err = geneformer_token_dictionary(&medians).unwrap_err();
    assert!(matches!(err, TokenizeError::WrongKind { .. }), "{err}");
    assert!(err.to_string().contains("gene median dictionary?"), "{err}");
    let err = geneformer_gene_medians(&data("vocab/geneformer/token_dictionary_gc104M.pkl")).unwrap_err();
    assert!(err.to_string().contains("token dictionary?"), "{err}");
    let err = string_map(&data("vocab/scbert/vocab_gene2vec_16906.pkl")).unwrap_err();
    assert!(err.to_string().contains("found a list"), "{err}");
    let err = gene_list(&data("vocab/geneformer/gene_name_id_dict_gc104M.pkl")).unwrap_err();
    assert!(err.to_string().contains("found a dict"), "{err}");
    let err = scgpt_vocab(&data("vocab/scfoundation/OS_scRNA_gene_index.19264.tsv"), true).unwrap_err();
    assert!(matches!(err, TokenizeError::Json { .. }), "{err}");
}

#[test]
fn hostile_and_corrupt_pickles_are_refused() {
    // `cos\nsystem\n(S'echo pwned'\ntR.` — the classic code-execution pickle (protocol 0 text).
    let hostile = b"\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.";
    let err = parse(hostile).unwrap_err();
    assert!(err.reason.contains("refusing to load the global os.system"), "{err}");
    // The same through STACK_GLOBAL (protocol 4).
    let hostile4 = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x011\x85R.";
    assert!(parse(hostile4).unwrap_err().reason.contains("builtins.eval"));
    // Truncated copies of a real file fail cleanly at every cut.
    let real = std::fs::read(data("vocab/geneformer/v1_gc30M/token_dictionary_gc30M.pkl")).unwrap();
    for cut in [1, 2, 11, 100, 1000, real.len() / 2, real.len() - 1] {
        assert!(parse(&real[..cut]).is_err(), "cut at {cut}");
    }
    // A small well-formed pickle.
    let ok = parse(b"\x80\x04}\x94(\x8c\x01a\x94K\x01\x8c\x01b\x94h\x01u.").unwrap();
    assert_eq!(
        ok,
        PyValue::Dict(vec![
            (PyValue::Str("a".into()), PyValue::Int(1)),
            (PyValue::Str("b".into()), PyValue::Str("a".into()))
        ])
    );
}

#[test]
fn a_token_id_too_large_for_a_table_is_refused() {
    // {"a": 1, "b": 2**31 - 1}: a well-formed dictionary whose second id would size the token
    // table (and an embedding table) at two billion rows.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token_dictionary.pkl");
    std::fs::write(&path, b"\x80\x04}\x94(\x8c\x01a\x94K\x01\x8c\x01b\x94J\xff\xff\xff\x7fu.").unwrap();
    let err = geneformer_token_dictionary(&path).unwrap_err();
    assert!(
        matches!(&err, TokenizeError::Vocab { source: scfm_core::CoreError::IdTooLarge { id: 0x7fff_ffff, .. }, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("token_dictionary.pkl"), "{err}");
}

/// `parse_dict_items`, checked against `parse`: the same items in the same order, the same
/// non-dict value, or an error where streaming cannot follow the pickle (the top-level dict
/// referenced from inside itself or put into another object).
fn streaming_agrees_with_parse(bytes: &[u8]) {
    let mut items = vec![];
    let streamed = parse_dict_items(bytes, |k, v| {
        items.push((k.into_value(), v.into_value()));
        std::ops::ControlFlow::Continue(())
    });
    match (parse(bytes), streamed) {
        (Ok(PyValue::Dict(whole)), Ok(TopLevel::Dict)) => assert_eq!(whole, items),
        (Ok(v), Ok(TopLevel::Other(w))) => assert_eq!(v, w),
        (Ok(PyValue::Dict(_)), Err(e)) => {
            assert!(e.reason.contains("refers to itself") || e.reason.contains("into another object"), "{e}")
        }
        (Err(_), Err(_)) => {}
        (whole, streamed) => panic!("parse gave {whole:?}, streaming {streamed:?}"),
    }
}

/// The first `bytes` bytes or a little more of a pickled dict, closed after the last whole item
/// (`SETITEMS`, `STOP`): a smaller dict that decodes.
fn first_items(rel: &str, bytes: usize) -> Vec<u8> {
    let whole = std::fs::read(data(rel)).unwrap();
    (bytes..whole.len())
        .map(|cut| [&whole[..cut], b"u."].concat())
        .find(|head| matches!(parse(head), Ok(PyValue::Dict(d)) if d.len() > 10))
        .unwrap()
}

#[test]
fn streamed_dictionaries_equal_the_parsed_ones() {
    for rel in [
        "vocab/geneformer/token_dictionary_gc104M.pkl",
        "vocab/geneformer/gene_median_dictionary_gc104M.pkl",
        "vocab/geneformer/ensembl_mapping_dict_gc104M.pkl",
        "vocab/geneformer/gene_name_id_dict_gc104M.pkl",
        "vocab/geneformer/v1_gc30M/token_dictionary_gc30M.pkl",
        "vocab/geneformer/v1_gc30M/gene_median_dictionary_gc30M.pkl",
        "vocab/scbert/vocab_gene2vec_16906.pkl",
    ] {
        let bytes = std::fs::read(data(rel)).unwrap();
        streaming_agrees_with_parse(&bytes);
        if rel.contains("104M") {
            streaming_agrees_with_parse(&first_items(rel, 3000));
        }
    }
    // SETITEM, one item at a time, as protocol 2 writes small dicts.
    let setitem = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01sX\x01\x00\x00\x00bh\x01s.";
    streaming_agrees_with_parse(setitem);
    let mut items = vec![];
    parse_dict_items(setitem, |k, v| {
        items.push((k.into_value(), v.into_value()));
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(
        items,
        [(PyValue::Str("a".into()), PyValue::Int(1)), (PyValue::Str("b".into()), PyValue::Str("a".into()))]
    );
    // The callback stops the decoding, in a dict of integer values and in one of strings.
    for rel in ["vocab/geneformer/token_dictionary_gc104M.pkl", "vocab/geneformer/ensembl_mapping_dict_gc104M.pkl"] {
        let bytes = std::fs::read(data(rel)).unwrap();
        let mut seen = 0;
        let top = parse_dict_items(&bytes, |_, _| {
            seen += 1;
            if seen == 3 { std::ops::ControlFlow::Break(()) } else { std::ops::ControlFlow::Continue(()) }
        });
        assert_eq!((top, seen), (Ok(TopLevel::Stopped), 3), "{rel}");
    }
    // {"a": <the dict itself>} and ({"a": 1},): refused when streamed, whatever `parse` makes of them.
    let itself = b"\x80\x04}\x94(\x8c\x01a\x94h\x00u.";
    assert!(parse_dict_items(itself, |_, _| std::ops::ControlFlow::Continue(())).is_err());
    let nested = b"\x80\x04}\x94(\x8c\x01a\x94K\x01u\x85.";
    assert!(matches!(parse(nested), Ok(PyValue::Tuple(_))));
    let err = parse_dict_items(nested, |_, _| std::ops::ControlFlow::Continue(())).unwrap_err();
    assert!(err.reason.contains("into another object"), "{err}");
}

proptest! {
    /// Streaming and whole decoding agree on the first items of real files (cut at an opcode
    /// boundary and closed, so that undamaged they decode) with random bytes flipped.
    #[test]
    fn streaming_agrees_with_parse_on_damaged_files(flips in proptest::collection::vec((0usize..3000, any::<u8>()), 1..6)) {
        for rel in ["vocab/geneformer/gene_median_dictionary_gc104M.pkl", "vocab/geneformer/ensembl_mapping_dict_gc104M.pkl"] {
            let mut head = first_items(rel, 3000);
            for &(at, b) in &flips {
                let n = head.len();
                head[at % n] = b;
            }
            streaming_agrees_with_parse(&head);
        }
    }

    /// Arbitrary bytes, and real files with random bytes flipped, never panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), flips in proptest::collection::vec((0usize..5000, any::<u8>()), 0..8)) {
        let _ = parse(&bytes);
        let mut with_header = b"\x80\x04".to_vec();
        with_header.extend_from_slice(&bytes);
        let _ = parse(&with_header);
        let mut real = std::fs::read(data("vocab/scbert/vocab_gene2vec_16906.pkl")).unwrap();
        real.truncate(5000);
        for (at, b) in flips {
            real[at] = b;
        }
        let _ = parse(&real);
    }
}
