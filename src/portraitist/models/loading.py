"""Load a base model from wherever the user keeps it, in whichever family it belongs to.

`spec` is one of:
  - a named base registered in code: the random presets `tiny`, `cpu-bench`, `sd15-random` (SD
    1.x) and `tiny-xl`, `cpu-bench-xl` (SDXL) for offline tests and benchmarks, and any base a
    plug-in registers (the synthetic world registers `world`);
  - a diffusers folder (model_index.json names the pipeline, and so the family);
  - a single `.safetensors` / `.ckpt` checkpoint (AUTOMATIC1111 / ComfyUI style; the family is
    read from its tensor names);
  - a hub id such as `stable-diffusion-v1-5/stable-diffusion-v1-5` or
    `stabilityai/stable-diffusion-xl-base-1.0` (needs internet or the hub cache).
An optional VAE override (thesis 2.4.2 swaps in `stabilityai/sd-vae-ft-mse`, which sharpens
eyes; `madebyollin/sdxl-vae-fp16-fix` is SDXL's) takes a folder, a single file or a hub id.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from torch import nn
from transformers import CLIPTokenizer

from portraitist.errors import PortraitistError
from portraitist.models import DEFAULT_BASE, random_sd, random_sdxl
from portraitist.models import family as families
from portraitist.models.family import Family
from portraitist.models.offline import load_from_hub, load_pretrained
from portraitist.models.single_file import checkpoint_family, load_single_file, load_single_file_vae

DEFAULT_VAE = "stabilityai/sd-vae-ft-mse"
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")

_OFFLINE_BASE = (
    "Give --base a diffusers folder or a .safetensors/.ckpt file you have, or use `--base tiny` "
    "(or `tiny-xl`), a small random model that runs every stage offline."
)
_HOW_TO_GET = (
    "Pass --base with a diffusers folder, a .safetensors/.ckpt file, or a hub id you can download "
    f"(e.g. `huggingface-cli download {DEFAULT_BASE} --local-dir ./sd15` and then --base ./sd15). "
    "Offline, `--base tiny` (SD 1.x) or `--base tiny-xl` (SDXL) runs every stage on a small random model."
)


@dataclass
class StableDiffusion:
    """The separately trained parts of a base model, each its own object, and the family that
    knows how they work together. SDXL's second tokenizer and text encoder are set only for SDXL."""

    tokenizer: CLIPTokenizer
    text_encoder: nn.Module
    unet: UNet2DConditionModel
    vae: nn.Module  # an AutoencoderKL, or a plug-in family's codec with its interface
    scheduler: DDPMScheduler
    source: str
    family: Family
    tokenizer_2: CLIPTokenizer | None = None
    text_encoder_2: nn.Module | None = None
    vae_source: str | None = (
        None  # the VAE override in use (--vae, or the one training used); None: the base's own
    )

    @property
    def text_encoders(self) -> list[tuple[str, CLIPTokenizer, nn.Module]]:
        """(attribute name, tokenizer, encoder) of each text encoder, in the family's order."""
        return [(name, getattr(self, name.replace("text_encoder", "tokenizer")), getattr(self, name))
                for name in self.family.text_encoder_names]  # fmt: skip

    @property
    def networks(self) -> list[nn.Module]:
        """The UNet and the text encoders: the parts a recipe can train."""
        return [self.unet, *(encoder for _, _, encoder in self.text_encoders)]

    @property
    def vae_scale_factor(self) -> int:
        return latent_scale(self.vae.config.block_out_channels)

    @property
    def resolution(self) -> int:
        """The image size the UNet was trained at (512 for SD 1.5, 1024 for SDXL)."""
        return int(self.unet.config.sample_size) * self.vae_scale_factor

    @property
    def prediction_type(self) -> str:
        return str(self.scheduler.config.prediction_type)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> StableDiffusion:
        for module in (self.vae, *self.networks):
            cast(module, device, dtype)
        return self


@contextmanager
def eval_mode(model: StableDiffusion) -> Iterator[None]:
    """The networks in eval mode (for sampling during training), their training modes back afterwards."""
    modes = [module.training for module in model.networks]
    for module in model.networks:
        module.eval()
    try:
        yield
    finally:
        for module, mode in zip(model.networks, modes):
            module.train(mode)


