"""WS/eval/report.html (one workspace) and the merged reports of several (`--compare`: several
users; `--world`: people x seeds): the plots, the last checkpoint's numbers per recipe, which
recipe leads at which step, and grids of the evaluation images per recipe and checkpoint (rows:
checkpoints, columns: the fixed prompts and seeds), as the thesis's Fig. 10-12.

Images are linked relative to the report, so a folder can be moved or served as it is.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from portraitist import __version__
from portraitist.errors import PortraitistError
from portraitist.evaluate.config import EvaluateConfig
from portraitist.evaluate.metrics import Metric, metrics_in
from portraitist.evaluate.plots import plot_curves
from portraitist.evaluate.prompts import evaluation_set
from portraitist.evaluate.records import METRICS_FILE, CheckpointRecord, eval_dir, read_records
from portraitist.evaluate.settings import differences, read_settings
from portraitist.evaluate.summary import BAND_TEXT, Band, Curve, Lead, build_curves, leads
from portraitist.models.random_sd import PRESETS as RANDOM_PRESETS
from portraitist.workspace import Workspace, write_bytes_atomic

REPORT_NAME = "report.html"
TEMPLATE = "evaluate.html"
PHOTO_EXPLAIN = (
    "Each recipe was trained once on the same photos with the same seed and measured every few steps on "
    "the same prompts and seeds (thesis 2.3, Fig. 11). Image Alignment, LPIPS: the subject prompt's images "
    "against your photos. Text Alignment: each edit image against its prompt with you removed. Identity and "
    "faces: every image."
)


@dataclass
class Row:
    label: str
    images: list[str]  # hrefs


@dataclass
class Section:
    recipe: str
    rows: list[Row]


def _number(mean: float | None, spread: float | None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.3f} ± {spread:.3f}" if spread is not None else f"{mean:.3f}"


def _summary(curves: dict[str, Curve], metrics: tuple[Metric, ...]) -> list[dict[str, Any]]:
    """Each recipe's last measured step, as table cells."""
    rows = []
    for curve in curves.values():
        rows.append(
            {
                "recipe": curve.recipe,
                "step": curve.steps[-1],
                "runs": curve.runs[-1],
                "cells": [_number(curve.mean[m.name][-1], curve.spread[m.name][-1]) for m in metrics],
                "seconds": f"{curve.seconds[-1]:.0f}",
                "overhead": "—" if curve.overhead is None else f"{100 * curve.overhead:.0f}%",
            }
        )
    return rows


def lead_text(lead: Lead) -> str:
    """ "staged by 0.041 [0.012, 0.070]", "staged ≈ lora (+0.010 [-0.02, 0.04])": one table cell."""
    if lead.runner_up is None:
        return f"{lead.leader} (alone)"
    if lead.margin is None:
        return f"{lead.leader} ≈ {lead.runner_up} (no common evaluation)"
    if lead.interval is None:
        return f"{lead.leader} ≈ {lead.runner_up} (+{lead.margin:.3f}, one evaluation: no interval)"
    low, high = lead.interval
    if lead.clear:
        return f"{lead.leader} by {lead.margin:.3f} [{low:.3f}, {high:.3f}]"
    return f"{lead.leader} ≈ {lead.runner_up} (+{lead.margin:.3f} [{low:.3f}, {high:.3f}])"


def _lead_rows(found: list[Lead], metrics: tuple[Metric, ...]) -> list[dict[str, Any]]:
    """One row per step, one cell per metric."""
    by_step: dict[int, dict[str, Lead]] = {}
    for lead in found:
        by_step.setdefault(lead.step, {})[lead.metric.name] = lead
    return [
        {
            "step": step,
            "cells": [
                {"text": lead_text(cell), "bold": cell.clear}
                if (cell := cells.get(m.name))
                else {"text": "—", "bold": False}
                for m in metrics
            ],
        }
        for step, cells in sorted(by_step.items())
    ]


def _columns(settings: list[dict[str, Any]]) -> list[str]:
    """Column headings: each evaluation image's prompt, and its seed (the evaluation's seed + i) when
    every evaluation used the same seed."""
    seeds = {s.get("seed", 0) for s in settings}
    first = settings[0]
    templates = [image["template"] for image in first["images"]] if "images" in first else _templates(first)
    if len(seeds) > 1:
        return templates
    return [f"{template} · seed {first.get('seed', 0) + i}" for i, template in enumerate(templates)]


def _templates(settings: dict[str, Any]) -> list[str]:
    """The prompts of a settings.json written before it recorded its images (photo metrics)."""
    fields = {k: settings[k] for k in ("subject_prompt", "subject_images", "edit_prompts") if k in settings}
    return [image.template for image in evaluation_set(EvaluateConfig.model_validate(fields))]


