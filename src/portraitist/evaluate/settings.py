"""WS/eval/settings.json: what an evaluation's numbers depend on, so a resumed run, or a merge of
several workspaces, never mixes numbers made with different settings."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from portraitist.config import EVALUATION, compared_settings
from portraitist.errors import PortraitistError
from portraitist.evaluate.config import EvaluateConfig
from portraitist.evaluate.prompts import EvalImage
from portraitist.evaluate.records import eval_dir
from portraitist.workspace import Workspace, write_json_atomic

SETTINGS_FILE = "settings.json"
# training settings that evaluate gives each recipe's training itself: its base (recorded at the top
# level) and, from its own settings, `recipes`, `steps`, `seed`: what a TOML file sets for them is not used
SET_PER_RECIPE = ("base", "recipe", "steps", "seed")


def fingerprint(
    workspace: Workspace,
    config: EvaluateConfig,
    base: str,
    measures: dict[str, Any],
    images: Sequence[EvalImage],
) -> dict[str, Any]:
    """The settings that move the numbers (the fields config.py's EVALUATION does not ignore), the
    base model, the dataset, the metric set's own settings and the evaluation images (which the
    report's grids are headed with)."""
    settings = compared_settings(config, EVALUATION)
    settings["train"] = {k: v for k, v in settings["train"].items() if k not in SET_PER_RECIPE}
    dataset = hashlib.sha256(workspace.manifest_path.read_bytes()).hexdigest()
    drawn = [{k: v for k, v in asdict(image).items() if k != "seed"} for image in images]  # seeds: `seed` + i
    return dict(settings, base=base, dataset=dataset, measures=measures, images=drawn)


def read_settings(workspace: Workspace) -> dict[str, Any]:
    path = eval_dir(workspace) / SETTINGS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def differences(before: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the settings whose values differ. A setting only one side has is no
    difference: it was added or dropped by another portraitist version, at its old behaviour."""
    changed = []
    for key in sorted(before.keys() & now.keys()):
        old, new = before[key], now[key]
        if isinstance(old, dict) and isinstance(new, dict):
            changed += differences(old, new, f"{prefix}{key}.")
        elif old != new:
            changed.append(prefix + key)
    return changed


def check_settings(folder: Path, settings: dict[str, Any], measured: bool) -> None:
    """Record the settings, or refuse to mix numbers made with others; an evaluation that has
    measured nothing yet (its training, if any, is of the old settings) starts over."""
    path = folder / SETTINGS_FILE
    changed = differences(json.loads(path.read_text()), settings) if path.exists() else []
    if changed and measured:
        raise PortraitistError(
            f"{folder} holds an evaluation with other settings (changed: {', '.join(changed)}), and its "
            "numbers would not compare with these. Run with the same settings to resume it, add --restart "
            "to delete it and start over, or evaluate in another workspace."
        )
    if changed:
        shutil.rmtree(folder)
    write_json_atomic(path, settings)
