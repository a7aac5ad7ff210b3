"""`portraitist evaluate --world --sweep`: tune every recipe the same way before comparing them, so
that a comparison of recipes is not a comparison of how well each one happened to be tuned.

Fair means the same for every recipe: the same number of trials, each the full number of steps,
on the same held-out people (never among the compared ones), with the same seed, chosen by the
same numbers (the final face_id, mean over those people; ties broken by the attribute and
scene matches):

- round 1: the recipe's learning rates, every part's, times each of `sweep_factors` (ratios
  between its parts kept, e.g. the staged recipe's new tokens 25x its networks');
- round 2, as many trials as `sweep_splits` has entries: a recipe of two or more stages (the
  staged one) tries those shares of its first stage at round 1's best factor; a one-stage
  recipe, which has no split, tries factors between round 1's best and its neighbours instead.

The best of both rounds becomes the recipe's `recipe_stages` in the comparison.

    OUT/sweep/runs/<recipe>/<trial>/p100/   one evaluation per trial and person, measured at the end
    OUT/sweep/trials.jsonl                   every trial's final metrics, per person and their means
    OUT/sweep/chosen.json                    each recipe's chosen stages
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from portraitist.errors import PortraitistError
from portraitist.evaluate.config import EvaluateConfig
from portraitist.evaluate.metrics import Values
from portraitist.evaluate.stage import copy_dataset, evaluate, recipe_steps
from portraitist.progress import ProgressCallback, ProgressEvent, no_progress
from portraitist.train.recipes import Recipe, Stage
from portraitist.workspace import write_bytes_atomic, write_json_atomic
from portraitist.world.evaluate import (
    CHOSEN_FILE,
    SWEEP_DIR,
    check_settings,
    judges_for,
    prepare_person,
    untuned_recipe,
    weights_id,
    world_metrics,
)
from portraitist.world.settings import WorldSettings, world_settings
from portraitist.world.threads import torch_threads

STAGE = "sweep"
# Trials are ranked by the first metric, the others break ties (an undertrained base, or too few
# steps, gives every trial face_id 0: no image passes the face gate).
SELECT_BY = ("face_id", "attribute_match", "scene_match")
TRIALS_FILE = "trials.jsonl"


@dataclass(frozen=True)
class Trial:
    """One setting of one recipe: its rates times `factor`, its first stage's share `split`
    (None: its own)."""

    recipe: str
    round: int
    factor: float
    split: float | None

    @property
    def name(self) -> str:
        return f"lr-x{self.factor:.4g}" + ("" if self.split is None else f"-split-{self.split:.3g}")


def scaled_stages(recipe: Recipe, factor: float, split: float | None) -> list[Stage]:
    """The recipe's stages with every rate times `factor`; with `split`, the first stage takes that
    share of the steps and the others share the rest in their own proportions."""
    stages = [stage.model_copy(deep=True) for stage in recipe.stages]
    for stage in stages:
        stage.learning_rates = {part: rate * factor for part, rate in stage.learning_rates.items()}
    if split is not None and len(stages) > 1:
        rest = sum(stage.share for stage in stages[1:])
        for stage in stages[1:]:
            stage.share = stage.share / rest * (1 - split)
        stages[0].share = split
    return stages


def refinements(best: float, factors: list[float], count: int) -> list[float]:
    """`count` factors around `best`, within half a grid step on either side, alternating sides:
    best * q**(1/2), best * q**(-1/2) for two (q: the grid's ratio between neighbours)."""
    ratio = (factors[-1] / factors[0]) ** (1 / (len(factors) - 1))
    half = (count + 1) // 2
    return [best * ratio ** ((-1) ** i * 0.5 * (1 + i // 2) / half) for i in range(count)]


def round_one(recipe: str, world: WorldSettings) -> list[Trial]:
    return [Trial(recipe, 1, factor, None) for factor in world.sweep_factors]


def round_two(recipe: Recipe, best: Trial, world: WorldSettings) -> list[Trial]:
    count = len(world.sweep_splits)
    if len(recipe.stages) > 1:
        return [Trial(recipe.name, 2, best.factor, split) for split in world.sweep_splits]
    return [
        Trial(recipe.name, 2, factor, None) for factor in refinements(best.factor, world.sweep_factors, count)
    ]


@dataclass
class TrialResult:
    trial: Trial
    stages: list[Stage]
    finals: dict[int, Values]  # held-out person -> the metrics at the trial's last step

    def mean(self, metric: str) -> float | None:
        values = [v for finals in self.finals.values() if (v := finals.get(metric)) is not None]
        return float(np.mean(values)) if len(values) == len(self.finals) else None

    @property
    def score(self) -> tuple[float, ...]:
        """SELECT_BY's means over the people, for ranking; an undefined one ranks last."""
        return tuple(-math.inf if (m := self.mean(name)) is None else m for name in SELECT_BY)


def check_people(config: EvaluateConfig) -> None:
    world = world_settings(config)
    compared = set(range(world.people))
    shared = sorted(compared & set(world.sweep_people))
    if shared:
        raise PortraitistError(
            f"Held-out people {', '.join(map(str, shared))} would be both tuned on and compared: tuning must "
            f"not see the compared people. Set [evaluate.world] sweep_people to indices of {world.people} "
            "or more."
        )


def sweep(
    out: Path, config: EvaluateConfig, base: str, progress: ProgressCallback = no_progress
) -> dict[str, list[Stage]]:
    """Tune every recipe of config.recipes (module docstring); returns and writes each one's chosen stages."""
    check_people(config)
    check_settings(config)
    with torch_threads(world_settings(config).threads):
        return _sweep(out.expanduser().resolve(), config, base, progress)


def _sweep(
    out: Path, config: EvaluateConfig, base: str, progress: ProgressCallback
) -> dict[str, list[Stage]]:
    world = world_settings(config)
    folder = out / SWEEP_DIR
    judges, judges_path = judges_for(world)
    people = {k: prepare_person(out, k, world, progress) for k in world.sweep_people}
    base_weights = weights_id(base)
    measures = {k: world_metrics(k, world, judges, judges_path, base_weights) for k in world.sweep_people}
    total = len(config.recipes) * (len(world.sweep_factors) + len(world.sweep_splits)) * len(people)
    done = 0
    results: list[TrialResult] = []

    def run(trial: Trial) -> TrialResult:
        nonlocal done
        recipe = untuned_recipe(config, trial.recipe)
        stages = scaled_stages(recipe, trial.factor, trial.split)
        steps = recipe_steps(config, trial.recipe)
        trial_config = config.model_copy(
            update={
                "recipes": [trial.recipe],
                "recipe_stages": {trial.recipe: stages},
                "every": steps,
                "seed": 0,
            }
        )
        finals: dict[int, Values] = {}
        for k, prepared in people.items():
            progress(ProgressEvent(STAGE, done, total, f"{trial.recipe} {trial.name}, person {k}"))
            workspace = copy_dataset(prepared, folder / "runs" / trial.recipe / trial.name / f"p{k:03d}")
            result = evaluate(workspace, trial_config, base, progress, measures[k], report=False)
            finals[k] = max(result.records, key=lambda r: r.step).metrics
            done += 1
        found = TrialResult(trial, stages, finals)
        results.append(found)
        write_trials(folder, results)
        return found

    chosen: dict[str, list[Stage]] = {}
    for name in config.recipes:
        first = [run(trial) for trial in round_one(name, world)]
        best = max(first, key=lambda r: r.score)
        second = [run(trial) for trial in round_two(untuned_recipe(config, name), best.trial, world)]
        chosen[name] = max(first + second, key=lambda r: r.score).stages
    progress(ProgressEvent(STAGE, total, total, "chosen"))
    write_json_atomic(
        folder / CHOSEN_FILE,
        {name: [stage.model_dump(mode="json") for stage in stages] for name, stages in chosen.items()},
    )
    return chosen


def write_trials(folder: Path, results: list[TrialResult]) -> None:
    lines = [
        json.dumps(
            {
                "recipe": r.trial.recipe,
                "trial": r.trial.name,
                "round": r.trial.round,
                "factor": r.trial.factor,
                "split": r.trial.split,
                "final": {str(k): finals for k, finals in r.finals.items()},
                "mean": {name: r.mean(name) for name in SELECT_BY},
                "stages": [stage.model_dump(mode="json") for stage in r.stages],
            }
        )
        + "\n"
        for r in results
    ]
    write_bytes_atomic(folder / TRIALS_FILE, "".join(lines).encode())
