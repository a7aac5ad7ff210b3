"""The `portraitist evaluate` command: one workspace, and --compare over several."""

from __future__ import annotations

import shutil

from typer.testing import CliRunner

from portraitist.cli.app import app
from portraitist.errors import PortraitistError
from portraitist.evaluate.records import read_records

# What tests/pipeline's OFFLINE_TOML does for rank, for the metric models; a small evaluation set.
OFFLINE_TOML = """
[evaluate]
subject_images = 1
edit_prompts = ["an oil painting of {me}"]
sampling_steps = 1
[evaluate.train]
precision = "fp32"
flip = false
[evaluate.scoring]
aesthetic_weights = "random"
lpips_backbone = "random"
"""


def test_evaluate_command_measures_and_reports_the_overhead(prepared, tmp_path):
    config = tmp_path / "offline.toml"
    config.write_text(OFFLINE_TOML)
    result = CliRunner().invoke(
        app,
        ["evaluate", "-w", str(prepared.root), "--base", "tiny", "--recipes", "textual-inversion",
         "--every", "1", "--steps", "2", "--seed", "3", "--clip-model", "tiny", "--config", str(config)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    records = read_records(prepared.root / "eval" / "metrics.jsonl")
    assert [(r.recipe, r.step, r.seed) for r in records] == [
        ("textual-inversion", 1, 3),
        ("textual-inversion", 2, 3),
    ]
    assert "Measuring took" in result.output and "of the training time" in result.output
    assert str(prepared.root / "eval" / "report.html") in result.output.replace("\n", "")


def test_compare_merges_workspaces_into_one_report(evaluated, tmp_path):
    copies = []
    for name in ("alice", "bob"):
        shutil.copytree(evaluated.workspace.root, tmp_path / name)
        copies.append(str(tmp_path / name))
    out = tmp_path / "comparison"
    result = CliRunner().invoke(app, ["evaluate", "--compare", *copies, "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text()
    assert "over 2 workspaces" in html
    assert "± 0.000" in html  # two identical evaluations: no spread
    assert 'href="../alice/eval/report.html"' in html and 'href="../bob/eval/report.html"' in html
    assert html.count('class="recipe"') == 4
    assert (out / "plots" / "metrics-by-step.png").exists() and (
        out / "plots" / "metrics-by-seconds.png"
    ).exists()

    alone = CliRunner().invoke(app, ["evaluate", "--compare", copies[0], "--out", str(out)])
    assert isinstance(alone.exception, PortraitistError) and "two or more" in str(alone.exception)
