"""The world's settings live in world/settings.py, added to evaluate's and rank's own tables: a TOML
file sets them where a user would look, and a misspelt one is refused as any other setting is."""

from __future__ import annotations

from pathlib import Path

import pytest

from portraitist.config import load_config, updated
from portraitist.errors import PortraitistError
from portraitist.evaluate.config import EvaluateConfig
from portraitist.pipeline import RunConfig
from portraitist.rank.config import RankConfig
from portraitist.world.settings import WorldSettings, world_judges, world_settings


def test_evaluate_world_and_rank_world_judges_come_from_their_toml_tables(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(
        '[evaluate]\nevery = 50\n[evaluate.world]\npeople = 2\n[evaluate.scoring]\nworld_judges = "j"\n'
        '[rank]\nworld_judges = "judges"\n'
    )
    evaluate = load_config(EvaluateConfig, path, "evaluate")
    assert evaluate.every == 50 and world_settings(evaluate).people == 2
    assert world_judges(evaluate.scoring) == Path("j")
    assert world_judges(load_config(RankConfig, path, "rank")) == Path("judges")
    assert world_judges(RunConfig.model_validate({"rank": {"world_judges": "judges"}}).rank) == Path("judges")
    # unset, they take their defaults; they are dumped and copied with the stage's own settings
    assert world_settings(EvaluateConfig()) == WorldSettings() and world_judges(RankConfig()) is None
    assert world_settings(updated(evaluate, every=25)).people == 2
    assert RankConfig(world_judges="judges").model_dump()["world_judges"] == Path("judges")


def test_a_misspelt_or_invalid_world_setting_is_named(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("[evaluate.world]\npeeple = 2\n")
    with pytest.raises(PortraitistError, match=r"world\.peeple: Extra inputs are not permitted"):
        load_config(EvaluateConfig, path, "evaluate")
    path.write_text("[evaluate.world]\npeople = 0\n")
    with pytest.raises(PortraitistError, match=r"world\.people: Input should be greater than or equal to 1"):
        load_config(EvaluateConfig, path, "evaluate")
    with pytest.raises(PortraitistError, match="wrld: Extra inputs"):
        load_config(EvaluateConfig, None, "evaluate", wrld={"people": 2})
