"""Person masks of the crops, for the optional attention loss (thesis 2.3)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from portraitist.prepare.detect import PersonDetector

PERSON_THRESHOLD = 0.5


def person_mask(detector: PersonDetector, crop: Image.Image) -> Image.Image:
    """L-mode mask of the crop: 255 where selfie segmentation sees the person, 0 elsewhere."""
    probability = detector.person_mask(crop)
    return Image.fromarray(np.where(probability >= PERSON_THRESHOLD, 255, 0).astype(np.uint8), "L")
