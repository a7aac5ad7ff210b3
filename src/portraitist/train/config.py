"""Settings of `portraitist train` (TOML section `[train]`, or CLI options)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from portraitist.config import PrecisionChoice, Role, StageConfig
from portraitist.models import DEFAULT_BASE
from portraitist.train.recipes import RECIPES, Part, Recipe, Stage, get_recipe, stage_steps


class TrainConfig(StageConfig):
    """Which base model to fine-tune on a prepared workspace, and how (thesis 2.3)."""

    base: str = Field(
        DEFAULT_BASE,
        description="Base model to fine-tune: diffusers folder, .safetensors file, hub id, "
        "or `tiny` offline.",
    )
    recipe: str = Field("staged", description=f"Training recipe: one of {', '.join(RECIPES)}.")
    steps: Annotated[int | None, Role.LENGTH] = Field(
        None, ge=1, description="Total optimizer steps; default: the recipe's own."
    )
    learning_rates: dict[Part, float] = Field(
        default_factory=dict,
        description="Override the recipe's learning rate of a trainable part: on the command line PART=RATE, "
        "repeatable (--lr unet=1e-6 --lr tokens=1e-4); in TOML a table ({unet = 1e-6}).",
    )
    stages: list[Stage] | None = Field(
        None,
        description="Your own stages instead of the recipe's "
        "(TOML [[train.stages]]: name, share, learning_rates).",
    )
    batch_size: int = Field(1, ge=1, description="Images per step.")
    seed: int = Field(
        0, description="Seeds token init, data order, noise and timesteps: same seed, same weights."
    )
    precision: PrecisionChoice = Field(
        "auto",
        description="auto: bf16 on GPUs that have it (else fp16) and on CPUs with bf16 instructions, else "
        "fp32; fp16 needs a CUDA GPU.",
    )
    low_memory: bool = Field(
        False,
        description="Gradient checkpointing, and on a GPU 8-bit AdamW (bitsandbytes) where the UNet "
        "trains whole: trains SD 1.5 in <12 GB.",
    )
    vae: str | None = Field(
        None,
        description="Encode the photos with this VAE (folder, .safetensors file or hub id) instead of the "
        "base's own.",
    )
    restart: Annotated[bool, Role.RUNTIME] = Field(
        False, description="Delete model/checkpoints and start from step 0 instead of resuming."
    )
    device: Annotated[str, Role.RUNTIME] = Field(
        "auto", description="auto (CUDA if available, else CPU), cpu, cuda, cuda:1, ..."
    )
    flip: bool = Field(
        True, description="Also train on mirror images of the photos (latents of both cached once)."
    )
    train_text_encoder: bool = Field(
        False, description="dreambooth recipe only: train the text encoder together with the UNet."
    )
    prior_preservation: bool = Field(
        False, description="DreamBooth's class-prior loss on --class-images (thesis 2.3: off, for speed)."
    )
    class_images: Path | None = Field(
        None, description="Folder of class images ('a photo of a <class>') for prior preservation."
    )
    prior_loss_weight: float = Field(1.0, ge=0, description="Weight of the prior-preservation loss.")
    unet_lora: bool | None = Field(
        None,
        description="Train the UNet as LoRA adapters wherever a recipe trains it whole "
        "(default: on for SDXL, whose full fine-tune does not fit a 24 GB card; off for SD 1.x).",
    )
    lora_rank: int = Field(16, ge=1, description="lora recipe and --unet-lora: rank of the adapters.")
    lora_alpha: float | None = Field(
        None, description="lora recipe: LoRA alpha (default: the rank, scale 1)."
    )
    attention_loss: float = Field(
        0.0, ge=0, description="Weight of the masked cross-attention loss (thesis 2.3); 0 turns it off."
    )
    attention_resolution: int | None = Field(
        None,
        description="Side of the cross-attention maps the attention loss reads (default 16, or the largest).",
    )
    max_grad_norm: float | None = Field(
        1.0, description="Clip the gradient norm to this (None: no clipping)."
    )
    checkpoint_every: Annotated[int, Role.RUNTIME] = Field(
        100, ge=1, description="Write a resumable checkpoint every N steps."
    )
    keep_checkpoints: Annotated[int, Role.RUNTIME] = Field(
        1, ge=1, description="How many good checkpoints to keep."
    )
    validate_every: Annotated[int, Role.RUNTIME] = Field(
        0, ge=0, description="Write validation samples to WS/model/samples/ every N steps (0: never)."
    )
    validation_prompts: Annotated[list[str], Role.RUNTIME] = Field(
        default_factory=lambda: ["a photo of {me}", "an oil painting of {me}"],
        description="Prompts of the validation samples; {me} becomes the subject.",
    )
    validation_steps: Annotated[int, Role.RUNTIME] = Field(
        20, ge=1, description="Sampling steps of each validation image."
    )
    compile: Annotated[bool, Role.RUNTIME] = Field(
        False, description="torch.compile the UNet (faster steps after a slow first one)."
    )
    save_dtype: Annotated[Literal["fp32", "fp16", "bf16"], Role.SAVED_AS] = Field(
        "fp32", description="Precision of the saved weights (fp16 halves a full fine-tune's size)."
    )

    def plan(self, unet_lora: bool = False) -> tuple[Recipe, list[int]]:
        """The recipe with these overrides (its whole-UNet parts as LoRA when `unet_lora`) and its steps
        per stage; PortraitistError if they cannot work (checked when a job is created, not hours later
        when training starts)."""
        recipe = get_recipe(
            self.recipe,
            learning_rates=self.learning_rates,
            train_text_encoder=self.train_text_encoder,
            stages=self.stages,
            unet_lora=unet_lora,
        )
        return recipe, stage_steps(recipe, self.steps or recipe.steps)
