#!/usr/bin/env bash
# Packs what scripts/bench/gpu.sh needs on a GPU machine without a Rust toolchain into .gpu/
# (ignored by git; carried by the device tool): the release binaries built here with `cuda` and
# `wgpu`,
# the shared libraries they link (HDF5 and its dependencies, not glibc), real data and the
# PyTorch reference's scGPT model code.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked -p scfm-cli --features cuda,wgpu
cargo build --release --locked -p scfm-models --example embed_forward --features cuda,wgpu
rm -rf .gpu/stage && mkdir -p .gpu/stage/lib .gpu/data .gpu/py/scgpt/model
cp target/release/scfm target/release/examples/embed_forward .gpu/stage/
strip .gpu/stage/scfm .gpu/stage/embed_forward
for l in $(ldd target/release/scfm | awk '/=>/ { print $3 }'); do
    case "$(basename "$l")" in
        libc.so* | libm.so* | libgcc_s* | ld-linux* | libresolv*) ;;
        *) cp -L "$l" .gpu/stage/lib/ ;;
    esac
done
tar cJf .gpu/bin.tar.xz -C .gpu/stage .
rm -rf .gpu/stage
S=../shared/data
cp $S/h5ad/pbmc_sorted_3k5_train.h5ad $S/h5ad/pbmc_sorted_train_490.h5ad .gpu/data/
mkdir -p .gpu/data/gf && cp $S/vocab/geneformer/*.pkl .gpu/data/gf/
for m in geneformer/v2_tiny:v2_tiny scgpt/pretrained_tiny:scgpt_tiny; do
    rm -rf ".gpu/data/${m#*:}" && cp -r "$S/parity/models/${m%:*}" ".gpu/data/${m#*:}"
    rm -f ".gpu/data/${m#*:}"/{inputs,outputs}.safetensors
done
# scGPT's model code alone: the scgpt package's __init__ imports torchtext, which is bound to
# torch 2.3; the model module itself only needs torch.
py="$(${PYREF:-/work/pyref}/bin/python -c 'import scgpt, os; print(os.path.dirname(scgpt.__file__))' 2>/dev/null || echo /work/pyref/lib/python3.11/site-packages/scgpt)"
cp "$py"/model/{model,dsbn,grad_reverse}.py .gpu/py/scgpt/model/
touch .gpu/py/scgpt/__init__.py
echo "from .model import TransformerModel" > .gpu/py/scgpt/model/__init__.py
du -sh .gpu
