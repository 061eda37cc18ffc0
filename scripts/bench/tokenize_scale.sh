#!/usr/bin/env bash
# Geneformer V2 tokenization throughput and peak RSS of `scfm tokenize` on the MODELS.md §9
# benchmark shape: 20,000 cells × 20,000 genes (real Ensembl ids), 5 % non-zero, NB counts.
#   PYTHON=... scripts/bench/tokenize_scale.sh [CELLS=20000]
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
DIR="${BENCH_DIR:-/tmp/scfm-bench}"
VOCAB="${VOCAB:-../shared/data/vocab/geneformer}"
n="${1:-20000}"
mkdir -p "$DIR"
cargo build --release -q -p scfm-cli
SCFM="${CARGO_TARGET_DIR:-target}/release/scfm"
f="$DIR/tok_${n}.h5ad"
[ -f "$f" ] || "$PYTHON" scripts/bench/make_synthetic_h5ad.py "$f" "$n" 20000 0.05 "$VOCAB/geneformer_token_dictionary_gc104M.tsv" > /dev/null
for run in 1 2 3; do
    rm -rf "$DIR/tok_out"
    /usr/bin/time -f "run $run: %e s wall, %M KB peak RSS" "$SCFM" tokenize "$f" -o "$DIR/tok_out" --vocab "$VOCAB" > /dev/null
done
echo "fixed cost (dictionary loading), 12-cell input:"
/usr/bin/time -f "%e s wall, %M KB peak RSS" "$SCFM" tokenize ../shared/data/10x/v2/filtered_gene_bc_matrices_h5.h5 -o "$DIR/tok_small" --vocab "$VOCAB" > /dev/null
