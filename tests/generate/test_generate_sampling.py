"""The Euler sampler against diffusers' own pipeline, the schedules, and every named scheduler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

from portraitist.generate.sampling import SCHEDULERS, euler_schedule
from portraitist.generate.txt2img import txt2img
from portraitist.models.loading import StableDiffusion, load_base
from portraitist.models.random_sd import SD_SCHEDULER

PROMPT = "a photo of sks person"


@pytest.fixture(scope="module")
def tiny() -> StableDiffusion:
    return load_base("tiny")


def pixels(images: list) -> np.ndarray:
    return np.stack([np.asarray(im) for im in images]).astype(np.float64)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("steps", [1, 7, 30, 50])
def test_euler_schedule_is_diffusers_to_the_bit(spacing: str, steps: int) -> None:
    reference = EulerDiscreteScheduler.from_config({**SD_SCHEDULER, "timestep_spacing": spacing})
    reference.set_timesteps(steps)
    ours = euler_schedule(reference.config, reference.alphas_cumprod, steps)
    assert torch.equal(ours.sigmas, reference.sigmas)
    assert torch.equal(ours.timesteps, reference.timesteps)
    assert ours.init_noise_sigma == pytest.approx(float(reference.init_noise_sigma), rel=1e-6)


def test_euler_matches_diffusers_pipeline_for_the_same_seeds(tiny: StableDiffusion) -> None:
    """Same model, prompt, seeds, 10 steps, CFG 7: the images agree to the last 8-bit level."""
    pipe = StableDiffusionPipeline(
        vae=tiny.vae,
        text_encoder=tiny.text_encoder,
        tokenizer=tiny.tokenizer,
        unet=tiny.unet,
        scheduler=EulerDiscreteScheduler.from_config(tiny.scheduler.config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    size = tiny.resolution
    for seeds in ([0], [1, 2]):
        reference = pipe(
            [PROMPT] * len(seeds),
            negative_prompt=[""] * len(seeds),
            num_inference_steps=10,
            guidance_scale=7.0,
            generator=[torch.Generator().manual_seed(s) for s in seeds],
            output_type="np",
        ).images
        ours = pixels(txt2img(tiny, PROMPT, "", seeds, (size, size), 10, 7.0))
        diff = np.abs(ours - (reference * 255).round())
        # measured: batch 1 identical (0.0); batch 2 mean 4e-5, max 1 level (text encoded as one pair)
        assert diff.max() <= 1, f"seeds {seeds}: max {diff.max()}, mean {diff.mean():.5f}"
        assert diff.mean() < 1e-3, f"seeds {seeds}: mean abs difference {diff.mean():.5f} (0..255)"


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_named_scheduler_samples_and_is_seeded(tiny: StableDiffusion, scheduler: str) -> None:
    first = pixels(txt2img(tiny, PROMPT, "", [3], (64, 64), 2, 5.0, scheduler))
    again = pixels(txt2img(tiny, PROMPT, "", [3], (64, 64), 2, 5.0, scheduler))
    other = pixels(txt2img(tiny, PROMPT, "", [4], (64, 64), 2, 5.0, scheduler))
    assert first.shape == (1, 64, 64, 3)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_guidance_one_skips_the_unconditional_half(tiny: StableDiffusion) -> None:
    """At guidance 1 CFG is the conditional prediction alone; the negative prompt has no effect."""
    plain = pixels(txt2img(tiny, PROMPT, "", [0], (64, 64), 3, 1.0))
    negative = pixels(txt2img(tiny, PROMPT, "blurry", [0], (64, 64), 3, 1.0))
    assert np.array_equal(plain, negative)
    guided = pixels(txt2img(tiny, PROMPT, "blurry", [0], (64, 64), 3, 7.0))
    assert not np.array_equal(plain, guided)


def test_one_prompt_per_image_in_one_call(tiny: StableDiffusion) -> None:
    """A list of prompts draws each image as its own call with that prompt would (same seed)."""
    prompts = [PROMPT, "an oil painting of a cat"]
    together = pixels(txt2img(tiny, prompts, "", [3, 4], (64, 64), 3, 7.0))
    apart = np.concatenate(
        [pixels(txt2img(tiny, p, "", [s], (64, 64), 3, 7.0)) for p, s in zip(prompts, [3, 4])]
    )
    assert np.abs(together - apart).max() <= 1  # batch size may move a value by one 8-bit level
    assert not np.array_equal(together[0], together[1])
    with pytest.raises(ValueError, match="one per image"):
        txt2img(tiny, prompts, "", [1, 2, 3], (64, 64), 1, 7.0)
