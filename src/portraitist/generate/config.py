"""Settings of `portraitist generate` and `portraitist swap` (thesis 2.4); light to import, for the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from portraitist.config import PrecisionChoice, Role, StageConfig
from portraitist.errors import PortraitistError
from portraitist.generate.sizes import ASPECT_RANGE, parse_aspect

ControlKind = Literal["pose", "canny", "depth"]
DEFAULT_DEPTH_MODEL = "Intel/dpt-hybrid-midas"


class SamplingConfig(StageConfig):
    """What every sampling command shares: the model, the sampler and the hardware."""

    base: str | None = Field(
        None, description="Sample this base model instead of a workspace's (with --out)."
    )
    out: Path | None = Field(
        None, description="Folder for the images when sampling a base model (no workspace)."
    )
    vae: str | None = Field(
        None, description="Replace the model's VAE, e.g. stabilityai/sd-vae-ft-mse (sharper eyes)."
    )
    negative_prompt: str | None = Field(None, description="What to steer away from (a style brings its own).")
    n: int = Field(4, ge=1, description="How many images (each its own seed).")
    seed: int = Field(
        0, ge=0, description="Seed of the first image: image i uses seed + i, so any one can be remade alone."
    )
    steps: int = Field(
        30, ge=1, le=1000, description="Denoising steps of a whole schedule (swap runs the last `strength`)."
    )
    guidance: float = Field(7.0, ge=1.0, description="Classifier-free guidance scale (1 = off).")
    batch_size: Annotated[int, Role.RUNTIME] = Field(
        1, ge=1, description="Images per UNet call (more is faster on a GPU, needs memory)."
    )
    controlnet: str | None = Field(
        None, description="ControlNet weights (folder, file or hub id); default per kind."
    )
    control_scale: float = Field(1.0, ge=0.0, description="How strongly the ControlNet steers.")
    device: Annotated[str, Role.RUNTIME] = Field(
        "auto", description="cuda, cpu or auto (a GPU when there is one)."
    )
    dtype: PrecisionChoice = Field(
        "auto", description="Weights' precision: auto (fp16 on GPU, bf16 on CPU), fp32, bf16, fp16."
    )
    cuda_graphs: Annotated[bool, Role.RUNTIME] = Field(
        True, description="On a GPU, replay the UNet as CUDA graphs (fewer kernel launches)."
    )


class GenerateConfig(SamplingConfig):
    """`portraitist generate`: portraits from a style preset or your own prompt."""

    style: str | None = Field(
        None, description="A style preset by name (see --list-styles); photo by default."
    )
    prompt: str | None = Field(None, description="Your own prompt; {me} stands for you.")
    aspect: str = Field(
        "1:1",
        description=f"Width:height: 1:1, 4:5, 9:16 (stories), 16:9, or another ratio from {ASPECT_RANGE}.",
    )
    size: int | None = Field(
        None,
        description="The image's scale in pixels, a multiple of 8 (default: the model's resolution): the "
        "short side on SD 1.x, the side of a square of the same area on SDXL.",
    )
    scheduler: str = Field(
        "euler",
        description="euler (Karras et al., the thesis's sampler) or a diffusers one: euler-a, dpm++2m, "
        "dpm++2m-karras, ddim, pndm, lms, heun, unipc.",
    )
    control: ControlKind | None = Field(
        None, description="Steer the composition with a pose, depth or canny ControlNet."
    )
    reference: Path | None = Field(None, description="The image the control condition is taken from.")
    depth_model: str = Field(DEFAULT_DEPTH_MODEL, description="Depth-estimation model for --control depth.")

    @field_validator("aspect")
    @classmethod
    def _known_aspect(cls, aspect: str) -> str:
        parse_aspect(aspect)  # its PortraitistError passes through pydantic unwrapped
        return aspect.strip()

    @model_validator(mode="after")
    def _control_needs_reference(self) -> GenerateConfig:
        if (self.control is None) != (self.reference is None):
            # a PortraitistError passes through pydantic unwrapped, so the user reads just this
            raise PortraitistError(
                "--control KIND and --reference IMAGE go together: the condition (pose, canny, depth) is "
                "taken from the reference image."
            )
        return self


class SwapConfig(SamplingConfig):
    """`portraitist swap`: your face painted into a picture you supply (thesis 2.4.1)."""

    prompt: str = Field(
        "a photo of {me}", description="What the face region should become; {me} stands for you."
    )
    strength: float = Field(
        0.6, gt=0.0, le=1.0, description="How much of the original face is repainted (1 = all)."
    )
    context: float = Field(2.2, ge=1.2, description="Side of the square cut around the face, in face sizes.")
    feather: float = Field(
        0.08, ge=0.0, le=0.5, description="Blur of the mask's edge, as a share of the face size."
    )
    control: Literal["pose", "canny"] | None = Field(
        None, description="Keep the original face's angle with a pose or canny ControlNet taken from it."
    )
