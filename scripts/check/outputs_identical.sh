#!/usr/bin/env bash
# Runs `scfm tokenize` (every scheme) and `scfm embed` (every family) with two builds of the
# `scfm` binary on the shared data and compares every output file byte for byte: the check
# that a refactoring changed nothing observable.
#
#   scripts/check/outputs_identical.sh OLD_SCFM NEW_SCFM [OUT_DIR]
#
# OLD_SCFM / NEW_SCFM: paths to `scfm` binaries (e.g. built from two commits with
# `cargo build --release -p scfm-cli`); OUT_DIR (default /tmp/scfm-identical) is emptied.
set -euo pipefail
old="$1"; new="$2"; out="${3:-/tmp/scfm-identical}"
data="${SCFM_DATA_DIR:-$(cd "$(dirname "$0")/../../../shared/data" && pwd)}"
rm -rf "$out"; mkdir -p "$out"
h5=$data/h5ad/pbmc_sorted_train_490.h5ad
ens=$data/h5ad/cxg_heart_320_ensembl.h5ad
run() { # name, args…
    local name="$1"; shift
    for side in old new; do
        local bin; bin=$([ "$side" = old ] && echo "$old" || echo "$new")
        "$bin" "${@//@OUT@/$out/$side/$name}" > /dev/null 2> "$out/$side.$name.log" || {
            echo "$side $name failed:"; cat "$out/$side.$name.log"; exit 1; }
    done
    # scfm_tokenizer.json gained the tokenizer's spec on 2026-12-07: the rest must be identical.
    if diff -r -x scfm_tokenizer.json "$out/old/$name" "$out/new/$name" > /dev/null && same_report "$name"; then
        echo "identical  $name ($(find "$out/new/$name" -type f | wc -l) files)"
    else
        echo "DIFFERENT  $name"; diff -rq "$out/old/$name" "$out/new/$name" || true; status=1
    fi
}
# The two reports equal, leaving out a `spec` key that only the newer one may have.
same_report() {
    local old="$out/old/$1/scfm_tokenizer.json" new="$out/new/$1/scfm_tokenizer.json"
    [ ! -e "$old" ] && [ ! -e "$new" ] && return 0
    python3 - "$old" "$new" <<'PY'
import json, sys
old, new = (json.load(open(p)) for p in sys.argv[1:3])
if "spec" not in old:
    new.pop("spec", None)
sys.exit(old != new)
PY
}
status=0
run tok-geneformer-v2 tokenize "$h5" -o @OUT@ --scheme geneformer-v2 --vocab "$data/vocab/geneformer" --obs trueLabel
run tok-geneformer-v1 tokenize "$ens" -o @OUT@ --scheme geneformer-v1 --vocab "$data/vocab/geneformer/v1_gc30M"
run tok-scgpt tokenize "$h5" -o @OUT@ --scheme scgpt --vocab "$data/vocab/scgpt/default_census_vocab.json"
run tok-scgpt-legacy tokenize "$h5" -o @OUT@ --scheme scgpt --ties numpy-legacy --vocab "$data/vocab/scgpt/default_census_vocab.json"
run tok-scgpt-deterministic tokenize "$ens" -o @OUT@ --scheme scgpt --ties deterministic --vocab "$data/vocab/scgpt/default_census_vocab.json" --gene-table "$data/vocab/gene_ids/gencode_v48_genes_homo_sapiens.csv.gz"
run tok-geneformer-v1-symbols tokenize "$h5" -o @OUT@ --scheme geneformer-v1 --vocab "$data/vocab/geneformer/v1_gc30M"
run tok-scbert tokenize "$h5" -o @OUT@ --scheme scbert --vocab "$data/vocab/scbert"
run tok-xtrimogene tokenize "$h5" -o @OUT@ --scheme xtrimogene --vocab "$data/vocab/scfoundation"
p=$data/parity/models
run emb-geneformer embed "$h5" -o @OUT@ --model geneformer --checkpoint "$p/geneformer/v1_10m_shape" --dictionaries "$data/vocab/geneformer/v1_gc30M"
run emb-scgpt embed "$h5" -o @OUT@ --model scgpt --checkpoint "$p/scgpt/pretrained_tiny"
# The tiny fixtures read the first 100 scBERT and the first 60 scFoundation genes.
head -100 "$data/vocab/scbert/scbert_panglao_genes_16906.txt" > "$out/scbert_100.txt"
head -61 "$data/vocab/scfoundation/OS_scRNA_gene_index.19264.tsv" > "$out/scfoundation_60.tsv"
run emb-scbert embed "$h5" -o @OUT@ --model scbert --checkpoint "$p/scbert/pretrain_tiny/panglao_pretrain.pth" --genes "$out/scbert_100.txt"
run emb-xtrimogene embed "$h5" -o @OUT@ --model xtrimogene --checkpoint "$p/scfoundation/mae_autobin_tiny/models.ckpt" --genes "$out/scfoundation_60.tsv"
exit $status
