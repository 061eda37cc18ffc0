#!/usr/bin/env bash
# Alternating rounds of the embedding benchmark, scfm then PyTorch, on the same shape: one line
# per round with both sides' cells/s, their peak RSS and the ratio (docs/benchmarks.md).
#
#   bash scripts/bench/embed_rounds.sh MODEL BATCH LEN ITERS ROUNDS [--pipeline]
#
# PYTHON: the reference environment's interpreter (MODELS.md §9; default python3). Build the
# Rust side first: cargo build --release -p scfm-models --example embed_forward
set -euo pipefail
[ $# -ge 5 ] || { echo "usage: $0 MODEL BATCH LEN ITERS ROUNDS [--pipeline]" >&2; exit 2; }
model=$1 batch=$2 len=$3 iters=$4 rounds=$5 flag=${6:-}
root=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-python3}
bin=$root/target/release/examples/embed_forward
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cells_per_s() { grep -o '"cells_per_s": *[0-9.]*' "$1" | grep -o '[0-9.]*$'; }
for round in $(seq 1 "$rounds"); do
  /usr/bin/time -f %M -o "$tmp/rss.scfm" "$bin" "$model" "$batch" "$len" "$iters" $flag >"$tmp/scfm"
  /usr/bin/time -f %M -o "$tmp/rss.torch" "$python" "$root/scripts/bench/embed_torch.py" \
    "$model" "$batch" "$len" "$iters" $flag >"$tmp/torch" 2>/dev/null
  s=$(cells_per_s "$tmp/scfm") t=$(cells_per_s "$tmp/torch")
  printf '%s %sx%s%s round %s: scfm %.3g cells/s (%s MB) pytorch %.3g cells/s (%s MB) ratio %.2f\n' \
    "$model" "$batch" "$len" "${flag:+ $flag}" "$round" "$s" $(( $(cat "$tmp/rss.scfm") / 1024 )) \
    "$t" $(( $(cat "$tmp/rss.torch") / 1024 )) "$("$python" -c "print($s / $t)")"
done
