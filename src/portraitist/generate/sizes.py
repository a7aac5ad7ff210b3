"""Image sizes for the portrait formats of social networks (thesis 2.4.1).

The model's family turns a ratio into a size: SD 1.x keeps the short side at its training
resolution (512 for SD 1.5), where it draws faces best, and grows the long side; SDXL keeps the
area of its training buckets (about 1024x1024). Both sides are multiples of the VAE's scale
factor (8), because the UNet works on latents 8 times smaller than the image.
"""

from __future__ import annotations

from portraitist.errors import PortraitistError
from portraitist.models.family import Family
from portraitist.models.sd1 import SD1_FAMILY

# width:height
ASPECTS: dict[str, tuple[int, int]] = {"1:1": (1, 1), "4:5": (4, 5), "9:16": (9, 16), "16:9": (16, 9)}
# Any other W:H up to twice as long as wide (or wide as long): past that the long side is over twice
# the training resolution, where SD 1.x repeats heads and bodies, and the pixels grow without bound.
MAX_ELONGATION = 2
ASPECT_RANGE = f"1:{MAX_ELONGATION} to {MAX_ELONGATION}:1"


def parse_aspect(aspect: str) -> tuple[int, int]:
    """'9:16' -> (9, 16); a W:H of positive integers from 1:2 to 2:1, else a PortraitistError."""
    parts = aspect.strip().split(":")
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        w = h = 0
    if len(parts) != 2 or w <= 0 or h <= 0 or max(w, h) > MAX_ELONGATION * min(w, h):
        raise PortraitistError(
            f"Unsupported aspect ratio {aspect!r}. Use one of {', '.join(ASPECTS)}, or another width:height "
            f"from {ASPECT_RANGE} (e.g. 2:3)."
        )
    return w, h


def image_size(
    aspect: str, short_side: int, multiple: int = 8, family: Family = SD1_FAMILY
) -> tuple[int, int]:
    """(width, height) of the ratio at scale `short_side`, as the model's family draws it, each side a
    multiple of `multiple`."""
    if short_side <= 0 or short_side % multiple:
        lower = max(multiple, short_side // multiple * multiple)
        raise PortraitistError(
            f"Image size {short_side} px is not a positive multiple of {multiple} (the model works on "
            f"latents {multiple}x smaller). Use {lower} or {lower + multiple}."
        )
    return family.image_size(parse_aspect(aspect), short_side, multiple)
