#!/usr/bin/env bash
# Build .gpu-site/: the Python packages our training needs that the GPU machine's image lacks.
#
# The device machine (see benchmarks/gpu_train.sh) has python3 3.12 with torch, transformers,
# accelerate, peft, safetensors, typer and rich, and reaches no package registry. This script,
# run HERE (pip downloads the wheels), puts diffusers, pydantic and bitsandbytes (only its CUDA 13
# library) as zip files in .gpu-site/wheels and the CLIP vocabulary in .gpu-site/cache, about
# 15 MB, which the device tool carries (carry=[".gpu-site"]); gpu_train.sh unpacks them there.
# .git/info/exclude keeps the folder out of git.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-.venv/bin/pip}
PY=${PY:-.venv/bin/python}
SITE=.gpu-site
rm -rf "$SITE"
mkdir -p "$SITE/wheels" "$SITE/cache"
"$PIP" download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_28_x86_64 \
    -d "$SITE/wheels" \
    diffusers==0.42.1 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
    importlib-metadata==10.2.0 bitsandbytes==0.50.2
# bitsandbytes ships one library per CUDA version (43 MB); the machine's torch is built for CUDA 13
BNB=$(ls "$SITE"/wheels/bitsandbytes-*.whl)
"$PY" - "$BNB" <<'PY'
import re, sys, zipfile
path = sys.argv[1]
with zipfile.ZipFile(path) as src:
    members = [(i, src.read(i)) for i in src.infolist()
               if not re.search(r"libbitsandbytes_(?!cuda13)\w+\.so$", i.filename)]
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
    for info, data in members:
        out.writestr(info, data)
PY
"$PY" -c "from pathlib import Path; from portraitist.models.tokenizer import write_clip_vocab; write_clip_vocab(Path('$SITE/cache/clip-tokenizer'))"
grep -qx '/.gpu-site/' .git/info/exclude 2>/dev/null || echo '/.gpu-site/' >> .git/info/exclude
du -sh "$SITE"
