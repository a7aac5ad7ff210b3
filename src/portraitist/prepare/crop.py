"""The square training crop around a face (thesis 2.1.1).

A square centred on the face, (1 + 2 * margin) face boxes wide; where it runs past the photo's
edge the border pixels are repeated outward (the thesis's choice over black bars, which the
model would learn to draw), then it is resized to the training resolution with Lanczos. Faces
that need enlarging can first go through the learned upscaler (thesis 2.1.1, Real-ESRGAN).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


def square_around(face: Box, margin: float) -> tuple[int, int, int, int]:
    """Integer square [x0, y0, x1, y1] centred on the face box; it may exceed the photo."""
    cx, cy = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
    side = max(face[2] - face[0], face[3] - face[1]) * (1 + 2 * margin)
    half = max(1, math.ceil(side / 2))
    x0, y0 = round(cx) - half, round(cy) - half
    return x0, y0, x0 + 2 * half, y0 + 2 * half


def cut_with_edge_padding(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """image[box], with the parts outside the photo filled by repeating its edge pixels."""
    x0, y0, x1, y1 = box
    inside = image.crop((max(x0, 0), max(y0, 0), min(x1, image.width), min(y1, image.height)))
    pad = (
        (max(-y0, 0), max(y1 - image.height, 0)),
        (max(-x0, 0), max(x1 - image.width, 0)),
        (0, 0),
    )
    if not any(before or after for before, after in pad):
        return inside
    return Image.fromarray(np.pad(np.asarray(inside), pad, mode="edge"))


def face_crop(
    image: Image.Image, face: Box, margin: float, resolution: int, upscale: bool, upscaler: str | None = None
) -> tuple[Image.Image, Box]:
    """The training crop (resolution x resolution) and the square it was cut from.

    upscale: enlarge a too-small square with Real-ESRGAN (`upscaler`: a model name or file, None
    for the upscaler's default) before the final Lanczos resize.
    """
    box = square_around(face, margin)
    crop = cut_with_edge_padding(image, box)
    if upscale and crop.width < resolution:
        crop = _learned_upscale(crop, resolution, upscaler)
    if crop.size != (resolution, resolution):
        crop = crop.resize((resolution, resolution), Image.LANCZOS, reducing_gap=3.0)
    return crop, tuple(float(v) for v in box)  # type: ignore[return-value]


def _learned_upscale(crop: Image.Image, resolution: int, upscaler: str | None) -> Image.Image:
    """Real-ESRGAN x2, x3 or x4, the least that reaches the resolution (Lanczos does the rest)."""
    from portraitist.models.esrgan import upscale_image  # heavy: loaded only when asked for

    scale = next((s for s in (2, 3) if crop.width * s >= resolution), 4)
    return upscale_image(crop, scale=scale, model=upscaler)
