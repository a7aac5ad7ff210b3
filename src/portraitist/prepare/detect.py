"""Who is in a photo (thesis 2.1.1): keep a photo only if exactly one person is its subject.

The thesis let a person detector decide "exactly one person", because face detectors alone
gave more false positives. Here mediapipe's shipped models play both parts:
  1. BlazeFace full range finds every face, far ones included.
  2. Selfie segmentation, run on a square around each face (the framing it was made for, so
     it works for small faces too), must cover the face box (person_coverage); otherwise the
     "face" is a pattern, not a person, and is dropped: the face detector's false positives.
  3. Faces smaller than subject_face_ratio of the largest face's side are people in the
     background (passers-by, a crowd): they are noted, not counted.
  4. No confirmed face: `face_too_small` if the pose model still sees a body (its detector
     finds people whose faces are too small for BlazeFace), else `no_person`. Two or more
     subject faces: `multiple_people`. A subject face under min_face_size pixels: `face_too_small`.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Self

import mediapipe as mp
import numpy as np
from PIL import Image

from portraitist.prepare.config import PrepareConfig
from portraitist.prepare.crop import Box, cut_with_edge_padding, square_around
from portraitist.prepare.rejection import PhotoRejected

# selfie segmentation's own input size; the face box fills the middle third of the square
_CHECK_SIZE = 256


@dataclass(frozen=True)
class Face:
    box: Box
    score: float

    @property
    def side(self) -> float:
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])


@dataclass(frozen=True)
class Subject:
    """The one person a photo is of, and the people around that were ignored."""

    face: Face
    background_faces: int


class PersonDetector:
    """mediapipe's face detector, pose model and person segmenter, loaded once for many photos."""

    def __init__(self, config: PrepareConfig):
        self.config = config
        with _native_stderr_closed():
            self._faces = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=config.min_face_confidence
            )
            self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1)
            self._segmenter = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
            # each graph logs a few lines on its first frame: give it a blank one here, silently
            blank = Image.new("RGB", (_CHECK_SIZE, _CHECK_SIZE), (128, 128, 128))
            self.find_faces(blank)
            self.person_mask(blank)
            self._pose.process(np.asarray(blank))

    def close(self) -> None:
        for graph in (self._faces, self._pose, self._segmenter):
            graph.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def person_mask(self, image: Image.Image) -> np.ndarray:
        """Probability (0..1, float32, HxW) that each pixel belongs to a person."""
        result = self._segmenter.process(np.ascontiguousarray(np.asarray(image.convert("RGB"))))
        return np.asarray(result.segmentation_mask, dtype=np.float32)

    def find_faces(self, image: Image.Image) -> list[Face]:
        """Every face the detector sees, boxes in the image's pixels."""
        result = self._faces.process(np.ascontiguousarray(np.asarray(image)))
        faces = []
        for detection in result.detections or []:
            rel = detection.location_data.relative_bounding_box
            box = (
                rel.xmin * image.width,
                rel.ymin * image.height,
                (rel.xmin + rel.width) * image.width,
                (rel.ymin + rel.height) * image.height,
            )
            faces.append(Face(box, float(detection.score[0])))
        return faces

    def person_coverage(self, image: Image.Image, face: Box) -> float:
        """Mean person probability over a face box, segmented in a square three faces wide."""
        around = cut_with_edge_padding(image, square_around(face, margin=1.0))
        mask = self.person_mask(around.resize((_CHECK_SIZE, _CHECK_SIZE), Image.BILINEAR))
        third = slice(_CHECK_SIZE // 3, 2 * _CHECK_SIZE // 3)
        return float(mask[third, third].mean())

    def sees_body(self, image: Image.Image) -> bool:
        pixels = np.ascontiguousarray(np.asarray(image))
        if _QUIET.body_seen:
            return self._pose.process(pixels).pose_landmarks is not None
        # the pose graph logs a note the first time in a process that it finds a body, on any photo
        with _native_stderr_closed():
            found = self._pose.process(pixels).pose_landmarks is not None
        _QUIET.body_seen |= found
        return found

    def subject(self, photo: Image.Image, source_scale: float = 1.0) -> Subject:
        """The photo's one subject, or PhotoRejected saying why there is not exactly one.

        `source_scale`: source pixels per pixel of `photo`, when it was decoded smaller than the file
        (read_photo's max_side); boxes and the face-size check are in source pixels either way.
        """
        small, scale = _shrink(photo, self.config.detect_max_side)
        scale *= source_scale
        faces = [
            Face(tuple(v * scale for v in f.box), f.score)  # type: ignore[arg-type]
            for f in self.find_faces(small)
            if self.person_coverage(small, f.box) >= self.config.person_coverage
        ]
        if not faces:
            if self.sees_body(small):
                raise PhotoRejected(
                    "face_too_small",
                    "A person is visible, but the face is too small (or turned away) to find; "
                    "send a closer photo.",
                )
            raise PhotoRejected("no_person", "No person was found in this photo.")
        largest = max(f.side for f in faces)
        subjects = [f for f in faces if f.side >= self.config.subject_face_ratio * largest]
        if len(subjects) > 1:
            raise PhotoRejected(
                "multiple_people", f"{len(subjects)} people are in this photo; send photos of only yourself."
            )
        face = subjects[0]
        check_face_size(face, self.config.min_face_size)
        return Subject(face, background_faces=len(faces) - 1)


def check_face_size(face: Face, min_face_size: int) -> None:
    """PhotoRejected('face_too_small') under min_face_size px: enlarged to a crop it has no detail
    to learn."""
    if face.side < min_face_size:
        raise PhotoRejected(
            "face_too_small",
            f"The face is only {face.side:.0f} px wide (at least {min_face_size} px needed); "
            "send a closer or sharper photo.",
        )


@contextmanager
def _native_stderr_closed() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: mediapipe's C++ logging ignores Python's settings. One
    thread at a time (the service judges photos on several): fd 2 is the process's, and two threads
    saving and restoring it in turn would leave it closed."""
    with _QUIET.lock:
        sys.stderr.flush()
        saved = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(null)


@dataclass
class _Quiet:
    lock: threading.Lock
    body_seen: bool = False  # the pose graph has logged its once-per-process note


_QUIET = _Quiet(threading.Lock())


def _shrink(image: Image.Image, max_side: int) -> tuple[Image.Image, float]:
    """A copy at most max_side long (detectors work at ~200 px anyway) and the factor back."""
    scale = max(image.size) / max_side
    if scale <= 1:
        return image, 1.0
    size = (round(image.width / scale), round(image.height / scale))
    return image.resize(size, Image.BILINEAR, reducing_gap=2.0), scale
