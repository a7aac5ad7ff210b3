"""The comparison's figure: each panel draws exactly the curves' numbers, bands included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from portraitist.evaluate.metrics import Metric
from portraitist.evaluate.plots import curve_figure, plot_curves
from portraitist.evaluate.summary import Curve

METRICS = (Metric("lpips", "LPIPS", False), Metric("identity", "Identity (dlib)", True))
CURVES = {
    "staged": Curve(
        recipe="staged",
        steps=[50, 100, 150],
        seconds=[12.0, 24.5, 37.0],
        mean={"lpips": [0.62, 0.55, 0.51], "identity": [None, None, None]},
        spread={"lpips": [0.02, 0.03, None], "identity": [None, None, None]},
    ),
    "dreambooth": Curve(
        recipe="dreambooth",
        steps=[50, 100, 150],
        seconds=[10.0, 20.0, 30.0],
        mean={"lpips": [0.64, None, 0.58], "identity": [None, None, None]},
        spread={"lpips": [None, None, None], "identity": [None, None, None]},
    ),
}


@pytest.mark.parametrize("x", ["steps", "seconds"])
def test_each_recipe_is_a_line_through_its_measured_points(x: str) -> None:
    figure = curve_figure(CURVES, x, METRICS)  # type: ignore[arg-type]
    lpips, identity = figure.axes[:2]
    assert lpips.get_title() == "LPIPS (lower is better)"
    lines = {line.get_label(): line for line in lpips.get_lines()}
    assert set(lines) == {"staged", "dreambooth"}
    staged = [50, 100, 150] if x == "steps" else [12.0, 24.5, 37.0]
    assert list(lines["staged"].get_xdata()) == staged
    assert list(lines["staged"].get_ydata()) == [0.62, 0.55, 0.51]
    # a step without a value is left out, not drawn as zero
    assert list(lines["dreambooth"].get_xdata()) == ([50, 150] if x == "steps" else [10.0, 30.0])
    assert list(lines["dreambooth"].get_ydata()) == [0.64, 0.58]
    # identity has no value at any step: an empty panel that says so
    assert identity.get_lines() == [] and [t.get_text() for t in identity.texts] == ["no value yet"]


def test_the_band_spans_the_mean_plus_and_minus_the_spread() -> None:
    lpips = curve_figure(CURVES, "steps", METRICS).axes[0]
    [band] = lpips.collections  # staged's: dreambooth has no spread, so no band
    outline = band.get_paths()[0].vertices
    for step, low, high in [(50, 0.60, 0.64), (100, 0.52, 0.58), (150, 0.51, 0.51)]:
        at_step = outline[np.isclose(outline[:, 0], step), 1]
        assert at_step.min() == pytest.approx(low) and at_step.max() == pytest.approx(high)


def test_the_figure_is_saved_as_a_png(tmp_path: Path) -> None:
    out = plot_curves(CURVES, "seconds", tmp_path / "plots" / "by-seconds.png", METRICS)
    with Image.open(out) as image:
        assert image.format == "PNG"
