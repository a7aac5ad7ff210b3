"""The world's base as a model family: SD 1.x's classes with a PixelCodec in the VAE's place.

Importing this module registers the family (recognised by the codec named in model_index.json)
and the named base `world` (the committed folder). The CLI imports it; nothing below the CLI
does, so the product knows the world only through these two registrations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from portraitist.errors import PortraitistError
from portraitist.models.family import register
from portraitist.models.loading import NamedBase, folder_vae_scale_factor, load_folder, register_base
from portraitist.models.sd1 import SD1, load_clip_parts
from portraitist.world.codec import PixelCodec
from portraitist.world.model import BASE_DIR

WORLD = "world"


class WorldFamily(SD1):
    name = "world"
    label = "the synthetic world's base (pixel codec)"
    # a pixel codec in the VAE's place, 32 px: AUTOMATIC1111, ComfyUI and kohya's tools cannot load it
    checkpoint_encoders = {}
    kohya_encoders = {}

    def recognises(self, index: dict[str, Any]) -> bool:
        return super().recognises(index) and (index.get("vae") or [None, None])[1] == PixelCodec.__name__

    def recognises_checkpoint(self, keys: set[str]) -> bool:
        return False  # exported only as a diffusers folder: a single file has no place for the codec

    def load_folder(self, root: str, local_only: bool) -> dict[str, Any]:
        codec = PixelCodec.from_config(PixelCodec.load_config(str(Path(root) / "vae")))  # no weights
        return load_clip_parts(root, local_only, vae=codec)


def world_base_dir() -> Path:
    """The committed world base (`--base world`), or a PortraitistError saying how to make one."""
    if not (BASE_DIR / "model_index.json").is_file():
        raise PortraitistError(
            f"`--base world` needs the world's pretrained base in {BASE_DIR}, and this checkout has none. "
            "Pretrain one with `portraitist world pretrain --out runs/world` and pass --base runs/world/base "
            "(or copy that folder to the path above)."
        )
    return BASE_DIR


WORLD_FAMILY = register(WorldFamily())
register_base(
    WORLD,
    NamedBase(
        load=lambda seed: load_folder(world_base_dir()),
        vae_scale_factor=lambda: folder_vae_scale_factor(world_base_dir()),
    ),
)
