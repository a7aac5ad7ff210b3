"""Settings of the `rank` stage (thesis 2.4.2): which scorers order the images, and their models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from portraitist.config import PluggableConfig, Role
from portraitist.models.clip import DEFAULT_CLIP
from portraitist.rank.aesthetic import DEFAULT_AESTHETIC
from portraitist.rank.select import DEFAULT_ORDER, parse_order


class RankConfig(PluggableConfig):
    """Everything `portraitist rank` can be told; the defaults are what docs/rank.md argues for. An
    identity model a plug-in registers may come with settings of its own (`add_setting`)."""

    by: Annotated[list[str], Role.SELECTION] = Field(
        default_factory=lambda: list(DEFAULT_ORDER),
        description="Scorers in order (a list, or names separated by commas): identity is a gate "
        "(pass/fail), the others sort; earlier names win, later ones break ties.",
    )
    k: Annotated[int, Role.SELECTION] = Field(
        4, ge=1, description="How many of the best images to copy into outputs/selected/."
    )
    clip_model: str = Field(
        DEFAULT_CLIP,
        description="CLIP of the clip-image, clip-text and aesthetic scores (and of evaluate's Image and "
        "Text Alignment): hub id or folder, or `tiny` offline.",
    )
    aesthetic_weights: str = Field(
        DEFAULT_AESTHETIC,
        description="LAION improved-aesthetic-predictor head: a .pth path, 'HUB_REPO:FILE', or `random` "
        "(tests; sized to the CLIP's embedding).",
    )
    lpips_net: Literal["alex", "vgg", "squeeze"] = Field(
        "alex", description="LPIPS backbone (alex is the paper's default)."
    )
    lpips_backbone: Literal["pretrained", "random"] = Field(
        "pretrained",
        description="pretrained: torchvision's ImageNet weights (downloaded once to the torch cache); "
        "random: offline tests only, the distances mean little.",
    )
    lpips_size: int = Field(256, ge=64, description="Images and crops are resized to this side before LPIPS.")
    identity_model: str = Field(
        "dlib",
        description="Face model of the identity scorer: dlib (real photos), or one a plug-in registers: "
        "world (the synthetic world's judges: face gate + face-ID, for its rendered people, docs/world.md).",
    )
    identity_max_distance: Annotated[float | None, Role.SELECTION] = Field(
        None,
        gt=0,
        description="Largest 1 - identity score that counts as the same person; default the model's own: "
        "dlib's 0.6 (descriptor distance), world: halfway between the judges' same- and other-person "
        "cosines.",
    )
    face_upsample: int = Field(
        1,
        ge=0,
        le=3,
        description="Times dlib's face detector doubles the image first; finds faces down to ~40 px at 1.",
    )
    batch_size: Annotated[int, Role.RUNTIME] = Field(
        8, ge=1, description="Images scored at once (CLIP and LPIPS batches)."
    )
    device: Annotated[str | None, Role.RUNTIME] = Field(
        None, description="torch device for CLIP and LPIPS; default cuda when available."
    )

    @field_validator("by", mode="before")
    @classmethod
    def _split_order(cls, value: object) -> object:
        return parse_order(value) if isinstance(value, str) else value

    @field_validator("by")
    @classmethod
    def _check_order(cls, value: list[str]) -> list[str]:
        return parse_order(",".join(value))
