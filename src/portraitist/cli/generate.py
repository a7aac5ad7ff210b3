"""`portraitist generate --workspace WS [--style NAME | --prompt TEXT]`: portraits from your model
(thesis 2.4)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from portraitist.cli.app import app, console, progress_display, quiet_libraries
from portraitist.cli.options import setting
from portraitist.config import load_config
from portraitist.generate.config import GenerateConfig
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
    "Without a workspace, --base MODEL --out DIR samples any base model (a folder, a .safetensors file, "
    "a hub id, or `tiny` offline).\n\n"
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
    workspace: Path | None = typer.Option(
        None, "--workspace", "-w", help="The job folder with a trained model."
    ),
    style: str | None = setting(GenerateConfig, "style", "--style", "-s"),
    prompt: str | None = setting(GenerateConfig, "prompt", "--prompt", "-p"),
    negative: str | None = setting(GenerateConfig, "negative_prompt", "--negative"),
    n: int | None = setting(GenerateConfig, "n", "--num-images", "-n"),
    seed: int | None = setting(GenerateConfig, "seed"),
    steps: int | None = setting(GenerateConfig, "steps"),
    guidance: float | None = setting(GenerateConfig, "guidance"),
    batch_size: int | None = setting(GenerateConfig, "batch_size", "--batch-size", "-b"),
    aspect: str | None = setting(GenerateConfig, "aspect"),
    size: int | None = setting(GenerateConfig, "size"),
    scheduler: str | None = setting(GenerateConfig, "scheduler"),
    control: str | None = setting(GenerateConfig, "control"),
    reference: Path | None = setting(GenerateConfig, "reference"),
    controlnet: str | None = setting(GenerateConfig, "controlnet"),
    control_scale: float | None = setting(GenerateConfig, "control_scale"),
    depth_model: str | None = setting(GenerateConfig, "depth_model"),
    vae: str | None = setting(GenerateConfig, "vae"),
    base: str | None = setting(GenerateConfig, "base"),
    out: Path | None = setting(GenerateConfig, "out", "--out", "-o"),
    device: str | None = setting(GenerateConfig, "device"),
    dtype: str | None = setting(GenerateConfig, "dtype"),
    config: Path | None = typer.Option(
        None, "--config", help="TOML file with a \\[generate] table of settings."
    ),
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
        batch_size=batch_size, aspect=aspect, size=size, scheduler=scheduler, control=control,
        reference=reference, controlnet=controlnet, control_scale=control_scale, depth_model=depth_model,
        vae=vae, base=base, out=out, device=device, dtype=dtype,
    )  # fmt: skip
    with progress_display() as progress:
        result = generate(Workspace(workspace) if workspace else None, settings, progress)
    width, height = result.size
    console.print(
        f"[bold]{len(result.images)}[/] images, {width}x{height}, prompt: {result.prompt.text}",
        highlight=False,
    )
    for path in result.images:
        typer.echo(str(path))
