"""Validation samples during training: a few fixed-seed images every N steps in model/samples/,
so a user can watch the likeness appear (the thesis compared methods every 50 steps, Fig. 11).

Minimal on purpose: the family's diffusers pipeline over the in-memory parts with the Euler
sampler (thesis 2.4), given the conditioning the family encodes (so added tokens are pooled at
the right place); `portraitist generate` is the real sampler.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import EulerDiscreteScheduler

from portraitist.models.family import SizeInfo, size_rows, tokenize
from portraitist.models.loading import StableDiffusion, eval_mode


@torch.no_grad()
def write_samples(
    model: StableDiffusion,
    prompts: list[str],
    subject: str,
    out_dir: Path,
    step: int,
    seed: int,
    steps: int = 20,
    guidance: float = 7.0,
) -> list[Path]:
    """One image per prompt ({me} = the subject), the same seed at every step: only training differs."""
    pipe = model.family.pipeline(model, EulerDiscreteScheduler.from_config(model.scheduler.config))
    pipe.set_progress_bar_config(disable=True)
    device = next(model.unet.parameters()).device
    dtype = next(model.unet.parameters()).dtype
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = size_rows([SizeInfo.plain(model.resolution, model.resolution)])
    paths = []
    with eval_mode(model):
        uncond = model.family.negative(model, "", sizes)  # one negative for every prompt
        for i, prompt in enumerate(prompts):
            cond = model.family.encode(model, tokenize(model, [prompt.replace("{me}", subject)]), sizes)
            embeds = {k: v.to(device, dtype) for k, v in model.family.pipeline_embeds(cond, uncond).items()}
            latents = pipe(
                **embeds,
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=torch.Generator(device).manual_seed(seed + i),
                output_type="latent",
            ).images
            # the VAE stays fp32 while the UNet may compute in bf16
            vae = model.vae
            decoded = vae.decode(latents.to(vae.device, vae.dtype) / vae.config.scaling_factor)
            image = pipe.image_processor.postprocess(decoded.sample, output_type="pil")[0]
            path = out_dir / f"step{step:06d}-{i}.png"
            image.save(path)
            paths.append(path)
    return paths
