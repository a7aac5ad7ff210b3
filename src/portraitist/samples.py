"""Sample photos built from real photographs that scikit-image and matplotlib ship (no download).

`astronaut` (Eileen Collins, NASA, public domain) is a real portrait; the variants below are
what a user's phone gallery looks like: different framings, mirror images, a slight tilt,
warmer light. `camera` (the cameraman) is a different person; `coffee` and `rocket` have none.
Other people: `grace_hopper` (matplotlib's sample photo of Grace Hopper, US Navy, public
domain) and `lfw_faces` (scikit-image's 100 faces of the LFW data set, 25 px each).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import cbook
from PIL import Image, ImageEnhance, ImageOps
from skimage import data


def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())


def cameraman() -> Image.Image:
    return Image.fromarray(data.camera()).convert("RGB")


def grace_hopper() -> Image.Image:
    return Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")


def lfw_faces(count: int = 100, side: int = 200) -> list[Image.Image]:
    """LFW's faces enlarged from 25 px to `side`, on a grey border a face detector needs around a face."""
    out = []
    for face in data.lfw_subset()[:count]:  # the subset's first 100 are faces, the rest are not
        grey = Image.fromarray(np.round(face * 255).astype(np.uint8)).convert("RGB")
        out.append(
            ImageOps.expand(grey.resize((side, side), Image.LANCZOS), side * 3 // 10, fill=(128, 128, 128))
        )
    return out


def no_person() -> Image.Image:
    return Image.fromarray(data.coffee())


def two_people() -> Image.Image:
    """The astronaut twice, side by side: a photo with two subjects."""
    one = astronaut()
    both = Image.new("RGB", (one.width * 2, one.height))
    both.paste(one, (0, 0))
    both.paste(ImageOps.mirror(one), (one.width, 0))
    return both


def portrait_variants(n: int = 6) -> list[Image.Image]:
    """n different photos of the astronaut, as a user might send them."""
    img = astronaut()
    crops = [
        (0, 0, 512, 512),
        (96, 0, 416, 320),
        (64, 16, 448, 400),
        (32, 0, 480, 448),
        (128, 8, 400, 300),
        (48, 8, 464, 424),
    ]
    out = []
    for i in range(n):
        photo = img.crop(crops[i % len(crops)])
        if i % 2:
            photo = ImageOps.mirror(photo)
        if i % 3 == 2:
            photo = photo.rotate(6, resample=Image.BICUBIC, expand=False, fillcolor=(128, 128, 128))
        if i % 4 == 3:
            photo = ImageEnhance.Color(photo).enhance(1.3)
        # different sizes, as from different cameras
        scale = (1.0, 1.5, 0.8, 2.0, 1.2, 1.0)[i % 6]
        photo = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.LANCZOS)
        out.append(photo)
    return out


def write_sample_photos(out_dir: Path, n: int = 6) -> list[Path]:
    """JPEGs of the astronaut (the user), plus nothing else: the demo's photo set."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, photo in enumerate(portrait_variants(n)):
        path = out_dir / f"astronaut_{i:02d}.jpg"
        photo.save(path, quality=92)
        paths.append(path)
    return paths


def noise_image(size: int = 256, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
