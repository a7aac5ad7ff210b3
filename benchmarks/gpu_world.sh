#!/usr/bin/env bash
# The world base's pretraining on a lent GPU (issue 9): carries the committed base on
# (`world pretrain --init-from world`, its architecture and learning rate) for MINUTES, then judges
# the result against the issue's targets (`world score`, 256 held-out prompts). The new base comes
# back in $OUT/base with its sample grids and log: if `world score` says it is better, copy it over
# src/portraitist/world/base/ and commit it (the README beside it says how it was made).
#
#   bash benchmarks/gpu_site.sh          # here, once: the packages the device image lacks
#   device run: command="bash benchmarks/gpu_world.sh", carry=[".gpu-site"], timeout_s=600
#
# A dry run on a CPU machine (a small pool, half a minute):
#   PY=.venv/bin/python MINUTES=0.5 IDENTITIES=100 PROMPTS=16 OUT=/tmp/gpu-world bash benchmarks/gpu_world.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
MINUTES=${MINUTES:-6}
IDENTITIES=${IDENTITIES:-10000}
PROMPTS=${PROMPTS:-256}
OUT=${OUT:-/tmp/gpu-world}
mkdir -p "$OUT/samples"
source benchmarks/gpu_env.sh

RUN=$(mktemp -d)
SETTINGS=$("$PY" -c 'import json; from portraitist.world.model import BASE_DIR
s = json.loads((BASE_DIR / "pretrain.json").read_text())["settings"]; print(s["architecture"], s["lr"])') || exit 1
read -r ARCHITECTURE LR <<< "$SETTINGS"
"$PY" -m portraitist world pretrain --out "$RUN" --init-from world --architecture "$ARCHITECTURE" --lr "$LR" \
    --identities "$IDENTITIES" --budget-minutes "$MINUTES" 2>&1 | tr '\r' '\n' | grep --line-buffered -v "Loading" \
    | awk 'NR % 50 == 0 || /step|error|Error/' | tee "$OUT/pretrain.log"
status=${PIPESTATUS[0]}
cp -r "$RUN/base" "$OUT/base" && cp "$RUN/log.jsonl" "$OUT/" && cp "$RUN"/samples/*.png "$OUT/samples/"
"$PY" -m portraitist world score --base "$OUT/base" --prompts "$PROMPTS" --grid "$OUT/score.png" 2>&1 \
    | grep -v "Loading" | tee "$OUT/score.log" || status=1
exit "$status"
