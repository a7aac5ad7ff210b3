"""The comparison's metrics for one checkpoint (thesis 1.3), from the ranking's models (rank/scorers.py).

- Image Alignment: mean cosine similarity of CLIP image embeddings over every (subject image,
  crop) pair.
- Text Alignment: mean CLIP similarity of each edit image to its prompt with the subject removed.
- LPIPS: mean distance over every (subject image, crop) pair; lower is closer.
- Identity: mean dlib face similarity (1 - descriptor distance, as rank's identity scorer) to the
  crops' faces over the images where a face is found, and the share of images with a face, over
  all images: an edit that loses the face or the person is what the thesis's staged recipe avoids.
- Aesthetic: LAION's predictor on the CLIP embeddings (the thesis's chosen ranker, 2.4.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from portraitist.rank.identity import identity_score
from portraitist.rank.perceptual import lpips_features, lpips_to_references, to_lpips_input
from portraitist.rank.scorers import References, ScoringModels


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    higher_is_better: bool


METRICS = (
    Metric("image_alignment", "Image Alignment (CLIP)", True),
    Metric("text_alignment", "Text Alignment (CLIP)", True),
    Metric("lpips", "LPIPS to your photos", False),
    Metric("identity", "Identity (dlib)", True),
    Metric("face_share", "Images with a face", True),
    Metric("aesthetic", "Aesthetic (LAION)", True),
)

Values = dict[str, float | None]


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def image_alignment(embeddings: torch.Tensor, refs: References) -> float:
    """From normalised CLIP image embeddings (n, d) and the crops' (m, d): the mean of n x m cosines."""
    return float((embeddings @ refs.clip.T).mean())


@torch.no_grad()
def text_alignment(models: ScoringModels, embeddings: torch.Tensor, texts: Sequence[str]) -> float:
    """Mean cosine of each image embedding with its own text's."""
    return float((embeddings * models.clip.embed_texts(list(texts))).sum(dim=1).mean())


@torch.no_grad()
def lpips_distance(models: ScoringModels, refs: References, images: Sequence[Image.Image]) -> float:
    features = lpips_features(models.lpips, to_lpips_input(list(images), models.lpips_size, models.device))
    distances = [
        lpips_to_references(models.lpips, [layer[i : i + 1] for layer in features], refs.lpips)
        for i in range(len(images))
    ]
    return float(torch.stack(distances).mean())


def identity(
    models: ScoringModels, refs: References, images: Sequence[Image.Image]
) -> tuple[float | None, float]:
    """(mean similarity to the crops' faces over the images with a face, or None; share with a face)."""
    descriptors = [models.faces.descriptor(image) for image in images]
    found = [d for d in descriptors if d is not None]
    similarities = [s for s in (identity_score(d, refs.faces) for d in found) if s is not None]
    return _mean(similarities), len(found) / len(images)


@torch.no_grad()
def aesthetic(models: ScoringModels, embeddings: torch.Tensor) -> float:
    return float(models.aesthetic(embeddings).mean())


def checkpoint_metrics(
    models: ScoringModels,
    refs: References,
    subject: Sequence[Image.Image],
    edits: Sequence[Image.Image],
    edit_texts: Sequence[str],
) -> Values:
    """Every metric of one checkpoint: `subject` from the subject prompt, `edits` from the edit
    prompts, whose texts (subject removed) are `edit_texts`."""
    embeddings = models.clip.embed_images([*subject, *edits])  # each image through CLIP once
    own, edited = embeddings[: len(subject)], embeddings[len(subject) :]
    face_similarity, face_share = identity(models, refs, [*subject, *edits])
    return {
        "image_alignment": image_alignment(own, refs),
        "text_alignment": text_alignment(models, edited, edit_texts),
        "lpips": lpips_distance(models, refs, subject),
        "identity": face_similarity,
        "face_share": face_share,
        "aesthetic": aesthetic(models, embeddings),
    }
