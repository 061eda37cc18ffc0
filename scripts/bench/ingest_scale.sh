#!/usr/bin/env bash
# Ingestion at scale: peak RSS and wall time of `scfm convert` against anndata + pyarrow.
#   scripts/bench/ingest_scale.sh [CELLS...]     (default: 100000 1000000)
# Needs a Python with anndata, h5py, pyarrow, scipy (PYTHON=...), and GNU time.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
DIR="${BENCH_DIR:-/tmp/scfm-bench}"
mkdir -p "$DIR"
cargo build --release -q -p scfm-cli
SCFM="${CARGO_TARGET_DIR:-target}/release/scfm"
measure() { # label, command...
    local label="$1"; shift
    /usr/bin/time -f "%e %M" -o "$DIR/time.txt" "$@" > /dev/null
    read -r secs kb < "$DIR/time.txt"
    printf "%-28s %8.1f s %8.0f MB\n" "$label" "$secs" "$((kb / 1024))"
}
for n in "${@:-100000 1000000}"; do
    f="$DIR/synthetic_${n}.h5ad"
    [ -f "$f" ] || "$PYTHON" scripts/bench/make_synthetic_h5ad.py "$f" "$n" > /dev/null
    echo "== $n cells × 20000 genes, 5 % density ($(du -h "$f" | cut -f1))"
    rm -rf "$DIR/corpus_$n"
    measure "scfm convert" "$SCFM" convert "$f" -o "$DIR/corpus_$n"
    if [ "${SKIP_PYTHON:-0}" != 1 ]; then
        measure "anndata + pyarrow" "$PYTHON" scripts/bench/python_baseline.py "$f" "$DIR/py_$n.arrow" || echo "python baseline failed (out of memory?)"
        rm -f "$DIR/py_$n.arrow"
    fi
    rm -rf "$DIR/corpus_$n"
done
