"""Near-duplicate and blur checks on the crops.

Duplicates (the same shot sent twice, burst frames) add no information but weigh one view
double, so only the first is kept. Blur is measured as the variance of the Laplacian of the
grey crop at training resolution: a sharp face has strong edges (high variance). Mild blur is
only flagged, because a soft photo still shows the identity; a crop below blur_reject_below has
no usable detail and is rejected (docs/prepare.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import imagehash
import numpy as np
from PIL import Image

from portraitist.prepare.config import PrepareConfig
from portraitist.prepare.rejection import PhotoRejected


def perceptual_hash(crop: Image.Image) -> imagehash.ImageHash:
    return imagehash.phash(crop)


def check_duplicate(
    phash: imagehash.ImageHash, kept: Sequence[tuple[str, imagehash.ImageHash]], distance: int
) -> None:
    """PhotoRejected('duplicate') if a kept crop's hash is within `distance` bits of this one."""
    for name, other in kept:
        if phash - other <= distance:
            raise PhotoRejected("duplicate", f"Nearly the same picture as {name}, which is kept.")


def sharpness(crop: Image.Image) -> float:
    """Variance of the Laplacian of the grey image: low means blurry."""
    grey = np.asarray(crop.convert("L"), dtype=np.float64)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def blur_flags(crop: Image.Image, config: PrepareConfig) -> list[str]:
    """[] if sharp, ['blurry'] if soft; PhotoRejected('blurry') if too blurry to train on."""
    value = sharpness(crop)
    if value < config.blur_reject_below:
        raise PhotoRejected(
            "blurry",
            f"The photo is too blurry to learn a face from (sharpness {value:.0f}, "
            f"at least {config.blur_reject_below:.0f} needed).",
        )
    return ["blurry"] if value < config.blur_flag_below else []
