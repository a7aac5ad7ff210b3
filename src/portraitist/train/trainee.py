"""The model under training: which of its tensors each recipe part names, and their fp32 values.

Names are `<module>.<parameter path>` ("unet.conv_in.weight", "text_encoder.encoder.layers.0...",
"text_encoder_2.encoder...", "unet_lora.<path>.lora_A.default.weight", "text_encoder_2_lora.<path>...")
and `tokens` (`tokens.text_encoder_2` for a second encoder's rows); checkpoints and model/ files use
them. A recipe's text parts cover every text encoder the model's family has.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from portraitist.models.cpu_attention import CpuAttnProcessor
from portraitist.models.loading import StableDiffusion, cast, release
from portraitist.train import lora
from portraitist.train.master_adamw import FlatPart
from portraitist.train.precision import TrainingPrecision
from portraitist.train.recipes import TEXT_PARTS, Part, Recipe, Stage
from portraitist.train.tokens import SplitTokenEmbedding


@dataclass
class StageGroup:
    """One trainable part in a stage: its parameters, learning rate and (bf16 weights) flat buffers."""

    params: list[nn.Parameter]
    lr: float
    flat: FlatPart | None


def token_rows_name(encoder: str) -> str:
    """The trainee's name for an encoder's added token rows ("tokens" for the first, as SD 1.x has)."""
    return "tokens" if encoder == "text_encoder" else f"tokens.{encoder}"


def _token_table_prefix(text_encoder: nn.Module) -> str:
    table = text_encoder.get_input_embeddings()  # type: ignore[operator]
    return next(name for name, module in text_encoder.named_modules() if module is table) + "."


class Trainee:
    """A StableDiffusion prepared for a recipe: adapters injected, cast, on device (its token tables were
    split where tokens were added, train/tokens.py)."""

    def __init__(
        self,
        model: StableDiffusion,
        recipe: Recipe,
        precision: TrainingPrecision,
        device: torch.device,
        lora_rank: int,
        lora_alpha: float,
        seed: int,
        text_once: bool,
    ):
        self.model = model
        # the text encoders encode the prompts once and are released (no stage trains them, nothing
        # validates): they stay fp32, as a cast would copy them for that one use
        self.text_once = text_once
        self.precision = precision
        self.device = device
        parts = recipe.parts
        self.encoders = {name: encoder for name, _, encoder in model.text_encoders}
        if "unet_lora" in parts:
            lora.add_lora(model.unet, lora.UNET_TARGETS, lora_rank, lora_alpha, seed)
        if "text_encoder_lora" in parts:
            for offset, encoder in enumerate(self.encoders.values(), start=1):
                lora.add_lora(encoder, lora.TEXT_ENCODER_TARGETS, lora_rank, lora_alpha, seed + offset)
        self.splits: dict[str, SplitTokenEmbedding] = {
            name: table
            for name, encoder in self.encoders.items()
            if isinstance(table := encoder.get_input_embeddings(), SplitTokenEmbedding)
        }
        # each encoder's added rows as they start, in fp32: what model/ keeps of rows no stage trains
        self.start_rows = {name: split.added.detach().clone() for name, split in self.splits.items()}
        for module in (model.unet, *self.encoders.values()):
            module.requires_grad_(False)
        if device.type == "cpu":
            model.unet.set_attn_processor(CpuAttnProcessor())
        self.tensors: dict[Part, dict[str, nn.Parameter]] = {part: self._named(part) for part in parts}
        # the fp32 truth of every trainable tensor: the parameters themselves, or with bf16
        # weights, fp32 masters in one flat buffer per part on the device (master_adamw.FlatPart)
        self.flat: dict[Part, FlatPart] = {}
        self.values: dict[str, torch.Tensor] = {}
        for part, named in self.tensors.items():
            if precision.master:
                self.flat[part] = FlatPart(list(named.values()), precision.weights, device)
                self.values.update(zip(named, self.flat[part].master_views))
            else:
                self.values.update(named)  # the same Parameter objects after the move below
        # cast where the weights are, then move: a GPU never holds the fp32 copy of a bf16 weight
        for module in (model.unet, *([] if text_once else self.encoders.values())):
            cast(module, dtype=precision.weights)
        for module in (model.unet, *self.encoders.values()):
            module.to(device)
        self.trained: set[str] = set()  # names a stage has trained so far (what checkpoints keep)
        self.text_released = False

    def _named(self, part: Part) -> dict[str, nn.Parameter]:
        unet = self.model.unet
        if part == "tokens":
            assert self.splits, "the tokens part needs added tokens"
            return {token_rows_name(name): split.added for name, split in self.splits.items()}
        if part == "unet_lora":
            return {f"unet_lora.{n}": p for n, p in unet.named_parameters() if ".lora_" in n}
        if part == "unet":
            return {f"unet.{n}": p for n, p in unet.named_parameters() if ".lora_" not in n}
        named = {}
        for name, encoder in self.encoders.items():
            if part == "text_encoder_lora":
                named.update({f"{name}_lora.{n}": p for n, p in encoder.named_parameters() if ".lora_" in n})
                continue
            table = _token_table_prefix(encoder)  # pretrained vocabulary rows stay as they are
            named.update({
                f"{name}.{n}": p
                for n, p in encoder.named_parameters()
                if ".lora_" not in n and not n.startswith(table)
            })  # fmt: skip
        return named

    @property
    def trains_text(self) -> bool:
        return any(p.requires_grad for encoder in self.encoders.values() for p in encoder.parameters())

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
        for encoder in self.encoders.values():
            encoder.train(self.trains_text)
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

    def token_rows(self) -> dict[str, torch.Tensor]:
        """Each text encoder's rows of the added tokens in fp32, by encoder name: as trained, or as they
        started where no stage trained them."""
        return {
            name: self.values[token_rows_name(name)] if token_rows_name(name) in self.trained else rows
            for name, rows in self.start_rows.items()
        }

    def release_text(self) -> None:
        """Drop the text encoders' weights once their embeddings are cached (`text_once`; the reference
        scripts do the same): on SDXL they are about 3.3 GB in fp32."""
        assert self.text_once and not any(part in TEXT_PARTS for part in self.tensors)
        for encoder in self.encoders.values():
            release(encoder)
        self.text_released = True
