"""`portraitist generate` and `portraitist swap` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from portraitist import samples
from portraitist.cli import app
from portraitist.errors import PortraitistError

runner = CliRunner()


def test_list_styles_shows_every_preset() -> None:
    result = runner.invoke(app, ["generate", "--list-styles"])
    assert result.exit_code == 0, result.output
    for name in (
        "photo",
        "oil-painting",
        "cyborg",
        "astronaut",
        "anime",
        "pencil-sketch",
        "renaissance",
        "cinematic",
    ):
        assert name in result.stderr


def test_generate_a_base_model_into_a_folder(tmp_path: Path) -> None:
    settings = tmp_path / "portraitist.toml"
    settings.write_text("[generate]\nsteps = 2\nguidance = 5.0\n")
    result = runner.invoke(
        app,
        ["generate", "--base", "tiny", "--out", str(tmp_path / "out"), "--prompt", "a photo of a cat",
         "-n", "2", "--aspect", "9:16", "--seed", "7", "--config", str(settings)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    paths = [Path(line) for line in result.stdout.split()]
    assert [Image.open(p).size for p in paths] == [(64, 112), (64, 112)]
    records = [json.loads(line) for line in (tmp_path / "out" / "generations.jsonl").read_text().splitlines()]
    assert [(r["seed"], r["steps"], r["guidance"]) for r in records] == [(7, 2, 5.0), (8, 2, 5.0)]


def test_swap_command_writes_the_versions(tmp_path: Path) -> None:
    picture = tmp_path / "astronaut.png"
    samples.astronaut().save(picture)
    result = runner.invoke(
        app,
        ["swap", str(picture), "--base", "tiny", "--out", str(tmp_path / "out"),
         "--prompt", "a photo of a person", "-n", "1", "--steps", "2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "in seed order" in result.stderr
    assert Image.open(result.stdout.split()[0]).size == (512, 512)


def test_bad_options_are_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--base", "tiny", "--out", str(tmp_path), "--control", "sketch"])
    assert isinstance(result.exception, PortraitistError)
    assert "control" in str(result.exception)
