"""`portraitist evaluate`: train every recipe once and measure it every N steps (thesis 2.3, Fig. 11)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from portraitist.cli.app import app, console, progress_display, quiet_libraries
from portraitist.cli.options import setting
from portraitist.config import load_config
from portraitist.errors import PortraitistError
from portraitist.evaluate.config import EvaluateConfig
from portraitist.evaluate.records import CheckpointRecord, evaluation_overhead
from portraitist.models import DEFAULT_BASE
from portraitist.rank.config import RankConfig
from portraitist.train.recipes import RECIPES
from portraitist.workspace import Workspace
from portraitist.world.settings import WorldSettings, world_settings

if TYPE_CHECKING:
    from portraitist.world.evaluate import WorldResult

HELP = f"""Compare training recipes on your own photos, as the thesis compared its staged recipe with \
Textual Inversion and DreamBooth (2.3, Fig. 11).

Each recipe ({", ".join(RECIPES)}) is trained once on WS/dataset/ (from `portraitist prepare`) with the same \
seed, in its own folder WS/eval/<recipe>/. Every --every steps the model under training samples the same \
prompts with the same seeds, and is measured:

  Image Alignment  CLIP image similarity of the "a photo of {{me}}" images to your photos
  Text Alignment   CLIP similarity of each edit image ("an oil painting of {{me}}", ...) to its prompt \
without {{me}}
  LPIPS            perceptual distance of the "a photo of {{me}}" images to your photos (lower: closer)
  Identity         dlib face similarity to your photos, and the share of images with a face
  Aesthetic        LAION's aesthetic predictor
  seconds          training time so far, and the time the measuring took (its overhead)

WS/eval/metrics.jsonl gets one line per recipe and checkpoint; WS/eval/report.html shows the plots (against \
steps and against training seconds) and a grid of the images per recipe and checkpoint. Interrupted? Run the \
same command again: measured checkpoints are not measured again. --restart starts over.

`--compare WS1 WS2 ...` merges several workspaces' evaluations (several people) into one report with the \
mean and spread per recipe.

`--world` runs the comparison in the synthetic world (docs/world.md), where likeness is known exactly: every \
recipe on --people held-out people x --seeds seeds, on the world base (`--base world`), measured by the \
world's judges (face-ID similarity behind the face gate, the person's attributes, the scene prompts \
followed), merged into curves with 95% bands in OUT/report.html. `--sweep` first gives every recipe the same \
learning-rate (and split) tuning on other held-out people and compares the chosen settings.

Examples:

portraitist evaluate -w ./me --base ./stable-diffusion-v1-5

portraitist evaluate -w ./me --base ./sd15 --recipes staged,dreambooth --steps 800 --every 50

portraitist evaluate --compare ./alice ./bob ./carol --out ./comparison

portraitist evaluate --world --out ./world-eval --steps 200 --every 25 --sweep

The prompts, image count, sampling steps, training settings (\\[evaluate.train]) and metric models \
(\\[evaluate.scoring]) go in a TOML file's \\[evaluate] table: see docs/evaluate.md.
"""


def _summary(records: list[CheckpointRecord]) -> Table:
    """Each recipe's last checkpoint, one column per recipe (narrow enough for a terminal)."""
    from portraitist.evaluate.metrics import metrics_in

    recipes = list(dict.fromkeys(r.recipe for r in records))
    own = {recipe: [r for r in records if r.recipe == recipe] for recipe in recipes}
    last = {recipe: max(own[recipe], key=lambda r: r.step) for recipe in recipes}
    table = Table(title="each recipe's last checkpoint")
    table.add_column("")
    for recipe in recipes:
        table.add_column(recipe, justify="right")
    table.add_row("step", *(str(last[r].step) for r in recipes))
    for metric in metrics_in(r.metrics for r in records):
        values = [last[r].metrics.get(metric.name) for r in recipes]
        label = f"{metric.label} {'↑' if metric.higher_is_better else '↓'}"
        table.add_row(label, *("-" if v is None else f"{v:.3f}" for v in values))
    table.add_row("training s", *(f"{last[r].train_seconds:.0f}" for r in recipes))
    table.add_row("measuring s", *(f"{sum(x.eval_seconds for x in own[r]):.0f}" for r in recipes))
    overheads = [evaluation_overhead(own[r]) for r in recipes]
    table.add_row("overhead", *("-" if o is None else f"{100 * o:.0f}%" for o in overheads))
    return table


