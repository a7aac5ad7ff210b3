"""Model families: what every stage asks of a base model, answered once per architecture.

A family (SD 1.x/2.x, SDXL, and any other that registers itself, such as the synthetic world's)
knows how to recognise and load its models, how prompts become the conditioning its denoiser
takes, which image sizes it draws, and which pipeline class and checkpoint layout it exports to.
Stages ask `model.family`; they never branch on which one it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from portraitist.errors import PortraitistError

if TYPE_CHECKING:
    from portraitist.models.loading import StableDiffusion


@dataclass
class Conditioning:
    """What the denoiser takes besides the noisy latents and the time step, one row per image."""

    hidden: torch.Tensor  # encoder_hidden_states, (batch, tokens, width)
    added: dict[str, torch.Tensor] = field(default_factory=dict)  # SDXL: text_embeds (pooled), time_ids

    def __len__(self) -> int:
        return self.hidden.shape[0]

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Conditioning:
        return Conditioning(fn(self.hidden), {key: fn(value) for key, value in self.added.items()})

    def __getitem__(self, index: torch.Tensor | slice | int) -> Conditioning:
        return self.map(lambda t: t[index])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Conditioning:
        return self.map(lambda t: t.to(device, dtype))

    def expand(self, batch: int) -> Conditioning:
        """One row repeated `batch` times (a view, no copy)."""
        return self.map(lambda t: t.expand(batch, *t.shape[1:]))

    @staticmethod
    def cat(items: Iterable[Conditioning]) -> Conditioning:
        items = list(items)
        return Conditioning(
            torch.cat([c.hidden for c in items]),
            {key: torch.cat([c.added[key] for c in items]) for key in items[0].added},
        )

    def unet_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of UNet2DConditionModel (and ControlNetModel) for this conditioning."""
        kwargs: dict[str, Any] = {"encoder_hidden_states": self.hidden}
        if self.added:
            kwargs["added_cond_kwargs"] = self.added
        return kwargs


@dataclass(frozen=True)
class SizeInfo:
    """SDXL's micro-conditioning (Podell et al. 2023, 2.2): the photo's size before it was resized
    to the training size, where the crop began, and the size asked for, each (height, width)."""

    original: tuple[int, int]
    crop_top_left: tuple[int, int]
    target: tuple[int, int]

    @staticmethod
    def plain(height: int, width: int) -> SizeInfo:
        """What a pipeline asks for when generating: an uncropped image of the target size."""
        return SizeInfo((height, width), (0, 0), (height, width))

    def tensor(self) -> torch.Tensor:
        """The six numbers in SDXL's order (its `time_ids`)."""
        return torch.tensor([*self.original, *self.crop_top_left, *self.target], dtype=torch.float32)


def size_rows(sizes: Iterable[SizeInfo]) -> torch.Tensor:
    """(n, 6) micro-conditioning rows, one per image."""
    return torch.stack([s.tensor() for s in sizes])


