#!/usr/bin/env bash
# Two or more `scfm` binaries on the same tokenization input, run alternately round by round
# (this machine's speed drifts within minutes: compare within a round, report ratio medians).
#   scripts/bench/tokenize_compare.sh INPUT.h5ad THREADS ROUNDS BIN [BIN …]
# Geneformer V2 with the dictionaries in ../shared/data/vocab/geneformer (override: VOCAB).
set -euo pipefail
input=$1 threads=$2 rounds=$3
shift 3
vocab="${VOCAB:-$(dirname "$0")/../../../shared/data/vocab/geneformer}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for round in $(seq "$rounds"); do
    line="round $round:"
    for bin in "$@"; do
        rm -rf "$out/ds"
        /usr/bin/time -o "$out/time" -f "%e s %M KB" "$bin" tokenize "$input" -o "$out/ds" --vocab "$vocab" \
            --threads "$threads" > /dev/null 2>&1
        line="$line $bin=$(cat "$out/time")"
    done
    echo "$line"
done
