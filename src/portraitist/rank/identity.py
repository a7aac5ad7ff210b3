"""Face identity: is the person in a generated image the user? (beyond the thesis; its ranking
scores compare whole images, so a pretty portrait of somebody else could win.)

Face models, chosen by RankConfig.identity_model from a registry; both map an image to a descriptor (None:
no face) and score it against the user's crops, higher = more alike, with a gate threshold:
- `dlib`: dlib's ResNet face descriptors (models/face_id.py, shared with prepare's identity
  check); two faces of one person lie within 0.6 of each other.
- `world` (registered by world/identity.py): the synthetic world's judges for its rendered
  people, whose 32 px cartoon faces dlib cannot see: the face gate decides "is a face" (noise and
  blur fail it: the face-ID net alone calls noise similar to a person), the face-ID embedding
  gives the likeness as a cosine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
from PIL import Image

from portraitist.errors import PortraitistError
from portraitist.models.face_id import FaceDescriptors, identity_score
from portraitist.rank.config import RankConfig


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


IdentityFactory = Callable[[RankConfig], IdentityModel]
_MODELS: dict[str, IdentityFactory] = {"dlib": lambda config: FaceIdentity(config.face_upsample)}


def register_identity_model(name: str, factory: IdentityFactory) -> None:
    """Make a face model available as RankConfig.identity_model `name` (a plug-in's, e.g. the world's)."""
    _MODELS[name] = factory


def load_identity(config: RankConfig) -> IdentityModel:
    """The face model RankConfig.identity_model names."""
    if config.identity_model not in _MODELS:
        raise PortraitistError(
            f"Unknown identity model {config.identity_model!r}; available: {', '.join(_MODELS)} "
            "(the synthetic world's `world` comes with the portraitist command)."
        )
    return _MODELS[config.identity_model](config)
