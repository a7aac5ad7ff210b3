"""The world judges as rank's identity model (`identity_model = "world"`): the likeness of rendered
people, whose 32 px cartoon faces dlib cannot see. Importing this module registers it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from portraitist.errors import PortraitistError
from portraitist.rank.identity import register_identity_model
from portraitist.world.judges import load_judges
from portraitist.world.settings import world_judges


class WorldIdentity:
    """The world judges' face gate and face-ID embedding: likeness of rendered people.

    The score is the mean cosine of the face-ID embeddings, as Judges.similarity; an image the
    gate rejects has no face (None). The gate passes cosines above halfway between the judges'
    measured mean cosine of one person's photos and that of different people (judges.json).
    """

    def __init__(self, judges: Path | None = None):
        self.judges = load_judges(judges)
        metrics = self.judges.info.get("metrics", {})
        if "cosine_same_person" not in metrics or "cosine_other_people" not in metrics:
            raise PortraitistError(
                f"The world judges in {judges or 'the package'} carry no measured cosines "
                "(judges.json's metrics); train them with `portraitist world judges --out DIR`, "
                "which measures them."
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


register_identity_model("world", lambda config: WorldIdentity(world_judges(config)))
