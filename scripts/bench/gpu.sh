#!/usr/bin/env bash
# GPU runs of docs/benchmarks.md on a machine with an NVIDIA GPU, CUDA and PyTorch but no Rust
# toolchain: the binaries are built elsewhere and brought along in .gpu/ (see
# scripts/bench/gpu_pack.sh, which also packs the data and the shared libraries they need).
#
#   bash scripts/bench/gpu.sh check     # CUDA found, CPU vs GPU embeddings of real cells agree
#   bash scripts/bench/gpu.sh embed     # forward throughput, scfm vs PyTorch, fp32 and bf16
#   bash scripts/bench/gpu.sh train     # scfm finetune / pretrain on the GPU, real cells
#   bash scripts/bench/gpu.sh mixed     # fine-tuning in fp32 against mixed precision (bf16)
#   bash scripts/bench/gpu.sh wgpu      # the wgpu backend (Vulkan): embeddings and training
#   bash scripts/bench/gpu.sh run NAME TIMEOUT CMD...   # one run, logged the same way
#
# Every result is one JSON line appended to $OUT/results.jsonl; the logs of all runs are kept
# in $OUT/logs.tgz (refreshed after each run, so a run cut short still leaves them).
set -u
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/scfm-gpu-out}"
L=/tmp/scfm-gpu/logs
mkdir -p "$OUT" "$L"
G=.gpu
W=/tmp/scfm-gpu
[ -x $W/scfm ] || tar xJf $G/bin.tar.xz -C $W
nvcc_bin="$(command -v nvcc || ls /usr/local/cuda*/bin/nvcc 2>/dev/null | head -1)"
export CUDA_PATH="${CUDA_PATH:-$(dirname "$(dirname "$nvcc_bin")")}"
nvrtc_dir="$(dirname "$(find "$CUDA_PATH"/ /usr/local /opt -name 'libnvrtc.so*' 2>/dev/null | head -1)")"
export LD_LIBRARY_PATH="$W/lib:$nvrtc_dir:$CUDA_PATH/lib64:${LD_LIBRARY_PATH:-}"
export PYTHONPATH="$G/py:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
D=$G/data
RES="$OUT/results.jsonl"

# run NAME TIMEOUT CMD...: the command's last stdout line (its JSON) goes to results.jsonl,
# with the wall time, the peak host memory and the peak GPU memory in use (sampled every
# 250 ms; burn, like PyTorch, keeps freed blocks in its pool, so this is the pool's peak);
# everything else to the logs.
run() {
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 250 > "$L/$name.gpumem" 2>/dev/null &
    local sampler=$!
    timeout "$limit" /usr/bin/time -f '%M' -o "$L/$name.rss" "$@" > "$L/$name.out" 2> "$L/$name.log"
    local rc=$?
    kill $sampler 2>/dev/null
    local gpu
    gpu="$(sort -n "$L/$name.gpumem" 2>/dev/null | tail -1)"
    local line
    line="$(grep '^{' "$L/$name.out" | tail -1)"
    [ -n "$line" ] || line='{}'
    python3 - "$name" "$rc" "$((SECONDS - t0))" "$(tail -1 "$L/$name.rss" 2>/dev/null)" "$gpu" "$line" >> "$RES" <<'EOF'
import json, sys
name, rc, wall, rss, gpu, line = sys.argv[1:]
d = json.loads(line)
d.update(run=name, rc=int(rc), wall_s=int(wall), peak_rss_mb=int(rss) // 1024 if rss.isdigit() else None,
         peak_gpu_mb=int(gpu) if gpu.strip().isdigit() else None)
print(json.dumps(d))
EOF
    echo "$name rc=$rc $((SECONDS - t0)) s: $line"
    [ $rc -eq 0 ] || tail -5 "$L/$name.log"
    tar czf "$OUT/logs.tgz" -C "$L" .
}

gpu_mem() { nvidia-smi --query-gpu=memory.used --format=csv,noheader; }

case "${1:-}" in
check)
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
    echo "CUDA_PATH=$CUDA_PATH nvrtc=$nvrtc_dir"
    python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())'
    # scGPT (released layout, tiny) on the 490 sorted PBMCs: CPU fp32 vs CUDA fp32 and bf16.
    h5ad=$D/pbmc_sorted_train_490.h5ad
    for dev in "cpu fp32" "cuda fp32" "cuda bf16"; do
        set -- $dev
        run "embed-scgpt-$1-$2" 300 $W/scfm embed $h5ad -o $W/scgpt-$1-$2 --model scgpt \
            --checkpoint $D/scgpt_tiny --backend $1 --precision $2
    done
    for p in fp32 bf16; do
        python3 scripts/bench/compare_embeddings.py $W/scgpt-cuda-$p/embeddings.arrow \
            $W/scgpt-cpu-fp32/embeddings.arrow | tee -a "$RES"
    done
    ;;
