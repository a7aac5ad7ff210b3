"""One person per photo set (thesis 2.1: the training set shows the user and nobody else).

The person filter (detect.py) sees one subject per photo, but not whether it is the same subject
in every photo: a friend's portrait in the folder would get its own caption and be trained in.
Each kept crop's face gets a dlib descriptor (models/face_id.py); the user is the person most of
the photos show:

1. the anchor is the face with the most faces within `max_distance` of it (itself included; a
   tie goes to the one whose neighbours are closest on average), and those faces are the majority;
2. if the majority is no more than half of the faces, nobody is "most of the photos": an error;
3. every face whose mean distance to the majority's other faces is over `max_distance` is another
   person (other_person), even one the anchor was near; a face outside the majority but within
   it on average is a less typical view of the user and stays.

Crops where dlib finds no face (a profile, a small face, the synthetic world's cartoons) are not
compared and not rejected; with fewer than two faces there is nothing to compare and the check
is skipped. The manifest's `identity` records which happened. Rule and measurements:
docs/prepare.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from portraitist.errors import PortraitistError
from portraitist.models.face_id import FaceDescriptors
from portraitist.workspace import IdentityCheck

# dlib's HOG detector scans an 80 px window: a face smaller than this in the crop needs the crop
# enlarged (upsampled once) to be found.
DETECTOR_WINDOW = 100


@dataclass
class Majority:
    """The person most faces show, and how far every face lies from them."""

    members: list[int]  # indices of the faces that are the majority's person
    distances: np.ndarray  # each face's mean descriptor distance to the majority's other faces

    def outsiders(self, max_distance: float) -> list[int]:
        """Faces of another person (module docstring, step 3)."""
        return [i for i, distance in enumerate(self.distances) if distance > max_distance]


@dataclass
class IdentityResult:
    check: IdentityCheck
    others: dict[int, float]  # crop index -> mean distance to the majority: another person


def find_majority(descriptors: Sequence[np.ndarray], max_distance: float) -> Majority | None:
    """The person most faces show (module docstring, steps 1-2); None when no one is over half."""
    faces = np.stack(descriptors)
    distances = np.linalg.norm(faces[:, None] - faces[None], axis=-1)
    near = distances <= max_distance
    counts = near.sum(axis=1)
    closeness = [distances[i][near[i]].mean() for i in range(len(faces))]
    anchor = min(range(len(faces)), key=lambda i: (-counts[i], closeness[i]))
    members = [int(i) for i in np.flatnonzero(near[anchor])]
    if 2 * len(members) <= len(faces):
        return None
    compared = np.array([len(members) - (i in members) for i in range(len(faces))])  # not with itself
    return Majority(members, distances[:, members].sum(axis=1) / np.maximum(compared, 1))


def check_identity(
    crops: Sequence[Image.Image], names: Sequence[str], max_distance: float, face_side: float
) -> IdentityResult:
    """Which kept crops show another person than most of them (module docstring).

    face_side: the face's side in the crops, in pixels (whether dlib must enlarge them to see it).
    PortraitistError when the faces show several people and none in more than half of them.
    """
    model = FaceDescriptors(upsample=0 if face_side >= DETECTOR_WINDOW else 1)
    found = {i: d for i, crop in enumerate(crops) if (d := model.descriptor(crop)) is not None}
    counts = {"photos": len(crops), "faces": len(found), "max_distance": max_distance}
    if len(found) < 2:
        note = (
            f"dlib found a face in {len(found)} of {len(crops)} photos: too few to compare, "
            "so the photos were not checked for showing one person."
        )
        return IdentityResult(IdentityCheck(status="skipped", note=note, **counts), {})
    indices = list(found)
    majority = find_majority([found[i] for i in indices], max_distance)
    if majority is None:
        raise PortraitistError(_no_majority_message([names[i] for i in indices], max_distance))
    others = {indices[j]: float(majority.distances[j]) for j in majority.outsiders(max_distance)}
    unchecked = len(crops) - len(found)
    note = f"{len(found) - len(others)} of {len(found)} faces are one person, {len(others)} someone else" + (
        f"; {unchecked} photos without a face dlib can see were not compared." if unchecked else "."
    )
    return IdentityResult(IdentityCheck(status="checked", note=note, **counts), others)


def other_person_message(distance: float, max_distance: float) -> str:
    return (
        f"This face is not the person most of the photos show (dlib descriptor distance {distance:.2f} to "
        f"theirs; the same person is within {max_distance:.2f}). Send photos of only yourself."
    )


def _no_majority_message(names: Sequence[str], max_distance: float) -> str:
    return (
        f"These photos show different people, and none of them is in more than half of the {len(names)} "
        f"photos where a face was compared ({', '.join(names)}; dlib descriptors, same person within "
        f"{max_distance:.2f}). Send photos of only yourself, or set identity_check = false in the [prepare] "
        "settings if they are all you (docs/prepare.md)."
    )
