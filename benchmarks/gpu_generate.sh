#!/usr/bin/env bash
# The GPU generation benchmark as one prepared run (issue 5): ours against diffusers'
# StableDiffusionPipeline + EulerDiscreteScheduler on the SD 1.5-shaped random model (preset
# sd15), fp16, 30 steps, CFG 7: 512x512 at batch 1 and 8, 512x912 at batch 8. `ours-no-graphs`
# shows what CUDA-graph replay adds. About 3-5 minutes on an H200 (building the 4.3 GB model
# folder included).
#
#   bash benchmarks/gpu_site.sh          # here, once: the packages the device image lacks
#   device run: command="bash benchmarks/gpu_generate.sh", carry=[".gpu-site"], timeout_s=540
#
# Results: the JSON and the log in $OUT (the device tool brings them back; copy them to
# benchmarks/results/). A dry run on a CPU machine:
#   PY=.venv/bin/python PRESET=tiny CASES=64x64:1,64x112:2 OUT=/tmp/gpu-dry bash benchmarks/gpu_generate.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
PRESET=${PRESET:-sd15}
CASES=${CASES:-512x512:1,512x512:8,512x912:8}
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"

source benchmarks/gpu_env.sh

timeout 480 "$PY" benchmarks/bench_generate.py --preset "$PRESET" --cases "$CASES" --calls 3 --warmup 1 \
    --variants ours,ours-no-graphs --results "$OUT" --label gpu_generate.sh 2>&1 \
    | grep --line-buffered -v -e "Loading" -e "Writing model shards" | tee "$OUT/gpu_generate.log"
status=${PIPESTATUS[0]}
ls -la "$OUT"
exit "$status"
