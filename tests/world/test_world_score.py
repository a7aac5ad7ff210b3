"""`world score`: a base judged against the targets of a usable base, beside real renders of the same
prompts."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from portraitist.cli import app
from portraitist.world.base_score import BaseScore, score_base
from portraitist.world.model import build_world_base


def test_a_random_base_is_judged_beside_real_renders_and_misses_the_targets(tmp_path: Path) -> None:
    base = build_world_base(tmp_path / "base", architecture="tiny")
    score = score_base(str(base), count=8, steps=2, batch=4, grid=tmp_path / "grid.png")
    assert score.prompts == 8 and score.generated.keys() == score.real.keys() >= {"background", "shirt"}
    # the real renders of the same prompts: what the judges read when the picture is right
    assert sum(score.real.values()) / len(score.real) > 0.9 and score.real_face_rate > 0.9
    # random weights draw noise: no faces, so the face-gate target fails
    met = {name: met for name, _, _, met in score.targets()}
    assert score.face_rate < 0.5 and not met["face gate pass rate"]
    assert Image.open(tmp_path / "grid.png").size == (16 * 128, 1 * 128)  # 8 real, then 8 generated


def test_each_target_is_met_at_its_threshold_and_missed_below_it() -> None:
    score = BaseScore(
        prompts=100,
        generated={"background": 0.95, "shirt": 0.94, "sex": 0.71},
        real={"background": 1.0, "shirt": 1.0, "sex": 0.9},
        face_rate=0.9,
        real_face_rate=1.0,
    )
    targets = {name: (value, threshold, met) for name, value, threshold, met in score.targets()}
    # generated attributes read right (0.95 + 0.94 + 0.71) / 3 = 0.8667 of the time, real ones 0.9667:
    # 0.8966 of the real renders' accuracy, just under the 90% asked
    assert targets["attribute accuracy / real renders'"] == (pytest.approx(0.8966, abs=1e-4), 0.9, False)
    assert targets["background colour"] == (0.95, 0.95, True)
    assert targets["shirt colour"] == (0.94, 0.95, False)
    assert targets["face gate pass rate"] == (0.9, 0.9, True)


def test_cli_score_prints_the_targets(tmp_path: Path) -> None:
    base = build_world_base(tmp_path / "base", architecture="tiny")
    args = ["world", "score", "--base", str(base), "--prompts", "4", "--steps", "2"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "targets of a usable base" in result.output and "face gate pass rate" in result.output
