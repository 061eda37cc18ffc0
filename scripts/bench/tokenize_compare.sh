#!/usr/bin/env bash
# Two or more `scfm` binaries on the same tokenization input, run alternately round by round
# (this machine's speed drifts within minutes: compare within a round, report ratio medians).
#   scripts/bench/tokenize_compare.sh INPUT.h5ad THREADS ROUNDS BIN [BIN …]
# Geneformer V2 with the dictionaries in ../shared/data/vocab/geneformer (override: VOCAB);
# other schemes through ARGS (e.g. ARGS="--scheme scgpt"). OUT_DIR (default: a temporary
# folder) holds the output; a tmpfs such as /dev/shm takes the disk out of the measurement.
# Each run prints wall, user and system CPU seconds and peak RSS; the last line gives, per
# binary, the median user CPU time relative to the first binary's in the same round (the
# kernel's side of a run, reading and writing the page cache, varies most on this machine).
set -euo pipefail
input=$1 threads=$2 rounds=$3
shift 3
vocab="${VOCAB:-$(dirname "$0")/../../../shared/data/vocab/geneformer}"
out="$(mktemp -d "${OUT_DIR:-${TMPDIR:-/tmp}}/tokenize_compare.XXXXXX")"
trap 'rm -rf "$out"' EXIT
declare -A ratios
for round in $(seq "$rounds"); do
    line="round $round:"
    first=""
    for bin in "$@"; do
        rm -rf "$out/ds"
        # shellcheck disable=SC2086
        /usr/bin/time -o "$out/time" -f "%e %U %S %M" "$bin" tokenize "$input" -o "$out/ds" --vocab "$vocab" \
            --threads "$threads" ${ARGS:-} > /dev/null 2>&1
        read -r wall user sys rss < "$out/time"
        line="$line $bin=${wall} s (user ${user}, sys ${sys}) ${rss} KB"
        first=${first:-$user}
        ratios[$bin]="${ratios[$bin]:-} $(awk -v a="$first" -v b="$user" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')"
    done
    echo "$line"
done
summary="median user-time ratio (first / this):"
for bin in "$@"; do
    median=$(tr ' ' '\n' <<< "${ratios[$bin]}" | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')
    summary="$summary $bin=$median"
done
echo "$summary"
