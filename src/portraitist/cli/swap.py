"""`portraitist swap --workspace WS PICTURE`: your face painted into a picture (thesis 2.4.1)."""

from __future__ import annotations

from pathlib import Path

import typer

from portraitist.cli.app import app, console, progress_display, quiet_libraries
from portraitist.cli.options import setting
from portraitist.config import load_config
from portraitist.generate.config import SwapConfig
from portraitist.workspace import Workspace

HELP = (
    "Put your face into a picture you supply: a film still, a group photo in costumes (thesis 2.4.1).\n\n"
    "The face in PICTURE is found (the largest, if several), outlined with a face mesh, and only that region "
    "is repainted by your model: its latents are noised to --strength and denoised, while everything outside "
    "the mask is held to the picture at every step; the new face is blended in with a feathered edge, so the "
    "rest of the picture stays exactly as it was, at full resolution. --control pose|canny keeps the "
    "original face's angle. Several seeds (-n) are drawn and, with the ranking models installed, sorted by "
    "likeness to your photos. Results go to WS/outputs/swaps/ (and WS/outputs/swaps.jsonl).\n\n"
    "Examples:\n\n"
    "portraitist swap -w ./me still.jpg\n\n"
    "portraitist swap -w ./me party.jpg --prompt 'a photo of {me} as a pirate' --strength 0.7 -n 8\n\n"
    "portraitist swap --base tiny --out ./try picture.jpg --prompt 'a photo of a person'"
)


@app.command("swap", help=HELP)
def swap_command(
    picture: Path = typer.Argument(..., help="The picture whose face is replaced."),
    workspace: Path | None = typer.Option(
        None, "--workspace", "-w", help="The job folder with a trained model."
    ),
    prompt: str | None = setting(SwapConfig, "prompt", "--prompt", "-p"),
    negative: str | None = setting(SwapConfig, "negative_prompt", "--negative"),
    strength: float | None = setting(SwapConfig, "strength"),
    n: int | None = setting(SwapConfig, "n", "--num-images", "-n"),
    seed: int | None = setting(SwapConfig, "seed"),
    steps: int | None = setting(SwapConfig, "steps"),
    guidance: float | None = setting(SwapConfig, "guidance"),
    batch_size: int | None = setting(SwapConfig, "batch_size", "--batch-size", "-b"),
    context: float | None = setting(SwapConfig, "context"),
    feather: float | None = setting(SwapConfig, "feather"),
    control: str | None = setting(SwapConfig, "control"),
    controlnet: str | None = setting(SwapConfig, "controlnet"),
    control_scale: float | None = setting(SwapConfig, "control_scale"),
    vae: str | None = setting(SwapConfig, "vae"),
    base: str | None = setting(SwapConfig, "base"),
    out: Path | None = setting(SwapConfig, "out", "--out", "-o"),
    device: str | None = setting(SwapConfig, "device"),
    dtype: str | None = setting(SwapConfig, "dtype"),
    config: Path | None = typer.Option(None, "--config", help="TOML file with a \\[swap] table of settings."),
) -> None:
    quiet_libraries()
    from portraitist.generate.swap import swap  # torch, diffusers and mediapipe load only when a command runs

    settings = load_config(
        SwapConfig, config, "swap",
        prompt=prompt, negative_prompt=negative, strength=strength, n=n, seed=seed, steps=steps,
        guidance=guidance, batch_size=batch_size, context=context, feather=feather, control=control,
        controlnet=controlnet, control_scale=control_scale, vae=vae, base=base, out=out, device=device,
        dtype=dtype,
    )  # fmt: skip
    with progress_display() as progress:
        result = swap(Workspace(workspace) if workspace else None, picture, settings, progress)
    order = "by likeness to your photos" if result.ranked_by_identity else "in seed order"
    console.print(f"[bold]{len(result.images)}[/] versions, {order}:", highlight=False)
    for path in result.images:
        typer.echo(str(path))
