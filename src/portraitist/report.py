"""outputs/report.html: what a run did, for a person to look at.

The user's crops and rejected photos (with reasons), the training curve, every generation with
its scores, and the selected portraits. Images are linked relative to the report, so the
workspace folder can be moved or served as it is.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from PIL import Image

from portraitist import __version__
from portraitist.models.clip import RANDOM_CLIPS
from portraitist.models.random_sd import PRESETS as RANDOM_PRESETS
from portraitist.workspace import Workspace, write_bytes_atomic

REPORT_NAME = "report.html"
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
THUMB = 160  # px: the report's grid cell width


def _smaller_than_thumb(path: Path) -> bool:
    """Images the grid enlarges (the world's 32 px ones): shown with visible pixels, not smoothed."""
    try:
        with Image.open(path) as image:
            return image.width < THUMB
    except OSError:  # missing or unreadable: the browser shows it broken either way
        return False


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def plot_training(log: list[dict[str, Any]], out: Path) -> Path | None:
    """Loss per step (raw and smoothed), one colour per training stage."""
    rows = [r for r in log if "loss" in r and "step" in r]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=100)
    stages = list(dict.fromkeys(str(r.get("stage", "train")) for r in rows))
    for stage in stages:
        steps = [r["step"] for r in rows if str(r.get("stage", "train")) == stage]
        losses = [float(r["loss"]) for r in rows if str(r.get("stage", "train")) == stage]
        line = ax.plot(steps, losses, alpha=0.25, linewidth=0.8)[0]
        # trailing moving average: the per-step loss of diffusion training is very noisy
        window = max(1, len(losses) // 20)
        cumsum = np.cumsum([0.0, *losses])
        counts = np.minimum(np.arange(1, len(losses) + 1), window)
        smooth = (cumsum[1:] - cumsum[np.arange(len(losses)) + 1 - counts]) / counts
        ax.plot(steps, smooth, color=line.get_color(), linewidth=1.8, label=stage)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def _score_text(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def write_report(workspace: Workspace, title: str | None = None) -> Path:
    """Render outputs/report.html from whatever stages have run; return its path."""
    out = workspace.outputs_dir / REPORT_NAME
    assets = workspace.outputs_dir / "report"

    def href(path: Path) -> str:
        return Path(os.path.relpath(path, out.parent)).as_posix()

    manifest = workspace.read_manifest() if workspace.manifest_path.exists() else None
    kept = [
        {
            "source": Path(p.source).name,
            "caption": p.caption or "",
            "href": href(workspace.path(p.image)),
            "small": _smaller_than_thumb(workspace.path(p.image)),
        }
        for p in (manifest.kept if manifest else [])
        if p.image
    ]
    rejected = [p for p in (manifest.photos if manifest else []) if p.status == "rejected"]

    model_info = _read_json(workspace.model_dir / "model.json")
    plot = plot_training(_read_jsonl(workspace.model_dir / "train_log.jsonl"), assets / "training.png")

    ranking = _read_json(workspace.outputs_dir / "scores.json")
    scores = {img["file"]: img for img in ranking.get("images", [])}
    stand_ins: dict[str, str] = ranking.get("stand_ins", {})
    generations = []
    for g in _read_jsonl(workspace.outputs_dir / "generations.jsonl"):
        scored = scores.get(g["file"], {}).get("scores", {})
        generations.append(
            {
                "href": href(workspace.path(g["file"])),
                "small": _smaller_than_thumb(workspace.path(g["file"])),
                "prompt": g.get("prompt", ""),
                "seed": g.get("seed"),
                "scores": [(name, _score_text(v), name in stand_ins) for name, v in scored.items()],
            }
        )

    selected_dir = workspace.outputs_dir / "selected"
    selected = [
        {"href": href(p), "caption": p.name, "small": _smaller_than_thumb(p)}
        for p in sorted(selected_dir.iterdir() if selected_dir.exists() else [])
        if p.suffix.lower() in _IMAGE_SUFFIXES
    ]

    template = jinja2.Environment(
        loader=jinja2.PackageLoader("portraitist", "templates"), autoescape=True
    ).get_template(REPORT_NAME)
    base = model_info.get("base")
    html = template.render(
        title=title or f"Portraits — {workspace.root.name}",
        # the folder's name, not its path: the page may be shared, and a path says where it was made
        workspace=workspace.root.name,
        base=base,
        recipe=model_info.get("recipe"),
        random_base=base in RANDOM_PRESETS,
        random_class_model=manifest.class_model
        if manifest and manifest.class_model in RANDOM_CLIPS
        else None,
        selected=selected,
        kept=kept,
        rejected=rejected,
        training_plot=href(plot) if plot else None,
        generations=generations,
        stand_ins=stand_ins,
        thumb=THUMB,
        written=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        version=__version__,
    )
    write_bytes_atomic(out, html.encode())
    return out
