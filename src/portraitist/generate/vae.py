"""Between pixels and latents: the VAE's encoder for img2img, its decoder for every sample."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from portraitist.models.loading import StableDiffusion


@torch.no_grad()
def decode(model: StableDiffusion, latents: torch.Tensor) -> list[Image.Image]:
    """The whole batch in one decoder call; rounding to 8 bits as diffusers' image processor does."""
    vae = model.vae
    pixels = vae.decode(latents.to(vae.device, vae.dtype) / vae.config.scaling_factor).sample
    pixels = (pixels.float() / 2 + 0.5).clamp(0, 1)
    array = (pixels.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
    return [Image.fromarray(a) for a in array]


@torch.no_grad()
def encode(model: StableDiffusion, image: Image.Image) -> torch.Tensor:
    """(1, 4, h, w) scaled latents of an RGB image; the posterior's mean, so no seed is involved."""
    vae = model.vae
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1
    pixels = torch.from_numpy(array).permute(2, 0, 1)[None].to(vae.device, vae.dtype)
    return vae.encode(pixels).latent_dist.mean.float() * vae.config.scaling_factor
