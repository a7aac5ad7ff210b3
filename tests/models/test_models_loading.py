"""Bases and VAEs load from files on disk with the weights that were saved: a single-file checkpoint
(SD 1.x and SDXL) as --base, and a VAE folder or checkpoint as --vae in place of the base's own."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from portraitist.models import random_sd
from portraitist.models.loading import StableDiffusion, load_base
from portraitist.models.single_file import configs_metadata
from portraitist.train.export import original_sd_state_dict


def assert_same_weights(ours: nn.Module, theirs: nn.Module) -> None:
    mine, loaded = ours.state_dict(), theirs.state_dict()
    assert mine.keys() == loaded.keys()
    different = [k for k, v in mine.items() if not torch.equal(v, loaded[k])]
    assert different == []


def save_single_file(model: StableDiffusion, path: Path) -> Path:
    """The model as A1111 / ComfyUI keep it, with the configs portraitist's export stores beside it."""
    vocabulary = len(model.tokenizer)
    save_file(original_sd_state_dict(model, vocabulary), path, configs_metadata(model, vocabulary))
    return path


@pytest.mark.parametrize(("preset", "family"), [("tiny", "sd1"), ("tiny-xl", "sdxl")])
def test_a_single_file_checkpoint_loads_as_a_base_with_its_weights(
    tmp_path: Path, preset: str, family: str
) -> None:
    saved = load_base(preset, seed=5)
    path = save_single_file(saved, tmp_path / f"{preset}.safetensors")

    loaded = load_base(str(path))

    assert loaded.family.name == family and loaded.source == str(path)
    assert [name for name, _, _ in loaded.text_encoders] == [name for name, _, _ in saved.text_encoders]
    for part in ("unet", "vae", *(name for name, _, _ in saved.text_encoders)):
        assert_same_weights(getattr(saved, part), getattr(loaded, part))
    assert loaded.resolution == saved.resolution
    assert loaded.scheduler.config.prediction_type == saved.scheduler.config.prediction_type
    assert loaded.tokenizer("a photo of a girl").input_ids == saved.tokenizer("a photo of a girl").input_ids


@pytest.mark.parametrize("layout", ["vae folder", "pipeline folder"])
def test_a_vae_folder_replaces_the_bases_own(tmp_path: Path, layout: str) -> None:
    vae = random_sd.build_vae("tiny", seed=3)
    vae.register_to_config(scaling_factor=0.5)  # another scale than the base's latents have
    folder = tmp_path / "my-vae"
    vae.save_pretrained(folder if layout == "vae folder" else folder / "vae")
    base = load_base("tiny")

    model = load_base("tiny", vae=str(folder))

    assert_same_weights(vae, model.vae)
    assert model.vae_source == str(folder)
    # the UNet's latents keep the base's scale; nothing else of the base changes
    assert model.vae.config.scaling_factor == base.vae.config.scaling_factor
    assert_same_weights(base.unet, model.unet)
    assert not model.vae.training and not any(p.requires_grad for p in model.vae.parameters())


def test_the_vae_of_a_single_file_checkpoint_replaces_the_bases_own(tmp_path: Path) -> None:
    donor = load_base("tiny", seed=9)
    path = save_single_file(donor, tmp_path / "donor.safetensors")

    model = load_base("tiny", vae=str(path))

    assert_same_weights(donor.vae, model.vae)
    assert model.vae_source == str(path)
    assert_same_weights(load_base("tiny").unet, model.unet)
