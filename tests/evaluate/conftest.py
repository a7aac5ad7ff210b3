"""A prepared workspace, and one evaluation of every recipe, shared by the evaluate tests; a tiny
world base and tiny judges for the --world tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from evalkit import offline_config, one_torch_thread

from portraitist.evaluate.stage import EvaluateResult, evaluate
from portraitist.prepare.config import PrepareConfig
from portraitist.prepare.stage import prepare
from portraitist.progress import ProgressEvent
from portraitist.workspace import Workspace
from portraitist.world.judges import Judges, JudgeShapes, save_judges, visible_vocabulary
from portraitist.world.model import build_world_base


@dataclass
class Evaluated:
    workspace: Workspace
    result: EvaluateResult
    events: list[ProgressEvent]


@pytest.fixture(autouse=True)
def single_threaded_torch() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def prepared_photos(tmp_path_factory: pytest.TempPathFactory, sample_photos: list[Path]) -> Path:
    """The astronaut's photos through the real `prepare` (128 px crops, CLIP stand-in)."""
    workspace = Workspace(tmp_path_factory.mktemp("evaluate-prepared") / "ws")
    prepare(workspace, sample_photos, PrepareConfig(clip_model="tiny", resolution=128))
    return workspace.root


@pytest.fixture
def prepared(prepared_photos: Path, tmp_path: Path) -> Workspace:
    shutil.copytree(prepared_photos, tmp_path / "ws")
    return Workspace(tmp_path / "ws")


@pytest.fixture(scope="session")
def evaluated(prepared_photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Evaluated:
    """Every recipe trained 4 steps on the tiny model and measured at steps 2 and 4."""
    root = tmp_path_factory.mktemp("evaluated") / "ws"
    shutil.copytree(prepared_photos, root)
    workspace = Workspace(root)
    events: list[ProgressEvent] = []
    with one_torch_thread():
        result = evaluate(workspace, offline_config(), "tiny", events.append)
    return Evaluated(workspace, result, events)


@pytest.fixture(scope="session")
def world_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The world base's classes (PixelCodec, two-level UNet, 3-layer CLIP) at test sizes, random weights."""
    return build_world_base(tmp_path_factory.mktemp("world-base") / "base", architecture="tiny")


@pytest.fixture(scope="session")
def tiny_judges(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The judges' three networks at a small width with random weights: what a --world run needs,
    not what its numbers mean (tests of the numbers use the committed judges)."""
    with one_torch_thread():
        torch.manual_seed(0)
        shapes = JudgeShapes(vocabulary=visible_vocabulary(), width=8, embedding=16, gate_width=8)
        folder = tmp_path_factory.mktemp("judges")
        save_judges(Judges(shapes, shapes.build()), folder)
    return folder
