#!/usr/bin/env bash
# The GPU training benchmark as one prepared run (issue 4): our loop against diffusers'
# train_dreambooth.py on the SD 1.5-shaped random model (preset sd15: 512 px, bf16), batch 1 and
# batch 4 (UNet only), plus the peak GPU memory of the staged recipe in the low-memory mode
# (target < 12 GB). About 7 minutes on an H200.
#
#   bash benchmarks/gpu_site.sh          # here, once: the packages the device image lacks
#   device run: command="bash benchmarks/gpu_train.sh", carry=[".gpu-site"], timeout_s=600
#
# Results: one JSON per part in $OUT (the device tool brings them back; copy them to
# benchmarks/results/), and the tables in the output. A dry run on a CPU machine:
#   PY=.venv/bin/python PRESET=tiny STEPS_B1=16 STEPS_B4=8 STEPS_LOWMEM=8 OUT=/tmp/gpu-dry bash benchmarks/gpu_train.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
PRESET=${PRESET:-sd15}
STEPS_B1=${STEPS_B1:-100}
STEPS_B4=${STEPS_B4:-40}
STEPS_LOWMEM=${STEPS_LOWMEM:-16}
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"

source benchmarks/gpu_env.sh
MEMORY=()
command -v nvidia-smi >/dev/null && MEMORY=(--gpu-memory)
"$PY" -c 'import torch, diffusers, transformers, accelerate; print("torch", torch.__version__, "cuda", torch.version.cuda, "diffusers", diffusers.__version__, "transformers", transformers.__version__, "accelerate", accelerate.__version__)' || exit 1

BENCH=("$PY" benchmarks/bench_train.py --preset "$PRESET" --runner module "${MEMORY[@]}" --results "$OUT")
status=0
timeout 200 "${BENCH[@]}" --steps "$STEPS_B1" --batch 1 --cases unet --label batch1 || status=1
timeout 200 "${BENCH[@]}" --steps "$STEPS_B4" --batch 4 --cases unet --label batch4 || status=1
timeout 100 "${BENCH[@]}" --steps "$STEPS_LOWMEM" --batch 1 --cases low-memory --skip-reference --label low-memory || status=1
ls -la "$OUT"
exit $status