def _render(
    out: Path,
    runs: list[list[CheckpointRecord]],
    sections: list[Section],
    band: Band,
    **page: Any,
) -> Path:
    metrics = metrics_in(r.metrics for records in runs for r in records)
    curves = build_curves(runs, metrics, band)
    plots = out.parent / "plots"
    by_step = plot_curves(curves, "steps", plots / "metrics-by-step.png", metrics)
    by_seconds = plot_curves(curves, "seconds", plots / "metrics-by-seconds.png", metrics)
    template = jinja2.Environment(
        loader=jinja2.PackageLoader("portraitist", "templates"), autoescape=True
    ).get_template(TEMPLATE)
    page.setdefault("explain", PHOTO_EXPLAIN)
    page.setdefault("tuning", [])
    page.setdefault("people", [])
    page.setdefault(
        "reference", []
    )  # rows of the summary table that were not trained: the person's own photos
    html = template.render(
        metrics=metrics,
        summary=_summary(curves, metrics),
        leads=_lead_rows(leads(runs, metrics), metrics) if len(runs) > 1 else [],
        band=BAND_TEXT[band] if len(runs) > 1 else None,
        sections=sections,
        plot_steps=by_step.relative_to(out.parent).as_posix(),
        plot_seconds=by_seconds.relative_to(out.parent).as_posix(),
        written=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        version=__version__,
        **page,
    )
    write_bytes_atomic(out, html.encode())
    return out


def _href(path: Path, out: Path) -> str:
    return Path(os.path.relpath(path, out.parent)).as_posix()


def _records(workspace: Workspace) -> list[CheckpointRecord]:
    records = read_records(eval_dir(workspace) / METRICS_FILE)
    if not records:
        raise PortraitistError(
            f"{workspace.root} has no evaluation yet ({eval_dir(workspace) / METRICS_FILE} is missing or "
            f"empty). Run `portraitist evaluate --workspace {workspace.root} --base MODEL` first."
        )
    return records


def crop_hrefs(workspace: Workspace, out: Path) -> list[str]:
    """The workspace's training crops, linked from `out`."""
    return [_href(workspace.path(p.image), out) for p in workspace.read_manifest().kept if p.image]


def write_evaluation_report(workspace: Workspace) -> Path:
    """WS/eval/report.html from WS/eval/metrics.jsonl."""
    out = eval_dir(workspace) / REPORT_NAME
    records = _records(workspace)
    settings = read_settings(workspace)
    sections: dict[str, Section] = {}
    for record in sorted(records, key=lambda r: r.step):
        section = sections.setdefault(record.recipe, Section(record.recipe, []))
        section.rows.append(
            Row(f"step {record.step}", [_href(workspace.path(f), out) for f in record.images])
        )
    return _render(
        out,
        [records],
        list(sections.values()),
        "sd",
        title=f"Recipe comparison — {workspace.root.name}",
        note=f"Workspace {workspace.root}",
        base=settings.get("base"),
        random_base=settings.get("base") in RANDOM_PRESETS,
        columns=_columns([settings]),
        crops=crop_hrefs(workspace, out),
        compared=[],
    )


def write_merged_report(
    out: Path,
    evaluations: list[tuple[str, Workspace]],
    band: Band,
    title: str,
    may_differ: tuple[str, ...] = ("dataset",),
    **page: Any,
) -> Path:
    """OUT (a report.html path) for several evaluations, each (label, workspace): the mean and a band
    per recipe, who leads at each step, and each evaluation's last checkpoint per recipe.

    Their settings must agree except for the dotted names in `may_differ` (or below them)."""
    runs = [_records(ws) for _, ws in evaluations]
    settings = [read_settings(ws) for _, ws in evaluations]
    differ = [
        name
        for s in settings[1:]
        for name in differences(settings[0], s)
        if not any(name == allowed or name.startswith(allowed + ".") for allowed in may_differ)
    ]
    if differ:
        raise PortraitistError(
            f"The workspaces were evaluated with different settings ({', '.join(dict.fromkeys(differ))}), "
            "so their numbers do not average; evaluate them with the same settings."
        )
    bases = {s.get("base") for s in settings}
    sections: dict[str, Section] = {}
    for (label, workspace), records in zip(evaluations, runs):
        last: dict[str, CheckpointRecord] = {}
        for record in records:
            if record.recipe not in last or record.step > last[record.recipe].step:
                last[record.recipe] = record
        for recipe, record in last.items():
            row = Row(f"{label}, step {record.step}", [_href(workspace.path(f), out) for f in record.images])
            sections.setdefault(recipe, Section(recipe, [])).rows.append(row)
    page.setdefault("crops", [])
    page.setdefault("compared", [])
    return _render(
        out,
        runs,
        list(sections.values()),
        band,
        title=title,
        note=f"Mean {BAND_TEXT[band]}.",
        base=", ".join(sorted(str(b) for b in bases)),
        random_base=bool(bases & set(RANDOM_PRESETS)),
        columns=_columns(settings),
        **page,
    )


def write_comparison_report(workspaces: list[Workspace], out_dir: Path) -> Path:
    """OUT/report.html: the mean and spread per recipe over several workspaces (several users), and
    each workspace's last checkpoint per recipe."""
    if len(workspaces) < 2:
        raise PortraitistError("--compare merges two or more workspaces; give each one's folder.")
    out = out_dir.expanduser().resolve() / REPORT_NAME
    return write_merged_report(
        out,
        [(ws.root.name, ws) for ws in workspaces],
        "sd",
        f"Recipe comparison over {len(workspaces)} workspaces",
        compared=[(ws.root.name, _href(eval_dir(ws) / REPORT_NAME, out)) for ws in workspaces],
    )
