"""What a rerun, a resumed training and a resumed evaluation must match follows the roles marked on the
config fields (config.py's Role): each fingerprint holds exactly the fields whose role it does not
ignore, and a field nobody marked is in all of them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, create_model

from portraitist.config import (
    EVALUATION,
    RERUN,
    RESUME,
    Role,
    StageConfig,
    compared_settings,
    role,
    setting_fields,
)
from portraitist.evaluate.config import EvaluateConfig
from portraitist.evaluate.settings import SET_PER_RECIPE, fingerprint
from portraitist.generate.config import GenerateConfig, SwapConfig
from portraitist.prepare.config import PrepareConfig
from portraitist.rank.config import RankConfig
from portraitist.run_config import RunConfig
from portraitist.train.config import TrainConfig
from portraitist.train.recipes import get_recipe
from portraitist.train.stage import _fingerprint
from portraitist.upscale.config import UpscaleConfig
from portraitist.workspace import Workspace
from portraitist.world.pretrain import PretrainConfig

STAGES = [PrepareConfig, TrainConfig, GenerateConfig, SwapConfig, RankConfig, UpscaleConfig]


def compared(model: type[BaseModel], ignoring: frozenset[Role]) -> set[str]:
    """The settings of `model` (plug-ins' included) whose marked role `ignoring` does not hold."""
    return {name for name, field in setting_fields(model).items() if role(field) not in ignoring}


@pytest.mark.parametrize("model", STAGES, ids=lambda m: m.__name__)
def test_a_rerun_compares_every_setting_but_the_runtime_ones(model: type[StageConfig]) -> None:
    assert set(model().output_settings()) == compared(model, RERUN)


def test_a_training_resumes_on_the_settings_that_shape_its_weights() -> None:
    planned = {"base", "total_steps", "precision", "recipe"}  # what the run adds: `steps` come as the total
    checkpoint = _fingerprint(TrainConfig(), get_recipe("staged"), 10, "tiny", "fp32")
    assert set(checkpoint) == compared(TrainConfig, RESUME) | planned
    assert {"steps", "save_dtype", "device", "checkpoint_every"}.isdisjoint(checkpoint)


def test_a_pretraining_resumes_on_the_settings_that_shape_its_trajectory() -> None:
    assert set(PretrainConfig().fingerprint()) == compared(PretrainConfig, RESUME)
    assert {"steps", "budget_minutes", "init_from", "threads"}.isdisjoint(PretrainConfig().fingerprint())


def test_an_evaluation_resumes_on_the_settings_that_move_its_numbers(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    workspace.manifest_path.parent.mkdir(parents=True)
    workspace.manifest_path.write_text("{}")
    settings = fingerprint(workspace, EvaluateConfig(), "tiny", {"kind": "photos"}, [])
    assert set(settings) == compared(EvaluateConfig, EVALUATION) | {"base", "dataset", "measures", "images"}
    assert set(settings["train"]) == compared(TrainConfig, EVALUATION) - set(SET_PER_RECIPE)
    assert set(settings["scoring"]) == compared(RankConfig, EVALUATION)
    assert {"by", "k", "batch_size"}.isdisjoint(settings["scoring"])  # the selection and the speed


def test_a_new_setting_is_in_every_fingerprint_until_it_is_marked() -> None:
    extended = create_model("Extended", __base__=TrainConfig, new_setting=(int, 0))
    for ignoring in (RERUN, RESUME, EVALUATION):
        assert "new_setting" in compared_settings(extended(), ignoring)


def test_nested_configs_leave_out_their_own_marked_fields() -> None:
    settings = compared_settings(RunConfig(), RERUN)
    assert "device" not in settings["train"] and "seed" in settings["train"]
    assert "tile" not in settings["upscale"] and "scale" in settings["upscale"]
