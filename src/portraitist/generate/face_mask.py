"""Where the face is in a user's picture, and the soft mask that swap repaints (thesis 2.4.1).

mediapipe's BlazeFace (full range) finds the face; its face mesh, run on a square cut around
it, outlines the face (the FACEMESH_FACE_OVAL contour, forehead to chin). When the mesh
finds nothing (profile views, strong occlusion) an ellipse inside the detection box stands in.
The mask's edge is feathered so the repainted face blends into the picture.
"""

from __future__ import annotations

import math

import cv2
import mediapipe as mp
import numpy as np
from PIL import Image

from portraitist.errors import PortraitistError

Box = tuple[float, float, float, float]


def _cycle(edges: frozenset[tuple[int, int]]) -> list[int]:
    """The vertices of a closed contour given as an unordered set of edges, in drawing order."""
    neighbours: dict[int, list[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    start = min(neighbours)
    order, previous = [start], None
    while True:
        current = order[-1]
        following = next(v for v in neighbours[current] if v != previous)
        if following == start:
            return order
        order.append(following)
        previous = current


FACE_OVAL = _cycle(mp.solutions.face_mesh.FACEMESH_FACE_OVAL)


def find_face(picture: Image.Image, min_confidence: float = 0.5) -> Box:
    """The largest face's box [x0, y0, x1, y1] in the picture's pixels."""
    with mp.solutions.face_detection.FaceDetection(
        model_selection=1, min_detection_confidence=min_confidence
    ) as det:
        result = det.process(np.ascontiguousarray(np.asarray(picture.convert("RGB"))))
    boxes = []
    for detection in result.detections or []:
        rel = detection.location_data.relative_bounding_box
        x0, y0 = rel.xmin * picture.width, rel.ymin * picture.height
        boxes.append((x0, y0, x0 + rel.width * picture.width, y0 + rel.height * picture.height))
    if not boxes:
        raise PortraitistError(
            "No face was found in the picture. Swap needs a picture with a visible, roughly frontal face "
            "(at least about 40 px wide)."
        )
    return max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))


def square_around(face: Box, context: float, picture_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A square `context` face sizes wide, centred on the face, moved (and shrunk) to fit the picture."""
    width, height = picture_size
    side = min(round(max(face[2] - face[0], face[3] - face[1]) * context), width, height)
    cx, cy = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
    x0 = min(max(0, round(cx - side / 2)), width - side)
    y0 = min(max(0, round(cy - side / 2)), height - side)
    return x0, y0, x0 + side, y0 + side


def face_outline(image: Image.Image, face: Box) -> np.ndarray:
    """(N, 2) polygon of the face's outline in `image` pixels: the mesh's oval, or an ellipse in `face`."""
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as mesh:
        result = mesh.process(np.ascontiguousarray(np.asarray(image.convert("RGB"))))
    if result.multi_face_landmarks:
        marks = result.multi_face_landmarks[0].landmark
        return np.array([(marks[i].x * image.width, marks[i].y * image.height) for i in FACE_OVAL])
    centre = ((face[0] + face[2]) / 2, (face[1] + face[3]) / 2)
    axes = ((face[2] - face[0]) / 2, (face[3] - face[1]) * 0.6)
    angles = np.linspace(0, 2 * math.pi, 36, endpoint=False)
    return np.stack([centre[0] + axes[0] * np.cos(angles), centre[1] + axes[1] * np.sin(angles)], axis=1)


def feathered_mask(outline: np.ndarray, size: tuple[int, int], feather_px: float) -> np.ndarray:
    """float32 HxW in [0, 1]: the filled outline grown by half the feather, then blurred.

    The blur's kernel is cut at 3 sigma = `feather_px`, so the mask is exactly 0 farther than
    that from the grown outline: pixels there are never touched.
    """
    width, height = size
    hard = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(hard, [np.round(outline).astype(np.int32)], 255)
    radius = max(1, round(feather_px / 2))
    hard = cv2.dilate(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    mask = hard.astype(np.float32) / 255
    if feather_px >= 1:
        k = 2 * math.ceil(feather_px) + 1
        mask = cv2.GaussianBlur(mask, (k, k), sigmaX=feather_px / 3, borderType=cv2.BORDER_CONSTANT)
    # the kernel's weights sum to 1 only up to rounding
    return np.clip(mask, 0.0, 1.0)
