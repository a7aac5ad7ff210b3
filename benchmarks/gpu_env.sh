# Sourced by the gpu_*.sh scripts: gpu_site.sh's packages (built for the device's Python 3.12) and
# CLIP vocabulary on PYTHONPATH when .gpu-site/ was carried, else this checkout's src/; offline hub.
# Needs PY set.
if [ -d .gpu-site/wheels ] && "$PY" -c 'import sys; raise SystemExit(sys.version_info[:2] != (3, 12))'; then
    SITE=/tmp/portraitist-gpu-site
    rm -rf "$SITE" && mkdir -p "$SITE"
    for wheel in .gpu-site/wheels/*.whl; do "$PY" -m zipfile -e "$wheel" "$SITE"; done
    export PYTHONPATH="$SITE:$PWD/src" PORTRAITIST_CACHE="$PWD/.gpu-site/cache"
else
    export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
