"""Curves per recipe from one or several workspaces' records: the mean at each step and the
spread (sample standard deviation) over the workspaces that measured it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from portraitist.evaluate.metrics import METRICS
from portraitist.evaluate.records import CheckpointRecord, evaluation_overhead


@dataclass
class Curve:
    recipe: str
    steps: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # mean training seconds at each step
    mean: dict[str, list[float | None]] = field(default_factory=dict)
    spread: dict[str, list[float | None]] = field(default_factory=dict)  # None with fewer than two values
    runs: list[int] = field(default_factory=list)  # workspaces that measured each step
    overhead: float | None = None  # evaluation seconds per training second, mean over workspaces


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else None


def build_curves(runs: list[list[CheckpointRecord]]) -> dict[str, Curve]:
    """One curve per recipe, in the order the recipes first appear; `runs` holds each workspace's records."""
    grouped: dict[str, dict[int, list[CheckpointRecord]]] = {}
    for records in runs:
        for record in records:
            grouped.setdefault(record.recipe, {}).setdefault(record.step, []).append(record)
    curves = {}
    for recipe, by_step in grouped.items():
        curve = Curve(recipe, mean={m.name: [] for m in METRICS}, spread={m.name: [] for m in METRICS})
        for step in sorted(by_step):
            group = by_step[step]
            curve.steps.append(step)
            curve.seconds.append(float(np.mean([r.train_seconds for r in group])))
            curve.runs.append(len(group))
            for metric in METRICS:
                mean, spread = _stats([v for r in group if (v := r.metrics.get(metric.name)) is not None])
                curve.mean[metric.name].append(mean)
                curve.spread[metric.name].append(spread)
        overheads = [
            o
            for records in runs
            if (o := evaluation_overhead([r for r in records if r.recipe == recipe])) is not None
        ]
        curve.overhead = float(np.mean(overheads)) if overheads else None
        curves[recipe] = curve
    return curves
