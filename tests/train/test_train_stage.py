"""The `train` stage around the loop: bad inputs, prior preservation, validation samples, the command."""

from __future__ import annotations

import json

import pytest
from diffusers import StableDiffusionPipeline
from typer.testing import CliRunner

from portraitist.cli.app import app
from portraitist.errors import PortraitistError
from portraitist.models import random_sd
from portraitist.models.loading import load_base
from portraitist.samples import portrait_variants
from portraitist.train.config import TrainConfig
from portraitist.train.stage import train
from portraitist.workspace import Workspace

QUICK = TrainConfig(base="tiny", steps=2, precision="fp32", flip=False)


def test_workspace_without_a_dataset(tmp_path):
    with pytest.raises(PortraitistError, match="portraitist prepare"):
        train(Workspace(tmp_path / "empty"), QUICK)


def test_a_base_of_an_unsupported_family_is_refused_naming_the_supported_ones(prepared, tmp_path):
    flux = tmp_path / "flux"
    flux.mkdir()
    (flux / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    with pytest.raises(PortraitistError, match="FluxPipeline.*Stable Diffusion 1.x/2.x.*Stable Diffusion XL"):
        train(prepared, QUICK.model_copy(update={"base": str(flux)}))


def test_mismatched_base_is_refused(prepared, tmp_path):
    """A UNet that attends to 32-wide text embeddings beside a 384-wide text encoder."""
    base = load_base("tiny")
    StableDiffusionPipeline(
        vae=base.vae,
        text_encoder=random_sd.build_text_encoder("cpu-bench"),
        tokenizer=base.tokenizer,
        unet=base.unet,
        scheduler=base.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    ).save_pretrained(tmp_path / "mixed")
    with pytest.raises(PortraitistError, match="does not fit together"):
        train(prepared, QUICK.model_copy(update={"base": str(tmp_path / "mixed")}))


def test_bad_settings(prepared):
    with pytest.raises(PortraitistError, match="Unknown recipe"):
        train(prepared, TrainConfig(base="tiny", recipe="hypernetwork"))
    with pytest.raises(PortraitistError, match="does not train 'unet'"):
        train(prepared, TrainConfig(base="tiny", recipe="textual-inversion", learning_rates={"unet": 1e-6}))
    with pytest.raises(PortraitistError, match="too few"):
        train(prepared, TrainConfig(base="tiny", recipe="staged", steps=1))
    with pytest.raises(PortraitistError, match="class images"):
        train(prepared, TrainConfig(base="tiny", recipe="dreambooth", prior_preservation=True))


def test_prior_preservation_and_validation_samples(prepared, tmp_path):
    class_dir = tmp_path / "class"
    class_dir.mkdir()
    for i, image in enumerate(portrait_variants(2)):
        image.save(class_dir / f"{i}.png")
    config = TrainConfig(
        base="tiny",
        recipe="dreambooth",
        steps=2,
        precision="fp32",
        prior_preservation=True,
        class_images=class_dir,
        validate_every=2,
        validation_steps=2,
        validation_prompts=["a photo of {me}"],
    )
    result = train(prepared, config)
    assert result.steps_done == 2
    samples = sorted(p.name for p in (prepared.model_dir / "samples").iterdir())
    assert samples == ["step000002-0.png"]


def test_train_command(prepared):
    command = ["train", "-w", str(prepared.root), "--base", "tiny", "--steps", "2", "--lr", "unet=1e-5"]
    command += ["--precision", "fp32", "--no-flip"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "Trained staged for 2 steps" in result.output
    log = [json.loads(line) for line in (prepared.model_dir / "train_log.jsonl").read_text().splitlines()]
    assert log[0]["lr"] == {"tokens": 5e-5, "text_encoder": 2e-6, "unet": 1e-5}
    assert set(log[0]) == {"step", "stage", "loss", "lr", "seconds"}
    again = CliRunner().invoke(app, command)
    assert again.exit_code == 0 and "Nothing left to train" in again.output
