"""The benchmarks' model folders: seeded random weights, the real SD 1.x classes, saved the way
shared/bench/make_model.py saves them, so diffusers' reference code and ours load the same files.

    build_model("cpu-bench", Path("/tmp/portraitist-bench/models/cpu-bench"))

Presets are the bench names (`tiny`, `cpu-bench`, `sd15`); their shapes live in
portraitist.models.random_sd (`sd15` is its `sd15-random`: SD 1.5's exact shapes).
"""

from __future__ import annotations

import json
from pathlib import Path

PRESETS = {"tiny": "tiny", "cpu-bench": "cpu-bench", "sd15": "sd15-random"}  # bench name -> random_sd preset


def build_model(preset: str, out: Path) -> Path:
    """A diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/); kept if present."""
    if (out / "model_index.json").exists():
        return out
    from diffusers import StableDiffusionPipeline

    from portraitist.models import random_sd
    from portraitist.models.tokenizer import write_clip_vocab

    parts = random_sd.build_components(PRESETS[preset], seed=0)
    pipe = StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    tmp = out.with_name(out.name + ".tmp")
    pipe.save_pretrained(tmp, safe_serialization=True)
    # transformers 5 writes only tokenizer.json; other loaders want the classic pair too
    write_clip_vocab(tmp / "tokenizer")
    resolution = random_sd.PRESETS[PRESETS[preset]]["resolution"]
    (tmp / "bench_preset.json").write_text(json.dumps({"preset": preset, "seed": 0, "resolution": resolution}))
    tmp.rename(out)
    return out
