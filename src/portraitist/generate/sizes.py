"""Image sizes for the portrait formats of social networks (thesis 2.4.1).

The short side stays at the model's training resolution (512 for SD 1.5), where it draws
faces best; the long side grows to the requested ratio. Both are multiples of the VAE's
scale factor (8), because the UNet works on latents 8 times smaller than the image.
"""

from __future__ import annotations

from portraitist.errors import PortraitistError

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


def image_size(aspect: str, short_side: int, multiple: int = 8) -> tuple[int, int]:
    """(width, height) with the short side `short_side` and the long side rounded to `multiple`."""
    if short_side <= 0 or short_side % multiple:
        lower = max(multiple, short_side // multiple * multiple)
        raise PortraitistError(
            f"Image size {short_side} px is not a positive multiple of {multiple} (the model works on "
            f"latents {multiple}x smaller). Use {lower} or {lower + multiple}."
        )
    w, h = parse_aspect(aspect)
    long_side = max(multiple, round(short_side * max(w, h) / min(w, h) / multiple) * multiple)
    return (short_side, long_side) if w <= h else (long_side, short_side)
