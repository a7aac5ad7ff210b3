"""`world score`: a base judged against issue 9's targets, beside real renders of the same prompts."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from portraitist.cli import app
from portraitist.world.base_score import ATTRIBUTE_RATIO, COLOUR, FACE_RATE, score_base
from portraitist.world.model import build_world_base


def test_a_random_base_is_judged_beside_real_renders_and_misses_the_targets(tmp_path: Path) -> None:
    base = build_world_base(tmp_path / "base", architecture="tiny")
    score = score_base(str(base), count=8, steps=2, batch=4, grid=tmp_path / "grid.png")
    assert score.prompts == 8 and score.generated.keys() == score.real.keys() >= {"background", "shirt"}
    # the real renders of the same prompts: what the judges read when the picture is right
    assert sum(score.real.values()) / len(score.real) > 0.9 and score.real_face_rate > 0.9
    # random weights draw noise: no faces, so the face-gate target fails
    assert score.face_rate < FACE_RATE
    targets = {name: (value, threshold, met) for name, value, threshold, met in score.targets()}
    assert [t[1] for t in targets.values()] == [ATTRIBUTE_RATIO, COLOUR, COLOUR, FACE_RATE]
    assert all(met == (value >= threshold) for value, threshold, met in targets.values())
    assert not targets["face gate pass rate"][2]
    assert Image.open(tmp_path / "grid.png").size == (16 * 128, 1 * 128)  # 8 real, then 8 generated


def test_cli_score_prints_the_targets(tmp_path: Path) -> None:
    base = build_world_base(tmp_path / "base", architecture="tiny")
    args = ["world", "score", "--base", str(base), "--prompts", "4", "--steps", "2"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "targets of a usable base" in result.output and "face gate pass rate" in result.output
