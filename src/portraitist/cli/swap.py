"""`portraitist swap --workspace WS PICTURE`: your face painted into a picture (thesis 2.4.1)."""

from __future__ import annotations

from pathlib import Path

import typer

from portraitist.cli.app import app, console, progress_display, quiet_libraries
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
    workspace: Path | None = typer.Option(None, "--workspace", "-w", help="The job folder with a trained model."),
    prompt: str | None = typer.Option(None, "--prompt", "-p", help="What the face becomes (default 'a photo of {me}')."),
    negative: str | None = typer.Option(None, "--negative", help="Negative prompt."),
    strength: float | None = typer.Option(None, "--strength", help="How much of the face is repainted, 0-1 (default 0.6)."),
    n: int | None = typer.Option(None, "--num-images", "-n", help="How many versions (seeds; default 4)."),
    seed: int | None = typer.Option(None, "--seed", help="First seed (default 0)."),
    steps: int | None = typer.Option(None, "--steps", help="Denoising steps before strength (default 30)."),
    guidance: float | None = typer.Option(None, "--guidance", help="Classifier-free guidance scale (default 7)."),
    batch_size: int | None = typer.Option(None, "--batch-size", "-b", help="Versions per UNet call (default 1)."),
    context: float | None = typer.Option(None, "--context", help="Square cut around the face, in face sizes (2.2)."),
    feather: float | None = typer.Option(None, "--feather", help="Mask edge blur, share of the face size (0.08)."),
    control: str | None = typer.Option(None, "--control", help="pose or canny: keep the original face's angle."),
    controlnet: str | None = typer.Option(None, "--controlnet", help="ControlNet weights: folder, file or hub id."),
    control_scale: float | None = typer.Option(None, "--control-scale", help="ControlNet strength (default 1)."),
    vae: str | None = typer.Option(None, "--vae", help="Replace the VAE, e.g. stabilityai/sd-vae-ft-mse."),
    base: str | None = typer.Option(None, "--base", help="Use this base model instead of a workspace (with --out)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Folder for the results when using --base."),
    device: str | None = typer.Option(None, "--device", help="cuda, cpu or auto (default)."),
    dtype: str | None = typer.Option(None, "--dtype", help="auto (default), fp32, bf16 or fp16."),
    config: Path | None = typer.Option(None, "--config", help="TOML file with a \\[swap] table of settings."),
) -> None:
    quiet_libraries()
    from portraitist.generate.swap import swap  # torch, diffusers and mediapipe load only when a command runs

    settings = load_config(
        SwapConfig, config, "swap",
        prompt=prompt, negative_prompt=negative, strength=strength, n=n, seed=seed, steps=steps, guidance=guidance,
        batch_size=batch_size, context=context, feather=feather, control=control, controlnet=controlnet,
        control_scale=control_scale, vae=vae, base=base, out=out, device=device, dtype=dtype,
    )  # fmt: skip
    with progress_display() as progress:
        result = swap(Workspace(workspace) if workspace else None, picture, settings, progress)
    order = "by likeness to your photos" if result.ranked_by_identity else "in seed order"
    console.print(f"[bold]{len(result.images)}[/] versions, {order}:", highlight=False)
    for path in result.images:
        typer.echo(str(path))
