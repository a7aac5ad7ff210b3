"""What a checkpoint is measured with: a pluggable metric set, and the photo metrics of thesis 1.3.

The evaluate loop (stage.py) asks a `MetricSet` for its evaluation images, has the model under
training draw them, and hands them back to be scored; it never knows which metrics it records.
Two sets exist: `PhotoMetrics` here, for a user's photos with the ranking's models
(rank/scorers.py), and any metric set a plug-in registers (the synthetic world's judges: world/metrics.py).
Every metric's definition (name, label, direction) is in CATALOGUE, so plots and reports draw
any records from disk.

The photo metrics:
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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from portraitist.evaluate.config import EvaluateConfig
from portraitist.evaluate.prompts import EvalImage, evaluation_set
from portraitist.models.face_id import identity_score
from portraitist.rank.config import RankConfig
from portraitist.rank.perceptual import lpips_features, lpips_to_references, to_lpips_input
from portraitist.rank.scorers import References, ScoringModels, compute_references, load_scoring_models
from portraitist.workspace import Workspace


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    higher_is_better: bool


PHOTO_METRICS = (
    Metric("image_alignment", "Image Alignment (CLIP)", True),
    Metric("text_alignment", "Text Alignment (CLIP)", True),
    Metric("lpips", "LPIPS to your photos", False),
    Metric("identity", "Identity (dlib)", True),
    Metric("face_share", "Images with a face", True),
    Metric("aesthetic", "Aesthetic (LAION)", True),
)
# Every metric a report can draw: the photo metrics, and those a plug-in's metric set registers
# (the synthetic world's judges, world/metrics.py)
CATALOGUE: list[Metric] = list(PHOTO_METRICS)


def register_metrics(*metrics: Metric) -> tuple[Metric, ...]:
    """Add a metric set's definitions to the catalogue (once each); return them."""
    CATALOGUE.extend(m for m in metrics if m not in CATALOGUE)
    return metrics


Values = dict[str, float | None]


def metrics_in(measured: Iterable[Mapping[str, object]]) -> tuple[Metric, ...]:
    """The catalogue's metrics that appear in any of the measured value dicts, in catalogue order."""
    names = {name for values in measured for name in values}
    return tuple(metric for metric in CATALOGUE if metric.name in names)


class MetricSet(Protocol):
    """What the evaluate loop measures a checkpoint with (photos or the world's judges)."""

    metrics: tuple[Metric, ...]

    def evaluation_set(self, config: EvaluateConfig) -> list[EvalImage]:
        """The images every checkpoint draws: the same prompts and seeds at every step."""
        ...

    def settings(self) -> dict[str, Any]:
        """What its numbers depend on beyond the config (settings.json's "measures")."""
        ...

    def load(self, workspace: Workspace) -> None:
        """Load its models and the references it compares with, once, before training starts."""
        ...

    def score(self, images: Sequence[EvalImage], pictures: Sequence[Image.Image]) -> Values:
        """Every metric of one checkpoint from its evaluation images (`pictures[i]` drawn for `images[i]`)."""
        ...


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


class PhotoMetrics:
    """Thesis 1.3's metrics against the user's crops, with the ranking's models (`[evaluate.scoring]`)."""

    metrics = PHOTO_METRICS

    def __init__(self, scoring: RankConfig):
        self.scoring = scoring
        self.loaded: tuple[ScoringModels, References] | None = None

    def evaluation_set(self, config: EvaluateConfig) -> list[EvalImage]:
        return evaluation_set(config)

    def settings(self) -> dict[str, Any]:
        return {"kind": "photos"}  # the metric models' settings are the config's `scoring`

    def load(self, workspace: Workspace) -> None:
        if self.loaded is None:
            models = load_scoring_models(self.scoring)
            self.loaded = models, compute_references(models, workspace.kept_crops(workspace.read_manifest()))

    def score(self, images: Sequence[EvalImage], pictures: Sequence[Image.Image]) -> Values:
        if self.loaded is None:
            raise RuntimeError("PhotoMetrics.load must run before score")
        kinds = [image.kind for image in images]
        return checkpoint_metrics(
            *self.loaded,
            [p for p, kind in zip(pictures, kinds) if kind == "subject"],
            [p for p, kind in zip(pictures, kinds) if kind == "edit"],
            [image.clip_text for image in images if image.kind == "edit"],
        )
