"""WS/eval/report.html (one workspace) and the --compare report (several): the plots, the last
checkpoint's numbers per recipe, and grids of the evaluation images per recipe and checkpoint
(rows: checkpoints, columns: the fixed prompts and seeds), as the thesis's Fig. 10-12.

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
from portraitist.evaluate.metrics import METRICS
from portraitist.evaluate.plots import plot_curves
from portraitist.evaluate.prompts import evaluation_set
from portraitist.evaluate.records import METRICS_FILE, CheckpointRecord, eval_dir, read_records
from portraitist.evaluate.settings import differences, read_settings
from portraitist.evaluate.summary import Curve, build_curves
from portraitist.models.random_sd import PRESETS as RANDOM_PRESETS
from portraitist.workspace import Workspace, write_bytes_atomic

REPORT_NAME = "report.html"
TEMPLATE = "evaluate.html"


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


def _summary(curves: dict[str, Curve]) -> list[dict[str, Any]]:
    """Each recipe's last measured step, as table cells."""
    rows = []
    for curve in curves.values():
        rows.append(
            dict(
                recipe=curve.recipe,
                step=curve.steps[-1],
                runs=curve.runs[-1],
                cells=[_number(curve.mean[m.name][-1], curve.spread[m.name][-1]) for m in METRICS],
                seconds=f"{curve.seconds[-1]:.0f}",
                overhead="—" if curve.overhead is None else f"{100 * curve.overhead:.0f}%",
            )
        )
    return rows


def _columns(settings: dict[str, Any]) -> list[str]:
    """Column headings: each evaluation image's prompt and seed."""
    fields = {
        k: settings[k] for k in ("subject_prompt", "subject_images", "edit_prompts", "seed") if k in settings
    }
    return [
        f"{image.template} · seed {image.seed}"
        for image in evaluation_set(EvaluateConfig.model_validate(fields))
    ]


def _render(out: Path, curves: dict[str, Curve], sections: list[Section], **page: Any) -> Path:
    plots = out.parent / "plots"
    by_step = plot_curves(curves, "steps", plots / "metrics-by-step.png")
    by_seconds = plot_curves(curves, "seconds", plots / "metrics-by-seconds.png")
    template = jinja2.Environment(
        loader=jinja2.PackageLoader("portraitist", "templates"), autoescape=True
    ).get_template(TEMPLATE)
    html = template.render(
        metrics=METRICS,
        summary=_summary(curves),
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
    manifest = workspace.read_manifest()
    crops = [_href(workspace.path(p.image), out) for p in manifest.kept if p.image]
    return _render(
        out,
        build_curves([records]),
        list(sections.values()),
        title=f"Recipe comparison — {workspace.root.name}",
        note=f"Workspace {workspace.root}",
        base=settings.get("base"),
        random_base=settings.get("base") in RANDOM_PRESETS,
        columns=_columns(settings),
        crops=crops,
        compared=[],
    )


def write_comparison_report(workspaces: list[Workspace], out_dir: Path) -> Path:
    """OUT/report.html: the mean and spread per recipe over several workspaces (several users), and
    each workspace's last checkpoint per recipe."""
    if len(workspaces) < 2:
        raise PortraitistError("--compare merges two or more workspaces; give each one's folder.")
    out = out_dir.expanduser().resolve() / REPORT_NAME
    runs = [_records(ws) for ws in workspaces]
    settings = [read_settings(ws) for ws in workspaces]
    differ = [name for s in settings[1:] for name in differences(settings[0], s) if name != "dataset"]
    if differ:
        raise PortraitistError(
            f"The workspaces were evaluated with different settings ({', '.join(dict.fromkeys(differ))}), "
            "so their numbers do not average; evaluate them with the same settings."
        )
    bases = {s.get("base") for s in settings}
    sections: dict[str, Section] = {}
    for workspace, records in zip(workspaces, runs):
        last: dict[str, CheckpointRecord] = {}
        for record in records:
            if record.recipe not in last or record.step > last[record.recipe].step:
                last[record.recipe] = record
        for recipe, record in last.items():
            row = Row(
                f"{workspace.root.name}, step {record.step}",
                [_href(workspace.path(f), out) for f in record.images],
            )
            sections.setdefault(recipe, Section(recipe, [])).rows.append(row)
    return _render(
        out,
        build_curves(runs),
        list(sections.values()),
        title=f"Recipe comparison over {len(workspaces)} workspaces",
        note="Mean ± standard deviation over the workspaces that measured each step.",
        base=", ".join(sorted(str(b) for b in bases)),
        random_base=bool(bases & set(RANDOM_PRESETS)),
        columns=_columns(settings[0]),
        crops=[],
        compared=[(ws.root.name, _href(eval_dir(ws) / REPORT_NAME, out)) for ws in workspaces],
    )
