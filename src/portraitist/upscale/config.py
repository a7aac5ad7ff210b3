"""Settings of the `upscale` stage (thesis 2.4.2: Real-ESRGAN x2, up to x4)."""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import Field

from portraitist.config import Role, StageConfig
from portraitist.models.esrgan import DEFAULT_MODEL, DEFAULT_TILE


class UpscaleConfig(StageConfig):
    """Everything `portraitist upscale` can be told."""

    scale: Literal[2, 4] = Field(2, description="Upscale factor: 2 (512 -> 1024, the thesis's choice) or 4.")
    model: str = Field(
        default_factory=lambda: os.environ.get("PORTRAITIST_UPSCALER", DEFAULT_MODEL),
        description="realesrgan-x4plus (shipped, CPU via ncnn), realesr-animevideov3 (shipped, ~30x faster, "
        "softer), or a Real-ESRGAN .pth/.safetensors path (PyTorch, GPU when there is one); "
        "$PORTRAITIST_UPSCALER sets the default.",
    )
    tile: Annotated[int, Role.RUNTIME] = Field(
        DEFAULT_TILE,
        ge=32,
        description="Tile side in input pixels; smaller tiles use less memory, a bit more time.",
    )
    device: Annotated[str | None, Role.RUNTIME] = Field(
        None, description="torch device for a .pth model; default cuda when available."
    )