def cast(
    module: torch.nn.Module, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> None:
    """Move and cast with torch's own `Module.to`: diffusers' `ModelMixin.to` (0.42) warns about
    modules to keep in float32 on every cast, even for models that have none (all of SD 1.x's)."""
    torch.nn.Module.to(module, device=device, dtype=dtype)


def release(module: torch.nn.Module) -> None:
    """Drop a module's weights (to the meta device: the structure stays, the memory goes) once a run no
    longer needs it; any later use fails loudly instead of computing with stale weights."""
    torch.nn.Module.to(module, device="meta")


def latent_scale(block_out_channels: Sequence[int]) -> int:
    """A VAE halves the image at each level but the first."""
    return 2 ** (len(block_out_channels) - 1)


@dataclass(frozen=True)
class NamedBase:
    """A base that `--base NAME` names: built in code, or a folder a plug-in ships."""

    load: Callable[[int], dict[str, Any]]  # seed -> StableDiffusion's fields but `source`
    vae_scale_factor: Callable[[], int]


_NAMED: dict[str, NamedBase] = {}


def register_base(name: str, base: NamedBase) -> None:
    _NAMED[name] = base


def named_base_parts(name: str, seed: int = 0) -> dict[str, Any]:
    """The parts of a named base (under `torch.device("meta")`: its configs without weights)."""
    return _NAMED[name].load(seed)


def _random_preset(name: str, builder: Any) -> NamedBase:
    return NamedBase(
        load=lambda seed: builder.build_components(name, seed),
        vae_scale_factor=lambda: latent_scale(builder.PRESETS[name]["vae"]["block_out_channels"]),
    )


for _preset in random_sd.PRESETS:
    register_base(_preset, _random_preset(_preset, random_sd))
for _preset in random_sdxl.PRESETS:
    register_base(_preset, _random_preset(_preset, random_sdxl))


def folder_family(path: Path) -> Family:
    """The family of a diffusers folder, from its model_index.json."""
    index_path = path / "model_index.json"
    if not index_path.exists():
        raise PortraitistError(f"{path} is not a diffusers model folder (no model_index.json). {_HOW_TO_GET}")
    return families.for_index(json.loads(index_path.read_text()), str(path))


def load_folder(path: Path) -> dict[str, Any]:
    """A diffusers folder's parts, by the family its model_index.json names."""
    family = folder_family(path)
    return dict(family.load_folder(str(path), local_only=True), family=family)


def folder_vae_scale_factor(path: Path) -> int:
    """Read from vae/config.json without loading (8, SD's, where there is none)."""
    config = path / "vae" / "config.json"
    return latent_scale(json.loads(config.read_text())["block_out_channels"]) if config.is_file() else 8


def vae_scale_factor(spec: str) -> int:
    """How much smaller the latents of the base `spec` are, without loading it."""
    if spec in _NAMED:
        return _NAMED[spec].vae_scale_factor()
    return folder_vae_scale_factor(Path(spec).expanduser())


def _from_single_file(path: Path) -> dict[str, Any]:
    family = checkpoint_family(path)
    return dict(load_single_file(path, family), family=family)


def _from_hub(repo_id: str) -> dict[str, Any]:
    from huggingface_hub import hf_hub_download

    def load(local_only: bool) -> dict[str, Any]:
        index_path = hf_hub_download(repo_id, "model_index.json", local_files_only=local_only)
        family = families.for_index(json.loads(Path(index_path).read_text()), repo_id)
        return dict(family.load_folder(repo_id, local_only=local_only), family=family)

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
            spec,
            "VAE",
            "Give --vae a VAE folder or file you have, or leave --vae out to keep the base model's own.",
            AutoencoderKL,
        )
        return vae
    except (OSError, ValueError) as exc:
        raise PortraitistError(
            f"Could not load the VAE {spec!r} ({type(exc).__name__}: {str(exc).splitlines()[0]}). "
            f"Give a folder or file you have, or a hub id you can download (e.g. {DEFAULT_VAE}); "
            "or leave --vae out to keep the base model's own VAE."
        ) from exc


def _load_parts(spec: str, seed: int) -> dict[str, Any]:
    path = Path(spec).expanduser()
    if spec in _NAMED:
        return _NAMED[spec].load(seed)
    if path.is_dir():
        return load_folder(path)
    if path.is_file() and path.suffix in SINGLE_FILE_SUFFIXES:
        return _from_single_file(path)
    if path.exists():
        raise PortraitistError(
            f"{path} is neither a model folder nor a .safetensors/.ckpt file. {_HOW_TO_GET}"
        )
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return _from_hub(spec)
    raise PortraitistError(f"No base model at {spec!r}. {_HOW_TO_GET}")


def resolved_base(spec: str) -> str:
    """A base given as a path, made absolute (what resume fingerprints, evaluations and model.json
    keep, so the same folder named from elsewhere is the same base); a named or hub base as given."""
    path = Path(spec).expanduser()
    return str(path.resolve()) if spec.strip() and path.exists() else spec


def load_base(spec: str = DEFAULT_BASE, *, vae: str | None = None, seed: int = 0) -> StableDiffusion:
    """Load a base model on the CPU at full precision, checked to fit together; callers move and cast it."""
    try:
        parts = _load_parts(spec, seed)
    except PortraitistError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PortraitistError(
            f"Could not load the base model {spec!r} ({first_line}). {_HOW_TO_GET}"
        ) from exc
    model = StableDiffusion(source=spec, **parts)
    model.family.check(model)
    if vae:
        replace_vae(model, vae)
    for module in (model.vae, *model.networks):
        module.requires_grad_(False).eval()
        if module.dtype != torch.float32:
            # weights stored in fp16 (the committed world base) come back at full precision
            cast(module, dtype=torch.float32)
    return model


def replace_vae(model: StableDiffusion, spec: str) -> None:
    """Swap in the VAE `spec` names (thesis 2.4.2: sd-vae-ft-mse), frozen; refused when its latents
    are not the ones the model's UNet works on (e.g. an SD VAE for a pixel-space codec)."""
    override = load_vae(spec)
    if override.config.latent_channels != model.vae.config.latent_channels:
        raise PortraitistError(
            f"The VAE {spec!r} makes {override.config.latent_channels}-channel latents, but {model.source}'s "
            f"UNet works on {model.vae.config.latent_channels}-channel ones; leave --vae out for this base."
        )
    # the UNet's latents keep the base's scale (a VAE file without a config would bring SD 1.5's 0.18215 to an
    # SDXL base, whose latents are scaled by 0.13025)
    override.register_to_config(scaling_factor=model.vae.config.scaling_factor)
    model.vae = override.requires_grad_(False).eval()
    model.vae_source = spec
