"""`evaluate`: every recipe trained once and measured at its checkpoints; resumable; deterministic."""

from __future__ import annotations

import pytest
from evalkit import offline_config
from PIL import Image
from safetensors.torch import load_file

from portraitist.errors import PortraitistError
from portraitist.evaluate import metrics
from portraitist.evaluate.metrics import PHOTO_METRICS
from portraitist.evaluate.records import read_records
from portraitist.evaluate.settings import differences
from portraitist.evaluate.stage import evaluate
from portraitist.train import checkpoint
from portraitist.train.config import TrainConfig
from portraitist.train.recipes import RECIPES
from portraitist.train.stage import train
from portraitist.workspace import Workspace


def metrics_path(workspace: Workspace):
    return workspace.root / "eval" / "metrics.jsonl"


def test_every_recipe_is_measured_at_the_requested_steps(evaluated):
    workspace, result = evaluated.workspace, evaluated.result
    records = read_records(metrics_path(workspace))
    assert [(r.recipe, r.step) for r in records] == [(recipe, step) for recipe in RECIPES for step in (2, 4)]
    assert result.measured == 8
    for record in records:
        assert set(record.metrics) == {m.name for m in PHOTO_METRICS}
        assert record.metrics["face_share"] is not None and 0 <= record.metrics["face_share"] <= 1
        assert -1 <= record.metrics["image_alignment"] <= 1
        assert record.metrics["lpips"] > 0  # 64 px noise is far from the photos
        assert len(record.images) == 2 and all(workspace.path(f).exists() for f in record.images)
        assert record.generate_seconds > 0 and record.metric_seconds > 0
    for recipe in RECIPES:
        first, last = (r for r in records if r.recipe == recipe)
        assert 0 < first.train_seconds < last.train_seconds
        assert first.wall_seconds < last.wall_seconds
        sub = Workspace(workspace.root / "eval" / recipe)
        assert checkpoint.list_checkpoints(sub) == []  # all measured: nothing left to resume
        assert '"steps_done": 4' in (sub.model_dir / "model.json").read_text()
    bar = [e for e in evaluated.events if e.stage == "evaluate"]
    assert (bar[0].step, bar[-1].step, bar[-1].total) == (0, 8, 8)
    assert result.overhead is not None and result.overhead > 0


def test_the_measured_run_is_the_same_as_a_plain_training_run(evaluated, prepared):
    """Measuring at steps 2 and 4 neither changes the staged recipe's two stages nor its weights."""
    train(prepared, TrainConfig(base="tiny", recipe="staged", steps=4, precision="fp32", flip=False))
    measured = evaluated.workspace.root / "eval" / "staged" / "model"
    for name in ("unet.safetensors", "text_encoder.safetensors", "token_embeddings.safetensors"):
        ours, plain = load_file(measured / name), load_file(prepared.model_dir / name)
        assert ours.keys() == plain.keys()
        assert all((ours[k] == plain[k]).all() for k in ours), name


def test_plots_and_report_show_every_recipe_in_a_browser(evaluated, browser_page):
    folder = evaluated.workspace.root / "eval"
    for name in ("metrics-by-step.png", "metrics-by-seconds.png"):
        with Image.open(folder / "plots" / name) as plot:
            assert plot.width > 800 and plot.height > 500
    assert evaluated.result.report == folder / "report.html"

    browser_page.goto(evaluated.result.report.as_uri())
    sections = browser_page.locator("section.recipe")
    assert [sections.nth(i).get_attribute("data-recipe") for i in range(sections.count())] == list(RECIPES)
    for recipe in RECIPES:
        grid = browser_page.locator(f"#recipe-{recipe}")
        assert grid.is_visible()
        assert grid.locator("tr").count() == 3  # the heading row, step 2, step 4
        assert grid.locator("img").count() == 4
    assert browser_page.locator("table.summary tr[data-recipe]").count() == len(RECIPES)
    assert browser_page.evaluate("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    assert "Elmo holding a {me}" in browser_page.content()


class Crash(Exception):
    """Stands for the process dying while a checkpoint is measured."""


def test_an_interrupted_evaluation_resumes_without_measuring_finished_checkpoints(
    evaluated, prepared, monkeypatch
):
    config = offline_config(recipes=["staged"])
    real = metrics.checkpoint_metrics
    calls: list[int] = []

    def dies_on_the_second_checkpoint(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Crash
        return real(*args, **kwargs)

    monkeypatch.setattr(metrics, "checkpoint_metrics", dies_on_the_second_checkpoint)
    with pytest.raises(Crash):
        evaluate(prepared, config, "tiny")
    before = read_records(metrics_path(prepared))
    assert [r.step for r in before] == [2]
    # training had already written its step-4 checkpoint when the measurement died
    sub = Workspace(prepared.root / "eval" / "staged")
    assert [p.name for p in checkpoint.list_checkpoints(sub)] == ["step-0000002", "step-0000004"]
    written = {f: prepared.path(f).stat().st_mtime_ns for f in before[0].images}

    monkeypatch.setattr(metrics, "checkpoint_metrics", real)
    result = evaluate(prepared, config, "tiny")
    records = read_records(metrics_path(prepared))
    assert result.measured == 1
    assert [r.step for r in records] == [2, 4]
    assert records[0] == before[0]
    assert {f: prepared.path(f).stat().st_mtime_ns for f in records[0].images} == written
    # the same seed gives the same metrics, interrupted or not
    uninterrupted = [r for r in read_records(metrics_path(evaluated.workspace)) if r.recipe == "staged"]
    assert [r.metrics for r in records] == [r.metrics for r in uninterrupted]

    assert evaluate(prepared, config, "tiny").measured == 0


def test_settings_that_would_not_compare_are_refused(evaluated, prepared, tmp_path):
    with pytest.raises(PortraitistError, match="not a multiple of --every 3"):
        evaluate(prepared, offline_config(every=3), "tiny")
    with pytest.raises(PortraitistError, match=r"changed: seed.*--restart"):
        evaluate(evaluated.workspace, offline_config(seed=1), "tiny")

    # an evaluation that has measured nothing yet simply starts over with the new settings
    missing = str(tmp_path / "no-such-model")
    for seed in (0, 1):
        with pytest.raises(PortraitistError, match="no-such-model"):
            evaluate(prepared, offline_config(seed=seed, recipes=["lora"]), missing)
        assert f'"seed": {seed}' in (prepared.root / "eval" / "settings.json").read_text()


def test_a_setting_only_one_version_knows_is_no_change():
    before = {"every": 50, "train": {"precision": "auto", "checkpoint_every": 100}}
    newer = {"every": 50, "train": {"precision": "auto", "stages": None}}
    assert differences(before, newer) == []
    assert differences(before, {"every": 100, "train": {"precision": "fp32"}}) == ["every", "train.precision"]
