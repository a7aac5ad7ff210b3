"""`portraitist run PHOTOS... --workspace WS --base MODEL`: the whole job in one resumable command."""

from __future__ import annotations

from pathlib import Path

import typer

from portraitist.cli.app import app, console, progress_display, quiet_libraries
from portraitist.cli.options import setting
from portraitist.config import load_config
from portraitist.run_config import RunConfig
from portraitist.run_state import Plan

HELP = (
    "Photos in, the k best portraits out: prepare -> train -> generate -> rank -> upscale, then "
    "WS/outputs/report.html.\n\n"
    "Resumable: WS/run.json records each finished stage and its settings, so running the same command again "
    "after a crash or Ctrl-C continues where it stopped (training from its last checkpoint). Run it with "
    "changed settings and the stages they affect run again, with every stage after them; it says which and "
    "why. Delete WS/run.json to start over.\n\n"
    "Examples:\n\n"
    "portraitist run ~/Pictures/me -w ./me --base ./sd15 --vae stabilityai/sd-vae-ft-mse\n\n"
    "portraitist run photos/*.jpg -w ./me --base tiny --clip-model tiny --styles photo,anime -n 8 -k 2 "
    '--config offline.toml   (offline try-out; offline.toml: \\[rank] aesthetic_weights = "random", '
    'lpips_backbone = "random")\n\n'
    "portraitist run ./me -w ./me-ws --prompt 'a photo of {me} on a red background' "
    "--prompt '{me} smiling'\n\n"
    "Every stage's settings can go in a TOML file with \\[prepare], \\[train], \\[generate], \\[rank] and "
    "\\[upscale] tables."
)


@app.command("run", help=HELP)
def run_command(
    photos: list[Path] = typer.Argument(None, help="Photo files or folders (not needed when resuming)."),
    workspace: Path = typer.Option(..., "--workspace", "-w", help="The job folder (created if missing)."),
    base: str | None = setting(RunConfig, "base"),
    vae: str | None = setting(RunConfig, "vae"),
    recipe: str | None = setting(RunConfig, "recipe"),
    steps: int | None = setting(RunConfig, "steps"),
    styles: str | None = setting(RunConfig, "styles"),
    prompts: list[str] | None = setting(RunConfig, "prompts", "--prompt"),
    boxes: Path | None = typer.Option(
        None,
        "--boxes",
        help="JSON file of the photos' face boxes and masks, for prepare (see `prepare --help`).",
    ),
    n: int | None = setting(RunConfig, "n", "--num-images", "-n"),
    k: int | None = setting(RunConfig, "k", "--keep", "-k"),
    clip_model: str | None = setting(RunConfig, "clip_model"),
    scale: int | None = setting(RunConfig, "scale"),
    seed: int | None = setting(RunConfig, "seed"),
    config: Path | None = typer.Option(None, "--config", help="TOML file with per-stage tables."),
) -> None:
    quiet_libraries()
    from portraitist.pipeline import run_pipeline
    from portraitist.workspace import Workspace

    settings = load_config(
        RunConfig,
        config,
        "run",
        base=base,
        vae=vae,
        recipe=recipe,
        steps=steps,
        n=n,
        k=k,
        scale=scale,
        seed=seed,
        clip_model=clip_model,
        styles=[s.strip() for s in styles.split(",") if s.strip()] if styles else ([] if prompts else None),
        prompts=prompts or None,
    )
    with progress_display() as progress:
        result = run_pipeline(Workspace(workspace), photos or None, settings, progress, boxes)
    say_plan(result.plan)
    if result.training_resumed_from:
        console.print(f"Training resumed from its step-{result.training_resumed_from} checkpoint.")
    console.print(f"{len(result.selected)} portraits in {result.workspace.outputs_dir / 'selected'}")
    console.print(f"Report: [bold]{result.report}[/]")


def say_plan(plan: Plan) -> None:
    """What this run skipped and what it ran again, and why."""
    if plan.skipped:
        console.print(f"Resumed: already done were {', '.join(plan.skipped)}.")
    if plan.changed:
        changes = "; ".join(f"{name} ({change})" for name, change in plan.changed.items())
        console.print(
            f"Settings changed since the last run: {changes}. Those stages ran again.", highlight=False
        )
    if plan.after:
        console.print(f"Ran again because an earlier stage did: {', '.join(plan.after)}.")
    if plan.dropped:
        console.print(f"No longer asked for, so their images were removed: {', '.join(plan.dropped)}.")
