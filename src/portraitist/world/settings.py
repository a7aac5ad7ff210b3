"""The synthetic world's settings in other stages' tables, declared with `PluggableConfig.add_setting`
(portraitist/config.py) so that `evaluate` and `rank` carry no world setting of their own:

    [evaluate.world]   WorldSettings: who `evaluate --world` compares, with how many seeds, what the
                       judges check, and the sweep that tunes every recipe first (docs/evaluate.md)
    [rank]             world_judges: the judges' folder for identity_model = "world" (docs/rank.md)

Importing this module declares them (world/plugin.py imports it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator

from portraitist.config import Role, StageConfig
from portraitist.evaluate.config import EvaluateConfig
from portraitist.rank.config import RankConfig

# What the scene prompts ask and the judges check: "{me} on a red background" must show a red background,
# "{me} in a green shirt" a green shirt.
DEFAULT_SCENE_CHECKS = [
    {"background": "red"},
    {"background": "blue"},
    {"shirt": "green"},
    {"shirt": "yellow"},
]


class WorldSettings(StageConfig):
    """`portraitist evaluate --world`: which held-out people, how many seeds, what the judges check,
    and the learning-rate sweep that tunes every recipe before the comparison."""

    people: int = Field(5, ge=1, description="Held-out people compared: `world photos --person` 0..N-1.")
    seeds: int = Field(3, ge=1, description="Training seeds per person: 0..N-1.")
    photos: int = Field(8, ge=3, description="Photos of each person to train on (`world photos -n`).")
    photo_size: int = Field(256, ge=64, description="Side of those photos in px (`world photos --size`).")
    references: int = Field(
        16, ge=1, description="Renders of the person in new scenes that face-ID compares the images with."
    )
    scene_checks: list[dict[str, str]] = Field(
        default_factory=lambda: [dict(check) for check in DEFAULT_SCENE_CHECKS],
        min_length=1,
        description="Scene words each text-alignment image must show, one image each, e.g. {background = "
        '"red"} prompts "a photo of {me}, on a red background".',
    )
    threads: int = Field(
        1,
        ge=1,
        description="Torch threads: the world's small model gains little from a second, and on a busy "
        "CPU loses much (docs/evaluate.md).",
    )
    judges: str | None = Field(
        None, description="Folder of the judges (`world judges --out`); default: the committed ones."
    )
    sweep_people: list[int] = Field(
        default_factory=lambda: [100, 101],
        min_length=1,
        description="Held-out people the sweep tunes on: never among the compared ones.",
    )
    sweep_factors: list[float] = Field(
        default_factory=lambda: [1.0, 10.0, 100.0, 1000.0],
        min_length=2,
        description="Sweep round 1: every recipe's learning rates times each factor (ascending, log-spaced).",
    )
    sweep_splits: list[float] = Field(
        default_factory=lambda: [0.2, 0.6],
        description="Sweep round 2, recipes of two or more stages: their first stage's share of the steps, "
        "at the best factor; one-stage recipes get as many refinements of the factor instead.",
    )

    @field_validator("scene_checks")
    @classmethod
    def _not_empty(cls, checks: list[dict[str, str]]) -> list[dict[str, str]]:
        # the words themselves are the renderer's: `evaluate --world` checks them before it starts
        if not all(checks):
            raise ValueError('a scene check names at least one scene word, e.g. {background = "red"}')
        return checks

    @field_validator("sweep_factors")
    @classmethod
    def _ascending(cls, factors: list[float]) -> list[float]:
        if any(f <= 0 for f in factors) or sorted(factors) != factors or len(set(factors)) != len(factors):
            raise ValueError("sweep factors must be positive and ascending")
        return factors

    @field_validator("sweep_splits")
    @classmethod
    def _shares(cls, splits: list[float]) -> list[float]:
        if any(not 0 < s < 1 for s in splits):
            raise ValueError("a split is the first stage's share of the steps, between 0 and 1")
        return splits


EvaluateConfig.add_setting(
    "world",
    # the --world driver's: what of it reaches one evaluation's numbers, its metric set reports itself
    Annotated[WorldSettings, Role.SELECTION],
    Field(default_factory=WorldSettings, description="`--world` only: people, seeds, judges' checks, sweep."),
)
RankConfig.add_setting(
    "world_judges",
    Path | None,
    Field(
        None,
        description="Folder of the world judges for identity_model = world (default: the committed ones).",
    ),
)


def world_settings(config: EvaluateConfig) -> WorldSettings:
    """The [evaluate.world] table of an evaluation's settings."""
    settings: WorldSettings = config.setting("world")
    return settings


def world_judges(config: RankConfig) -> Path | None:
    """rank's world_judges setting."""
    folder: Path | None = config.setting("world_judges")
    return folder
