"""The evaluate stage: each recipe trained once, on the same dataset with the same seed, and
measured every N steps (thesis 2.3, Fig. 11).

Measuring happens inside the one training run, through train's validation hook: at each
checkpoint the model under training samples the fixed evaluation set with generate's sampler,
and a metric set scores it (metrics.py: the ranking's models for a user's photos; the world's
judges for `--world`, world/metrics.py). Nothing is trained or sampled twice, and a run of N steps
is the same run with or without the evaluation (its RNG draws are per step).

    WS/eval/settings.json     what the numbers depend on (settings.py)
    WS/eval/metrics.jsonl     one line per recipe x checkpoint (records.py)
    WS/eval/<recipe>/         the recipe's own workspace: dataset/ (a copy), model/
    WS/eval/<recipe>/images/step000050/subject-0.png ...
    WS/eval/plots/, WS/eval/report.html
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from portraitist.errors import PortraitistError
from portraitist.evaluate.config import EvaluateConfig
from portraitist.evaluate.metrics import MetricSet, PhotoMetrics
from portraitist.evaluate.prompts import EvalImage
from portraitist.evaluate.records import (
    METRICS_FILE,
    CheckpointRecord,
    eval_dir,
    evaluation_overhead,
    read_records,
    write_records,
)
from portraitist.evaluate.report import write_evaluation_report
from portraitist.evaluate.settings import check_settings, fingerprint
from portraitist.generate.prompts import expand
from portraitist.generate.txt2img import txt2img
from portraitist.models.loading import StableDiffusion, eval_mode, resolved_base
from portraitist.progress import ProgressCallback, ProgressEvent, no_progress
from portraitist.train import checkpoint
from portraitist.train.recipes import get_recipe
from portraitist.train.stage import TrainingState, train
from portraitist.workspace import Workspace, atomic_dir

STAGE = "evaluate"


@dataclass
class EvaluateResult:
    records: list[CheckpointRecord]  # every recipe x checkpoint measured so far, this call's and earlier ones
    measured: int  # checkpoints this call measured (the others were in metrics.jsonl)
    report: Path | None  # None when the caller writes its own (the world's merged report)
    overhead: float | None  # evaluation seconds per training second


def recipe_steps(config: EvaluateConfig, recipe: str) -> int:
    total = config.steps or get_recipe(recipe).steps
    if total % config.every:
        raise PortraitistError(
            f"The {recipe} recipe would train {total} steps, which is not a multiple of --every "
            f"{config.every}, so its last steps would go unmeasured. Give --steps as a multiple of --every."
        )
    return total


def checkpoint_steps(config: EvaluateConfig, recipe: str) -> list[int]:
    return list(range(config.every, recipe_steps(config, recipe) + 1, config.every))


def copy_dataset(source: Workspace, root: Path) -> Workspace:
    """A workspace at `root` holding a copy of source's dataset/ (copied whole, then renamed into
    place); a copy of another dataset is replaced, so the settings check sees the change."""
    workspace = Workspace(root)
    current = workspace.manifest_path.exists() and (
        workspace.manifest_path.read_bytes() == source.manifest_path.read_bytes()
    )
    if not current:
        with atomic_dir(workspace.dataset_dir) as partial:
            shutil.copytree(source.dataset_dir, partial, dirs_exist_ok=True)
    return workspace


def _drop_checkpoints_from(sub: Workspace, step: int) -> None:
    """Remove training checkpoints at or after `step`, the first unmeasured checkpoint.

    Training writes its checkpoint before the validation hook runs; a run killed while
    measuring step s would resume after s and never measure it. From the checkpoint before,
    train re-runs those steps to the same weights (resume is exact)."""
    for path in checkpoint.list_checkpoints(sub):
        match = checkpoint.NAME.match(path.name)
        if match and int(match.group(1)) >= step:
            shutil.rmtree(path)


@contextmanager
def _sampling(model: StableDiffusion) -> Iterator[None]:
    """Eval mode for the sampler, the training modes back afterwards; bf16 autocast on GPUs that
    have it (training keeps fp32 weights there), while on a CPU the weights are already what
    training computes in."""
    device = model.unet.device
    fast = device.type == "cuda" and torch.cuda.is_bf16_supported()
    with eval_mode(model), torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
        yield


def generate_set(
    model: StableDiffusion, subject: str, images: list[EvalImage], config: EvaluateConfig
) -> list[Image.Image]:
    """The evaluation set from the model as it is: one sampler call, one prompt and seed per image."""
    size = (model.resolution, model.resolution)
    prompts = [expand(image.template, subject) for image in images]
    seeds = [image.seed for image in images]
    with _sampling(model):
        return txt2img(model, prompts, "", seeds, size, config.sampling_steps, config.guidance)


@dataclass
class _Evaluation:
    """What every recipe's measurements share."""

    workspace: Workspace
    config: EvaluateConfig
    base: str
    plan: dict[str, list[int]]  # recipe -> steps to measure
    records: list[CheckpointRecord]
    progress: ProgressCallback
    measures: MetricSet
    loaded: bool = False
    measured: int = 0

    @property
    def path(self) -> Path:
        return eval_dir(self.workspace) / METRICS_FILE

    def done(self, recipe: str) -> dict[int, CheckpointRecord]:
        return {r.step: r for r in self.records if r.recipe == recipe}

    def report(self, message: str) -> None:
        total = sum(len(steps) for steps in self.plan.values())
        finished = sum(len(set(steps) & set(self.done(recipe))) for recipe, steps in self.plan.items())
        self.progress(ProgressEvent(STAGE, finished, total, message))

    def models(self) -> None:
        """The metric models and their references, loaded once, when first needed."""
        if not self.loaded:
            self.report("loading the metric models")
            self.measures.load(self.workspace)
            self.loaded = True

    def measure(
        self, recipe: str, sub: Workspace, images: list[EvalImage], state: TrainingState, since: float
    ) -> CheckpointRecord:
        """Sample the evaluation set from the model under training, save it, score it; `since` is
        when the recipe's evaluation began on the perf_counter clock (earlier runs' time included)."""
        self.models()
        clock = time.perf_counter()
        pictures = generate_set(state.model, state.subject, images, self.config)
        folder = sub.root / "images" / f"step{state.step:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for image, picture in zip(images, pictures):
            picture.save(folder / f"{image.name}.png")
            files.append(self.workspace.relative(folder / f"{image.name}.png"))
        sampled = time.perf_counter()
        values = self.measures.score(images, pictures)
        return CheckpointRecord(
            recipe=recipe,
            step=state.step,
            steps=self.plan[recipe][-1],
            seed=self.config.seed,
            metrics=values,
            train_seconds=round(state.seconds, 3),
            generate_seconds=round(sampled - clock, 3),
            metric_seconds=round(time.perf_counter() - sampled, 3),
            wall_seconds=round(time.perf_counter() - since, 3),
            images=files,
        )

    def tuned(self, recipe: str) -> dict[str, Any]:
        """Training settings of a recipe with `recipe_stages`: those stages, rates included, as they are."""
        stages = self.config.recipe_stages.get(recipe)
        return {"stages": stages, "learning_rates": {}} if stages else {}

    def run_recipe(self, recipe: str) -> None:
        sub = copy_dataset(self.workspace, eval_dir(self.workspace) / recipe)
        missing = [step for step in self.plan[recipe] if step not in self.done(recipe)]
        if not missing:
            checkpoint.clear(sub)
            return
        self.models()  # loaded before training, so its time is not counted as the first checkpoint's
        _drop_checkpoints_from(sub, missing[0])
        images = self.measures.evaluation_set(self.config)
        since = time.perf_counter() - max((r.wall_seconds for r in self.done(recipe).values()), default=0.0)

        def measure(state: TrainingState) -> None:
            if state.step not in missing:  # measured before this run resumed
                return
            self.records.append(self.measure(recipe, sub, images, state, since))
            write_records(self.path, self.records)
            self.measured += 1
            self.report(f"{recipe} step {state.step}")

        train_config = self.config.train.model_copy(
            update=dict(
                base=self.base,
                recipe=recipe,
                **self.tuned(recipe),
                steps=self.plan[recipe][-1],
                seed=self.config.seed,
                validate_every=self.config.every,
                keep_checkpoints=max(2, self.config.train.keep_checkpoints),  # one before a dropped one
                restart=False,
            )
        )
        self.report(f"training {recipe}")
        train(sub, train_config, self.progress, validate=measure)
        checkpoint.clear(sub)  # every step is measured: nothing left to resume


