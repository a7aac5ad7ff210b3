"""The comparison as figures (thesis Fig. 11): one panel per metric, one line per recipe, against
training steps or training seconds; a band (summary.py: a standard deviation, or a 95% interval
of the mean) when several evaluations are merged."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from portraitist.evaluate.metrics import Metric
from portraitist.evaluate.summary import Curve

if TYPE_CHECKING:
    from matplotlib.figure import Figure

X_LABELS = {"steps": "training step", "seconds": "training seconds"}


def plot_curves(
    curves: dict[str, Curve], x: Literal["steps", "seconds"], out: Path, metrics: Sequence[Metric]
) -> Path:
    """The figure of `curve_figure`, saved as a PNG at `out`."""
    import matplotlib.pyplot as plt

    fig = curve_figure(curves, x, metrics)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def curve_figure(
    curves: dict[str, Curve], x: Literal["steps", "seconds"], metrics: Sequence[Metric]
) -> Figure:
    """One panel per metric (in `metrics` order), one line per recipe, each with its band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    colours = plt.get_cmap("tab10")
    columns = 3 if len(metrics) > 4 else 2
    rows = math.ceil(len(metrics) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.4 * columns, 3.5 * rows), dpi=100, squeeze=False)
    for ax in axes.flat[len(metrics) :]:
        ax.set_visible(False)
    for ax, metric in zip(axes.flat, metrics):
        drawn = False
        for index, curve in enumerate(curves.values()):
            points = [
                (at, mean, spread or 0.0)
                for at, mean, spread in zip(
                    curve.steps if x == "steps" else curve.seconds,
                    curve.mean[metric.name],
                    curve.spread[metric.name],
                )
                if mean is not None
            ]
            if not points:
                continue
            drawn = True
            xs, means, spreads = (list(column) for column in zip(*points))
            colour = colours(index % 10)
            ax.plot(xs, means, marker="o", markersize=3, color=colour, label=curve.recipe)
            if any(spreads):
                low = [m - s for m, s in zip(means, spreads)]
                high = [m + s for m, s in zip(means, spreads)]
                ax.fill_between(xs, low, high, color=colour, alpha=0.18, linewidth=0)
        ax.set_title(
            f"{metric.label} ({'higher' if metric.higher_is_better else 'lower'} is better)", fontsize=10
        )
        ax.set_xlabel(X_LABELS[x])
        ax.grid(alpha=0.3)
        ax.ticklabel_format(axis="y", useOffset=False)
        if x == "steps":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if not drawn:  # identity, when no image has a face the photos' faces can be compared with
            ax.text(0.5, 0.5, "no value yet", ha="center", va="center", transform=ax.transAxes, color="grey")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=len(labels), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig
