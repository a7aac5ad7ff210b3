"""`portraitist export --workspace WS --format FORMAT`: the trained model for other tools."""

from __future__ import annotations

from pathlib import Path

import typer

from portraitist.cli.app import app, console, quiet_libraries
from portraitist.workspace import Workspace

HELP = (
    "Write the model `portraitist train` made in a format other tools load.\n\n"
    "- [bold]diffusers[/]: a StableDiffusionPipeline folder (the new tokens are in its tokenizer). "
    "Default out: WS/export/diffusers/.\n\n"
    "- [bold]single-file[/]: one .safetensors in the original Stable Diffusion key layout, for "
    "AUTOMATIC1111 and ComfyUI, with the learned tokens beside it as textual-inversion embeddings. "
    "Default out: WS/export/model.safetensors.\n\n"
    "- [bold]kohya-lora[/]: a `--recipe lora` model's adapters in kohya's format "
    "(lora_unet_..., lora_te_...), embeddings beside. Default out: WS/export/lora.safetensors.\n\n"
    "In A1111/ComfyUI, write an embedding's file name where portraitist writes its token: `<me>` becomes "
    "`portraitist-me` (README.txt beside the files says it).\n\n"
    "Examples:\n\n"
    "portraitist export -w ./me --format single-file --out ~/webui/models/Stable-diffusion/me.safetensors\n\n"
    "portraitist export -w ./me --format kohya-lora"
)


@app.command("export", help=HELP)
def export_command(
    workspace: Path = typer.Option(..., "--workspace", "-w", help="The job folder that `train` wrote."),
    fmt: str = typer.Option(..., "--format", "-f", help="diffusers, single-file or kohya-lora."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Where to write (a folder for diffusers, else a file)."
    ),
) -> None:
    quiet_libraries()
    from portraitist.train.export import export

    for path in export(Workspace(workspace), fmt, out):  # type: ignore[arg-type]
        console.print(f"wrote {path}")
