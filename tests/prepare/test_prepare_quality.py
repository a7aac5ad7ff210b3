"""Near-duplicates are rejected, blurry crops flagged, very blurry ones rejected."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageFilter, ImageOps

from portraitist.prepare.config import PrepareConfig
from portraitist.prepare.crop import face_crop
from portraitist.prepare.detect import PersonDetector
from portraitist.prepare.quality import blur_flags, check_duplicate, perceptual_hash
from portraitist.prepare.rejection import PhotoRejected
from portraitist.samples import astronaut, cameraman


def recompressed(image: Image.Image, quality: int, scale: float) -> Image.Image:
    """The same shot after a messenger app shrank and re-encoded it."""
    small = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).resize(image.size, Image.LANCZOS)


def test_a_resent_photo_is_a_duplicate_of_the_first() -> None:
    kept = [("first.jpg", perceptual_hash(astronaut()))]
    with pytest.raises(PhotoRejected, match="first.jpg") as caught:
        check_duplicate(perceptual_hash(recompressed(astronaut(), 60, 0.5)), kept, distance=4)
    assert caught.value.reason == "duplicate"


@pytest.mark.parametrize("other", [ImageOps.mirror(astronaut()), cameraman()], ids=["mirrored", "another"])
def test_different_pictures_are_not_duplicates(other: Image.Image) -> None:
    check_duplicate(perceptual_hash(other), [("first.jpg", perceptual_hash(astronaut()))], distance=4)


def test_blur_policy_flags_soft_crops_and_rejects_very_blurry_ones(detector: PersonDetector) -> None:
    config = PrepareConfig()
    sharp, _ = face_crop(astronaut(), detector.subject(astronaut()).face.box, 1.0, 512, upscale=False)
    assert blur_flags(sharp, config) == []
    assert blur_flags(sharp.filter(ImageFilter.GaussianBlur(1.2)), config) == ["blurry"]
    with pytest.raises(PhotoRejected) as caught:
        blur_flags(sharp.filter(ImageFilter.GaussianBlur(3)), config)
    assert caught.value.reason == "blurry"
