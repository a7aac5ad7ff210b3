"""`portraitist upscale --workspace WS`: the selected portraits through Real-ESRGAN (thesis 2.4.2)."""

from __future__ import annotations

from pathlib import Path

import typer
from PIL import Image
from rich.table import Table

from portraitist.cli.app import app, console, progress_display, quiet_libraries
from portraitist.cli.options import setting
from portraitist.config import load_config
from portraitist.upscale.config import UpscaleConfig

HELP = """Upscale the portraits `portraitist rank` selected, in WS/outputs/selected/, with Real-ESRGAN.

x2 by default (512 -> 1024 px, the thesis's choice over generating at 1024), x4 available. The originals \
move to WS/outputs/selected/original/; the upscaled images take their place. Big images run in overlapping \
tiles, so memory stays small. A rerun continues where a stopped one left off.

Models ($PORTRAITIST_UPSCALER sets the default):
  realesrgan-x4plus     default, ships with portraitist (ncnn, CPU); best on photos; minutes per 512 px \
image on a CPU
  realesr-animevideov3  ships too; a compact model about 30x faster, softer on photos
  FILE.pth              any Real-ESRGAN/ESRGAN checkpoint (e.g. RealESRGAN_x2plus.pth), run by PyTorch \
through spandrel, on the GPU when there is one

Examples:
  portraitist upscale -w ./me
  portraitist upscale -w ./me --scale 4 --model ~/models/RealESRGAN_x4plus.pth

Settings can also come from a TOML file's \\[upscale] table; see docs/rank.md.
"""


@app.command("upscale", help=HELP)
def upscale_command(
    workspace: Path = typer.Option(
        ..., "--workspace", "-w", help="The job folder (after `portraitist rank`)."
    ),
    scale: int | None = setting(UpscaleConfig, "scale"),
    model: str | None = setting(UpscaleConfig, "model"),
    tile: int | None = setting(UpscaleConfig, "tile"),
    config: Path | None = typer.Option(
        None, "--config", help="TOML file with an \\[upscale] table of settings."
    ),
) -> None:
    quiet_libraries()
    from portraitist.upscale.stage import upscale
    from portraitist.workspace import Workspace

    settings = load_config(UpscaleConfig, config, "upscale", scale=scale, model=model, tile=tile)
    with progress_display() as progress:
        result = upscale(Workspace(workspace), settings, progress)
    table = Table(title=f"upscale x{result.scale} ({result.model})")
    table.add_column("image", overflow="fold")
    table.add_column("size", justify="right")
    for path in result.files:
        with Image.open(path) as image:
            table.add_row(path.name, f"{image.width}x{image.height}")
    console.print(table)
    timing = f", {sum(result.seconds) / len(result.seconds):.1f} s per image" if result.seconds else ""
    console.print(
        f"{len(result.seconds)} upscaled, {result.reused} already done{timing}; "
        "originals in selected/original/"
    )
