"""`portraitist rank --workspace WS`: every generated image scored, the k best selected (thesis 2.4.2)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from portraitist.cli.app import app, console, progress_display, quiet_libraries
from portraitist.cli.options import setting
from portraitist.config import load_config
from portraitist.rank.config import RankConfig
from portraitist.rank.select import DEFAULT_ORDER, SCORERS
from portraitist.workspace import Workspace

SCORER_LINES = "\n".join(f"  {name:<11} {info.description}" for name, info in SCORERS.items())

HELP = f"""Score every image in WS/outputs/generations.jsonl and copy the k best to WS/outputs/selected/.

Every scorer runs on every image; all scores land in WS/outputs/scores.json, best first:

{SCORER_LINES}

--by picks the order: one name, or several separated by commas (earlier ones win, later ones break ties). \
identity is a gate, not a score to maximise: images of the user (face distance within the face model's \
threshold of their crops: dlib's 0.6) come first, then other people's faces, then images with no face; \
within each group the next scorer decides. The default, {",".join(DEFAULT_ORDER)}, gives the best-looking \
images that are really the user.

Examples:
  portraitist rank -w ./me
  portraitist rank -w ./me --by aesthetic -k 8
  portraitist rank -w ./me --by identity,clip-text,aesthetic
  portraitist rank -w ./me --clip-model tiny --config offline.toml   (tests, no hub)
  portraitist rank -w ./world0 --identity-model world   (the synthetic world's rendered people, docs/world.md)

CLIP (ViT-L/14), LPIPS's torchvision backbone and the LAION aesthetic head download once from their hubs; \
dlib's face models ship with the package. Other settings (thresholds, LPIPS net, aesthetic weights file) go \
in a TOML file's \\[rank] table; see docs/rank.md.
"""


@app.command("rank", help=HELP)
def rank_command(
    workspace: Path = typer.Option(
        ..., "--workspace", "-w", help="The job folder (after `portraitist generate`)."
    ),
    by: str | None = setting(RankConfig, "by"),
    k: int | None = setting(RankConfig, "k", "--keep", "-k"),
    clip_model: str | None = setting(RankConfig, "clip_model"),
    identity_model: str | None = setting(RankConfig, "identity_model"),
    config: Path | None = typer.Option(None, "--config", help="TOML file with a \\[rank] table of settings."),
) -> None:
    quiet_libraries()
    from portraitist.rank.stage import rank  # torch, lpips and dlib load only when the command runs

    settings = load_config(
        RankConfig, config, "rank", by=by, k=k, clip_model=clip_model, identity_model=identity_model
    )
    with progress_display() as progress:
        result = rank(Workspace(workspace), settings, progress)
    table = Table(title=f"rank (by {','.join(result.order)})")
    table.add_column("#", justify="right")
    table.add_column("image", overflow="fold")
    for name in SCORERS:
        table.add_column(name + (" ↓" if not SCORERS[name].higher_is_better else ""), justify="right")
    table.add_column("selected")
    for image in result.images:
        values = [("-" if image.scores[name] is None else f"{image.scores[name]:.3f}") for name in SCORERS]
        mark = "[green]yes[/]" if image.selected else ""
        table.add_row(str(image.rank), Path(image.file).name, *values, mark)
    console.print(table)
    if result.reference_faces == 0:
        console.print("[yellow]No face found in the user's crops: identity is empty for every image.[/]")
    elif result.passed_gate < len(result.selected):
        console.print(
            f"[yellow]Only {result.passed_gate} of {len(result.images)} images look like the user; "
            "the rest of the selection are other faces or no face. Generate more images, or train longer.[/]"
        )
    console.print(
        f"{len(result.selected)} of {len(result.images)} selected into "
        f"{result.workspace.outputs_dir / 'selected'}; "
        f"scores in {result.workspace.outputs_dir / 'scores.json'}"
    )
