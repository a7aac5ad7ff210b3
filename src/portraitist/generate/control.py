"""ControlNet conditions from a reference image the user supplies (thesis 2.4.1).

The thesis's model often cropped the head, and at 9:16 stretched or duplicated it;
conditioning on a pose skeleton, a depth map or edges fixes the composition, and lets the
user take a pose from any picture:
  - pose: mediapipe's shipped pose model, redrawn as the 18-keypoint OpenPose skeleton
    (COCO order, OpenPose's limb colours) that the SD 1.5 openpose ControlNets were trained on;
  - canny: OpenCV's Canny edges;
  - depth: a depth-estimation model from the hub (configurable), for users who have it.
ControlNet weights load like base models: a diffusers folder, a single file or a hub id.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import mediapipe as mp
import numpy as np
import torch
from diffusers import ControlNetModel
from PIL import Image, ImageOps

from portraitist.errors import PortraitistError
from portraitist.generate.config import DEFAULT_DEPTH_MODEL, ControlKind
from portraitist.models.offline import load_from_hub, load_pretrained

# OpenPose body keypoints (COCO order) from mediapipe's 33 pose landmarks; the neck (1) is
# the shoulders' midpoint. OpenPose's "right" is the person's right, as is mediapipe's.
_POSE = mp.solutions.pose.PoseLandmark
OPENPOSE_FROM_MEDIAPIPE: tuple[tuple[int, ...], ...] = (
    (_POSE.NOSE,),
    (_POSE.LEFT_SHOULDER, _POSE.RIGHT_SHOULDER),
    (_POSE.RIGHT_SHOULDER,),
    (_POSE.RIGHT_ELBOW,),
    (_POSE.RIGHT_WRIST,),
    (_POSE.LEFT_SHOULDER,),
    (_POSE.LEFT_ELBOW,),
    (_POSE.LEFT_WRIST,),
    (_POSE.RIGHT_HIP,),
    (_POSE.RIGHT_KNEE,),
    (_POSE.RIGHT_ANKLE,),
    (_POSE.LEFT_HIP,),
    (_POSE.LEFT_KNEE,),
    (_POSE.LEFT_ANKLE,),
    (_POSE.RIGHT_EYE,),
    (_POSE.LEFT_EYE,),
    (_POSE.RIGHT_EAR,),
    (_POSE.LEFT_EAR,),
)
# OpenPose's limbs (pairs of keypoints) and colours (RGB), as the ControlNet annotator draws them
OPENPOSE_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip
OPENPOSE_COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
_MIN_VISIBILITY = 0.5

Keypoint = tuple[float, float] | None


def fit_reference(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The reference cropped to the output's aspect ratio (centred) and resized to it."""
    return ImageOps.fit(image.convert("RGB"), size, Image.LANCZOS)


def openpose_keypoints(image: Image.Image) -> list[Keypoint]:
    """18 keypoints in pixels (None where mediapipe does not see that joint)."""
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        result = pose.process(np.ascontiguousarray(np.asarray(image.convert("RGB"))))
    if result.pose_landmarks is None:
        raise PortraitistError(
            "No person was found in the pose reference image; give a picture where a body is visible, "
            "or use --control canny or depth."
        )
    marks = result.pose_landmarks.landmark
    keypoints: list[Keypoint] = []
    for sources in OPENPOSE_FROM_MEDIAPIPE:
        points = [marks[i] for i in sources]
        if all(p.visibility >= _MIN_VISIBILITY and 0 <= p.x <= 1 and 0 <= p.y <= 1 for p in points):
            keypoints.append(
                (
                    sum(p.x for p in points) / len(points) * image.width,
                    sum(p.y for p in points) / len(points) * image.height,
                )
            )
        else:
            keypoints.append(None)
    return keypoints


