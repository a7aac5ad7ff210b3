"""Workspaces for generate/swap tests: prepared from the sample photos, then trained two steps
on the tiny model, once as a full fine-tune and once as LoRA (the two kinds of model/ output)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from portraitist.prepare.config import PrepareConfig
from portraitist.prepare.stage import prepare
from portraitist.train.config import TrainConfig
from portraitist.train.stage import train
from portraitist.workspace import Workspace


@pytest.fixture(scope="session")
def trained_templates(tmp_path_factory: pytest.TempPathFactory, sample_photos: list[Path]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("generate-ws")
    prepared = Workspace(root / "prepared")
    # 256 px crops: big enough for the identity scorer's face detector; training resizes them to 64
    prepare(prepared, sample_photos, PrepareConfig(clip_model="tiny", resolution=256))
    out = {}
    for recipe in ("dreambooth", "lora"):
        ws = Workspace(shutil.copytree(prepared.root, root / recipe))
        train(ws, TrainConfig(base="tiny", recipe=recipe, steps=2, checkpoint_every=2, device="cpu"))
        out[recipe] = ws.root
    return out


@pytest.fixture
def trained(trained_templates: dict[str, Path], tmp_path: Path) -> Workspace:
    """A fresh copy of the fully fine-tuned workspace."""
    return Workspace(shutil.copytree(trained_templates["dreambooth"], tmp_path / "ws"))
