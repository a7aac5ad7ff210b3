"""`portraitist evaluate --world` (docs/world.md): the recipes compared on held-out people of the synthetic
world, measured by its judges, merged with 95% bands; and the judges' metrics on cases whose
answers are known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from evalkit import WORLD_TOML
from PIL import Image
from typer.testing import CliRunner

from portraitist.cli.app import app
from portraitist.errors import PortraitistError
from portraitist.evaluate.config import EvaluateConfig
from portraitist.evaluate.records import CheckpointRecord, read_records
from portraitist.evaluate.report import lead_text
from portraitist.evaluate.summary import build_curves, leads
from portraitist.world import render as world
from portraitist.world.evaluate import check_settings, tuning_rows
from portraitist.world.judges import Judges, load_judges
from portraitist.world.metrics import (
    WORLD_METRICS,
    WorldMetrics,
    judge_values,
    reference_renders,
    world_evaluation_set,
)

RECIPES = ("staged", "textual-inversion")


@pytest.fixture(scope="module")
def judges() -> Judges:
    return load_judges()


def test_world_comparison_writes_each_runs_metrics_and_the_merged_curves(tmp_path, world_base, tiny_judges):
    config = tmp_path / "world.toml"
    config.write_text(WORLD_TOML + 'scene_checks = [{background = "red"}]\n')
    out = tmp_path / "world-eval"
    result = CliRunner().invoke(
        app,
        ["evaluate", "--world", "--out", str(out), "--base", str(world_base), "--recipes", ",".join(RECIPES),
         "--people", "1", "--seeds", "2", "--steps", "2", "--every", "1", "--judges", str(tiny_judges),
         "--config", str(config)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output

    # the person's photos, prepared with the renderer's boxes, and one evaluation per (person, seed)
    person = json.loads((out / "people" / "p000" / "photos" / "world_person.json").read_text())
    assert person["person"] == world.HELD_OUT_START
    manifest = json.loads((out / "people" / "p000" / "prepared" / "dataset" / "manifest.json").read_text())
    assert [p["status"] for p in manifest["photos"]] == ["kept"] * 4
    assert manifest["class_token"] == person["attributes"]["sex"]
    for seed in (0, 1):
        records = read_records(out / "runs" / f"p000-s{seed}" / "eval" / "metrics.jsonl")
        assert [(r.recipe, r.step, r.seed) for r in records] == [
            (recipe, step, seed) for recipe in RECIPES for step in (1, 2)
        ]
    for record in records:
        assert set(record.metrics) == {m.name for m in WORLD_METRICS}
        assert all(0 <= record.metrics[name] <= 1 for name in ("face_gate", "attribute_match", "scene_match"))
        assert record.train_seconds > 0 and record.generate_seconds > 0
        assert len(record.images) == 2  # the subject prompt's image and the red-background one
    # trained by train's own stage: the recipe's model as `portraitist train` writes it
    assert (out / "runs" / "p000-s0" / "eval" / "staged" / "model" / "model.json").exists()

    html = (out / "report.html").read_text()
    for recipe in RECIPES:
        assert f'data-recipe="{recipe}"' in html
    assert "a photo of {me}, on a red background" in html
    assert html.count('<tr data-step="') == 2  # who leads at steps 1 and 2, over the two seeds
    assert "person 0, seed 1, step 2" in html  # each evaluation's last images
    assert "the person&#39;s own photos" in html and "another person&#39;s photos" in html
    for plot in ("metrics-by-step.png", "metrics-by-seconds.png"):  # their data: test_evaluate_plots.py
        with Image.open(out / "plots" / plot) as image:
            assert image.format == "PNG"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["curves"]) == set(RECIPES) and summary["curves"]["staged"]["steps"] == [1, 2]
    assert summary["curves"]["staged"]["runs"] == [2, 2] and len(summary["leads"]) == 2 * len(WORLD_METRICS)
    # runs are named relative to the summary: the result folder can be moved or committed whole
    assert all(not Path(run["workspace"]).is_absolute() for run in summary["runs"])
    assert all((out / run["workspace"] / "dataset").is_dir() for run in summary["runs"])
    assert "who leads" in result.output and str(out / "report.html") in result.output.replace("\n", "")

    again = CliRunner().invoke(
        app,
        ["evaluate", "--world", "--out", str(out), "--base", str(world_base), "--recipes", ",".join(RECIPES),
         "--people", "1", "--seeds", "2", "--steps", "2", "--every", "1", "--judges", str(tiny_judges),
         "--config", str(config), "--seed", "3"],
    )  # fmt: skip
    assert isinstance(again.exception, PortraitistError) and "--seeds" in str(again.exception)


def photos_of(person: world.Person, count: int = 6) -> np.ndarray:
    """32 px renders of `person` in scenes of their own (not the references' scenes)."""
    rng = np.random.default_rng([person.index, 99])
    return np.stack([world.render_filtered(person, world.random_scene(rng), 32).image for _ in range(count)])


def test_the_persons_own_renders_score_higher_identity_than_anothers(judges):
    """Five held-out people, each against a stranger: both are faces, only the likeness differs."""
    for k in range(5):
        person, other = world.held_out_person(k), world.held_out_person(k + 50)
        measures = WorldMetrics(person, judges, None, references=16)
        own, theirs = measures.of_photos(photos_of(person)), measures.of_photos(photos_of(other))
        assert own["face_gate"] == 1.0 and theirs["face_gate"] == 1.0
        assert own["face_id"] > theirs["face_id"] + 0.3, k  # committed judges: about 0.8 against 0
        assert own["attribute_match"] > theirs["attribute_match"], k


def test_a_red_background_passes_the_red_check_and_a_blue_one_fails(judges):
    person = world.held_out_person(3)
    rng = np.random.default_rng(5)
    red = [
        world.render_filtered(person, world.random_scene(rng, background="red"), 32).image for _ in range(4)
    ]
    blue = [
        world.render_filtered(person, world.random_scene(rng, background="blue"), 32).image for _ in range(4)
    ]
    references = reference_renders(person, 8)
    wanted = [{"background": "red"}] * 4
    assert judge_values(judges, references, {}, red, wanted)["scene_match"] == 1.0
    assert judge_values(judges, references, {}, blue, wanted)["scene_match"] == 0.0


def test_noise_is_no_face_and_has_no_likeness(judges):
    person = world.held_out_person(3)
    noise = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    values = judge_values(
        judges, reference_renders(person, 8), {"sex": person.attributes["sex"]}, noise, [{}] * 4
    )
    assert values["face_gate"] == 0.0 and values["face_id"] == 0.0
    assert values["attribute_match"] == 0.0  # whatever sex the judge names in noise, it is no face
    assert values["scene_match"] is None  # no scene prompt among the images


def test_the_scene_checks_become_prompts_with_their_expected_words():
    config = EvaluateConfig.model_validate(
        {"subject_images": 2, "world": {"scene_checks": [{"background": "red"}, {"shirt": "green"}]}}
    )
    images = world_evaluation_set(config)
    assert [(i.template, i.expect, i.seed) for i in images] == [
        ("a photo of {me}", {}, 0),
        ("a photo of {me}", {}, 1),
        ("a photo of {me}, on a red background", {"background": "red"}, 2),
        ("a photo of {me}, wearing a green shirt", {"shirt": "green"}, 3),
    ]
    # the renderer's words are checked before anything is rendered or trained
    mauve = EvaluateConfig.model_validate({"world": {"scene_checks": [{"background": "mauve"}]}})
    with pytest.raises(PortraitistError, match="Unknown background 'mauve'"):
        check_settings(mauve)


def record(recipe: str, step: int, face_id: float) -> CheckpointRecord:
    return CheckpointRecord(
        recipe=recipe, step=step, steps=step, seed=0, metrics={"face_id": face_id}, train_seconds=float(step),
        generate_seconds=0.1, metric_seconds=0.1, wall_seconds=float(step), images=[],
    )  # fmt: skip


def test_bands_are_95_percent_intervals_of_the_mean_over_the_evaluations():
    runs = [[record("staged", 10, v)] for v in (1.0, 2.0, 3.0)]
    curve = build_curves(runs, WORLD_METRICS[:1], "ci95")["staged"]
    assert curve.mean["face_id"] == [2.0]
    # sd 1, n 3: t(0.975, 2) = 4.3027 times 1 / sqrt(3)
    assert curve.spread["face_id"][0] == pytest.approx(4.3027 / np.sqrt(3), abs=1e-3)
    assert build_curves(runs, WORLD_METRICS[:1], "sd")["staged"].spread["face_id"] == [pytest.approx(1.0)]


def test_a_lead_is_clear_only_when_the_paired_interval_excludes_zero():
    # staged beats lora by 0.10 +- 0.01 in each of four evaluations whose levels differ widely:
    # the people differ far more than the recipes, and the pairing sees through that
    levels = (0.2, 0.5, 0.8, 0.35)
    steady = [
        [record("staged", 10, level + 0.10 + 0.01 * (-1) ** i), record("lora", 10, level)]
        for i, level in enumerate(levels)
    ]
    (lead,) = leads(steady, WORLD_METRICS[:1])
    assert (lead.leader, lead.runner_up, lead.pairs) == ("staged", "lora", 4)
    assert lead.margin == pytest.approx(0.10) and lead.clear
    assert lead_text(lead).startswith("staged by 0.100 [")
    # the same means, but the sign of the difference flips between evaluations: no clear lead
    noisy = [
        [record("staged", 10, level + 0.10 + 0.5 * (-1) ** i), record("lora", 10, level)]
        for i, level in enumerate(levels)
    ]
    (lead,) = leads(noisy, WORLD_METRICS[:1])
    assert lead.leader == "staged" and not lead.clear
    assert lead_text(lead).startswith("staged ≈ lora (+0.100 [")


def test_the_report_says_where_each_recipe_s_stages_came_from(tmp_path: Path) -> None:
    stages = [{"name": "unet", "share": 1.0, "learning_rates": {"unet": 2e-4}}]
    config = EvaluateConfig.model_validate(
        {"recipes": ["staged", "dreambooth"], "recipe_stages": {"staged": stages}}
    )
    from_file, own = tuning_rows(config, tmp_path)
    assert from_file["how"] == "recipe_stages in the configuration file ([evaluate] table), as given"
    assert "--sweep" not in from_file["how"] and from_file["stages"] == "unet: unet 0.0002 (100%)"
    assert own["how"] == "the recipe's own settings (no --sweep, no recipe_stages)"

    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "chosen.json").write_text(json.dumps({"staged": stages}))
    swept, _ = tuning_rows(config, tmp_path)  # the stages are the ones the sweep in OUT chose
    assert swept["how"].startswith("--sweep: the best of its trials")
