#!/usr/bin/env bash
# Ingestion at scale: peak RSS and wall time of `scfm convert` against anndata + pyarrow.
#   scripts/bench/ingest_scale.sh [CELLS...]     (default: 100000 1000000)
# Needs a Python with anndata, h5py, pyarrow, scipy (PYTHON=...), and GNU time. As root, the
# page cache is dropped before every run (cold reads for both tools); each number is the median
# of RUNS runs (default 3). SKIP_PYTHON=1 measures scfm only.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
DIR="${BENCH_DIR:-/tmp/scfm-bench}"
RUNS="${RUNS:-3}"
mkdir -p "$DIR"
cargo build --release -q -p scfm-cli
SCFM="${CARGO_TARGET_DIR:-target}/release/scfm"
cold() { sync; if [ "$(id -u)" = 0 ]; then echo 3 > /proc/sys/vm/drop_caches; fi; }
measure() { # label, output-to-remove, command...
    local label="$1" out="$2"; shift 2
    local results=()
    for _ in $(seq "$RUNS"); do
        rm -rf "$out"; cold
        /usr/bin/time -f "%e %M" -o "$DIR/time.txt" "$@" > /dev/null || { echo "$label failed"; return 0; }
        results+=("$(cat "$DIR/time.txt")")
    done
    rm -rf "$out"
    printf '%s\n' "${results[@]}" | sort -n | awk -v label="$label" -v n="$RUNS" \
        'NR == int((n + 1) / 2) { printf "%-20s %7.1f s %7.0f MB   (median of %d)\n", label, $1, $2 / 1024, n }'
}
for n in ${@:-100000 1000000}; do
    f="$DIR/synthetic_${n}.h5ad"
    [ -f "$f" ] || "$PYTHON" scripts/bench/make_synthetic_h5ad.py "$f" "$n" > /dev/null
    echo "== $n cells × 20000 genes, 5 % density ($(du -h "$f" | cut -f1))"
    measure "scfm convert" "$DIR/corpus_$n" "$SCFM" convert "$f" -o "$DIR/corpus_$n"
    if [ "${SKIP_PYTHON:-0}" != 1 ]; then
        measure "anndata + pyarrow" "$DIR/py_$n.arrow" "$PYTHON" scripts/bench/python_baseline.py "$f" "$DIR/py_$n.arrow"
    fi
done
