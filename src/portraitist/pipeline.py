"""`portraitist run`: prepare -> train -> generate -> rank -> upscale, resumable.

Finished stages are recorded in WS/run.json and skipped when the same run is started again;
training resumes from its own checkpoint. So rerunning after a crash, a kill or a cancelled
service job continues from the last finished stage (issue 6, issue 7's worker).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from portraitist.config import MAX_SEED, StageConfig, updated
from portraitist.errors import PortraitistError
from portraitist.generate.config import GenerateConfig
from portraitist.generate.stage import generate
from portraitist.models.loading import DEFAULT_BASE
from portraitist.prepare.config import PrepareConfig
from portraitist.prepare.stage import prepare
from portraitist.progress import ProgressCallback, ProgressEvent, no_progress
from portraitist.rank.config import RankConfig
from portraitist.rank.stage import rank
from portraitist.report import write_report
from portraitist.train.config import TrainConfig
from portraitist.train.stage import TrainResult, train
from portraitist.upscale.config import UpscaleConfig
from portraitist.upscale.stage import upscale
from portraitist.workspace import Workspace, write_json_atomic

STAGES = ("prepare", "train", "generate", "rank", "upscale")
DEFAULT_STYLES = ["photo", "oil-painting", "cinematic", "pencil-sketch"]


class RunConfig(StageConfig):
    """One whole job: the shortcuts most users set, and each stage's full settings."""

    base: str = Field(
        DEFAULT_BASE,
        description="Base model: diffusers folder, .safetensors file, hub id, `tiny`, or `world` (docs/world.md).",
    )
    vae: str | None = Field(None, description="Optional VAE override, e.g. stabilityai/sd-vae-ft-mse (thesis 2.4.2).")
    recipe: str | None = Field(None, description="Training recipe (default: staged, the thesis's).")
    steps: int | None = Field(None, ge=1, description="Training steps (default: the recipe's).")
    styles: list[str] = Field(default_factory=lambda: list(DEFAULT_STYLES), description="Style presets to generate.")
    prompts: list[str] = Field(
        default_factory=list,
        description="Your own prompts, generated beside the styles; {me} stands for you, "
        "e.g. 'a photo of {me} on a red background'.",
    )
    n: int = Field(32, ge=1, description="Images generated in all, shared among the styles and prompts.")
    k: int = Field(4, ge=1, description="Best images kept and upscaled.")
    scale: int | None = Field(None, description="Upscale factor, 2 or 4 (default 2).")
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
        train: dict[str, Any] = {"seed": self.seed}
        if self.recipe:
            train["recipe"] = self.recipe
        if self.steps:
            train["steps"] = self.steps
        upscale = {"scale": self.scale} if self.scale else {}
        return {
            "prepare": updated(self.prepare, seed=self.seed),
            "train": updated(self.train, **train),
            "generate": updated(self.generate, vae=self.vae or self.generate.vae),
            "rank": updated(self.rank, k=self.k),
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


@dataclass(frozen=True)
class RunResult:
    workspace: Workspace
    selected: list[Path]
    report: Path
    skipped: list[str]
    seconds: dict[str, float]  # wall-clock seconds of each step this call ran (models loading included)
    training_resumed_from: int | None  # the checkpoint step, when this run continued a training


def _state_path(workspace: Workspace) -> Path:
    return workspace.root / "run.json"


def _read_state(workspace: Workspace) -> dict[str, Any]:
    path = _state_path(workspace)
    return json.loads(path.read_text()) if path.exists() else {}


def read_done(workspace: Workspace) -> list[str]:
    """Stages (and generate's styles, as `generate:<style>`) this workspace has finished."""
    return list(_read_state(workspace).get("done", []))


def read_seconds(workspace: Workspace) -> dict[str, float]:
    """Wall-clock seconds each finished step took, for the report and `portraitist bench run`."""
    return dict(_read_state(workspace).get("seconds", {}))


def run_pipeline(
    workspace: Workspace,
    photos: Sequence[Path] | None,
    config: RunConfig,
    progress: ProgressCallback = no_progress,
    boxes: Path | None = None,
) -> RunResult:
    """Run every stage not yet finished; an exception from `progress` stops the run there.

    boxes: the photos' face boxes and masks for prepare (`prepare --boxes`, prepare/boxes.py).
    """
    configs = config.stage_configs()
    done = read_done(workspace)
    seconds = read_seconds(workspace)
    skipped = list(done)
    ran: dict[str, float] = {}

    def step(name: str, work: Any) -> None:
        if name in done:
            return
        start = time.perf_counter()
        work()
        ran[name] = seconds[name] = time.perf_counter() - start
        done.append(name)
        write_json_atomic(_state_path(workspace), {"done": done, "seconds": seconds})
        progress(ProgressEvent("run", len(done), None, f"{name} done"))

    if "prepare" not in done and not photos:
        raise PortraitistError(
            f"{workspace.root} has no prepared dataset yet: give the photos, "
            f"e.g. `portraitist run ~/Pictures/me/*.jpg --workspace {workspace.root} --base MODEL`."
        )
    step("prepare", lambda: prepare(workspace, list(photos or []), configs["prepare"], progress, boxes))
    trained: list[TrainResult] = []
    step("train", lambda: trained.append(train(workspace, configs["train"], config.base, progress)))
    for name, settings in config.generation_requests():
        request = configs["generate"].model_copy(update=settings)
        step(name, lambda c=request: generate(workspace, c, progress))
    step("rank", lambda: rank(workspace, configs["rank"], progress))
    step("upscale", lambda: upscale(workspace, configs["upscale"], progress))
    report = write_report(workspace)
    selected_dir = workspace.outputs_dir / "selected"
    selected = sorted(selected_dir.glob("*.png")) if selected_dir.exists() else []
    resumed = trained[0].resumed_from if trained else None
    return RunResult(workspace, selected, report, skipped, ran, resumed)

