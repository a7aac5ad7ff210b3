"""Curves per recipe from one or several evaluations' records: the mean at each step and a band,
either the spread (sample standard deviation, `--compare`) or a 95% confidence interval of the
mean (Student's t; `--world`, over people x seeds); and, at each step, which recipe leads.

A lead is judged on paired differences: every evaluation (one person, one seed) trained every
recipe, so the leader's value minus the runner-up's in the same evaluation removes what the
person and the seed do to both; the lead is clear when the 95% interval of that difference
excludes zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import stats

from portraitist.evaluate.metrics import Metric
from portraitist.evaluate.records import CheckpointRecord, evaluation_overhead

Band = Literal["sd", "ci95"]
BAND_TEXT = {
    "sd": "± one standard deviation over the evaluations that measured each step",
    "ci95": "± the 95% confidence interval of the mean (Student's t) over the evaluations "
    "that measured each step",
}


@dataclass
class Curve:
    recipe: str
    steps: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # mean training seconds at each step
    mean: dict[str, list[float | None]] = field(default_factory=dict)
    spread: dict[str, list[float | None]] = field(
        default_factory=dict
    )  # the band's half-width; None below two values
    runs: list[int] = field(default_factory=list)  # evaluations that measured each step
    overhead: float | None = None  # evaluation seconds per training second, mean over evaluations


@dataclass(frozen=True)
class Lead:
    """Which recipe leads on one metric at one step, and by how much over the runner-up."""

    step: int
    metric: Metric
    leader: str
    runner_up: str | None  # None: only one recipe measured this step
    margin: float | None  # mean paired difference, leader better by this much (in the metric's direction)
    interval: tuple[float, float] | None  # its 95% interval; None with fewer than two pairs
    pairs: int

    @property
    def clear(self) -> bool:
        """The interval excludes zero: the lead is more than person-to-person and seed-to-seed noise."""
        return self.interval is not None and self.interval[0] > 0


def half_width(values: Sequence[float], band: Band) -> float | None:
    """The band's half-width for a sample: its standard deviation, or t(0.975, n-1) * sd / sqrt(n)."""
    if len(values) < 2:
        return None
    sd = float(np.std(values, ddof=1))
    if band == "sd":
        return sd
    return float(stats.t.ppf(0.975, len(values) - 1) * sd / np.sqrt(len(values)))


def build_curves(
    runs: list[list[CheckpointRecord]], metrics: Sequence[Metric], band: Band = "sd"
) -> dict[str, Curve]:
    """One curve per recipe, in the order the recipes first appear; `runs` holds each evaluation's records."""
    grouped: dict[str, dict[int, list[CheckpointRecord]]] = {}
    for records in runs:
        for record in records:
            grouped.setdefault(record.recipe, {}).setdefault(record.step, []).append(record)
    curves = {}
    for recipe, by_step in grouped.items():
        curve = Curve(recipe, mean={m.name: [] for m in metrics}, spread={m.name: [] for m in metrics})
        for step in sorted(by_step):
            group = by_step[step]
            curve.steps.append(step)
            curve.seconds.append(float(np.mean([r.train_seconds for r in group])))
            curve.runs.append(len(group))
            for metric in metrics:
                values = [v for r in group if (v := r.metrics.get(metric.name)) is not None]
                curve.mean[metric.name].append(float(np.mean(values)) if values else None)
                curve.spread[metric.name].append(half_width(values, band))
        overheads = [
            o
            for records in runs
            if (o := evaluation_overhead([r for r in records if r.recipe == recipe])) is not None
        ]
        curve.overhead = float(np.mean(overheads)) if overheads else None
        curves[recipe] = curve
    return curves


def leads(runs: list[list[CheckpointRecord]], metrics: Sequence[Metric]) -> list[Lead]:
    """At every measured step and for every metric: the recipe with the best mean, and its paired
    margin over the runner-up with a 95% interval (t over the evaluations that measured both)."""
    values: dict[tuple[int, str, str], dict[int, float]] = {}  # (step, metric, recipe) -> run -> value
    for run, records in enumerate(runs):
        for record in records:
            for metric in metrics:
                value = record.metrics.get(metric.name)
                if value is not None:
                    values.setdefault((record.step, metric.name, record.recipe), {})[run] = value
    found = []
    for step in sorted({step for step, _, _ in values}):
        for metric in metrics:
            sign = 1.0 if metric.higher_is_better else -1.0
            means = {
                recipe: sign * float(np.mean(list(by_run.values())))
                for (at, name, recipe), by_run in values.items()
                if at == step and name == metric.name
            }
            if not means:
                continue
            ranked = sorted(means, key=lambda recipe: -means[recipe])
            leader = ranked[0]
            if len(ranked) == 1:
                found.append(Lead(step, metric, leader, None, None, None, 0))
                continue
            runner_up = ranked[1]
            own, other = values[(step, metric.name, leader)], values[(step, metric.name, runner_up)]
            differences = [sign * (own[run] - other[run]) for run in own.keys() & other.keys()]
            margin = float(np.mean(differences)) if differences else None
            width = half_width(differences, "ci95")
            interval = None if margin is None or width is None else (margin - width, margin + width)
            found.append(Lead(step, metric, leader, runner_up, margin, interval, len(differences)))
    return found
