"""`portraitist prepare` as a user runs it (the demo: tests/pipeline/test_pipeline_world_demo.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from portraitist.cli import app
from portraitist.errors import PortraitistError
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
    result = runner.invoke(app, ["prepare", str(folder), "-w", str(tmp_path / "ws"), "--clip-model", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    manifest = DatasetManifest.model_validate(json.loads(result.stdout))
    assert manifest == Workspace(tmp_path / "ws").read_manifest()
    assert [p.status for p in manifest.photos] == ["kept"] * 4 + ["rejected"]


def test_the_summary_table_names_each_decision(tmp_path: Path, folder: Path) -> None:
    settings = tmp_path / "portraitist.toml"
    settings.write_text('[prepare]\ninstance_token = "<sks>"\nmargin = 0.8\n')
    result = runner.invoke(
        app,
        ["prepare", str(folder), "-w", str(tmp_path / "ws"), "--config", str(settings), "--class-word", "girl",
         "--context", "photo_of"],
    )
    assert result.exit_code == 0, result.output
    assert "party.jpg" in result.stderr and "multiple_people" in result.stderr
    assert "a photo of <sks> girl" in result.stderr
    assert "4 of 5 photos kept" in result.stderr


def test_bad_settings_are_a_clear_error(tmp_path: Path, folder: Path) -> None:
    result = runner.invoke(app, ["prepare", str(folder), "-w", str(tmp_path / "ws"), "--context", "poems"])
    assert isinstance(result.exception, PortraitistError)
    assert "context" in str(result.exception)

