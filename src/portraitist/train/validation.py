"""Validation samples during training: a few fixed-seed images every N steps in model/samples/,
so a user can watch the likeness appear (the thesis compared methods every 50 steps, Fig. 11).

Minimal on purpose: diffusers' StableDiffusionPipeline over the in-memory parts with the Euler
sampler (thesis 2.4); `portraitist generate` is the real sampler.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

from portraitist.models.loading import StableDiffusion


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
    unet, text_encoder = model.unet, model.text_encoder
    pipe = StableDiffusionPipeline(
        vae=model.vae,
        text_encoder=text_encoder,
        tokenizer=model.tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler.from_config(model.scheduler.config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    device = next(unet.parameters()).device
    was_training = unet.training, text_encoder.training
    unet.eval()
    text_encoder.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    try:
        for i, prompt in enumerate(prompts):
            latents = pipe(
                prompt.replace("{me}", subject),
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=torch.Generator(device).manual_seed(seed + i),
                output_type="latent",
            ).images
            # the VAE stays fp32 while the UNet may compute in bf16
            decoded = model.vae.decode(latents.to(model.vae.device, model.vae.dtype) / model.vae.config.scaling_factor)
            image = pipe.image_processor.postprocess(decoded.sample, output_type="pil")[0]
            path = out_dir / f"step{step:06d}-{i}.png"
            image.save(path)
            paths.append(path)
    finally:
        unet.train(was_training[0])
        text_encoder.train(was_training[1])
    return paths
