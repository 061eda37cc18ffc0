//! Per-cell tokenization cost on one thread, without I/O: cells with 1,000 expressed genes out
//! of the first 20,000 genes of each model's vocabulary (the MODELS.md §9 benchmark shape).
//!
//! Also the per-cell work on one and on two threads at once (each thread its own 1,000 cells),
//! which shows what two cores give without any I/O, and the fixed cost of a Geneformer run:
//! reading each of its three dictionaries.
//!
//! `cargo bench --bench tokenize`

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use scfm::core::{CellChunk, GeneTable};
use scfm::tokenize::geneformer::{GenePlan, GeneformerDictionaries, GeneformerTokenizer, GeneformerVersion};
use scfm::tokenize::rng::NumpyPcg64;
use scfm::tokenize::scgpt::{ScGptSequence, TieBreak};
use scfm::tokenize::vocab::{geneformer_gene_medians, geneformer_token_dictionary, scgpt_vocab, string_map};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data").join(rel)
}

/// `n` cells with 1,000 expressed genes each (one per stride of 20), NB-like counts.
fn cells(n: usize) -> CellChunk {
    let mut rng = NumpyPcg64::new(7);
    let (mut indptr, mut idx, mut val) = (vec![0], vec![], vec![]);
    for _ in 0..n {
        for k in 0..1000u32 {
            idx.push(k * 20 + rng.below(20) as u32);
            val.push(1.0 + (rng.below(8) * rng.below(4)) as f32);
        }
        indptr.push(idx.len());
    }
    CellChunk::from_csr((0..n).map(|i| format!("c{i}")).collect(), indptr, idx, val, 20_000).unwrap()
}

/// Geneformer V2's tokenizer and its plan for the first 20,000 genes of its vocabulary.
fn geneformer_v2() -> (GeneformerTokenizer, GenePlan) {
    let v = data("vocab/geneformer");
    let dicts = GeneformerDictionaries::load(
        &v.join("token_dictionary_gc104M.pkl"),
        &v.join("gene_median_dictionary_gc104M.pkl"),
        &v.join("ensembl_mapping_dict_gc104M.pkl"),
    )
    .expect("shared data present");
    let genes: Vec<String> =
        dicts.tokens.iter().filter(|(t, _)| !t.starts_with('<')).take(20_000).map(|(t, _)| t.to_owned()).collect();
    let gf = GeneformerTokenizer::new(GeneformerVersion::V2, dicts);
    let plan = gf.plan(&genes);
    (gf, plan)
}

/// Tokenizes every cell of `chunk` with Geneformer, as `scfm tokenize` does (n_counts: the
/// cell's total); the number of tokens.
fn geneformer_tokens(gf: &GeneformerTokenizer, plan: &GenePlan, chunk: &CellChunk) -> usize {
    chunk.cells().filter_map(|cell| gf.tokenize(plan, cell, cell.total())).map(|t| t.input_ids.len()).sum()
}

fn tokenize(c: &mut Criterion) {
    let chunk = cells(1000);
    let mut g = c.benchmark_group("tokenize_1000_cells");
    g.throughput(Throughput::Elements(chunk.n_cells() as u64));
    g.sample_size(20);

    let (gf, plan) = geneformer_v2();
    g.bench_function("geneformer_v2", |b| b.iter(|| geneformer_tokens(&gf, &plan, &chunk)));

    let vocab = scgpt_vocab(&data("vocab/scgpt/default_census_vocab.json"), true).unwrap();
    let symbols: Vec<String> =
        vocab.iter().filter(|(t, _)| !t.starts_with('<')).take(20_000).map(|(t, _)| t.to_owned()).collect();
    let table = GeneTable::new(symbols).unwrap();
    let mut seq = ScGptSequence::zero_shot(vocab.id("<cls>").unwrap());
    seq.max_len = 1200;
    let splan = ScGptSequence::plan(&vocab, &table);
    g.bench_function("scgpt_helical_ties", |b| {
        b.iter(|| {
            let mut tie = TieBreak::HelicalPcg64;
            chunk
                .cells()
                .enumerate()
                .map(|(i, cell)| seq.tokenize(&splan, cell, i as u64, &mut tie).0.len())
                .sum::<usize>()
        })
    });
    g.bench_function("scgpt_numpy_legacy_ties", |b| {
        b.iter(|| {
            let mut tie = TieBreak::numpy_legacy(0);
            chunk
                .cells()
                .enumerate()
                .map(|(i, cell)| seq.tokenize(&splan, cell, i as u64, &mut tie).0.len())
                .sum::<usize>()
        })
    });
    g.finish();
}

/// Geneformer V2 on one thread (1,000 cells) and on two threads at once (1,000 cells each): the
/// per-cell kernel's own speed-up from a second core, with no reading or writing. Throughput is
/// cells per second over all threads.
fn two_threads(c: &mut Criterion) {
    let (gf, plan) = geneformer_v2();
    let chunks = [cells(1000), cells(1000)];
    let mut g = c.benchmark_group("geneformer_v2_threads");
    g.sample_size(20);
    for threads in [1, 2] {
        g.throughput(Throughput::Elements(1000 * threads as u64));
        g.bench_function(format!("{threads}"), |b| {
            b.iter(|| {
                std::thread::scope(|s| {
                    let handles: Vec<_> = chunks[..threads]
                        .iter()
                        .map(|chunk| s.spawn(|| geneformer_tokens(&gf, &plan, chunk)))
                        .collect();
                    handles.into_iter().map(|h| h.join().expect("no panic")).sum::<usize>()
                })
            })
        });
    }
    g.finish();
}

/// Reading Geneformer V2's dictionaries, one file at a time (a run reads the three at once).
fn dictionaries(c: &mut Criterion) {
    let v = data("vocab/geneformer");
    let mut g = c.benchmark_group("read_geneformer_v2_dictionary");
    g.sample_size(20);
    let tokens = v.join("token_dictionary_gc104M.pkl");
    g.bench_function("tokens", |b| b.iter(|| geneformer_token_dictionary(&tokens).unwrap().len()));
    let medians = v.join("gene_median_dictionary_gc104M.pkl");
    g.bench_function("medians", |b| b.iter(|| geneformer_gene_medians(&medians).unwrap().len()));
    let mapping = v.join("ensembl_mapping_dict_gc104M.pkl");
    g.bench_function("ensembl_mapping", |b| b.iter(|| string_map(&mapping).unwrap().len()));
    g.finish();
}

criterion_group!(benches, tokenize, two_threads, dictionaries);
criterion_main!(benches);