COMPARE_OUT = Path("eval-compare")
WORLD_OUT = Path("eval-world")
COMPARE = "With --compare"  # the help's panels of the options that go with one mode
WORLD = "With --world"


@app.command("evaluate", help=HELP)
def evaluate_command(
    workspaces: list[Path] = typer.Argument(
        None, help="With --compare: the evaluated workspaces to merge.", show_default=False
    ),
    workspace: Path | None = typer.Option(
        None, "--workspace", "-w", help="The job folder that `prepare` wrote."
    ),
    base: str | None = typer.Option(
        None,
        "--base",
        help="Base model: diffusers folder, .safetensors file, hub id, or `tiny` offline. "
        f"\\[default: {DEFAULT_BASE}; with --world: world]",
    ),
    recipes: str | None = setting(EvaluateConfig, "recipes"),
    every: int | None = setting(EvaluateConfig, "every"),
    steps: int | None = setting(EvaluateConfig, "steps"),
    seed: int | None = setting(EvaluateConfig, "seed"),
    clip_model: str | None = setting(RankConfig, "clip_model"),
    config: Path | None = typer.Option(
        None, "--config", help="TOML file with an \\[evaluate] table (docs/evaluate.md)."
    ),
    restart: bool | None = setting(EvaluateConfig, "restart"),
    out: Path | None = typer.Option(
        None,
        "--out",
        help=f"With --compare: the folder for the merged report \\[default: {COMPARE_OUT}]; with --world: "
        f"the folder for everything \\[default: {WORLD_OUT}].",
    ),
    compare: bool = typer.Option(
        False,
        "--compare",
        help="Merge the evaluations of the workspaces given as arguments.",
        rich_help_panel=COMPARE,
    ),
    world: bool = typer.Option(
        False,
        "--world",
        help="Compare the recipes in the synthetic world (docs/evaluate.md).",
        rich_help_panel=WORLD,
    ),
    people: int | None = setting(WorldSettings, "people", rich_help_panel=WORLD),
    seeds: int | None = setting(WorldSettings, "seeds", rich_help_panel=WORLD),
    sweep: bool = typer.Option(
        False,
        "--sweep",
        help="Tune every recipe's learning rates (and split) alike first, on other people.",
        rich_help_panel=WORLD,
    ),
    judges: str | None = setting(WorldSettings, "judges", rich_help_panel=WORLD),
) -> None:
    quiet_libraries()
    given = {"recipes": recipes, "every": every, "steps": steps, "restart": restart}
    if world:
        world_given = {"people": people, "seeds": seeds, "judges": judges}
        _evaluate_world(workspace, workspaces, seed, config, given, world_given, sweep, out, base)
    elif people is not None or seeds is not None or sweep or judges is not None:
        raise PortraitistError("--people, --seeds, --sweep and --judges go with --world.")
    elif compare:
        _compare(workspaces or [], out or COMPARE_OUT)
    else:
        _evaluate_workspace(workspace, workspaces, config, {**given, "seed": seed}, clip_model, base)


def _evaluate_workspace(
    workspace: Path | None,
    workspaces: list[Path] | None,
    config: Path | None,
    given: dict[str, Any],
    clip_model: str | None,
    base: str | None,
) -> None:
    """`evaluate -w WS`: every recipe trained and measured on one prepared workspace, then a summary."""
    if workspaces:
        raise PortraitistError("Workspaces as arguments go with --compare; evaluate one with --workspace WS.")
    if workspace is None:
        raise PortraitistError(
            "Give --workspace WS (a prepared workspace), or --compare WS1 WS2 ... to merge evaluations."
        )
    from portraitist.evaluate.stage import evaluate  # torch, diffusers and the metric models load only now

    settings = load_config(EvaluateConfig, config, "evaluate", **given)
    if clip_model:
        scoring = settings.scoring.model_copy(update={"clip_model": clip_model})
        settings = settings.model_copy(update={"scoring": scoring})
    with progress_display() as progress:
        result = evaluate(Workspace(workspace), settings, base or DEFAULT_BASE, progress)
    console.print(_summary(result.records))
    if result.overhead is not None:
        console.print(
            f"Measuring took {100 * result.overhead:.0f}% of the training time it measured "
            f"({result.measured} checkpoints measured now, {len(result.records) - result.measured} earlier)."
        )
    console.print(f"Metrics: {result.report.parent / 'metrics.jsonl'}\nReport:  {result.report}")


