"""Face identity: is the person in a generated image the user? (beyond the thesis; its ranking
scores compare whole images, so a pretty portrait of somebody else could win.)

Two face models, chosen by RankConfig.identity_model; both map an image to a descriptor (None:
no face) and score it against the user's crops, higher = more alike, with a gate threshold:
- `dlib`: dlib's ResNet face descriptors (models/face_id.py, shared with prepare's identity
  check); two faces of one person lie within 0.6 of each other.
- `world`: the synthetic world's judges (issue 9, world/judges.py) for its rendered people,
  whose 32 px cartoon faces dlib cannot see: the face gate decides "is a face" (noise and blur
  fail it: the face-ID net alone calls noise similar to a person), the face-ID embedding gives
  the likeness as a cosine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from portraitist.errors import PortraitistError
from portraitist.models.face_id import FaceDescriptors


class IdentityModel(Protocol):
    """What the identity scorer needs of a face model."""

    max_distance: float  # the gate: 1 - score within this is the user

    def descriptor(self, image: Image.Image) -> np.ndarray | None:
        """The face's descriptor, or None when the image shows no face."""
        ...

    def score(self, descriptor: np.ndarray | None, references: list[np.ndarray]) -> float | None:
        """Likeness to the user's faces, higher is more alike; None without a face."""
        ...


class FaceIdentity(FaceDescriptors):
    """dlib's face descriptors (models/face_id.py), scored against the user's crops."""

    def score(self, descriptor: np.ndarray | None, references: list[np.ndarray]) -> float | None:
        return identity_score(descriptor, references)


def identity_score(descriptor: np.ndarray | None, references: list[np.ndarray]) -> float | None:
    """1 - mean descriptor distance to the user's faces (higher: more alike); None without a face."""
    if descriptor is None or not references:
        return None
    return 1.0 - float(np.mean([np.linalg.norm(descriptor - ref) for ref in references]))


class WorldIdentity:
    """The world judges' face gate and face-ID embedding (issue 9): likeness of rendered people.

    The score is the mean cosine of the face-ID embeddings, as Judges.similarity; an image the
    gate rejects has no face (None). The gate passes cosines above halfway between the judges'
    measured mean cosine of one person's photos and that of different people (judges.json).
    """

    def __init__(self, judges: Path | None = None):
        from portraitist.world.judges import load_judges  # torch nets: loaded only for world runs

        self.judges = load_judges(judges)
        metrics = self.judges.info.get("metrics", {})
        if "cosine_same_person" not in metrics or "cosine_other_people" not in metrics:
            raise PortraitistError(
                f"The world judges in {judges or 'the package'} carry no measured cosines (judges.json's metrics); "
                "train them with `portraitist world judges --out DIR`, which measures them."
            )
        threshold = (metrics["cosine_same_person"] + metrics["cosine_other_people"]) / 2
        self.max_distance = 1.0 - threshold

    def descriptor(self, image: Image.Image) -> np.ndarray | None:
        """The unit face-ID embedding, or None when the face gate says the image is no face."""
        if not bool(self.judges.is_face([image])[0]):
            return None
        return self.judges.embed([image])[0]

    def score(self, descriptor: np.ndarray | None, references: list[np.ndarray]) -> float | None:
        if descriptor is None or not references:
            return None
        return float(np.mean([descriptor @ ref for ref in references]))


def load_identity(kind: str, upsample: int, judges: Path | None) -> IdentityModel:
    """The face model RankConfig.identity_model names."""
    if kind == "world":
        return WorldIdentity(judges)
    return FaceIdentity(upsample)
