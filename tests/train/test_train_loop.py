"""The loop's forward diffusion: noisy latents and the target each prediction type asks the UNet for."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from portraitist.models.random_sd import SD_SCHEDULER
from portraitist.train.loop import Denoiser


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_the_target_and_the_noisy_latents_give_back_the_clean_latents(prediction: str) -> None:
    scheduler = DDPMScheduler(**dict(SD_SCHEDULER, prediction_type=prediction))
    generator = torch.Generator().manual_seed(0)
    latents, noise = torch.randn(2, 3, 4, 8, 8, generator=generator)
    t = torch.tensor([1, 500, 999])
    noisy, target = Denoiser(scheduler).noised(latents, noise, t)
    signal = scheduler.alphas_cumprod[t].sqrt().view(-1, 1, 1, 1)
    spread = (1 - scheduler.alphas_cumprod[t]).sqrt().view(-1, 1, 1, 1)
    # x_t = a x0 + s eps with a^2 + s^2 = 1: eps is its own target, v = a eps - s x0 (Salimans & Ho 2022)
    clean = (
        (noisy - spread * target) / signal if prediction == "epsilon" else signal * noisy - spread * target
    )
    torch.testing.assert_close(clean, latents, atol=1e-4, rtol=1e-4)
    if prediction == "epsilon":
        assert torch.equal(target, noise)
