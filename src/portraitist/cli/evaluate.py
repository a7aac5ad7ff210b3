"""`portraitist evaluate`: train every recipe once and measure it every N steps (thesis 2.3, Fig. 11)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from portraitist.cli.app import app, console, progress_display, quiet_libraries
from portraitist.config import load_config
from portraitist.errors import PortraitistError
from portraitist.evaluate.records import CheckpointRecord, evaluation_overhead
from portraitist.models.loading import DEFAULT_BASE
from portraitist.train.recipes import RECIPES
from portraitist.workspace import Workspace

HELP = f"""Compare training recipes on your own photos, as the thesis compared its staged recipe with Textual Inversion and DreamBooth (2.3, Fig. 11).

Each recipe ({", ".join(RECIPES)}) is trained once on WS/dataset/ (from `portraitist prepare`) with the same seed, in its own folder WS/eval/<recipe>/. Every --every steps the model under training samples the same prompts with the same seeds, and is measured:

  Image Alignment  CLIP image similarity of the "a photo of {{me}}" images to your photos
  Text Alignment   CLIP similarity of each edit image ("an oil painting of {{me}}", ...) to its prompt without {{me}}
  LPIPS            perceptual distance of the "a photo of {{me}}" images to your photos (lower: closer)
  Identity         dlib face similarity to your photos, and the share of images with a face
  Aesthetic        LAION's aesthetic predictor
  seconds          training time so far, and the time the measuring took (its overhead)

WS/eval/metrics.jsonl gets one line per recipe and checkpoint; WS/eval/report.html shows the plots (against steps and against training seconds) and a grid of the images per recipe and checkpoint. Interrupted? Run the same command again: measured checkpoints are not measured again. --restart starts over.

`--compare WS1 WS2 ...` merges several workspaces' evaluations (several people) into one report with the mean and spread per recipe.

Examples:

portraitist evaluate -w ./me --base ./stable-diffusion-v1-5

portraitist evaluate -w ./me --base ./sd15 --recipes staged,dreambooth --steps 800 --every 100

portraitist evaluate --compare ./alice ./bob ./carol --out ./comparison

The prompts, image count, sampling steps, training settings (\\[evaluate.train]) and metric models (\\[evaluate.scoring]) go in a TOML file's \\[evaluate] table: see docs/evaluate.md.
"""


def _summary(records: list[CheckpointRecord]) -> Table:
    """Each recipe's last checkpoint, one column per recipe (narrow enough for a terminal)."""
    from portraitist.evaluate.metrics import METRICS

    recipes = list(dict.fromkeys(r.recipe for r in records))
    own = {recipe: [r for r in records if r.recipe == recipe] for recipe in recipes}
    last = {recipe: max(own[recipe], key=lambda r: r.step) for recipe in recipes}
    table = Table(title="each recipe's last checkpoint")
    table.add_column("")
    for recipe in recipes:
        table.add_column(recipe, justify="right")
    table.add_row("step", *(str(last[r].step) for r in recipes))
    for metric in METRICS:
        values = [last[r].metrics.get(metric.name) for r in recipes]
        label = f"{metric.label} {'↑' if metric.higher_is_better else '↓'}"
        table.add_row(label, *("-" if v is None else f"{v:.3f}" for v in values))
    table.add_row("training s", *(f"{last[r].train_seconds:.0f}" for r in recipes))
    table.add_row("measuring s", *(f"{sum(x.eval_seconds for x in own[r]):.0f}" for r in recipes))
    overheads = [evaluation_overhead(own[r]) for r in recipes]
    table.add_row("overhead", *("-" if o is None else f"{100 * o:.0f}%" for o in overheads))
    return table


@app.command("evaluate", help=HELP)
def evaluate_command(
    workspaces: list[Path] = typer.Argument(
        None, help="With --compare: the evaluated workspaces to merge.", show_default=False
    ),
    workspace: Path | None = typer.Option(
        None, "--workspace", "-w", help="The job folder that `prepare` wrote."
    ),
    base: str = typer.Option(
        DEFAULT_BASE,
        "--base",
        help="Base model: diffusers folder, .safetensors file, hub id, or `tiny` offline.",
    ),
    recipes: str | None = typer.Option(
        None, "--recipes", help=f"Comma-separated recipes to compare (default {','.join(RECIPES)})."
    ),
    every: int | None = typer.Option(None, "--every", help="Measure every N training steps (default 50)."),
    steps: int | None = typer.Option(
        None,
        "--steps",
        help="Training steps of every recipe, a multiple of --every (default: each recipe's own).",
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed of training and of the evaluation images (default 0)."
    ),
    clip_model: str | None = typer.Option(
        None,
        "--clip-model",
        help="CLIP for the alignments: hub id or folder (default ViT-L/14), or `tiny` offline.",
    ),
    config: Path | None = typer.Option(
        None, "--config", help="TOML file with an \\[evaluate] table (docs/evaluate.md)."
    ),
    restart: bool | None = typer.Option(None, "--restart", help="Delete WS/eval/ and evaluate from scratch."),
    compare: bool = typer.Option(
        False, "--compare", help="Merge the evaluations of the workspaces given as arguments."
    ),
    out: Path = typer.Option(
        Path("eval-compare"), "--out", help="With --compare: the folder for the merged report."
    ),
) -> None:
    quiet_libraries()
    if compare:
        from portraitist.evaluate.report import write_comparison_report

        report = write_comparison_report([Workspace(w) for w in workspaces or []], out)
        console.print(f"Merged {len(workspaces)} evaluations: {report}")
        return
    if workspaces:
        raise PortraitistError("Workspaces as arguments go with --compare; evaluate one with --workspace WS.")
    if workspace is None:
        raise PortraitistError(
            "Give --workspace WS (a prepared workspace), or --compare WS1 WS2 ... to merge evaluations."
        )
    from portraitist.evaluate.config import EvaluateConfig
    from portraitist.evaluate.stage import evaluate  # torch, diffusers and the metric models load only now

    settings = load_config(
        EvaluateConfig,
        config,
        "evaluate",
        recipes=recipes,
        every=every,
        steps=steps,
        seed=seed,
        restart=restart,
    )
    if clip_model:
        settings = settings.model_copy(
            update={"scoring": settings.scoring.model_copy(update={"clip_model": clip_model})}
        )
    with progress_display() as progress:
        result = evaluate(Workspace(workspace), settings, base, progress)
    console.print(_summary(result.records))
    if result.overhead is not None:
        console.print(
            f"Measuring took {100 * result.overhead:.0f}% of the training time it measured "
            f"({result.measured} checkpoints measured now, {len(result.records) - result.measured} earlier)."
        )
    console.print(f"Metrics: {result.report.parent / 'metrics.jsonl'}\nReport:  {result.report}")
