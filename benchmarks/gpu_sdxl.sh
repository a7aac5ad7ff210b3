#!/usr/bin/env bash
# The SDXL GPU benchmarks as one prepared run, on the SDXL base 1.0-shaped random model (preset
# sdxl, 1024 px): the lora recipe against diffusers' train_dreambooth_lora_sdxl.py (rank 4 on the
# UNet's attention, batch 1, bf16; peak GPU memory of both, target at most 12 GB and 2x the
# script's steps/s), and generation at 1024x1024 against StableDiffusionXLPipeline in fp16
# (30 Euler steps, CFG 7). Building the 14 GB model folder takes a good part of the time.
#
#   bash benchmarks/gpu_site.sh          # here, once: the packages the device image lacks
#   device run: command="bash benchmarks/gpu_sdxl.sh", carry=[".gpu-site"], timeout_s=600
#
# A dry run on a CPU machine:
#   PY=.venv/bin/python PRESET=tiny-xl STEPS=8 CASES=64x64:1 OUT=/tmp/gpu-dry bash benchmarks/gpu_sdxl.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
PRESET=${PRESET:-sdxl}
STEPS=${STEPS:-24}
CASES=${CASES:-1024x1024:1}
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"

source benchmarks/gpu_env.sh
MEMORY=()
command -v nvidia-smi >/dev/null && MEMORY=(--gpu-memory)
status=0
timeout 300 "$PY" benchmarks/bench_train.py --preset "$PRESET" --runner module "${MEMORY[@]}" --results "$OUT" \
    --steps "$STEPS" --batch 1 --cases lora --label sdxl-lora || status=1
timeout 240 "$PY" benchmarks/bench_generate.py --preset "$PRESET" --cases "$CASES" --calls 2 --warmup 1 \
    --variants ours --results "$OUT" --label gpu_sdxl.sh 2>&1 \
    | grep --line-buffered -v -e "Loading" -e "Writing model shards" | tee "$OUT/gpu_sdxl_generate.log"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
# last, with what time is left: ours alone with --low-memory (gradient checkpointing), the memory
# the 12 GB target can fall back on if the default run is above it (at some cost in speed)
timeout 150 "$PY" benchmarks/bench_train.py --preset "$PRESET" --runner module "${MEMORY[@]}" --results "$OUT" \
    --steps "$STEPS" --batch 1 --cases lora --skip-reference --ours-extra=--low-memory \
    --label sdxl-lora-low-memory || status=1
ls -la "$OUT"
exit $status
