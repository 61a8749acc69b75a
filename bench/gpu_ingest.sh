#!/usr/bin/env bash
# Ingestion on a GPU: bench/pipeline_seconds.py over SAM's prompt grid, float32 / bf16 and images per
# batch (PROCESSING_BATCH_IMAGES), SAM ViT-B + CLIP ViT-B-32 with random weights. Each setting runs in
# a fresh process; a failing one is reported and the rest still run. Output goes to $OUT (or ./var).
# The CUDA-only tests run first (tests/search/test_fast_sam_model.py; no database needed).
#   bash bench/gpu_ingest.sh [timed images per setting, default 32] [regex of setting names to run]
set -u
images=${1:-32}
only=${2:-.}
out=${OUT:-var}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
DJANGO_SETTINGS_MODULE=tests.settings MODEL_DEVICE=cpu python3 -m pytest --noconftest -p no:cacheprovider \
    -o addopts="" -q tests/search/test_fast_sam_model.py 2>&1 | tail -3 | tee "$out/tests.txt"
run() {  # name, then environment assignments
    local name=$1; shift
    [[ $name =~ $only ]] || return 0
    echo "=== $name" | tee -a "$out/ingest.log"
    local STOCK=""
    [[ $name == *-stock ]] && STOCK=--stock-attention
    env "$@" MODEL_DEVICE=cuda SAM_POINTS_PER_BATCH=64 PYTHONUNBUFFERED=1 \
        timeout 240 python3 bench/pipeline_seconds.py --models full-random --images "$images" $STOCK \
        >"$out/$name.txt" 2>&1
    local rc=$?
    grep -E "^(models|model load|seconds per call|throughput|object regions|peak)" "$out/$name.txt" | tee -a "$out/ingest.log"
    [ $rc -eq 0 ] || { echo "exit $rc"; tail -25 "$out/$name.txt"; } | tee -a "$out/ingest.log"
}
run g16-f32-b1 SAM_POINTS_PER_SIDE=16 PROCESSING_BATCH_IMAGES=1
run g16-f32-b8 SAM_POINTS_PER_SIDE=16 PROCESSING_BATCH_IMAGES=8
run g16-bf16-b1 SAM_POINTS_PER_SIDE=16 PROCESSING_BATCH_IMAGES=1 MODEL_BF16=true
run g16-bf16-b8 SAM_POINTS_PER_SIDE=16 PROCESSING_BATCH_IMAGES=8 MODEL_BF16=true
run g32-f32-b1 SAM_POINTS_PER_SIDE=32 PROCESSING_BATCH_IMAGES=1
run g32-f32-b8 SAM_POINTS_PER_SIDE=32 PROCESSING_BATCH_IMAGES=8
run g32-bf16-b8 SAM_POINTS_PER_SIDE=32 PROCESSING_BATCH_IMAGES=8 MODEL_BF16=true
# Random weights rarely pass SAM's quality filters; with them off every mask is kept: the most
# post-processing a grid can cost.
run g32-bf16-b8-allmasks SAM_POINTS_PER_SIDE=32 PROCESSING_BATCH_IMAGES=8 MODEL_BF16=true SAM_PRED_IOU_THRESH=0 SAM_STABILITY_SCORE_THRESH=0
# SAM's own attention against ChunkedAttention (which was made for CPU caches).
run g16-f32-b8-stock SAM_POINTS_PER_SIDE=16 PROCESSING_BATCH_IMAGES=8
run g16-bf16-b8-stock SAM_POINTS_PER_SIDE=16 PROCESSING_BATCH_IMAGES=8 MODEL_BF16=true
