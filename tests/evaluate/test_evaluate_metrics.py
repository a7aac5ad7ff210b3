"""The metrics on cases whose answers are known (thesis 1.3), with the ranking's models."""

from __future__ import annotations

import pytest
import torch
from evalkit import OFFLINE_SCORING
from PIL import Image

from portraitist.evaluate.config import EvaluateConfig
from portraitist.evaluate.metrics import checkpoint_metrics
from portraitist.evaluate.prompts import evaluation_set
from portraitist.rank.scorers import compute_references, load_scoring_models
from portraitist.samples import noise_image, portrait_variants


@pytest.fixture(scope="module")
def models():
    return load_scoring_models(OFFLINE_SCORING)


@pytest.fixture(scope="module")
def faces() -> list[Image.Image]:
    """Two different framings of the astronaut, square, 256 px: faces dlib finds."""
    crops = []
    for photo in portrait_variants(2):
        side = min(photo.size)
        crops.append(photo.crop((0, 0, side, side)).resize((256, 256)))
    return crops


def test_identical_images_align_fully_and_have_no_perceptual_distance(models, faces):
    one = faces[0]
    refs = compute_references(models, [one])
    values = checkpoint_metrics(models, refs, [one, one.copy()], [one], ["a photo on the moon"])
    assert values["image_alignment"] == pytest.approx(1.0, abs=1e-5)
    assert values["lpips"] == pytest.approx(0.0, abs=1e-6)
    assert values["face_share"] == 1.0
    assert values["identity"] == pytest.approx(1.0, abs=1e-6)  # the same face: descriptor distance 0


def test_image_alignment_is_the_mean_over_every_image_and_photo_pair(models, faces):
    refs = compute_references(models, faces)
    a, b = models.clip.embed_images(faces)
    values = checkpoint_metrics(models, refs, faces, [faces[0]], ["x"])
    cross = float(a @ b)
    assert values["image_alignment"] == pytest.approx((1 + 1 + 2 * cross) / 4, abs=1e-5)
    assert 0 < values["lpips"]  # each image is far from the other photo


def test_text_alignment_reads_the_prompts_with_the_subject_removed(models, faces):
    config = EvaluateConfig(
        subject_images=1, edit_prompts=["a photo of {me} on the moon", "Elmo holding a {me}"]
    )
    images = evaluation_set(config)
    edits = [image for image in images if image.kind == "edit"]
    assert [image.clip_text for image in edits] == ["a photo of on the moon", "Elmo holding a"]
    assert [image.seed for image in images] == [0, 1, 2]

    pictures = [noise_image(64, seed=1), noise_image(64, seed=2)]
    texts = [image.clip_text for image in edits]
    refs = compute_references(models, faces)
    values = checkpoint_metrics(models, refs, [faces[0]], pictures, texts)
    expected = (models.clip.embed_images(pictures) * models.clip.embed_texts(texts)).sum(dim=1).mean()
    with_subject = (
        (
            models.clip.embed_images(pictures)
            * models.clip.embed_texts(["a photo of <me> girl on the moon", "Elmo holding a <me> girl"])
        )
        .sum(dim=1)
        .mean()
    )
    assert values["text_alignment"] == pytest.approx(float(expected), abs=1e-6)
    assert not torch.isclose(expected, with_subject)


def test_images_without_a_face_count_against_the_face_share_and_leave_identity_undefined(models, faces):
    refs = compute_references(models, faces)
    values = checkpoint_metrics(models, refs, [noise_image(128, seed=3)], [noise_image(128, seed=4)], ["x"])
    assert values["face_share"] == 0.0
    assert values["identity"] is None
    half = checkpoint_metrics(models, refs, [faces[1]], [noise_image(128, seed=4)], ["x"])
    assert half["face_share"] == 0.5
    assert 0.4 < half["identity"] <= 1.0  # the same person as the photos: distance well under dlib's 0.6
