"""Every stage's settings refuse what they do not know: a misspelt setting is an error, not a silent
default."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from portraitist.config import load_config
from portraitist.errors import PortraitistError
from portraitist.generate.config import GenerateConfig, SwapConfig
from portraitist.pipeline import RunConfig
from portraitist.prepare.config import PrepareConfig
from portraitist.rank.config import RankConfig
from portraitist.train.config import TrainConfig
from portraitist.upscale.config import UpscaleConfig

CONFIGS = [PrepareConfig, TrainConfig, GenerateConfig, SwapConfig, RankConfig, UpscaleConfig, RunConfig]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.__name__)
def test_unknown_setting_is_refused(config: type) -> None:
    with pytest.raises(ValidationError, match="seeed"):
        config(seeed=1)


def test_misspelt_setting_in_a_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("[train]\nlearning_rate = 1e-5\n")  # the field is learning_rates
    with pytest.raises(PortraitistError, match="learning_rate"):
        load_config(TrainConfig, path, "train")


def test_runs_clip_model_reaches_every_stage_that_uses_clip() -> None:
    stages = RunConfig(clip_model="tiny").stage_configs()
    assert stages["prepare"].clip_model == stages["rank"].clip_model == "tiny"
    own = RunConfig(prepare={"clip_model": "./my-clip"}).stage_configs()  # without it, each stage's own
    assert own["prepare"].clip_model == "./my-clip" and own["rank"].clip_model == RankConfig().clip_model
