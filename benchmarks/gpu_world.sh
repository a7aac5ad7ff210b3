#!/usr/bin/env bash
# The world base's pretraining on a lent GPU (issue 9): carries the committed base on for MINUTES in
# two runs, as the CPU sessions did: a constant-rate phase (`world pretrain --init-from world`, its
# architecture and learning rate) for COOLDOWN_FROM of the time, then a cosine cool-down
# (`--init-from` that phase's base, `--decay-to`) whose step count comes from the speed the first
# phase logged, so the rate reaches 0 inside the time left. Then it judges the result against the
# issue's targets (`world score`, 256 held-out prompts). The new base comes back in $OUT/base with
# both phases' logs and sample grids: if `world score` says it is better, copy it over
# src/portraitist/world/base/ and commit it (the README beside it says how it was made).
#
#   bash benchmarks/gpu_site.sh          # here, once: the packages the device image lacks
#   device run: command="bash benchmarks/gpu_world.sh", carry=[".gpu-site"], timeout_s=600
#
# The committed base's settings (architecture, rates, text-encoder depth) carry over. FROM=scratch
# pretrains a new base from random weights instead (lr 5e-4, as the committed base's first run);
# TEXT_LAYERS=N gives the text encoder N layers (more than the base's: appended as the identity), e.g.
#   device run: command="FROM=scratch MINUTES=8 bash benchmarks/gpu_world.sh", ...
#
# A dry run on a CPU machine (a small pool, about two minutes):
#   PY=.venv/bin/python MINUTES=1 IDENTITIES=100 PROMPTS=16 OUT=/tmp/gpu-world bash benchmarks/gpu_world.sh
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
s = json.loads((BASE_DIR / "pretrain.json").read_text())["settings"]
print(s["architecture"], s["lr"], s["batch"], s.get("text_layers", 3), s.get("text_lr") or s["lr"])') || exit 1
read -r ARCHITECTURE LR BATCH BASE_LAYERS TEXT_LR <<< "$SETTINGS"
FROM=${FROM:-world}
START=(--init-from world)
if [ "$FROM" = scratch ]; then START=(); LR=5e-4; TEXT_LR=5e-4; fi
TEXT=(--text-layers "${TEXT_LAYERS:-$BASE_LAYERS}" --text-lr "$TEXT_LR")
COOLDOWN_FROM=${COOLDOWN_FROM:-0.7}
read -r STABLE_MINUTES COOL_MINUTES <<< "$("$PY" -c "print($MINUTES * $COOLDOWN_FROM, $MINUTES * (1 - $COOLDOWN_FROM))")"

pretrain() {  # pretrain ARGS...: a quiet log (every 50th line, and steps and errors) into $OUT/pretrain.log
    "$PY" -m portraitist world pretrain --architecture "$ARCHITECTURE" --lr "$LR" --identities "$IDENTITIES" \
        "${TEXT[@]}" "$@" 2>&1 \
        | tr '\r' '\n' | grep --line-buffered -v "Loading" | awk 'NR % 50 == 0 || /step|error|Error/' \
        | tee -a "$OUT/pretrain.log"
    return "${PIPESTATUS[0]}"
}

pretrain --out "$RUN/stable" "${START[@]}" --budget-minutes "$STABLE_MINUTES" || exit 1
# The cool-down's length: the stable phase's last logged speed, for 90% of the minutes left; its
# warm-up (a fresh optimizer's) 100 steps or a quarter of them.
read -r STEP DECAY_TO WARMUP <<< "$("$PY" -c "
import json
rows = [json.loads(line) for line in open('$RUN/stable/log.jsonl')]
last = [row for row in rows if row['kind'] == 'train'][-1]
left = $COOL_MINUTES * 60 * 0.9
steps = max(1, int(last['images_per_second'] * left / $BATCH))
print(last['step'], last['step'] + steps, min(100, steps // 4))")"
echo "cool-down: steps $STEP -> $DECAY_TO" | tee -a "$OUT/pretrain.log"
# The pool is the same people: the cool-down reuses it instead of rendering it again.
mkdir -p "$RUN/cool" && mv "$RUN/stable/pool" "$RUN/cool/pool"
pretrain --out "$RUN/cool" --init-from "$RUN/stable/base" --warmup "$WARMUP" --decay-to "$DECAY_TO" --steps "$DECAY_TO" \
    --budget-minutes "$COOL_MINUTES" || exit 1
status=0
cp -r "$RUN/cool/base" "$OUT/base" && cp "$RUN/cool/log.jsonl" "$OUT/cooldown-log.jsonl" \
    && cp "$RUN/stable/log.jsonl" "$OUT/stable-log.jsonl"
for phase in stable cool; do
    for grid in "$RUN/$phase"/samples/*.png; do cp "$grid" "$OUT/samples/$phase-$(basename "$grid")"; done
done
"$PY" -m portraitist world score --base "$OUT/base" --prompts "$PROMPTS" --grid "$OUT/score.png" 2>&1 \
    | grep -v "Loading" | tee "$OUT/score.log" || status=1
exit "$status"
