"""Load a Stable Diffusion 1.x/2.x base model from wherever the user keeps it.

`spec` is one of:
  - a random preset built in code: `tiny`, `cpu-bench`, `sd15-random` (offline tests, benchmarks);
  - `world`: the synthetic world's pretrained 32 px base, committed in src/portraitist/world/base/
    (issue 9; its vae/ is a PixelCodec, a pixel rearrangement in the VAE's place);
  - a diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/);
  - a single `.safetensors` / `.ckpt` checkpoint (AUTOMATIC1111 / ComfyUI style);
  - a hub id such as `stable-diffusion-v1-5/stable-diffusion-v1-5` (needs internet or the
    hub cache).
An optional VAE override (thesis 2.4.2 swaps in `stabilityai/sd-vae-ft-mse`, which sharpens
eyes) takes a folder, a single file or a hub id.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from portraitist.errors import PortraitistError
from portraitist.models import random_sd
from portraitist.models.offline import load_from_hub, load_pretrained
from portraitist.models.single_file import load_single_file, load_single_file_vae
from portraitist.world.codec import PixelCodec
from portraitist.world.model import BASE_DIR as WORLD_BASE_DIR

DEFAULT_BASE = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_VAE = "stabilityai/sd-vae-ft-mse"
WORLD = "world"
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")

_OFFLINE_BASE = (
    "Give --base a diffusers folder or a .safetensors/.ckpt file you have, or use `--base tiny`, a small random "
    "model that runs every stage offline."
)
_HOW_TO_GET = (
    "Pass --base with a diffusers folder, a .safetensors/.ckpt file, or a hub id you can download "
    f"(e.g. `huggingface-cli download {DEFAULT_BASE} --local-dir ./sd15` and then --base ./sd15). "
    "Offline, `--base tiny` runs every stage on a small random model."
)


@dataclass
class StableDiffusion:
    """The separately trained parts of an SD 1.x/2.x model, each its own object."""

    tokenizer: CLIPTokenizer
    text_encoder: CLIPTextModel
    unet: UNet2DConditionModel
    vae: AutoencoderKL | PixelCodec
    scheduler: DDPMScheduler
    source: str
    vae_source: str | None = None  # the VAE override in use (--vae, or the one training used); None: the base's own

    @property
    def vae_scale_factor(self) -> int:
        return _latent_scale(self.vae.config.block_out_channels)

    @property
    def resolution(self) -> int:
        """The image size the UNet was trained at (512 for SD 1.5)."""
        return int(self.unet.config.sample_size) * self.vae_scale_factor

    @property
    def prediction_type(self) -> str:
        return str(self.scheduler.config.prediction_type)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> StableDiffusion:
        for module in (self.text_encoder, self.unet, self.vae):
            cast(module, device, dtype)
        return self


def cast(module: torch.nn.Module, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
    """Move and cast with torch's own `Module.to`: diffusers' `ModelMixin.to` (0.42) warns about
    modules to keep in float32 on every cast, even for models that have none (all of SD 1.x's)."""
    torch.nn.Module.to(module, device=device, dtype=dtype)


def _check_sd1_or_2(index: dict[str, Any], where: str) -> None:
    cls = str(index.get("_class_name", ""))
    if "XL" in cls or "text_encoder_2" in index:
        raise PortraitistError(
            f"{where} is an SDXL model ({cls}); portraitist trains Stable Diffusion 1.x/2.x. "
            f"Use an SD 1.5-family model. {_HOW_TO_GET}"
        )
    if cls and "StableDiffusion" not in cls:
        raise PortraitistError(f"{where} holds a {cls}, not a Stable Diffusion 1.x/2.x model. {_HOW_TO_GET}")


def _pixel_codec_folder(root: Path) -> bool:
    config = root / "vae" / "config.json"
    return config.is_file() and json.loads(config.read_text()).get("_class_name") == PixelCodec.__name__


def has_pixel_codec(spec: str) -> bool:
    """Whether the base `spec` names keeps a PixelCodec in the VAE's place (`world`, or a folder like it)."""
    return spec == WORLD or _pixel_codec_folder(Path(spec).expanduser())


def vae_scale_factor(spec: str) -> int:
    """How much smaller the latents of the base `spec` are, read from its vae/config.json without loading
    it (8, SD's, for a single file or a hub id)."""
    if spec in random_sd.PRESETS:
        blocks = random_sd.PRESETS[spec]["vae"]["block_out_channels"]
    else:
        config = (world_base_dir() if spec == WORLD else Path(spec).expanduser()) / "vae" / "config.json"
        blocks = json.loads(config.read_text())["block_out_channels"] if config.is_file() else (0,) * 4
    return _latent_scale(blocks)


def _latent_scale(block_out_channels: Sequence[int]) -> int:
    """A VAE (or PixelCodec) halves the image at each level but the first."""
    return 2 ** (len(block_out_channels) - 1)


def _load_vae(root: str, local_only: bool) -> AutoencoderKL | PixelCodec:
    """The folder's vae/: an AutoencoderKL, or the world's PixelCodec (config only, no weights)."""
    if _pixel_codec_folder(Path(root)):
        return PixelCodec.from_config(PixelCodec.load_config(str(Path(root) / "vae")))
    return AutoencoderKL.from_pretrained(root, subfolder="vae", local_files_only=local_only)


def _from_parts(root: str, local_only: bool) -> dict[str, Any]:
    kw: dict[str, Any] = dict(local_files_only=local_only)
    return dict(
        tokenizer=CLIPTokenizer.from_pretrained(root, subfolder="tokenizer", **kw),
        text_encoder=CLIPTextModel.from_pretrained(root, subfolder="text_encoder", **kw),
        unet=UNet2DConditionModel.from_pretrained(root, subfolder="unet", **kw),
        vae=_load_vae(root, local_only),
        scheduler=DDPMScheduler.from_pretrained(root, subfolder="scheduler", **kw),
    )


def world_base_dir() -> Path:
    """The committed world base (`--base world`), or a PortraitistError saying how to make one."""
    if not (WORLD_BASE_DIR / "model_index.json").is_file():
        raise PortraitistError(
            f"`--base world` needs the world's pretrained base in {WORLD_BASE_DIR}, and this checkout has "
            "none. "
            "Pretrain one with `portraitist world pretrain --out runs/world` and pass --base runs/world/base "
            "(or copy that folder to the path above)."
        )
    return WORLD_BASE_DIR


def _from_folder(path: Path) -> dict[str, Any]:
    index_path = path / "model_index.json"
    if not index_path.exists():
        raise PortraitistError(
            f"{path} is not a diffusers model folder (no model_index.json). {_HOW_TO_GET}"
        )
    _check_sd1_or_2(json.loads(index_path.read_text()), str(path))
    return _from_parts(str(path), local_only=True)


def _from_hub(repo_id: str) -> dict[str, Any]:
    from huggingface_hub import hf_hub_download

    def load(local_only: bool) -> dict[str, Any]:
        index_path = hf_hub_download(repo_id, "model_index.json", local_files_only=local_only)
        _check_sd1_or_2(json.loads(Path(index_path).read_text()), repo_id)
        return _from_parts(repo_id, local_only=local_only)

    return load_from_hub(load, repo_id, "base model", _OFFLINE_BASE)


def load_vae(spec: str) -> AutoencoderKL:
    """A VAE from a folder (with or without a vae/ subfolder), a single file or a hub id."""
    path = Path(spec).expanduser()
    try:
        if path.is_file():
            return load_single_file_vae(path)
        if path.is_dir():
            sub = "vae" if (path / "vae" / "config.json").exists() else None
            return AutoencoderKL.from_pretrained(str(path), subfolder=sub, local_files_only=True)
        (vae,) = load_pretrained(
            spec, "VAE", "Give --vae a VAE folder or file you have, or leave --vae out to keep the base model's own.",
            AutoencoderKL,
        )
        return vae
    except (OSError, ValueError) as exc:
        raise PortraitistError(
            f"Could not load the VAE {spec!r} ({type(exc).__name__}: {str(exc).splitlines()[0]}). "
            f"Give a folder or file you have, or a hub id you can download (e.g. {DEFAULT_VAE}); "
            "or leave --vae out to keep the base model's own VAE."
        ) from exc


def load_base(spec: str = DEFAULT_BASE, *, vae: str | None = None, seed: int = 0) -> StableDiffusion:
    """Load a base model on the CPU at full precision; callers move and cast it."""
    path = world_base_dir() if spec == WORLD else Path(spec).expanduser()
    try:
        if spec in random_sd.PRESETS:
            parts = random_sd.build_components(spec, seed)
        elif path.is_dir():
            parts = _from_folder(path)
        elif path.is_file() and path.suffix in SINGLE_FILE_SUFFIXES:
            parts = load_single_file(path)
        elif path.exists():
            raise PortraitistError(f"{path} is neither a model folder nor a .safetensors/.ckpt file. {_HOW_TO_GET}")
        elif spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
            parts = _from_hub(spec)
        else:
            raise PortraitistError(f"No base model at {spec!r}. {_HOW_TO_GET}")
    except PortraitistError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PortraitistError(f"Could not load the base model {spec!r} ({first_line}). {_HOW_TO_GET}") from exc
    model = StableDiffusion(source=spec, **parts)
    if vae:
        replace_vae(model, vae)
    for module in (model.text_encoder, model.unet, model.vae):
        module.requires_grad_(False).eval()
        if module.dtype != torch.float32:
            # weights stored in fp16 (the committed world base) come back at full precision
            cast(module, dtype=torch.float32)
    return model


def replace_vae(model: StableDiffusion, spec: str) -> None:
    """Swap in the VAE `spec` names (thesis 2.4.2: sd-vae-ft-mse), frozen; refused when its latents
    are not the ones the model's UNet works on (e.g. an SD VAE for the world's pixel codec)."""
    override = load_vae(spec)
    if override.config.latent_channels != model.vae.config.latent_channels:
        raise PortraitistError(
            f"The VAE {spec!r} makes {override.config.latent_channels}-channel latents, but {model.source}'s UNet "
            f"works on {model.vae.config.latent_channels}-channel ones; leave --vae out for this base."
        )
    model.vae = override.requires_grad_(False).eval()
    model.vae_source = spec
