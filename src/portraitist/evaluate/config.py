"""Settings of `portraitist evaluate` (TOML section `[evaluate]`, with `[evaluate.train]`,
`[evaluate.scoring]` and `[evaluate.world]` tables for the training, metric-model and world settings)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from portraitist.config import Role, StageConfig
from portraitist.rank.config import RankConfig
from portraitist.train.config import TrainConfig
from portraitist.train.recipes import RECIPES, Stage

# Thesis 1.3: a background, a style and a composition edit (Textual Inversion's prompts).
DEFAULT_EDIT_PROMPTS = ["a photo of {me} on the moon", "an oil painting of {me}", "Elmo holding a {me}"]
# Issue 9: "{me} on a red background" must show a red background, "{me} in a green shirt" a green shirt.
DEFAULT_SCENE_CHECKS = [
    {"background": "red"},
    {"background": "blue"},
    {"shirt": "green"},
    {"shirt": "yellow"},
]


class WorldSettings(StageConfig):
    """`portraitist evaluate --world` (issue 9): which held-out people, how many seeds, what the
    judges check, and the learning-rate sweep that tunes every recipe before the comparison."""

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


class EvaluateConfig(StageConfig):
    """Which recipes to compare, how often to measure them, and with which images and models."""

    recipes: Annotated[list[str], Role.SELECTION] = Field(
        default_factory=lambda: list(RECIPES), description="Training recipes to compare, each trained once."
    )
    every: int = Field(
        250,
        ge=1,
        description="Measure every N training steps. The thesis measured every 50; 250 keeps measuring "
        "under a fifth of the training time it measures (docs/evaluate.md), --every 50 costs 5x that.",
    )
    steps: int | None = Field(
        None,
        ge=1,
        description="Training steps of every recipe (a multiple of `every`); default: each recipe's own.",
    )
    seed: int = Field(
        0, description="Seed of training and of the evaluation images: same seed, same metrics."
    )
    subject_prompt: str = Field(
        "a photo of {me}", description="The prompt of the Image Alignment, LPIPS and identity images."
    )
    subject_images: int = Field(
        2, ge=1, description="Images of the subject prompt per checkpoint (seeds seed+i)."
    )
    edit_prompts: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EDIT_PROMPTS),
        min_length=1,
        description="Text Alignment prompts, one image each; {me} is the subject, and is removed for CLIP.",
    )
    sampling_steps: int = Field(
        6,
        ge=1,
        description="Euler steps per evaluation image (all images of a checkpoint in one sampler call).",
    )
    guidance: float = Field(7.0, ge=1.0, description="Classifier-free guidance of the evaluation images.")
    train: TrainConfig = Field(
        default_factory=TrainConfig,
        description="Training settings of every recipe (evaluate sets the recipe, steps, seed, validation).",
    )
    scoring: RankConfig = Field(
        default_factory=RankConfig,
        description="The metric models: clip_model, lpips_net, lpips_backbone, lpips_size, face_upsample, "
        "aesthetic_weights, device (rank's settings; its order and k do not apply).",
    )
    recipe_stages: dict[str, list[Stage]] = Field(
        default_factory=dict,
        description="Per recipe, stages (learning rates, shares) replacing its own: what `--world --sweep` chose.",
    )
    # the --world driver's: what of it reaches one evaluation's numbers, its metric set reports itself
    world: Annotated[WorldSettings, Role.SELECTION] = Field(
        default_factory=WorldSettings, description="`--world` only: people, seeds, judges' checks, sweep."
    )
    restart: Annotated[bool, Role.RUNTIME] = Field(
        False, description="Delete WS/eval/ and evaluate from scratch instead of resuming."
    )

    @field_validator("recipes", mode="before")
    @classmethod
    def _split_recipes(cls, value: object) -> object:
        return (
            [name.strip() for name in value.split(",") if name.strip()] if isinstance(value, str) else value
        )

    @field_validator("recipes")
    @classmethod
    def _known_recipes(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in RECIPES]
        if unknown or not value:
            raise ValueError(
                f"unknown recipe {', '.join(unknown) or '(none given)'}; choose from {', '.join(RECIPES)}"
            )
        return list(dict.fromkeys(value))

    @field_validator("recipe_stages")
    @classmethod
    def _stages_of_known_recipes(cls, value: dict[str, list[Stage]]) -> dict[str, list[Stage]]:
        unknown = [name for name in value if name not in RECIPES]
        if unknown:
            raise ValueError(f"recipe_stages names unknown recipe {', '.join(unknown)}")
        return value
