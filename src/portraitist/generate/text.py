"""Prompt embeddings for classifier-free guidance, computed once per batch."""

from __future__ import annotations

import torch

from portraitist.models.loading import StableDiffusion


@torch.no_grad()
def encode_prompt_pair(
    model: StableDiffusion, prompt: str | list[str], negative: str, batch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cond, uncond) text-encoder states, each (batch, 77, dim): one encoder call for all texts.
    `prompt` is one prompt for the whole batch, or a list of one prompt per image (so that one
    sampler call can draw several prompts, as evaluate's checkpoint images do)."""
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if len(prompts) not in (1, batch):
        raise ValueError(f"{len(prompts)} prompts for a batch of {batch}: give one, or one per image")
    tokens = model.tokenizer(
        [*prompts, negative],
        padding="max_length",
        max_length=model.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    states = model.text_encoder(tokens.input_ids.to(model.text_encoder.device))[0]
    cond, uncond = states[:-1], states[-1:]
    return cond.expand(batch, -1, -1), uncond.expand(batch, -1, -1)
