"""`portraitist run`: one command from photos to upscaled portraits, resumable after a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from portraitist.cli import app
from portraitist.pipeline import RunConfig, read_done, run_pipeline
from portraitist.progress import ProgressEvent
from portraitist.workspace import Workspace

# Offline stand-ins for the hub models: tiny random CLIP, random scorer heads, the fast upscaler.
OFFLINE_TOML = """
[prepare]
clip_model = "tiny"
[train]
checkpoint_every = 4
[generate]
steps = 4
[rank]
clip_model = "tiny"
aesthetic_weights = "random"
lpips_backbone = "random"
[upscale]
model = "realesr-animevideov3"
"""


@pytest.fixture
def offline_run() -> RunConfig:
    """A whole job that runs in well under a minute on two CPU cores."""
    return RunConfig.model_validate(
        dict(tomllib.loads(OFFLINE_TOML), base="tiny", steps=8, styles=["photo", "anime"], n=4, k=2)
    )


class Crash(Exception):
    """Stands for a process dying at a chosen point."""


def crash_at(stage: str, step: int = 0):
    def progress(event: ProgressEvent) -> None:
        if event.stage == stage and event.step >= step:
            raise Crash(f"{stage} {event.step}")

    return progress


def train_steps(workspace: Workspace) -> list[int]:
    lines = (workspace.model_dir / "train_log.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines if line.strip()]


def test_run_resumes_after_a_crash_between_stages_without_redoing_work(
    tmp_path: Path, sample_photos: list[Path], offline_run: RunConfig, browser_page
) -> None:
    workspace = Workspace(tmp_path / "ws")
    with pytest.raises(Crash):
        run_pipeline(workspace, sample_photos, offline_run, crash_at("generate"))
    assert read_done(workspace) == ["prepare", "train"]
    trained = (workspace.model_dir / "model.json").stat().st_mtime_ns

    seen: list[ProgressEvent] = []
    result = run_pipeline(workspace, None, offline_run, seen.append)  # no photos needed to resume

    assert result.plan.skipped == ["prepare", "train"]
    assert {e.stage for e in seen} >= {"generate", "rank", "upscale"}
    assert not {"prepare", "train"} & {e.stage for e in seen}
    assert (workspace.model_dir / "model.json").stat().st_mtime_ns == trained
    assert read_done(workspace) == ["prepare", "train", "generate:photo", "generate:anime", "rank", "upscale"]
    assert len(result.selected) == offline_run.k
    for path in result.selected:
        with Image.open(path) as image:
            assert image.size == (2 * 64, 2 * 64)  # the tiny model's 64 px, upscaled x2
    assert len((workspace.outputs_dir / "generations.jsonl").read_text().splitlines()) == offline_run.n
    html = result.report.read_text()
    assert "Selected portraits (2)" in html and "random weights" in html

    # what a person sees: the report in a browser, every selected portrait drawn, rejections explained
    browser_page.goto(result.report.as_uri())
    widths = browser_page.eval_on_selector_all(".selected img", "imgs => imgs.map(i => i.naturalWidth)")
    assert widths == [128, 128]
    rows = browser_page.locator("tr.rejected").all_text_contents()
    assert any("duplicate" in row and "Nearly the same picture" in row for row in rows)


def test_run_survives_kill_9_inside_training(tmp_path: Path, sample_photos: list[Path]) -> None:
    workspace = Workspace(tmp_path / "ws")
    config = tmp_path / "run.toml"
    config.write_text(OFFLINE_TOML)
    steps = 64  # killed after step 9: enough steps left that a fast machine cannot finish within one poll
    command = [
        sys.executable,
        "-m",
        "portraitist",
        "run",
        *map(str, sample_photos),
        "-w",
        str(workspace.root),
        "--base",
        "tiny",
        "--steps",
        str(steps),
        "--styles",
        "photo",
        "-n",
        "2",
        "-k",
        "1",
        "--config",
        str(config),
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = workspace.model_dir / "train_log.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if log.exists() and len(train_steps(workspace)) >= 9:
            break
        time.sleep(0.2)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert read_done(workspace) == ["prepare"]

    resumed = subprocess.run(
        command[:4] + command[4 + len(sample_photos) :], env=env, capture_output=True, text=True, check=False
    )

    assert resumed.returncode == 0, resumed.stderr[-2000:]
    said = " ".join(resumed.stderr.split())
    assert "Resumed: already done were prepare" in said
    checkpoint = int(said.split("Training resumed from its step-")[1].split()[0])
    assert 4 <= checkpoint < steps and checkpoint % 4 == 0  # continued, not restarted
    assert train_steps(workspace) == list(range(1, steps + 1))  # every step logged exactly once
    assert read_done(workspace)[-1] == "upscale"


def generated_files(workspace: Workspace) -> list[str]:
    lines = (workspace.outputs_dir / "generations.jsonl").read_text().splitlines()
    return sorted(json.loads(line)["file"] for line in lines if line.strip())


def test_a_rerun_with_changed_settings_redoes_what_they_affect_and_says_why(
    tmp_path: Path, sample_photos: list[Path], offline_run: RunConfig
) -> None:
    workspace = Workspace(tmp_path / "ws")
    run_pipeline(workspace, sample_photos, offline_run)
    trained = (workspace.model_dir / "model.json").stat().st_mtime_ns

    # a third style and one more kept image: photo's and anime's requests stay as they were (2 images each)
    more = offline_run.model_copy(update={"styles": ["photo", "anime", "cyborg"], "n": 6, "k": 3})
    result = run_pipeline(workspace, None, more)

    assert result.plan.skipped == ["prepare", "train", "generate:photo", "generate:anime"]
    assert list(result.plan.changed) == ["rank"] and "k 2 -> 3" in result.plan.changed["rank"]
    assert result.plan.after == ["upscale"]
    assert list(result.seconds) == ["generate:cyborg", "rank", "upscale"]
    assert (workspace.model_dir / "model.json").stat().st_mtime_ns == trained
    assert len(generated_files(workspace)) == 6 and len(result.selected) == 3
    ranked = json.loads((workspace.outputs_dir / "scores.json").read_text())["images"]
    assert sorted(image["file"] for image in ranked) == generated_files(
        workspace
    )  # the new images are ranked too

    # more training steps and one style, from the command line: the model is trained again from step 0,
    # and only the new images stay
    config = tmp_path / "run.toml"
    config.write_text(OFFLINE_TOML)
    command = ["run", "-w", str(workspace.root), "--base", "tiny", "--styles", "photo", "--num-images", "2",
               "--keep", "1", "--steps", "12", "--config", str(config)]  # fmt: skip
    result = CliRunner().invoke(app, command, env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "Resumed: already done were prepare." in said
    assert "Settings changed since the last run: train (steps 8 -> 12); rank (k 3 -> 1)." in said
    assert "Ran again because an earlier stage did: generate:photo, upscale." in said
    assert "No longer asked for, so their images were removed: generate:anime, generate:cyborg." in said
    assert train_steps(workspace) == list(range(1, 13))  # from step 0, not from the 8-step model
    files = generated_files(workspace)
    assert len(files) == 2 and all(f.startswith("outputs/images/photo-") for f in files)
    assert sorted(p.name for p in (workspace.outputs_dir / "images").iterdir()) == sorted(
        Path(f).name for f in files
    )
    assert len(list((workspace.outputs_dir / "selected").glob("*.png"))) == 1

    # the same settings again: nothing to do
    fewer = RunConfig.model_validate(
        dict(tomllib.loads(OFFLINE_TOML), base="tiny", steps=12, styles=["photo"], n=2, k=1)
    )
    seen: list[ProgressEvent] = []
    again = run_pipeline(workspace, None, fewer, seen.append)
    assert again.plan.run == [] and again.plan.skipped == read_done(workspace) and seen == []
