"""The world's metrics: what the judges (world/judges.py) read in the images a checkpoint
draws of a held-out person, whose identity is known exactly.

- face_id: each image's face-ID cosine to the person's references (renders of the person in
  scenes the training photos do not have), 0 for an image the face gate fails (an image that is
  no face has no likeness: the embedding alone may call noise similar to a person, judges.py);
  the mean over every image, subject and scene prompts alike.
- face_gate: the share of images that pass the face gate.
- attribute_match: the share of (image, attribute) pairs in which the attribute judge reads the
  person's own word, over the identity attributes a 32 px image shows (`visible_labels`: sex,
  skin, hair style and colour, beard, glasses) and every image; behind the gate too: a non-face
  matches none (on noise the judge still names a sex, right half the time).
- scene_match: text alignment; the share of (scene image, prompted word) pairs the judge reads as
  prompted: "a photo of {me}, on a red background" must have a red background.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from portraitist.evaluate.config import EvaluateConfig
from portraitist.evaluate.metrics import Metric, Values, register_metrics
from portraitist.evaluate.prompts import EvalImage, evaluation_set
from portraitist.generate.prompts import ME
from portraitist.rank.stage import read_generations
from portraitist.workspace import Workspace
from portraitist.world.judges import JUDGES_DIR, WEIGHTS_FILE, Judges, load_judges
from portraitist.world.render import (
    IDENTITY_ATTRIBUTES,
    Person,
    random_scene,
    render_filtered,
    scene_prompt,
    visible_labels,
)
from portraitist.world.settings import world_settings

JUDGE_SIZE = 32
# The references' scenes come from their own stream, apart from the training photos' (dataset.scene_rng).
REFERENCE_STREAM = 0x2EF

# The world's metrics, read by its judges
WORLD_METRICS = register_metrics(
    Metric("face_id", "Identity (face-ID, gated)", True),
    Metric("face_gate", "Images that pass the face gate", True),
    Metric("attribute_match", "Identity attributes kept", True),
    Metric("scene_match", "Scene prompts followed", True),
)


def reference_renders(person: Person, count: int) -> np.ndarray:
    """(count, 32, 32, 3) renders of `person` in random scenes, as the judges were trained on them."""
    rng = np.random.default_rng([person.index, REFERENCE_STREAM])
    return np.stack([render_filtered(person, random_scene(rng), JUDGE_SIZE).image for _ in range(count)])


def identity_labels(person: Person, judges: Judges) -> dict[str, str]:
    """The person's identity attributes that a 32 px image shows and the attribute judge reads."""
    shown = visible_labels(person.attributes)
    return {
        name: word
        for name, word in shown.items()
        if name in IDENTITY_ATTRIBUTES and name in judges.vocabulary
    }


def judges_id(path: Path | None) -> str:
    """The judges' weights by content (settings.json): other judges, other numbers."""
    weights = Path(path or JUDGES_DIR) / WEIGHTS_FILE
    return hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else "missing"


def judge_values(
    judges: Judges,
    references: np.ndarray,
    identity: Mapping[str, str],
    pictures: Sequence[Image.Image | np.ndarray],
    expected: Sequence[Mapping[str, str]],
) -> Values:
    """The four metrics of `pictures`; `expected[i]` holds the scene words picture i was prompted
    with (empty for the subject prompt's images)."""
    said = judges.attributes(pictures)
    faces = judges.is_face(pictures)
    identity_hits = [
        bool(face) and row[name] == word for row, face in zip(said, faces) for name, word in identity.items()
    ]
    scene_hits = [
        said_row[name] == word for said_row, words in zip(said, expected) for name, word in words.items()
    ]
    return {
        "face_id": float(np.mean(judges.similarity(pictures, references, gated=True))),
        "face_gate": float(np.mean(faces)),
        "attribute_match": float(np.mean(identity_hits)) if identity_hits else None,
        "scene_match": float(np.mean(scene_hits)) if scene_hits else None,
    }


def world_evaluation_set(config: EvaluateConfig) -> list[EvalImage]:
    """The subject prompt's images, then one image per scene check: "a photo of {me}, on a red background"."""
    checks = world_settings(config).scene_checks
    return evaluation_set(config, [(scene_prompt(ME, **check), check) for check in checks])


class WorldMetrics:
    """The judges' metrics for one held-out person (metrics.MetricSet)."""

    metrics = WORLD_METRICS

    def __init__(
        self,
        person: Person,
        judges: Judges,
        judges_path: Path | None,
        references: int,
        base_weights: str = "",
    ):
        self.person = person
        self.judges = judges
        self.judges_path = judges_path
        self.references = references
        self.base_weights = (
            base_weights  # the base's weights by content (world.weights_id): --base world may change
        )
        self.reference_images: np.ndarray | None = None

    def evaluation_set(self, config: EvaluateConfig) -> list[EvalImage]:
        return world_evaluation_set(config)

    def settings(self) -> dict[str, Any]:
        return {
            "kind": "world",
            "person": self.person.index,
            "references": self.references,
            "judges": judges_id(self.judges_path),
            "base_weights": self.base_weights,
        }

    def load(self, workspace: Workspace) -> None:
        if self.reference_images is None:
            self.reference_images = reference_renders(self.person, self.references)

    def score(self, images: Sequence[EvalImage], pictures: Sequence[Image.Image]) -> Values:
        if self.reference_images is None:
            raise RuntimeError("WorldMetrics.load must run before score")
        identity = identity_labels(self.person, self.judges)
        return judge_values(
            self.judges, self.reference_images, identity, pictures, [i.expect for i in images]
        )

    def of_photos(self, photos: np.ndarray) -> Values:
        """The metrics of real renders of the person (no prompt: scene_match undefined): the ceiling a
        perfectly trained model would approach, for the report's reference row."""
        if self.reference_images is None:
            self.reference_images = reference_renders(self.person, self.references)
        identity = identity_labels(self.person, self.judges)
        return judge_values(self.judges, self.reference_images, identity, list(photos), [{}] * len(photos))


def scenes_followed(workspace: Workspace, scenes: Sequence[Mapping[str, str]]) -> tuple[int, int]:
    """(generated images whose scene is the one their prompt asked for, as the judges read it: every
    asked word of background, pattern, shirt and expression; all generated images). `scenes` are the
    scene words the prompts were made from, with the workspace's subject (render.scene_prompt)."""
    manifest = workspace.read_manifest()
    subject = f"{manifest.instance_token} {manifest.class_token}"
    asked = {scene_prompt(subject, **scene): scene for scene in scenes}
    records = read_generations(workspace)
    said = load_judges().attributes([Image.open(workspace.path(r["file"])) for r in records])
    followed = sum(
        all(seen.get(k) == v for k, v in asked[r["prompt"]].items())
        for r, seen in zip(records, said, strict=True)
    )
    return followed, len(records)
