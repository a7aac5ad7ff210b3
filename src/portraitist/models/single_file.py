"""Single-file checkpoints (AUTOMATIC1111 / ComfyUI layout) of SD 1.x and SDXL, loaded offline.

diffusers' `from_single_file` converts the file's tensors into its parts, but it needs the parts'
diffusers configs, and it downloads them from the hub unless it is given a local folder of them.
This module writes that folder:
- from the file's own metadata when portraitist exported it (`export --format single-file` stores
  the family and the configs there), because a portraitist model may have any shapes (`tiny`,
  `tiny-xl`, `cpu-bench`);
- from the family's base configs for any other file: SD 1.5's for an SD 1.x one (A1111's
  v1-5-pruned-emaonly, a fine-tune of it, a VAE such as vae-ft-mse-840000), SDXL base 1.0's for an
  SDXL one. A family kept one architecture, so its files all have its base's shapes; deriving
  configs from the tensors instead could not recover what shapes leave open, such as the attention
  heads. They are read from the family's full-size random preset built on the meta device (no
  weights, no memory).
Other checkpoints (SD 2.x) have diffusers look their configs up on the hub, online only.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import diffusers
import torch
from diffusers import AutoencoderKL, DDPMScheduler
from safetensors import SafetensorError, safe_open

from portraitist.errors import PortraitistError
from portraitist.models import family as families
from portraitist.models.family import Family
from portraitist.models.offline import hub_unreachable

if TYPE_CHECKING:
    from portraitist.models.loading import StableDiffusion

METADATA_KEY = "portraitist.configs"
# an SD 2.x checkpoint's OpenCLIP text encoder: SD 1.5's configs do not describe it
_SD2_TEXT = "cond_stage_model.model."
_TOKENIZERS = {"text_encoder": "tokenizer", "text_encoder_2": "tokenizer_2"}
# the classes of the parts a single file holds, as model_index.json names them
_PART_CLASSES = {
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
}


def configs_metadata(model: StableDiffusion, vocabulary: int) -> dict[str, str]:
    """safetensors metadata that lets `load_single_file` rebuild the model's parts offline; `vocabulary`:
    the text encoders' rows in the file (the base's, without learned tokens)."""
    configs: dict[str, Any] = {"unet": dict(model.unet.config), "vae": dict(model.vae.config)}
    for name, _, encoder in model.text_encoders:
        configs[name] = dict(encoder.config.to_dict(), vocab_size=vocabulary)
    configs["scheduler"] = dict(model.scheduler.config)
    return {METADATA_KEY: json.dumps({"family": model.family.name, "configs": configs}, default=list)}


@functools.cache
def family_configs(preset: str) -> dict[str, dict[str, Any]]:
    """The configs of a named random base's parts (the family's full-size shapes), built without weights."""
    from portraitist.models.loading import named_base_parts

    with torch.device("meta"):
        parts = named_base_parts(preset)
    configs = {name: dict(parts[name].config) for name in ("unet", "vae")}
    for name in _TOKENIZERS:
        if name in parts:
            configs[name] = parts[name].config.to_dict()
    configs["scheduler"] = dict(parts["scheduler"].config)
    return configs


def _metadata(path: Path) -> dict[str, Any] | None:
    """What portraitist's export stored in the file ({"family", "configs"}), or None."""
    if path.suffix != ".safetensors":
        return None
    with safe_open(str(path), framework="pt") as checkpoint:
        stored = (checkpoint.metadata() or {}).get(METADATA_KEY)
    return json.loads(stored) if stored else None