def evaluate(
    workspace: Workspace,
    config: EvaluateConfig,
    base: str,
    progress: ProgressCallback = no_progress,
    measures: MetricSet | None = None,
    report: bool = True,
) -> EvaluateResult:
    """Train and measure every recipe of config.recipes (resuming what WS/eval/ holds) with
    `measures` (default: the photo metrics of config.scoring); write WS/eval/report.html if `report`."""
    workspace.read_manifest()  # a clear error before anything else when `prepare` has not run
    measures = measures or PhotoMetrics(config.scoring)
    base = resolved_base(base)
    folder = eval_dir(workspace)
    if config.restart:
        shutil.rmtree(folder, ignore_errors=True)
    plan = {recipe: checkpoint_steps(config, recipe) for recipe in config.recipes}
    records = read_records(folder / METRICS_FILE)
    settings = fingerprint(workspace, config, base, measures.settings(), measures.evaluation_set(config))
    check_settings(folder, settings, measured=bool(records))
    run = _Evaluation(workspace, config, base, plan, records, progress, measures)
    run.report("starting")
    for recipe in config.recipes:
        run.run_recipe(recipe)
    written = write_evaluation_report(workspace) if report else None
    run.report("done")
    return EvaluateResult(run.records, run.measured, written, evaluation_overhead(run.records))
