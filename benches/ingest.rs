//! Ingestion throughput on real data: h5ad → CellChunks, and h5ad → corpus.
//!
//! `cargo bench --bench ingest`; the large-file memory/throughput study is
//! `scripts/bench_ingest.sh` (see docs/benchmarks.md).

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use scfm::prelude::*;

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data").join(rel)
}

fn ingest(c: &mut Criterion) {
    let input = data("h5ad/pbmc_sorted_3k5_train.h5ad");
    let n = H5adSource::open(&input).expect("shared data present").n_cells();
    let mut g = c.benchmark_group("pbmc_3k5");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(10);
    g.bench_function("read_h5ad_chunks_1024", |b| {
        b.iter(|| {
            let s = H5adSource::open(&input).unwrap();
            s.chunks(1024).map(|c| c.unwrap().nnz()).sum::<usize>()
        })
    });
    let dir = tempfile::tempdir().unwrap();
    g.bench_function("convert_to_corpus", |b| {
        b.iter(|| {
            convert(std::slice::from_ref(&input), dir.path(), &ConvertOptions::default(), &mut |_| {}).unwrap().nnz
        })
    });
    let corpus = dir.path().join("read");
    convert(std::slice::from_ref(&input), &corpus, &ConvertOptions::default(), &mut |_| {}).unwrap();
    g.bench_function("read_corpus_chunks_1024", |b| {
        b.iter(|| {
            let s = CorpusReader::open(&corpus).unwrap();
            s.chunks(1024).map(|c| c.unwrap().nnz()).sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