def _keys(path: Path) -> set[str]:
    """The checkpoint's tensor names, read once per file version: the family check and the configs
    both ask, and a pickled .ckpt is unpickled whole to answer."""
    stat = path.stat()
    return set(_keys_of(str(path), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _keys_of(path: str, mtime_ns: int, size: int) -> frozenset[str]:
    if not path.endswith(".safetensors"):
        state = torch.load(path, map_location="meta", weights_only=True)
        return frozenset(state.get("state_dict", state))
    with safe_open(path, framework="pt") as checkpoint:
        return frozenset(checkpoint.keys())


def checkpoint_family(path: Path) -> Family:
    """The family of the checkpoint at `path`: the one its metadata names, else read from its tensor names."""
    with _reading(path):
        stored = _metadata(path)
        return families.named(stored["family"]) if stored else families.for_checkpoint(_keys(path), str(path))


def _checkpoint_configs(path: Path, family: Family) -> dict[str, dict[str, Any]] | None:
    """The configs for the checkpoint at `path`: its own, its family's base's, or None (SD 2.x)."""
    stored = _metadata(path)
    if stored:
        return stored["configs"]
    if family.single_file_preset is None or any(key.startswith(_SD2_TEXT) for key in _keys(path)):
        return None
    return family_configs(family.single_file_preset)


def _write_folder(configs: dict[str, dict[str, Any]], family: Family, folder: Path) -> str:
    """A diffusers pipeline folder of configs only, as `from_single_file(config=...)` reads it."""
    index: dict[str, Any] = {"_class_name": family.pipeline_class}
    for part in ("unet", "vae", *family.text_encoder_names):
        index[part] = _PART_CLASSES[part]
        (folder / part).mkdir()
        (folder / part / "config.json").write_text(json.dumps(configs[part], default=list))
    (folder / "model_index.json").write_text(json.dumps(index))
    return str(folder)


def _hub_configs_needed(path: Path) -> None:
    """Refuse, at once, a file whose configs cannot be fetched."""
    reason = hub_unreachable()
    if reason is not None:
        raise PortraitistError(
            f"{path} is not an SD 1.x or SDXL checkpoint (SD 2.x?), and diffusers needs its configs from "
            f"the Hugging Face hub, which is out of reach ({reason}). Give --base the model as a diffusers "
            "folder instead."
        )


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """A file diffusers cannot convert becomes a PortraitistError that says which files do load."""
    try:
        yield
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PortraitistError(
            f"{path} could not be read as a Stable Diffusion checkpoint ({first_line}). Single files that "
            "load are portraitist's own exports and SD 1.x / SDXL checkpoints with SD 1.5's / SDXL base "
            "1.0's shapes (A1111, ComfyUI); give any other model as a diffusers folder."
        ) from exc


@contextmanager
def _configs_folder(path: Path, family: Family) -> Iterator[tuple[str, dict[str, dict[str, Any]]] | None]:
    """(a temporary folder of the configs, the configs) for the checkpoint at `path`; None when diffusers
    must look them up on the hub itself (refused at once when the hub is out of reach)."""
    configs = _checkpoint_configs(path, family)
    if configs is None:
        _hub_configs_needed(path)
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="portraitist-configs-") as folder:
        yield _write_folder(configs, family, Path(folder)), configs


def load_single_file(path: Path, family: Family) -> dict[str, Any]:
    """The parts (StableDiffusion's fields but source and family) of a single-file checkpoint."""
    from portraitist.models.tokenizer import clip_tokenizer

    pipeline = getattr(diffusers, family.pipeline_class)
    with _reading(path), _configs_folder(path, family) as found:
        if found is None:
            pipe = pipeline.from_single_file(str(path), **family.pipeline_options)
        else:
            folder, configs = found
            tokenizers = {
                _TOKENIZERS[name]: clip_tokenizer(pad) for name, pad in family.tokenizer_pads.items()
            }
            pipe = pipeline.from_single_file(
                str(path),
                config=folder,
                local_files_only=True,
                scheduler=DDPMScheduler.from_config(configs["scheduler"]),
                **tokenizers,
                **_open_clip_encoders(path, family, configs),
                **family.pipeline_options,
            )
    parts = {name: getattr(pipe, name) for name in ("unet", "vae")}
    for name in family.text_encoder_names:
        parts[name], parts[_TOKENIZERS[name]] = getattr(pipe, name), getattr(pipe, _TOKENIZERS[name])
    return dict(parts, scheduler=DDPMScheduler.from_config(pipe.scheduler.config))


def _open_clip_encoders(path: Path, family: Family, configs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The family's OpenCLIP-layout text encoders (SDXL's second), converted here: diffusers recognises one
    in a single file only by its 10th layer, so it would leave a smaller one (tiny-xl's) random."""
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    from safetensors.torch import load_file
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    encoders = {
        name: prefix for name, (prefix, layout) in family.checkpoint_encoders.items() if layout == "open_clip"
    }
    if not encoders or path.suffix != ".safetensors":
        return {}
    checkpoint = load_file(str(path))
    out = {}
    for name, prefix in encoders.items():
        encoder = CLIPTextModelWithProjection(CLIPTextConfig.from_dict(configs[name]))
        encoder.load_state_dict(convert_open_clip_checkpoint(encoder, checkpoint, prefix=prefix))
        out[name] = encoder
    return out


def load_single_file_vae(path: Path) -> AutoencoderKL:
    """A VAE file (vae-ft-mse-840000 style), or the VAE of a whole SD 1.x / SDXL checkpoint."""
    with _reading(path):
        whole = _metadata(path) or any(
            k.startswith(("model.diffusion_model.", "conditioner.", "cond_stage_model.")) for k in _keys(path)
        )
        # a VAE file alone has no text encoder to tell the family by: SD's VAE shapes serve both
        family = checkpoint_family(path) if whole else families.named("sd1")
    with _reading(path), _configs_folder(path, family) as found:
        if found is None:
            return AutoencoderKL.from_single_file(str(path))
        return AutoencoderKL.from_single_file(
            str(path), config=found[0], subfolder="vae", local_files_only=True
        )
