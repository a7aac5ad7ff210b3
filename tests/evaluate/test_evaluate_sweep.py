"""`portraitist evaluate --world --sweep`: every recipe tuned alike on other people, then compared
with the settings the tuning chose."""

from __future__ import annotations

import json

import pytest
from evalkit import WORLD_TOML
from typer.testing import CliRunner

from portraitist.cli.app import app
from portraitist.errors import PortraitistError
from portraitist.evaluate.config import EvaluateConfig
from portraitist.evaluate.settings import read_settings
from portraitist.train.recipes import get_recipe
from portraitist.workspace import Workspace
from portraitist.world.settings import WorldSettings
from portraitist.world.sweep import Trial, check_people, refinements, round_two, scaled_stages

SWEEP_TOML = (
    WORLD_TOML
    + """scene_checks = [{shirt = "green"}]
sweep_people = [100]
sweep_factors = [1.0, 100.0]
sweep_splits = [0.5]
"""
)


def test_round_one_scales_every_rate_and_round_two_moves_the_split_or_the_rate():
    staged = get_recipe("staged")
    stages = scaled_stages(staged, 10.0, 0.2)
    assert [s.share for s in stages] == [0.2, pytest.approx(0.8)]
    assert stages[0].learning_rates == {
        part: pytest.approx(rate * 10) for part, rate in staged.stages[0].learning_rates.items()
    }
    assert staged.stages[0].share == 0.4  # the shipped recipe is untouched

    settings = WorldSettings(sweep_factors=[1, 10, 100, 1000], sweep_splits=[0.2, 0.6])
    best = Trial("staged", 1, 100.0, None)
    assert round_two(staged, best, settings) == [
        Trial("staged", 2, 100.0, 0.2),
        Trial("staged", 2, 100.0, 0.6),
    ]
    # a one-stage recipe has no split: as many trials half a grid step either side of its best rate
    single = round_two(get_recipe("lora"), Trial("lora", 1, 10.0, None), settings)
    assert [t.factor for t in single] == [pytest.approx(10 * 10**0.5), pytest.approx(10 / 10**0.5)]
    assert refinements(1.0, [1, 10, 100], 4) == pytest.approx([10**0.25, 10**-0.25, 10**0.5, 10**-0.5])


def test_the_sweep_never_tunes_on_a_compared_person():
    config = EvaluateConfig.model_validate({"world": {"people": 5, "sweep_people": [4, 100]}})
    with pytest.raises(PortraitistError, match="Held-out people 4 would be both tuned on and compared"):
        check_people(config)


def test_sweep_then_compare_with_the_chosen_settings(tmp_path, world_base, tiny_judges):
    config = tmp_path / "sweep.toml"
    config.write_text(SWEEP_TOML)
    out = tmp_path / "world-eval"
    result = CliRunner().invoke(
        app,
        ["evaluate", "--world", "--sweep", "--out", str(out), "--base", str(world_base),
         "--recipes", "staged,textual-inversion", "--people", "1", "--seeds", "1", "--steps", "2",
         "--every", "2", "--judges", str(tiny_judges), "--config", str(config)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output

    trials = [json.loads(line) for line in (out / "sweep" / "trials.jsonl").read_text().splitlines()]
    # the same budget for both: two factors, then one more trial (staged: a split; TI: a factor between)
    assert [(t["recipe"], t["round"], t["factor"], t["split"]) for t in trials][:2] == [
        ("staged", 1, 1.0, None),
        ("staged", 1, 100.0, None),
    ]
    assert [(t["recipe"], t["round"]) for t in trials] == [
        ("staged", 1), ("staged", 1), ("staged", 2), ("textual-inversion", 1), ("textual-inversion", 1),
        ("textual-inversion", 2),
    ]  # fmt: skip
    assert trials[2]["split"] == 0.5 and trials[5]["split"] is None
    assert trials[5]["factor"] in (pytest.approx(10.0), pytest.approx(1000.0))  # half a step from the best
    assert all(set(t["final"]) == {"100"} for t in trials)  # tuned on person 100 only

    chosen = json.loads((out / "sweep" / "chosen.json").read_text())
    for recipe in ("staged", "textual-inversion"):
        own = [t for t in trials if t["recipe"] == recipe]
        ranked = max(
            own, key=lambda t: tuple(t["mean"][m] for m in ("face_id", "attribute_match", "scene_match"))
        )
        assert chosen[recipe] == ranked["stages"]
    # the comparison trained with those stages, and says so
    settings = read_settings(Workspace(out / "runs" / "p000-s0"))
    assert settings["recipe_stages"] == chosen
    html = (out / "report.html").read_text()
    assert html.count("--sweep: the best of its trials") == 2
