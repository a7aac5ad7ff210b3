"""Generation on SDXL (tiny-xl): SDXL's sizes for each portrait format, seeds that reproduce, the
conditioning diffusers' own pipeline computes, and an SDXL ControlNet steering the composition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from controlkit import random_controlnet
from diffusers import ControlNetModel, EulerDiscreteScheduler, StableDiffusionXLPipeline
from PIL import Image

from portraitist import samples
from portraitist.errors import PortraitistError
from portraitist.generate.config import GenerateConfig
from portraitist.generate.sizes import image_size
from portraitist.generate.stage import generate
from portraitist.generate.text import encode_prompt_pair
from portraitist.models.loading import load_base
from portraitist.models.sdxl import SDXL_FAMILY

COMMON = {"base": "tiny-xl", "prompt": "a photo of a person", "steps": 3, "dtype": "fp32"}


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(int)


@pytest.mark.parametrize(
    ("aspect", "expected"),
    [("1:1", (1024, 1024)), ("4:5", (896, 1152)), ("9:16", (768, 1344)), ("16:9", (1344, 768))],
)
def test_portrait_formats_take_sdxls_training_buckets(aspect, expected):
    assert image_size(aspect, 1024, 8, SDXL_FAMILY) == expected


@pytest.mark.parametrize(("aspect", "expected"), [("1:1", (64, 64)), ("9:16", (48, 88)), ("16:9", (88, 48))])
def test_generated_images_have_the_formats_size(tmp_path, aspect, expected):
    result = generate(None, GenerateConfig(out=tmp_path, aspect=aspect, n=1, **COMMON))
    assert result.size == expected
    assert Image.open(result.images[0]).size == expected


def test_a_seed_reproduces_an_image(tmp_path):
    first = generate(None, GenerateConfig(out=tmp_path / "a", n=2, seed=5, **COMMON))
    again = generate(None, GenerateConfig(out=tmp_path / "b", n=1, seed=6, **COMMON))
    assert np.array_equal(pixels(first.images[1]), pixels(again.images[0]))
    assert not np.array_equal(pixels(first.images[0]), pixels(first.images[1]))


def test_conditioning_is_what_diffusers_pipeline_computes():
    model = load_base("tiny-xl")
    pipe = StableDiffusionXLPipeline(
        vae=model.vae, text_encoder=model.text_encoder, text_encoder_2=model.text_encoder_2,
        tokenizer=model.tokenizer, tokenizer_2=model.tokenizer_2, unet=model.unet, add_watermarker=False,
        scheduler=EulerDiscreteScheduler.from_config(model.scheduler.config),
    )  # fmt: skip
    embeds, negative, pooled, negative_pooled = pipe.encode_prompt("a photo of a man", negative_prompt=None)
    cond, uncond = encode_prompt_pair(model, "a photo of a man", "", 1, (64, 48))
    assert torch.equal(cond.hidden, embeds) and torch.equal(cond.added["text_embeds"], pooled)
    assert torch.equal(uncond.hidden, negative) and torch.equal(uncond.added["text_embeds"], negative_pooled)
    # (original size, crop top-left, target size), each (height, width), as the pipeline asks
    assert cond.added["time_ids"].tolist() == uncond.added["time_ids"].tolist() == [[48, 64, 0, 0, 48, 64]]


@pytest.fixture(scope="module")
def tiny_xl_controlnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_controlnet("tiny-xl", tmp_path_factory.mktemp("controlnet") / "tiny-xl-canny")


def test_an_sdxl_controlnet_steers_generation(tmp_path, tiny_xl_controlnet):
    reference = tmp_path / "reference.png"
    samples.astronaut().save(reference)
    plain = generate(None, GenerateConfig(out=tmp_path / "plain", n=1, **COMMON))
    control = {"control": "canny", "reference": reference, "controlnet": str(tiny_xl_controlnet)}
    steered = generate(None, GenerateConfig(out=tmp_path / "c", n=1, **control, **COMMON))
    off = generate(None, GenerateConfig(out=tmp_path / "off", n=1, control_scale=0.0, **control, **COMMON))
    assert np.abs(pixels(steered.images[0]) - pixels(plain.images[0])).mean() > 1
    assert np.array_equal(pixels(off.images[0]), pixels(plain.images[0]))


def test_a_controlnet_of_the_other_family_is_refused(tmp_path):
    sd1_controlnet = tmp_path / "sd1-canny"
    ControlNetModel.from_unet(load_base("tiny").unet).save_pretrained(sd1_controlnet)
    reference = tmp_path / "reference.png"
    samples.astronaut().save(reference)
    config = GenerateConfig(out=tmp_path / "c", n=1, control="canny", reference=reference,
                            controlnet=str(sd1_controlnet), **COMMON)  # fmt: skip
    with pytest.raises(PortraitistError, match="trained for another kind of model.*Stable Diffusion XL"):
        generate(None, config)