def draw_openpose(keypoints: list[Keypoint], size: tuple[int, int]) -> Image.Image:
    """The skeleton on black: limbs as ellipses, dimmed, then the joints (controlnet_aux's drawing)."""
    width, height = size
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    # 4 px sticks at 512 px, as the annotator draws them
    stick = max(1, round(4 * max(size) / 512))
    for (a, b), color in zip(OPENPOSE_LIMBS, OPENPOSE_COLORS):
        pa, pb = keypoints[a], keypoints[b]
        if pa is None or pb is None:
            continue
        center = (int((pa[0] + pb[0]) / 2), int((pa[1] + pb[1]) / 2))
        length = math.hypot(pa[0] - pb[0], pa[1] - pb[1])
        angle = math.degrees(math.atan2(pa[1] - pb[1], pa[0] - pb[0]))
        polygon = cv2.ellipse2Poly(center, (int(length / 2), stick), int(angle), 0, 360, 1)
        cv2.fillConvexPoly(canvas, polygon, color)
    canvas = (canvas * 0.6).astype(np.uint8)
    for point, color in zip(keypoints, OPENPOSE_COLORS):
        if point is not None:
            cv2.circle(canvas, (int(point[0]), int(point[1])), stick, color, thickness=-1)
    return Image.fromarray(canvas)


def pose_condition(image: Image.Image) -> Image.Image:
    return draw_openpose(openpose_keypoints(image), image.size)


def canny_condition(image: Image.Image, low: int = 100, high: int = 200) -> Image.Image:
    """White edges on black, three channels, as the canny ControlNet expects."""
    edges = cv2.Canny(np.asarray(image.convert("L")), low, high)
    return Image.fromarray(edges).convert("RGB")


def depth_condition(image: Image.Image, depth_model: str = DEFAULT_DEPTH_MODEL) -> Image.Image:
    """A relative depth map (near = bright) from a transformers depth-estimation model."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation, pipeline

    def load(local_only: bool) -> Any:
        # loaded here, not by name in pipeline(): transformers' look-up of a PEFT adapter beside the model
        # ignores local_files_only unless it is given to it on its own
        model = AutoModelForDepthEstimation.from_pretrained(
            depth_model, local_files_only=local_only, adapter_kwargs={"local_files_only": local_only}
        )
        processor = AutoImageProcessor.from_pretrained(depth_model, local_files_only=local_only)
        return pipeline("depth-estimation", model=model, image_processor=processor)

    try:
        estimator = load_from_hub(
            load,
            depth_model, "depth model",
            "Give --depth-model a depth-estimation folder you have, or use --control pose or canny, "
            "which need no download.",
        )  # fmt: skip
    except (OSError, ValueError) as exc:
        raise PortraitistError(
            f"Could not load the depth model {depth_model!r} ({str(exc).splitlines()[0]}). "
            "Give --depth-model a folder or a hub id you can download, or use --control pose or canny, "
            "which need no download."
        ) from exc
    depth = estimator(image.convert("RGB"))["depth"]
    return depth.convert("RGB").resize(image.size, Image.BICUBIC)


def condition_image(
    kind: ControlKind, reference: Image.Image, size: tuple[int, int], depth_model: str
) -> Image.Image:
    """The condition for `kind`, drawn from the reference fitted to the output size."""
    fitted = fit_reference(reference, size)
    if kind == "pose":
        return pose_condition(fitted)
    if kind == "canny":
        return canny_condition(fitted)
    return depth_condition(fitted, depth_model)


def condition_tensor(image: Image.Image) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1]: how StableDiffusionControlNetPipeline feeds the ControlNet."""
    array = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255)
    return array.permute(2, 0, 1)[None]


def load_controlnet(spec: str) -> ControlNetModel:
    """A ControlNet from a diffusers folder, a single .safetensors file or a hub id."""
    path = Path(spec).expanduser()
    try:
        if path.is_file():
            model = ControlNetModel.from_single_file(str(path))
        elif path.is_dir():
            model = ControlNetModel.from_pretrained(str(path), local_files_only=True)
        else:
            instead = "Give --controlnet a ControlNet folder or .safetensors file you have."
            (model,) = load_pretrained(spec, "ControlNet", instead, ControlNetModel)
    except (OSError, ValueError) as exc:
        raise PortraitistError(
            f"Could not load the ControlNet {spec!r} ({str(exc).splitlines()[0]}). "
            "Give --controlnet a folder, a .safetensors file or a hub id you can download "
            "(e.g. lllyasviel/control_v11p_sd15_openpose for SD 1.x, xinsir/controlnet-openpose-sdxl-1.0 "
            "for SDXL)."
        ) from exc
    return model.requires_grad_(False).eval()
