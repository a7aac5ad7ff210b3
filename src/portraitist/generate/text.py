"""Prompt conditioning for classifier-free guidance, computed once per batch."""

from __future__ import annotations

import torch

from portraitist.models.family import Conditioning, SizeInfo, size_rows, tokenize
from portraitist.models.loading import StableDiffusion


@torch.no_grad()
def encode_prompt_pair(
    model: StableDiffusion, prompt: str | list[str], negative: str, batch: int, size: tuple[int, int]
) -> tuple[Conditioning, Conditioning]:
    """(cond, uncond), each `batch` rows, for images of (width, height) `size`. `prompt` is one prompt
    for the whole batch, or a list of one prompt per image (so that one sampler call can draw several
    prompts, as evaluate's checkpoint images do)."""
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if len(prompts) not in (1, batch):
        raise ValueError(f"{len(prompts)} prompts for a batch of {batch}: give one, or one per image")
    width, height = size
    sizes = size_rows([SizeInfo.plain(height, width)])
    cond = model.family.encode(model, tokenize(model, prompts), sizes)
    uncond = model.family.negative(model, negative, sizes)
    return cond.expand(batch) if len(cond) == 1 else cond, uncond.expand(batch)
