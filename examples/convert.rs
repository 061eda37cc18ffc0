//! Converts the FACS-sorted PBMC training set (real data, 2,800 cells × 8,846 genes) into a
//! sharded Arrow corpus and prints what is in it.
//!
//! ```text
//! cargo run --release --example convert [-- INPUT.h5ad OUT_DIR]
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use scfm::core::arrow_array::cast::AsArray;
use scfm::core::arrow_array::types::Int32Type;
use scfm::io::inspect::inspect;
use scfm::prelude::*;

/// The example's arguments.
#[derive(Parser)]
#[command(about = "Converts an h5ad file into a sharded Arrow corpus and prints what is in it")]
struct Args {
    /// The h5ad file (default: the shared data's pbmc_sorted_3k5_train.h5ad).
    input: Option<PathBuf>,
    /// The corpus folder.
    #[arg(default_value = "out/pbmc_corpus")]
    out: PathBuf,
}

fn main() -> Result<()> {
    let Args { input, out } = Args::parse();
    let input = input.unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/h5ad/pbmc_sorted_3k5_train.h5ad")
    });

    let summary = inspect(&input)?;
    println!(
        "input  {} — {} cells × {} genes ({:?} ids)",
        input.display(),
        summary.n_cells,
        summary.n_genes,
        summary.gene_id_kind
    );

    let bar = ProgressBar::new(summary.n_cells as u64)
        .with_style(ProgressStyle::with_template("{bar:40} {pos}/{len} cells  {per_sec}  ETA {eta}")?);
    let opts = ConvertOptions {
        matrix: MatrixSelector::Counts,
        require_counts: true,
        shard_cells: 1000,
        chunk_cells: 512,
        ..Default::default()
    };
    let manifest = convert(std::slice::from_ref(&input), &out, &opts, &mut |p| bar.set_position(p.cells_done as u64))?;
    bar.finish_and_clear();
    println!(
        "output {} — {} cells, {} non-zeros, {} shards, integer counts: {}",
        out.display(),
        manifest.n_cells,
        manifest.nnz,
        manifest.shards.len(),
        manifest.integer_values
    );

    // Read the corpus back as a CellSource and summarise it per cell type.
    let corpus = CorpusReader::open(&out)?;
    let mut per_type: BTreeMap<String, (usize, Vec<f64>, Vec<usize>)> = BTreeMap::new();
    for chunk in corpus.chunks(1024) {
        let chunk = chunk?;
        let labels = chunk.obs().column_by_name("trueLabel").map(|c| c.as_dictionary::<Int32Type>().clone());
        for (i, cell) in chunk.cells().enumerate() {
            let label = match &labels {
                Some(d) => {
                    let values = d.values().as_string::<i32>();
                    d.keys().value(i).try_into().map(|k: usize| values.value(k).to_owned()).unwrap_or_default()
                }
                None => "all".to_owned(),
            };
            let e = per_type.entry(label).or_default();
            e.0 += 1;
            e.1.push(cell.total());
            e.2.push(cell.nnz());
        }
    }
    println!("{:<10} {:>6} {:>14} {:>14}", "trueLabel", "cells", "median UMIs", "median genes");
    for (label, (n, mut umis, mut genes)) in per_type {
        umis.sort_by(f64::total_cmp);
        genes.sort_unstable();
        println!("{label:<10} {n:>6} {:>14} {:>14}", umis[umis.len() / 2], genes[genes.len() / 2]);
    }
    Ok(())
}