embed)
    # shape: model batch len iters
    for shape in "geneformer-v2-104m 8 2048 5 fp32 bf16" "scgpt-human 32 1200 5 fp32 bf16" \
        "xtrimogene 16 1000 5 fp32" "scbert 1 16907 3 fp32"; do
        set -- $shape
        local_dtypes="${*:5}"
        set -- $1 $2 $3 $4
        for dtype in $local_dtypes; do
            run "scfm-$1-$2x$3-$dtype" 150 $W/embed_forward "$@" cuda $dtype
            run "torch-$1-$2x$3-$dtype" 150 python3 scripts/bench/embed_torch.py "$@" --device cuda --dtype $dtype
        done
    done
    ;;
train)
    h5ad=$D/pbmc_sorted_3k5_train.h5ad
    # The annotate defaults (CPU: 313 s on 2 cores), then a larger Geneformer with longer cells.
    run finetune-gf-default 240 $W/scfm finetune $h5ad -o $W/ft-default --vocab $D/gf --backend cuda
    cp $W/ft-default/report.json "$OUT/report-ft-default.json"
    # Data parallel: every batch split in two shards on the one GPU (the code path of two GPUs).
    run pretrain-gf-2shards 120 $W/scfm pretrain $h5ad -o $W/pt-2shards --vocab $D/gf --backend cuda \
        --devices 0,0 --stop-after 40
    run finetune-gf-larger 240 $W/scfm finetune $h5ad -o $W/ft-larger --vocab $D/gf --backend cuda \
        --d-model 256 --layers 4 --heads 4 --d-ff 512 --max-len 512 --epochs 8
    cp $W/ft-larger/report.json "$OUT/report-ft-larger.json"
    ;;
mixed)
    h5ad=$D/pbmc_sorted_3k5_train.h5ad
    # The annotate defaults, then a larger Geneformer with longer cells (learning rate 3e-4:
    # at 1e-3 it collapsed in session 8), each in fp32 and in mixed precision.
    for p in fp32 bf16; do
        run finetune-gf-$p 240 $W/scfm finetune $h5ad -o $W/ft-$p --vocab $D/gf --backend cuda --precision $p
        cp $W/ft-$p/report.json "$OUT/report-ft-$p.json"
        run finetune-gf-larger-$p 300 $W/scfm finetune $h5ad -o $W/ftl-$p --vocab $D/gf --backend cuda \
            --d-model 256 --layers 4 --heads 4 --d-ff 512 --max-len 512 --epochs 8 --lr 3e-4 --precision $p
        cp $W/ftl-$p/report.json "$OUT/report-ftl-$p.json"
    done
    ;;
wgpu)
    ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>&1
    h5ad=$D/pbmc_sorted_train_490.h5ad
    for b in cpu wgpu; do
        run "embed-scgpt-$b" 300 $W/scfm embed $h5ad -o $W/scgpt-$b --model scgpt --checkpoint $D/scgpt_tiny --backend $b
    done
    python3 scripts/bench/compare_embeddings.py $W/scgpt-wgpu/embeddings.arrow $W/scgpt-cpu/embeddings.arrow | tee -a "$RES"
    run finetune-gf-wgpu 400 $W/scfm finetune $D/pbmc_sorted_3k5_train.h5ad -o $W/ft-wgpu --vocab $D/gf --backend wgpu
    cp $W/ft-wgpu/report.json "$OUT/report-ft-wgpu.json"
    ;;
run)
    # One run with the script's environment: gpu.sh run NAME TIMEOUT CMD... ($W is the
    # binaries' folder, e.g. gpu.sh run x 60 '$W/embed_forward' scbert 1 4227 3 cuda fp32).
    shift
    name=$1 limit=$2
    shift 2
    cmd=()
    for a in "$@"; do cmd+=("${a//\$W/$W}"); done
    run "$name" "$limit" "${cmd[@]}"
    exit 0
    ;;
*)
    echo "usage: gpu.sh check|embed|train|mixed|wgpu|run NAME TIMEOUT CMD..." >&2
    exit 2
    ;;
esac
echo "== results"
cat "$RES"