def _compare(workspaces: list[Path], out: Path) -> None:
    """`evaluate --compare WS1 WS2 ...`: several workspaces' evaluations merged into one report."""
    from portraitist.evaluate.report import write_comparison_report

    report = write_comparison_report([Workspace(w) for w in workspaces], out)
    console.print(f"Merged {len(workspaces)} evaluations: {report}")


def _evaluate_world(
    workspace: Path | None,
    workspaces: list[Path] | None,
    seed: int | None,
    config: Path | None,
    given: dict[str, Any],
    world_given: dict[str, Any],
    sweep: bool,
    out: Path | None,
    base: str | None,
) -> None:
    """`evaluate --world [--sweep]`: the comparison in the synthetic world, then its summary."""
    if workspace is not None or workspaces:
        raise PortraitistError(
            "--world renders its own people into --out DIR; it takes no --workspace or workspaces."
        )
    if seed is not None:
        raise PortraitistError(
            "--world trains with seeds 0..N-1: give their number with --seeds N instead of --seed."
        )
    settings = load_config(EvaluateConfig, config, "evaluate", **given)
    changes = {k: v for k, v in world_given.items() if v is not None}
    try:
        world = WorldSettings.model_validate({**world_settings(settings).model_dump(), **changes})
    except ValueError as exc:
        raise PortraitistError(f"Invalid --world settings: {exc}") from exc
    settings = settings.model_copy(update={"world": world})
    from portraitist.world.evaluate import evaluate_world  # torch, diffusers and the judges load only now

    folder, world_base = out or WORLD_OUT, base or "world"
    with progress_display() as progress:
        if sweep:
            from portraitist.world.sweep import sweep as tune

            chosen = tune(folder, settings, world_base, progress)
            settings = settings.model_copy(update={"recipe_stages": chosen})
        result = evaluate_world(folder, settings, world_base, progress)
    console.print(_world_last(result))
    console.print(_world_summary(result))
    console.print(f"Report:  {result.report}\nNumbers: {result.report.parent / 'summary.json'}")


def _world_summary(result: WorldResult) -> Table:
    """Who leads on each metric at each measured step: '*' marks a lead whose 95% interval excludes zero."""
    from portraitist.world.metrics import WORLD_METRICS

    table = Table(
        title=f"who leads, over {len(result.runs)} evaluation{'s' if len(result.runs) != 1 else ''} "
        "(* clear: 95% interval of the margin > 0)"
    )
    table.add_column("step", justify="right")
    for metric in WORLD_METRICS:
        table.add_column(metric.label)
    by_step: dict[int, dict[str, str]] = {}
    for lead in result.leads:
        margin = "" if lead.margin is None else f" +{lead.margin:.3f}{'*' if lead.clear else ''}"
        by_step.setdefault(lead.step, {})[lead.metric.name] = f"{lead.leader}{margin}"
    for step, cells in sorted(by_step.items()):
        table.add_row(str(step), *(cells.get(m.name, "-") for m in WORLD_METRICS))
    return table


def _world_last(result: WorldResult) -> Table:
    """Each recipe's last checkpoint: mean ± 95% interval over the evaluations, one column per recipe."""
    from portraitist.evaluate.summary import build_curves
    from portraitist.world.metrics import WORLD_METRICS

    curves = build_curves([run.records for run in result.runs], WORLD_METRICS, "ci95")
    table = Table(title="each recipe's last checkpoint: mean ± 95% interval")
    table.add_column("")
    for recipe in curves:
        table.add_column(recipe, justify="right")
    table.add_row("step", *(str(c.steps[-1]) for c in curves.values()))
    for metric in WORLD_METRICS:
        cells = []
        for curve in curves.values():
            mean, band = curve.mean[metric.name][-1], curve.spread[metric.name][-1]
            cells.append("-" if mean is None else f"{mean:.3f}" + ("" if band is None else f" ± {band:.3f}"))
        table.add_row(metric.label, *cells)
    table.add_row("training s", *(f"{c.seconds[-1]:.0f}" for c in curves.values()))
    return table
