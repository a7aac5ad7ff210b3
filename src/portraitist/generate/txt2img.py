"""One batch of images from a prompt: seeded noise, the sampler loop, the VAE decoder."""

from __future__ import annotations

import torch
from PIL import Image

from portraitist.generate.guidance import Control, GuidedUNet
from portraitist.generate.sampling import (
    StepCallback,
    diffusers_scheduler,
    euler_schedule,
    karras_denoiser,
    sample_euler,
    sample_with_scheduler,
)
from portraitist.generate.text import encode_prompt_pair
from portraitist.generate.vae import decode
from portraitist.models.loading import StableDiffusion


def seed_generators(seeds: list[int]) -> list[torch.Generator]:
    return [torch.Generator("cpu").manual_seed(s) for s in seeds]


def initial_noise(generators: list[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
    """Unit noise, each image's from its own generator (on the CPU, so every device agrees)."""
    return torch.cat([torch.randn((1, *shape), generator=g) for g in generators])


@torch.no_grad()
def txt2img(
    model: StableDiffusion,
    prompt: str | list[str],
    negative: str,
    seeds: list[int],
    size: tuple[int, int],
    steps: int,
    guidance: float,
    scheduler: str = "euler",
    control: Control | None = None,
    callback: StepCallback | None = None,
    cuda_graphs: bool = True,
) -> list[Image.Image]:
    """len(seeds) images of (width, height) `size`; `prompt` is one for all, or one per seed."""
    width, height = size
    factor = model.vae_scale_factor
    channels = model.unet.config.in_channels
    # stochastic samplers (euler-a) go on drawing from the same generators
    generators = seed_generators(seeds)
    noise = initial_noise(generators, (channels, height // factor, width // factor)).to(model.unet.device)
    cond, uncond = encode_prompt_pair(model, prompt, negative, len(seeds), size)
    unet = GuidedUNet(model.unet, cond, uncond, guidance, control, cuda_graphs)
    if scheduler == "euler":
        schedule = euler_schedule(model.scheduler.config, model.scheduler.alphas_cumprod, steps)
        denoiser = karras_denoiser(unet, schedule, model.prediction_type)
        latents = sample_euler(denoiser, noise * schedule.init_noise_sigma, schedule.sigmas, callback)
    else:
        sampler = diffusers_scheduler(scheduler, model.scheduler.config)
        latents = sample_with_scheduler(sampler, unet, noise, steps, generators, callback)
    return decode(model, latents)
