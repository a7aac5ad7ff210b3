"""Settings of `portraitist evaluate` (TOML section `[evaluate]`, with `[evaluate.train]` and
`[evaluate.scoring]` tables for the training and metric-model settings). A plug-in may add tables of
its own (`PluggableConfig.add_setting`): the synthetic world's `[evaluate.world]` is world/settings.py's."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from portraitist.config import PluggableConfig, Role
from portraitist.rank.config import RankConfig
from portraitist.train.config import TrainConfig
from portraitist.train.recipes import RECIPES, Stage

# Thesis 1.3: a background, a style and a composition edit (Textual Inversion's prompts).
DEFAULT_EDIT_PROMPTS = ["a photo of {me} on the moon", "an oil painting of {me}", "Elmo holding a {me}"]


class EvaluateConfig(PluggableConfig):
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
        description="Per recipe, stages (learning rates, shares) replacing its own: "
        "what `--world --sweep` chose.",
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
