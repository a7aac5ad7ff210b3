"""The model under training: which of its tensors each recipe part names, and their fp32 values.

Names are `<part>.<parameter path>` ("unet.conv_in.weight", "text_encoder.encoder.layers.0...",
"tokens", "unet_lora.<path>.lora_A.default.weight"); checkpoints and model/ files use them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.attention_processor import AttnProcessor2_0
from torch import nn

from portraitist.models.loading import StableDiffusion, cast
from portraitist.train import lora
from portraitist.train.cpu_attention import CpuAttnProcessor
from portraitist.train.master_adamw import FlatPart
from portraitist.train.precision import Precision
from portraitist.train.recipes import LORA_PARTS, Part, Recipe, Stage
from portraitist.train.tokens import SplitTokenEmbedding, join_token_table, split_token_table


@dataclass
class StageGroup:
    """One trainable part in a stage: its parameters, learning rate and (bf16 weights) flat buffers."""

    params: list[nn.Parameter]
    lr: float
    flat: FlatPart | None


def _token_table_prefix(text_encoder: nn.Module) -> str:
    table = text_encoder.get_input_embeddings()  # type: ignore[operator]
    return next(name for name, module in text_encoder.named_modules() if module is table) + "."


class Trainee:
    """A StableDiffusion prepared for a recipe: adapters injected, token table split, cast, on device."""

    def __init__(
        self,
        model: StableDiffusion,
        recipe: Recipe,
        precision: Precision,
        device: torch.device,
        n_base_tokens: int,
        lora_rank: int,
        lora_alpha: float,
        seed: int,
    ):
        self.model = model
        self.precision = precision
        self.device = device
        parts = recipe.parts
        if "unet_lora" in parts:
            lora.add_lora(model.unet, lora.UNET_TARGETS, lora_rank, lora_alpha, seed)
        if "text_encoder_lora" in parts:
            lora.add_lora(model.text_encoder, lora.TEXT_ENCODER_TARGETS, lora_rank, lora_alpha, seed + 1)
        self.split: SplitTokenEmbedding | None = None
        if len(model.tokenizer) > n_base_tokens:
            self.split = split_token_table(model.text_encoder, n_base_tokens)
        for module in (model.unet, model.text_encoder):
            module.requires_grad_(False)
        if device.type == "cpu":
            model.unet.set_attn_processor(CpuAttnProcessor())
        self.tensors: dict[Part, dict[str, nn.Parameter]] = {part: self._named(part) for part in parts}
        model.unet.to(device)
        model.text_encoder.to(device)
        # the fp32 truth of every trainable tensor: the parameters themselves, or with bf16
        # weights, fp32 masters in one flat buffer per part (master_adamw.FlatPart)
        self.flat: dict[Part, FlatPart] = {}
        self.values: dict[str, torch.Tensor] = {}
        for part, named in self.tensors.items():
            if precision.master:
                self.flat[part] = FlatPart(list(named.values()), precision.weights)
                self.values.update(zip(named, self.flat[part].master_views))
            else:
                self.values.update(named)
        cast(model.unet, dtype=precision.weights)
        cast(model.text_encoder, dtype=precision.weights)
        self.trained: set[str] = set()  # names a stage has trained so far (what checkpoints keep)

    def _named(self, part: Part) -> dict[str, nn.Parameter]:
        unet, text_encoder = self.model.unet, self.model.text_encoder
        if part == "tokens":
            assert self.split is not None, "the tokens part needs added tokens"
            return {"tokens": self.split.added}
        if part in LORA_PARTS:
            module = unet if part == "unet_lora" else text_encoder
            return {f"{part}.{n}": p for n, p in module.named_parameters() if ".lora_" in n}
        if part == "unet":
            return {f"unet.{n}": p for n, p in unet.named_parameters() if ".lora_" not in n}
        table = _token_table_prefix(text_encoder)  # pretrained vocabulary rows stay as they are
        return {
            f"text_encoder.{n}": p
            for n, p in text_encoder.named_parameters()
            if ".lora_" not in n and not n.startswith(table)
        }

    @property
    def trains_text(self) -> bool:
        return any(p.requires_grad for p in self.model.text_encoder.parameters())

    def begin_stage(self, stage: Stage) -> list[StageGroup]:
        """Make exactly the stage's parts trainable; return their tensors and rates."""
        for named in self.tensors.values():
            for p in named.values():
                p.requires_grad_(False)
        groups = []
        for part, rate in stage.learning_rates.items():
            named = self.tensors[part]
            for p in named.values():
                p.requires_grad_(True)
            self.trained.update(named)
            groups.append(StageGroup(list(named.values()), rate, self.flat.get(part)))
        self.model.unet.train(any(p.requires_grad for p in self.model.unet.parameters()))
        self.model.text_encoder.train(self.trains_text)
        return groups

    def load_values(self, values: dict[str, torch.Tensor]) -> None:
        """Set trained tensors from a checkpoint (fp32 values; the model gets them in its dtype)."""
        params = {name: p for named in self.tensors.values() for name, p in named.items()}
        with torch.no_grad():
            for name, value in values.items():
                self.values[name].copy_(value)
                params[name].copy_(value)
        self.trained.update(values)

    def trained_values(self) -> dict[str, torch.Tensor]:
        return {name: self.values[name] for name in sorted(self.trained)}

    def finish(self) -> StableDiffusion:
        """Back to a plain fp32 model with the trained values (token table joined, adapters kept)."""
        model = self.model
        model.unet.float()
        model.text_encoder.float()
        self.load_values(self.trained_values())
        join_token_table(model.text_encoder)
        model.unet.set_attn_processor(AttnProcessor2_0())  # diffusers' default, not the training-only ones
        for module in (model.unet, model.text_encoder):
            module.requires_grad_(False).eval()
            for p in module.parameters():
                p.grad = None
        return model
