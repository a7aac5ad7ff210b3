"""`portraitist prepare` as a user runs it (the demo: tests/pipeline/test_pipeline_world_demo.py)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import portraitist
from portraitist.cli import app
from portraitist.errors import PortraitistError
from portraitist.models.clip import tiny_clip
from portraitist.report import write_report
from portraitist.samples import two_people
from portraitist.workspace import DatasetManifest, Workspace

runner = CliRunner()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, sample_photos: list[Path]) -> Path:
    gallery = tmp_path_factory.mktemp("cli_gallery")
    for photo in sample_photos[:4]:
        shutil.copy(photo, gallery)
    two_people().save(gallery / "party.jpg")
    return gallery


def test_json_prints_the_manifest_on_stdout(tmp_path: Path, folder: Path) -> None:
    result = runner.invoke(
        app, ["prepare", str(folder), "-w", str(tmp_path / "ws"), "--clip-model", "tiny", "--json"]
    )
    assert result.exit_code == 0, result.output
    manifest = DatasetManifest.model_validate(json.loads(result.stdout))
    assert manifest == Workspace(tmp_path / "ws").read_manifest()
    assert [p.status for p in manifest.photos] == ["kept"] * 4 + ["rejected"]
    assert manifest.class_model == "tiny"  # a random stand-in chose the class word: the report says so
    assert "random stand-in CLIP" in write_report(Workspace(tmp_path / "ws")).read_text()


def test_the_summary_table_names_each_decision(tmp_path: Path, folder: Path) -> None:
    settings = tmp_path / "portraitist.toml"
    settings.write_text('[prepare]\ninstance_token = "<sks>"\nmargin = 0.8\n')
    result = runner.invoke(
        app,
        [
            "prepare",
            str(folder),
            "-w",
            str(tmp_path / "ws"),
            "--config",
            str(settings),
            "--class-word",
            "girl",
            "--context",
            "photo_of",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "party.jpg" in result.stderr and "multiple_people" in result.stderr
    assert "a photo of <sks> girl" in result.stderr
    assert "4 of 5 photos kept" in result.stderr
    assert "One person: 4 of 4 faces are one person, 0 someone else." in result.stderr


def test_bad_settings_are_a_clear_error(tmp_path: Path, folder: Path) -> None:
    result = runner.invoke(app, ["prepare", str(folder), "-w", str(tmp_path / "ws"), "--context", "poems"])
    assert isinstance(result.exception, PortraitistError)
    assert "context" in str(result.exception)


def test_a_command_prints_no_library_lines_and_writes_files_the_umask_allows(
    tmp_path: Path, sample_photos: list[Path]
) -> None:
    """As a user runs it, in its own process: mediapipe (glog, TF Lite) and transformers ("Loading
    weights" bars) keep quiet, and outputs are 0644 under umask 022, as any program's files."""
    clip = tmp_path / "clip"
    tiny = tiny_clip()
    for part in (tiny.model, tiny.processor, tiny.tokenizer):
        part.save_pretrained(clip)
    env = {k: v for k, v in os.environ.items() if k not in ("GLOG_minloglevel", "TF_CPP_MIN_LOG_LEVEL")}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(portraitist.__file__).parents[1]), env.get("PYTHONPATH", "")]
    )
    workspace = tmp_path / "ws"
    done = subprocess.run(
        [sys.executable, "-m", "portraitist", "prepare", *map(str, sample_photos[:3]), "-w", str(workspace),
         "--clip-model", str(clip)],
        env=env, capture_output=True, text=True, preexec_fn=lambda: os.umask(0o022), timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for library_line in (
        "Loading weights",
        "W0000",
        "I0000",
        "INFO:",
        "absl::",
        "XNNPACK",
        "inference_feedback",
    ):
        assert library_line not in done.stderr, done.stderr
    assert "3 of 3 photos kept" in done.stderr
    written = [workspace / "dataset" / "manifest.json", *(workspace / "dataset" / "crops").iterdir()]
    assert {oct(stat.S_IMODE(path.stat().st_mode)) for path in written} == {"0o644"}


def test_real_esrgan_for_small_faces_is_a_flag_and_the_manifest_records_it(
    tmp_path: Path, sample_photos: list[Path]
) -> None:
    args = ["prepare", *map(str, sample_photos[:3]), "-w", str(tmp_path / "ws"), "--class-word", "girl"]
    result = runner.invoke(app, [*args, "--upscale-small-faces", "--upscaler", "realesr-animevideov3"])
    assert result.exit_code == 0, result.output
    manifest = Workspace(tmp_path / "ws").read_manifest()
    assert (manifest.upscale_small_faces, manifest.upscaler) == (True, "realesr-animevideov3")

    settings = tmp_path / "upscale.toml"
    settings.write_text("[prepare]\nupscale_small_faces = true\n")
    result = runner.invoke(app, [*args, "--config", str(settings), "--no-upscale-small-faces"])
    assert result.exit_code == 0, result.output
    assert (
        Workspace(tmp_path / "ws").read_manifest().upscale_small_faces is False
    )  # the flag overrides the file
    help_text = runner.invoke(app, ["prepare", "--help"]).output
    assert "--upscale-small-faces" in help_text and "Real-ESRGAN" in help_text
