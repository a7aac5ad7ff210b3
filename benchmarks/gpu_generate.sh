#!/usr/bin/env bash
# The GPU run of `portraitist bench generate` (issue 5), prepared as ONE command for the device
# tool (an H200 here, reachable for a few minutes per task):
#
#   run(command="bash benchmarks/gpu_generate.sh", carry=[".whl"], timeout_s=540)
#
# The device image has torch and transformers but not diffusers, pydantic or open_clip_torch
# (whose BPE list our offline CLIP tokenizer is built from); .whl/ holds those wheels, fetched
# here for its Python 3.12 with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1 pydantic==2.14.4 \
#     pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 open_clip_torch==3.3.0
# (and `/.whl/` in .git/info/exclude). Then: the sd15 model folder (SD 1.5's exact shapes, random
# weights, 4.3 GB) is built on the device's disk, and ours is timed against diffusers'
# StableDiffusionPipeline + EulerDiscreteScheduler: fp16, 30 steps, CFG 7, 512x512 at batch 1
# and 8, 512x912 at batch 8; `ours-no-graphs` shows what CUDA-graph replay adds. About 3-5
# minutes; the JSON result and the log come back under $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-benchmarks/results}"
mkdir -p "$OUT_DIR"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD/src" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 benchmarks/bench_generate.py --preset sd15 --cases 512x512:1,512x512:8,512x912:8 --calls 3 --warmup 1 \
    --variants ours,ours-no-graphs --workdir /tmp/portraitist-bench --results "$OUT_DIR" \
    --label "gpu_generate.sh" 2>&1 | grep --line-buffered -v -e "Loading" -e "Writing model shards" | tee "$OUT_DIR/gpu_generate.log"
