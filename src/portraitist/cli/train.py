"""`portraitist train --workspace WS --base MODEL`: fine-tune Stable Diffusion on a prepared workspace."""

from __future__ import annotations

from pathlib import Path

import typer

from portraitist.cli.app import app, console, progress_display, quiet_libraries
from portraitist.cli.options import setting
from portraitist.config import load_config
from portraitist.train.config import TrainConfig
from portraitist.train.recipes import PART_HELP, RECIPES
from portraitist.workspace import Workspace


def _recipe_lines() -> str:
    lines = []
    for recipe in RECIPES.values():
        stages = "; then ".join(
            f"{round(s.share * 100)}%: "
            + ", ".join(f"{part} lr {rate:g}" for part, rate in s.learning_rates.items())
            for s in recipe.stages
        )
        lines.append(f"- [bold]{recipe.name}[/] ({recipe.steps} steps): {recipe.summary} {stages}.")
    return "\n\n".join(lines)


HELP = (
    "Fine-tune Stable Diffusion 1.x/2.x on the photos `portraitist prepare` put in WS/dataset/ (thesis 2.3), "
    "and write WS/model/: the trained weights, tokens.json, train_log.jsonl, checkpoints.\n\n"
    "A recipe is a list of stages; each trains some parts at its own learning rate for a share of the "
    "steps:\n\n"
    + _recipe_lines()
    + "\n\nParts: "
    + "; ".join(f"{part} = {text}" for part, text in PART_HELP.items())
    + ".\n\nWhy these defaults: the thesis trains the text encoder with the UNet, then the UNet alone, "
    "with no prior-preservation images; diffusers' DreamBooth guide trains faces 800-1200 steps at lr "
    "1e-6..5e-6. Textual Inversion and LoRA train far fewer weights and need far higher rates.\n\n"
    "Killed or out of disk? Run the same command again: it resumes from the last checkpoint "
    "(--checkpoint-every) to the same weights. The new tokens are added to the tokenizer; the instance "
    "token starts as the word 'face' (dataset/manifest.json's instance_init).\n\n"
    "Examples:\n\n"
    "portraitist train -w ./me --base ./stable-diffusion-v1-5\n\n"
    "portraitist train -w ./me --base tiny --steps 20          "
    "(offline smoke run on a small random model)\n\n"
    "portraitist train -w ./me --base ./sd15 --recipe lora --lora-rank 8\n\n"
    "portraitist train -w ./me --base ./sd15 --recipe dreambooth --train-text-encoder\n\n"
    "Every setting can go in a TOML file, in a \\[train] table: see docs/train.md."
)


@app.command("train", help=HELP)
def train_command(
    workspace: Path = typer.Option(..., "--workspace", "-w", help="The job folder that `prepare` wrote."),
    base: str | None = setting(TrainConfig, "base"),
    recipe: str | None = setting(TrainConfig, "recipe", "--recipe", "-r"),
    steps: int | None = setting(TrainConfig, "steps"),
    config: Path | None = typer.Option(
        None, "--config", help="TOML file with a \\[train] table (docs/train.md)."
    ),
    lr: list[str] | None = setting(TrainConfig, "learning_rates", "--lr"),
    batch_size: int | None = setting(TrainConfig, "batch_size"),
    seed: int | None = setting(TrainConfig, "seed"),
    precision: str | None = setting(TrainConfig, "precision"),
    low_memory: bool | None = setting(TrainConfig, "low_memory"),
    device: str | None = setting(TrainConfig, "device"),
    flip: bool | None = setting(TrainConfig, "flip", "--flip/--no-flip"),
    train_text_encoder: bool | None = setting(TrainConfig, "train_text_encoder"),
    prior_preservation: bool | None = setting(TrainConfig, "prior_preservation"),
    class_images: Path | None = setting(TrainConfig, "class_images"),
    unet_lora: bool | None = setting(TrainConfig, "unet_lora", "--unet-lora/--full-unet"),
    lora_rank: int | None = setting(TrainConfig, "lora_rank"),
    attention_loss: float | None = setting(TrainConfig, "attention_loss"),
    checkpoint_every: int | None = setting(TrainConfig, "checkpoint_every"),
    validate_every: int | None = setting(TrainConfig, "validate_every"),
    vae: str | None = setting(TrainConfig, "vae"),
    compile_unet: bool | None = setting(TrainConfig, "compile"),
    restart: bool | None = setting(TrainConfig, "restart"),
) -> None:
    quiet_libraries()
    from portraitist.train.stage import train  # torch and diffusers load only when a command runs

    rates = {}
    for item in lr or []:
        part, _, rate = item.partition("=")
        rates[part.strip()] = rate.strip()
    settings = load_config(
        TrainConfig,
        config,
        "train",
        base=base,
        recipe=recipe,
        steps=steps,
        learning_rates=rates or None,
        batch_size=batch_size,
        seed=seed,
        precision=precision,
        low_memory=low_memory,
        device=device,
        flip=flip,
        train_text_encoder=train_text_encoder,
        prior_preservation=prior_preservation,
        class_images=class_images,
        unet_lora=unet_lora,
        lora_rank=lora_rank,
        attention_loss=attention_loss,
        checkpoint_every=checkpoint_every,
        validate_every=validate_every,
        vae=vae,
        compile=compile_unet,
        restart=restart,
    )
    ws = Workspace(workspace)
    with progress_display() as progress:
        result = train(ws, settings, progress)
    resumed = f" (resumed at step {result.resumed_from})" if result.resumed_from else ""
    memory = f", peak GPU memory {result.peak_gpu_mb / 1024:.1f} GB" if result.peak_gpu_mb else ""
    console.print(
        f"Trained {result.recipe} for {result.steps_done} steps{resumed} in {result.seconds:.0f} s "
        f"of training{memory}; final loss {result.final_loss:.4f}. Model: {result.model_dir}"
        if result.final_loss is not None
        else f"Nothing left to train: {result.model_dir} is complete ({result.steps_done} steps)."
    )
