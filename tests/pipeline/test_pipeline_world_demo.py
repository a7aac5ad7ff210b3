"""`portraitist demo`: a held-out person of the synthetic world (docs/world.md) through every stage on a
world base model (here a tiny random one, built as the committed one is), and the run's own
prompts beside its styles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from pydantic import ValidationError
from typer.testing import CliRunner

from portraitist.cli import app
from portraitist.cli.demo import SCENES
from portraitist.errors import PortraitistError
from portraitist.pipeline import RunConfig
from portraitist.workspace import Workspace
from portraitist.world import family as world_family
from portraitist.world.metrics import scenes_followed
from portraitist.world.model import build_world_base

runner = CliRunner()


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_world_base(tmp_path_factory.mktemp("bases") / "world", architecture="tiny")


def test_the_demo_runs_every_stage_on_a_world_person(tmp_path: Path, tiny_world: Path) -> None:
    root = tmp_path / "demo"
    result = runner.invoke(
        app, ["demo", "-w", str(root), "--base", str(tiny_world), "--steps", "4", "-n", "4"]
    )
    assert result.exit_code == 0, result.output
    ws = Workspace(root)

    truth = json.loads((root / "world-photos" / "world_person.json").read_text())
    manifest = ws.read_manifest()
    assert len(manifest.kept) == len(truth["photos"]) == 8  # the given boxes: nothing for a detector to miss
    assert [p.face_box for p in manifest.kept] == [photo["face_box"] for photo in truth["photos"]]
    assert manifest.class_token == truth["attributes"]["sex"]

    generations = [
        json.loads(line) for line in (ws.outputs_dir / "generations.jsonl").read_text().splitlines()
    ]
    prompts = {g["prompt"] for g in generations}
    subject = f"<me> {manifest.class_token}"
    assert prompts == {
        f"a photo of {subject}, on a red background",
        f"a photo of {subject}, wearing a green shirt",
        f"a photo of {subject}, smiling, on a striped blue background",
        f"a photo of {subject}, wearing a yellow shirt, on a purple background",
    }
    assert all((g["width"], g["height"]) == (32, 32) for g in generations)  # the world model's resolution

    scores = json.loads((ws.outputs_dir / "scores.json").read_text())
    assert scores["identity_model"] == "world"
    selected = sorted((ws.outputs_dir / "selected").glob("*.png"))
    assert len(selected) == 4 and all(Image.open(p).size == (128, 128) for p in selected)  # x4 upscaled
    report = (ws.outputs_dir / "report.html").read_text()
    assert "on a striped blue background" in report
    # 32 px generations and 128 px portraits are enlarged in the grid: shown as pixels, not smoothed
    assert report.count('class="pixels" alt="generation') == 4
    assert report.count('class="pixels" alt="selected') == 4
    said = result.stderr.replace("\n", "")
    assert "synthetic world" in said and "demo finished" in said and str(ws.root) in said
    # what the judges measured, said as counts over the generated images
    assert "of 4 generated images are recognised as that person" in said
    assert "of 4 show the scene their prompt asked for" in said


def test_the_demo_says_how_to_get_a_missing_world_base(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(world_family, "BASE_DIR", tmp_path / "no-base-here")
    result = runner.invoke(app, ["demo", "-w", str(tmp_path / "demo")])
    assert isinstance(result.exception, PortraitistError)
    assert "world pretrain" in str(result.exception)
    assert not (tmp_path / "demo").exists()  # nothing was started


def test_prompts_share_the_images_with_the_styles() -> None:
    config = RunConfig(styles=["photo"], prompts=["{me} on a red background", "{me} smiling"], n=5, seed=7)
    requests = config.generation_requests()
    assert [name for name, _ in requests] == [
        "generate:photo",
        "generate:prompt:{me} on a red background",
        "generate:prompt:{me} smiling",
    ]
    assert [(s["style"], s["prompt"], s["n"], s["seed"]) for _, s in requests] == [
        ("photo", None, 2, 7),
        (None, "{me} on a red background", 2, 1007),
        (None, "{me} smiling", 1, 2007),
    ]
    assert [name for name, _ in RunConfig(styles=[], prompts=["{me}"], n=3).generation_requests()] == [
        "generate:prompt:{me}"
    ]
    with pytest.raises(ValidationError, match="at least one style or prompt"):
        RunConfig(styles=[], prompts=[])


@pytest.mark.skipif(
    not (world_family.BASE_DIR / "model_index.json").is_file(),
    reason="the pretrained world base is not committed",
)
def test_the_demo_on_the_committed_base_draws_the_person(tmp_path: Path) -> None:
    """The whole demo as a user runs it: the README's figures, within their stated tolerance (the
    CPU's arithmetic moves them: 16 and 12 of 16 on an AMD EPYC, 16 recognised on an Intel Xeon)."""
    result = runner.invoke(app, ["demo", "-w", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "demo" / "outputs" / "scores.json").read_text())["images"]
    assert len(scores) == 16
    recognised = sum(image["passes_identity"] for image in scores)
    followed, made = scenes_followed(Workspace(tmp_path / "demo"), SCENES)
    assert made == 16
    assert recognised >= 15 and followed >= 11, (
        recognised,
        followed,
    )  # README: one below the lowest measured
    said = result.stderr.replace("\n", "")
    assert (
        f"{recognised} of 16 generated images are recognised" in said
        and f"{followed} of 16 show the scene" in said
    )
