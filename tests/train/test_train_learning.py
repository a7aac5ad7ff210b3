"""Training learns: on a fixed evaluation (same latents, noise and timesteps before and after) the
denoising loss of the training photos falls over a short run."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from portraitist.models.loading import StableDiffusion, load_base
from portraitist.models.trained import load_trained
from portraitist.train.config import TrainConfig
from portraitist.train.data import encode, load_photos
from portraitist.train.stage import train
from portraitist.workspace import Workspace


@torch.no_grad()
def fixed_loss(model: StableDiffusion, ws: Workspace, prompt: str) -> float:
    """Mean epsilon-prediction error over the photos at timesteps 100..900, with fixed noise."""
    photos = load_photos(ws, [prompt] * len(ws.read_manifest().kept), model.resolution)
    data = encode(photos, model.vae, model.tokenizer, flip=False, device=torch.device("cpu"))
    hidden = model.text_encoder(data.input_ids)[0]
    alphas = model.scheduler.alphas_cumprod
    generator = torch.Generator().manual_seed(1234)
    errors = []
    for t in (100, 300, 500, 700, 900):
        noise = torch.randn(data.latent_mean.shape, generator=generator)
        a = alphas[t]
        noisy = a.sqrt() * data.latent_mean + (1 - a).sqrt() * noise
        prediction = model.unet(noisy, torch.full((len(noisy),), t), hidden).sample
        errors.append(F.mse_loss(prediction, noise).item())
    return sum(errors) / len(errors)


def test_loss_falls_over_a_short_run(prepared):
    prompt = "a photo of sks girl"
    before = fixed_loss(load_base("tiny"), prepared, prompt)

    train(
        prepared,
        TrainConfig(
            base="tiny",
            recipe="dreambooth",
            steps=12,
            learning_rates={"unet": 5e-4},
            precision="fp32",
            flip=False,
        ),
    )

    after = fixed_loss(load_trained(prepared), prepared, prompt)
    assert after < 0.9 * before, (before, after)
