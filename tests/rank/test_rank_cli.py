"""`portraitist rank` and `portraitist upscale` as a user types them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from portraitist.cli import app
from portraitist.workspace import Workspace

OFFLINE_TOML = """
[rank]
aesthetic_weights = "random"
lpips_backbone = "random"
"""


def test_rank_then_upscale_from_the_command_line(rank_workspace: Workspace, tmp_path: Path):
    config = tmp_path / "offline.toml"
    config.write_text(OFFLINE_TOML)
    runner = CliRunner()

    ranked = runner.invoke(
        app,
        [
            "rank",
            "-w",
            str(rank_workspace.root),
            "--by",
            "identity,clip-image",
            "-k",
            "1",
            "--clip-model",
            "tiny",
            "--config",
            str(config),
        ],
    )
    assert ranked.exit_code == 0, ranked.output
    assert "1 of 6 selected" in ranked.output
    assert json.loads((rank_workspace.outputs_dir / "scores.json").read_text())["order"] == [
        "identity",
        "clip-image",
    ]

    upscaled = runner.invoke(
        app, ["upscale", "-w", str(rank_workspace.root), "--model", "realesr-animevideov3", "--tile", "128"]
    )
    assert upscaled.exit_code == 0, upscaled.output
    assert "512x512" in upscaled.output  # the 256 px image, x2
    assert len(list((rank_workspace.outputs_dir / "selected" / "original").glob("*.png"))) == 1


def test_a_bad_scorer_name_is_one_red_line_not_a_traceback(rank_workspace: Workspace):
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from portraitist.cli import main; main()",
            "rank",
            "-w",
            str(rank_workspace.root),
            "--by",
            "identity,beauty",
        ],
        check=False,
        capture_output=True,
        text=True,
        env=dict(os.environ, COLUMNS="200"),
    )
    assert done.returncode == 1
    assert "Unknown scorer 'beauty'" in done.stderr and "clip-text" in done.stderr
    assert "Traceback" not in done.stderr