class Family(ABC):
    """One architecture of base model: how it loads, encodes prompts, sizes images and exports."""

    name: ClassVar[str]  # short id, recorded in model/model.json
    label: ClassVar[str]  # for people: "Stable Diffusion 1.x/2.x"
    text_encoder_names: ClassVar[tuple[str, ...]] = ("text_encoder",)  # the model's encoders, in order
    controlnets: ClassVar[dict[str, str]] = {}  # default ControlNet weights per condition kind
    unet_lora_by_default: ClassVar[bool] = False  # train's --unet-lora default (docs/train.md, "SDXL")
    pipeline_class: ClassVar[str] = "StableDiffusionPipeline"  # diffusers' pipeline for this family
    pipeline_options: ClassVar[dict[str, Any]] = {}  # what the pipeline takes besides the parts
    tokenizer_pads: ClassVar[dict[str, str]] = {"text_encoder": "<|endoftext|>"}  # each tokenizer's pad token
    # the named random base whose configs every single file of the family shares (models/single_file.py)
    single_file_preset: ClassVar[str | None] = None
    # export layouts (train/export.py writes them; empty where a family has none):
    # the single-file (LDM/SGM) checkpoint's key prefix and key style of each text encoder
    checkpoint_encoders: ClassVar[dict[str, tuple[str, str]]] = {}
    # kohya's LoRA: each text encoder's key prefix, and whether UNet module names are diffusers' or LDM's
    kohya_encoders: ClassVar[dict[str, str]] = {}
    kohya_unet_names: ClassVar[str] = "diffusers"

    # -- recognising and loading --------------------------------------------------------------
    @abstractmethod
    def recognises(self, index: dict[str, Any]) -> bool:
        """Whether a diffusers model_index.json describes a model of this family."""

    def recognises_checkpoint(self, keys: set[str]) -> bool:
        """Whether a single-file checkpoint's tensor names are this family's layout."""
        return False

    @abstractmethod
    def load_folder(self, root: str, local_only: bool) -> dict[str, Any]:
        """The parts of a diffusers folder or hub repository (StableDiffusion's fields but source)."""

    def check(self, model: StableDiffusion) -> None:
        """Refuse a loaded model whose parts do not fit together, with what to do instead."""

    # -- prompts ------------------------------------------------------------------------------
    @abstractmethod
    def encode(self, model: StableDiffusion, input_ids: torch.Tensor, sizes: torch.Tensor) -> Conditioning:
        """Token ids (batch, 77) of the first tokenizer and size rows (batch, 6, see SizeInfo) -> the
        denoiser's conditioning."""

    def negative(self, model: StableDiffusion, text: str, sizes: torch.Tensor) -> Conditioning:
        """The unconditional side of classifier-free guidance, for sizes (1, 6)."""
        return self.encode(model, tokenize(model, [text]), sizes)

    # -- sizes ----------------------------------------------------------------------------------
    def image_size(self, ratio: tuple[int, int], short_side: int, multiple: int) -> tuple[int, int]:
        """(width, height) for a width:height ratio: the short side kept at the training size, the long
        side grown to the ratio (SD 1.x draws faces best at its training size)."""
        w, h = ratio
        long_side = max(multiple, round(short_side * max(w, h) / min(w, h) / multiple) * multiple)
        return (short_side, long_side) if w <= h else (long_side, short_side)

    # -- diffusers pipelines (folder export, validation samples) -------------------------------
    def pipeline(self, model: StableDiffusion, scheduler: Any) -> Any:
        """The family's diffusers pipeline over the model's parts (no copies), with `scheduler`."""
        import diffusers

        parts = {"unet": model.unet, "vae": model.vae, "scheduler": scheduler}
        for name, tokenizer, encoder in model.text_encoders:
            parts[name], parts[name.replace("text_encoder", "tokenizer")] = encoder, tokenizer
        return getattr(diffusers, self.pipeline_class)(**parts, **self.pipeline_options)

    def pipeline_embeds(self, cond: Conditioning, uncond: Conditioning) -> dict[str, torch.Tensor]:
        """Precomputed conditioning as the pipeline's __call__ takes it."""
        return {"prompt_embeds": cond.hidden, "negative_prompt_embeds": uncond.hidden}


def tokenize(model: StableDiffusion, texts: list[str]) -> torch.Tensor:
    """(len(texts), 77) ids of the model's first tokenizer: every family's encoders share its vocabulary."""
    tokenizer = model.tokenizer
    return tokenizer(
        texts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Make a family known to loading (by name, by model_index.json, by checkpoint layout)."""
    _FAMILIES[family.name] = family
    return family


def named(name: str) -> Family:
    if name not in _FAMILIES:
        raise PortraitistError(f"Unknown model family {name!r}; known: {', '.join(_FAMILIES)}.")
    return _FAMILIES[name]


def supported() -> str:
    """The known families, for error messages."""
    return ", ".join(f.label for f in _FAMILIES.values())


def for_index(index: dict[str, Any], where: str) -> Family:
    """The family of a diffusers model_index.json, or a PortraitistError naming what is supported."""
    for family in reversed(list(_FAMILIES.values())):  # later registrations are more specific
        if family.recognises(index):
            return family
    kind = index.get("_class_name") or "an unknown model"
    raise PortraitistError(f"{where} holds {kind}, which portraitist cannot train; supported: {supported()}.")


def for_checkpoint(keys: set[str], where: str) -> Family:
    for family in _FAMILIES.values():
        if family.recognises_checkpoint(keys):
            return family
    raise PortraitistError(
        f"{where} is not a checkpoint of a family portraitist supports ({supported()}); its tensor names "
        "match none of their layouts."
    )
