#!/usr/bin/env bash
# Every GPU check (one lease is 15 minutes of device time, 10 per command), in two device calls:
# PARTS=sd1 (default): the SD 1.x training and generation benchmarks and the GPU-marked tests that
# run with the packages the device image has, about 9 minutes; PARTS=sdxl: the SDXL LoRA training
# and 1024 px generation benchmarks (gpu_sdxl.sh), about 9 minutes.
#
#   bash benchmarks/gpu_site.sh      # here, once: wheels the device image lacks (.gpu-site/)
#   device run: command="bash benchmarks/gpu_all.sh", carry=[".gpu-site"], timeout_s=600
#   device run: command="PARTS=sdxl bash benchmarks/gpu_all.sh", carry=[".gpu-site"], timeout_s=600
#
# Each part writes its JSON and log to $OUT; copy them to benchmarks/results/ and put the
# printed tables in the issue notes.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
status=0
if [ "${PARTS:-sd1}" = sdxl ]; then
    timeout 580 bash benchmarks/gpu_sdxl.sh || status=1
    exit "$status"
fi
STEPS_B1=${STEPS_B1:-60} STEPS_B4=${STEPS_B4:-24} STEPS_LOWMEM=${STEPS_LOWMEM:-12} \
    timeout 330 bash benchmarks/gpu_train.sh || status=1
timeout 240 bash benchmarks/gpu_generate.sh || status=1
# GPU-marked tests whose imports the device image satisfies (rank/upscale need dlib and ncnn: not there)
PYTHONPATH="/tmp/portraitist-gpu-site:$PWD/src" PORTRAITIST_CACHE="$PWD/.gpu-site/cache" \
    timeout 60 python3 -m pytest -q -m gpu -p no:cacheprovider tests/train tests/generate 2>&1 | tail -5
exit "$status"
