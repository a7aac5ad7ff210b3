"""Single-file Stable Diffusion 1.x checkpoints (AUTOMATIC1111 / ComfyUI layout), loaded offline.

diffusers' `from_single_file` converts the file's tensors into its parts, but it needs the parts'
diffusers configs, and it downloads them from the hub unless it is given a local folder of them.
This module writes that folder:
- from the file's own metadata when portraitist exported it (`export --format single-file` stores
  the configs there), because a portraitist model may have any shapes (`tiny`, `cpu-bench`);
- from SD 1.5's configs for any other SD 1.x file (A1111's v1-5-pruned-emaonly, a fine-tune of it,
  a VAE such as vae-ft-mse-840000). The 1.x line kept one architecture, so its files all have SD
  1.5's shapes; deriving configs from the tensors instead could not recover what shapes leave open,
  such as the attention heads. They are the `sd15-random` preset's, read from a model built on the
  meta device (no weights, no memory).
Other checkpoints (SD 2.x) have diffusers look their configs up on the hub, online only.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline
from safetensors import SafetensorError, safe_open

from portraitist.errors import PortraitistError
from portraitist.models import random_sd
from portraitist.models.offline import hub_unreachable
from portraitist.models.tokenizer import clip_tokenizer

METADATA_KEY = "portraitist.configs"
# what an SD 2.x (OpenCLIP text encoder) or SDXL (two text encoders) checkpoint has and SD 1.x has not
_NOT_SD1 = ("cond_stage_model.model.", "conditioner.")
_MODEL_INDEX = {
    "_class_name": StableDiffusionPipeline.__name__,
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "scheduler": ["diffusers", "DDPMScheduler"],
    "safety_checker": [None, None],
    "feature_extractor": [None, None],
    "requires_safety_checker": False,
}


def configs_metadata(
    unet: torch.nn.Module,
    vae: torch.nn.Module,
    text_encoder: torch.nn.Module,
    scheduler: Any,
    vocabulary: int,
) -> dict[str, str]:
    """safetensors metadata that lets `load_single_file` rebuild these parts offline; `vocabulary`: the
    text encoder's rows in the file (the base's, without learned tokens)."""
    text = dict(text_encoder.config.to_dict(), vocab_size=vocabulary)
    configs = {
        "unet": dict(unet.config),
        "vae": dict(vae.config),
        "text_encoder": text,
        "scheduler": dict(scheduler.config),
    }
    return {METADATA_KEY: json.dumps(configs, default=list)}


def sd15_configs() -> dict[str, dict[str, Any]]:
    """The configs of SD 1.5's parts, which every SD 1.x checkpoint shares."""
    with torch.device("meta"):
        parts = {
            "unet": random_sd.build_unet("sd15-random"),
            "vae": random_sd.build_vae("sd15-random"),
            "text_encoder": random_sd.build_text_encoder("sd15-random"),
        }
    configs = {name: dict(part.config) for name, part in parts.items() if name != "text_encoder"}
    return {
        **configs,
        "text_encoder": parts["text_encoder"].config.to_dict(),
        "scheduler": random_sd.SD_SCHEDULER,
    }


def _checkpoint_configs(path: Path) -> dict[str, dict[str, Any]] | None:
    """The configs for the checkpoint at `path`: its own, SD 1.5's, or None when it is not SD 1.x."""
    if path.suffix != ".safetensors":
        return sd15_configs()  # a pickled .ckpt cannot be looked into without loading it whole
    with safe_open(str(path), framework="pt") as checkpoint:
        stored = (checkpoint.metadata() or {}).get(METADATA_KEY)
        if stored:
            return json.loads(stored)
        if any(key.startswith(_NOT_SD1) for key in checkpoint.keys()):
            return None
    return sd15_configs()


def _write_folder(configs: dict[str, dict[str, Any]], folder: Path) -> str:
    """A diffusers pipeline folder of configs only, as `from_single_file(config=...)` reads it."""
    (folder / "model_index.json").write_text(json.dumps(_MODEL_INDEX))
    for part in ("unet", "vae", "text_encoder"):
        (folder / part).mkdir()
        (folder / part / "config.json").write_text(json.dumps(configs[part], default=list))
    return str(folder)


def _hub_configs_needed(path: Path) -> None:
    """Refuse, at once, a non-SD 1.x file when its configs cannot be fetched."""
    reason = hub_unreachable()
    if reason is not None:
        raise PortraitistError(
            f"{path} is not an SD 1.x checkpoint (SD 2.x or SDXL), and diffusers needs its configs from the Hugging "
            f"Face hub, which is out of reach ({reason}). Give --base the model as a diffusers folder instead."
        )


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """A file diffusers cannot convert becomes a PortraitistError that says which files do load."""
    try:
        yield
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PortraitistError(
            f"{path} could not be read as a Stable Diffusion checkpoint ({first_line}). Single files that load are "
            "portraitist's own exports and SD 1.x checkpoints with SD 1.5's shapes (A1111, ComfyUI); give any "
            "other model as a diffusers folder."
        ) from exc


@contextmanager
def _configs_folder(path: Path) -> Iterator[tuple[str, dict[str, dict[str, Any]]] | None]:
    """(a temporary folder of the configs, the configs) for the checkpoint at `path`; None when diffusers
    must look them up on the hub itself (refused at once when the hub is out of reach)."""
    configs = _checkpoint_configs(path)
    if configs is None:
        _hub_configs_needed(path)
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="portraitist-configs-") as folder:
        yield _write_folder(configs, Path(folder)), configs


def load_single_file(path: Path) -> dict[str, Any]:
    """tokenizer, text_encoder, unet, vae and scheduler of a single-file checkpoint."""
    with _reading(path), _configs_folder(path) as found:
        if found is None:
            pipe = StableDiffusionPipeline.from_single_file(str(path), safety_checker=None)
        else:
            folder, configs = found
            pipe = StableDiffusionPipeline.from_single_file(
                str(path), config=folder, local_files_only=True, tokenizer=clip_tokenizer(),
                scheduler=DDPMScheduler.from_config(configs["scheduler"]), safety_checker=None, feature_extractor=None,
            )  # fmt: skip
    return {
        "tokenizer": pipe.tokenizer, "text_encoder": pipe.text_encoder, "unet": pipe.unet, "vae": pipe.vae,
        "scheduler": DDPMScheduler.from_config(pipe.scheduler.config),
    }  # fmt: skip


def load_single_file_vae(path: Path) -> AutoencoderKL:
    """A VAE file (vae-ft-mse-840000 style), or the VAE of a whole SD 1.x checkpoint."""
    with _reading(path), _configs_folder(path) as found:
        if found is None:
            return AutoencoderKL.from_single_file(str(path))
        return AutoencoderKL.from_single_file(
            str(path), config=found[0], subfolder="vae", local_files_only=True
        )
