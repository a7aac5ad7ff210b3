"""Settings of `portraitist run`: a few shortcuts and every stage's own settings (a TOML file's
`[prepare]`, `[train]`, ... tables); light to import, for the CLI, whose options are these fields."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from portraitist.config import MAX_SEED, StageConfig, updated
from portraitist.generate.config import GenerateConfig
from portraitist.models.loading import DEFAULT_BASE
from portraitist.prepare.config import PrepareConfig
from portraitist.rank.config import RankConfig
from portraitist.train.config import TrainConfig
from portraitist.train.recipes import RECIPES
from portraitist.upscale.config import UpscaleConfig

DEFAULT_STYLES = ["photo", "oil-painting", "cinematic", "pencil-sketch"]


class RunConfig(StageConfig):
    """One whole job: the shortcuts most users set, and each stage's full settings."""

    base: str = Field(
        DEFAULT_BASE,
        description="Base model: diffusers folder, .safetensors file, hub id, `tiny`, or `world` "
        "(docs/world.md).",
    )
    vae: str | None = Field(
        None, description="Optional VAE override, e.g. stabilityai/sd-vae-ft-mse (thesis 2.4.2)."
    )
    recipe: str | None = Field(
        None, description=f"Training recipe: one of {', '.join(RECIPES)} (default: the train stage's own)."
    )
    steps: int | None = Field(None, ge=1, description="Training steps (default: the recipe's).")
    styles: list[str] = Field(
        default_factory=lambda: list(DEFAULT_STYLES),
        description="Style presets to generate (on the command line, names separated by commas).",
    )
    prompts: list[str] = Field(
        default_factory=list,
        description="Your own prompts, generated beside the styles; {me} stands for you, e.g. 'a photo "
        "of {me} on a red background'. On the command line --prompt, repeated for several; with no "
        "--styles, only the prompts are generated.",
    )
    n: int = Field(32, ge=1, description="Images generated in all, shared among the styles and prompts.")
    k: int = Field(4, ge=1, description="Best images kept and upscaled.")
    clip_model: str | None = Field(
        None,
        description="CLIP of every stage that uses one (prepare's class word, rank's scorers): hub id, "
        "folder, or `tiny` offline (default: each stage's own).",
    )
    scale: int | None = Field(None, description="Upscale factor, 2 or 4 (default: the upscale stage's own).")
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="Seed of every stage: same photos and seed, same portraits."
    )
    prepare: PrepareConfig = Field(default_factory=PrepareConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    rank: RankConfig = Field(default_factory=RankConfig)
    upscale: UpscaleConfig = Field(default_factory=UpscaleConfig)

    def stage_configs(self) -> dict[str, BaseModel]:
        """Each stage's config with the shortcuts applied."""
        train: dict[str, Any] = {"base": self.base, "seed": self.seed}
        if self.recipe:
            train["recipe"] = self.recipe
        if self.steps:
            train["steps"] = self.steps
        upscale = {"scale": self.scale} if self.scale else {}
        clip = {"clip_model": self.clip_model} if self.clip_model else {}
        return {
            "prepare": updated(self.prepare, seed=self.seed, **clip),
            "train": updated(self.train, **train),
            "generate": updated(self.generate, vae=self.vae or self.generate.vae),
            "rank": updated(self.rank, k=self.k, **clip),
            "upscale": updated(self.upscale, **upscale),
        }

    @model_validator(mode="after")
    def _something_to_generate(self) -> RunConfig:
        if not self.styles and not self.prompts:
            raise ValueError("give at least one style or prompt to generate")
        return self

    def generation_requests(self) -> list[tuple[str, dict[str, Any]]]:
        """(step name, generate settings) per style, then per prompt: n split among them, the first
        ones taking the remainder; request i is seeded seed + 1000 i."""
        requests = [(f"generate:{s}", {"style": s, "prompt": None}) for s in self.styles]
        requests += [(f"generate:prompt:{p}", {"style": None, "prompt": p}) for p in self.prompts]
        count, extra = divmod(self.n, len(requests))
        return [
            (name, {**settings, "n": count + (i < extra), "seed": self.seed + 1000 * i})
            for i, (name, settings) in enumerate(requests)
            if count + (i < extra)
        ]
