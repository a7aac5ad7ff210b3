"""`portraitist generate --workspace WS [--style NAME | --prompt TEXT]`: portraits from your model (thesis 2.4)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from portraitist.cli.app import app, console, progress_display, quiet_libraries
from portraitist.config import load_config
from portraitist.generate.config import GenerateConfig
from portraitist.generate.sizes import ASPECT_RANGE
from portraitist.generate.styles import STYLES
from portraitist.workspace import Workspace

HELP = (
    "Generate portraits of you with the model `portraitist train` made (thesis 2.4).\n\n"
    "Pick a style preset (--style; `--list-styles` shows them) or write a prompt (--prompt) where {me} "
    "stands for you. Images go to WS/outputs/images/, one line each in WS/outputs/generations.jsonl "
    "(prompt, seed, steps, size, control). Image i uses seed S+i, so `--seed S+i -n 1` remakes it alone.\n\n"
    "Sampling is Euler (Karras et al. 2022, the thesis's sampler) with classifier-free guidance; "
    "--scheduler picks another diffusers scheduler. --aspect makes portrait formats (4:5, 9:16 for stories) "
    "with the short side at the model's resolution. --control pose|canny|depth with --reference IMAGE "
    "takes the composition from a picture through a ControlNet (thesis 2.4.1).\n\n"
    "Without a workspace, --base MODEL --out DIR samples any base model (a folder, a .safetensors file, a hub "
    "id, or `tiny` offline).\n\n"
    "Examples:\n\n"
    "portraitist generate -w ./me --style oil-painting -n 8\n\n"
    "portraitist generate -w ./me --prompt 'a photo of {me} on the moon' --aspect 9:16 --seed 42\n\n"
    "portraitist generate -w ./me --style cinematic --control pose --reference ./pose.jpg\n\n"
    "portraitist generate --base tiny --out ./try --prompt 'a photo of a person' -n 2\n\n"
    "Settings can also go in a TOML file, in a \\[generate] table: see docs/generate.md."
)


def styles_table() -> Table:
    table = Table(title="styles")
    table.add_column("name")
    table.add_column("look")
    table.add_column("prompt", overflow="fold")
    for style in STYLES.values():
        table.add_row(style.name, style.description, style.prompt)
    return table


@app.command("generate", help=HELP)
def generate_command(
    workspace: Path | None = typer.Option(None, "--workspace", "-w", help="The job folder with a trained model."),
    style: str | None = typer.Option(None, "--style", "-s", help="A style preset (see --list-styles); default photo."),
    prompt: str | None = typer.Option(None, "--prompt", "-p", help="Your own prompt; {me} stands for you."),
    negative: str | None = typer.Option(None, "--negative", help="Negative prompt (a style brings its own)."),
    n: int | None = typer.Option(None, "--num-images", "-n", help="How many images (default 4)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the first image; image i uses seed+i (default 0)."),
    steps: int | None = typer.Option(None, "--steps", help="Denoising steps (default 30)."),
    guidance: float | None = typer.Option(None, "--guidance", help="Classifier-free guidance scale (default 7)."),
    batch_size: int | None = typer.Option(None, "--batch-size", "-b", help="Images per UNet call (default 1)."),
    aspect: str | None = typer.Option(
        None, "--aspect", help=f"1:1 (default), 4:5, 9:16, 16:9, or another W:H from {ASPECT_RANGE}."
    ),
    size: int | None = typer.Option(None, "--size", help="Short side in pixels, a multiple of 8 (default: the model's)."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="euler (default), euler-a, dpm++2m, dpm++2m-karras, ddim, pndm, lms, heun, unipc."
    ),
    control: str | None = typer.Option(None, "--control", help="pose, canny or depth: steer with a ControlNet."),
    reference: Path | None = typer.Option(None, "--reference", help="The image the control is taken from."),
    controlnet: str | None = typer.Option(None, "--controlnet", help="ControlNet weights: folder, file or hub id."),
    control_scale: float | None = typer.Option(None, "--control-scale", help="ControlNet strength (default 1)."),
    depth_model: str | None = typer.Option(None, "--depth-model", help="Depth model for --control depth (hub id or folder)."),
    vae: str | None = typer.Option(None, "--vae", help="Replace the VAE, e.g. stabilityai/sd-vae-ft-mse."),
    base: str | None = typer.Option(None, "--base", help="Sample this base model instead of a workspace (with --out)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Folder for the images when using --base."),
    device: str | None = typer.Option(None, "--device", help="cuda, cpu or auto (default)."),
    dtype: str | None = typer.Option(None, "--dtype", help="auto (default), fp32, bf16 or fp16."),
    config: Path | None = typer.Option(None, "--config", help="TOML file with a \\[generate] table of settings."),
    list_styles: bool = typer.Option(False, "--list-styles", help="Show the style presets and exit."),
) -> None:
    if list_styles:
        console.print(styles_table())
        return
    quiet_libraries()
    from portraitist.generate.stage import generate  # torch and diffusers load only when a command runs

    settings = load_config(
        GenerateConfig, config, "generate",
        style=style, prompt=prompt, negative_prompt=negative, n=n, seed=seed, steps=steps, guidance=guidance,
        batch_size=batch_size, aspect=aspect, size=size, scheduler=scheduler, control=control, reference=reference,
        controlnet=controlnet, control_scale=control_scale, depth_model=depth_model, vae=vae, base=base, out=out,
        device=device, dtype=dtype,
    )  # fmt: skip
    with progress_display() as progress:
        result = generate(Workspace(workspace) if workspace else None, settings, progress)
    width, height = result.size
    console.print(f"[bold]{len(result.images)}[/] images, {width}x{height}, prompt: {result.prompt.text}", highlight=False)
    for path in result.images:
        typer.echo(str(path))
