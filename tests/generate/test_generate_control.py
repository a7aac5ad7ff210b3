"""ControlNet conditions from a reference picture (thesis 2.4.1), and a tiny ControlNet steering generate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from controlkit import random_controlnet
from PIL import Image

from portraitist import samples
from portraitist.errors import PortraitistError
from portraitist.generate.config import GenerateConfig
from portraitist.generate.control import (
    OPENPOSE_COLORS,
    canny_condition,
    condition_image,
    condition_tensor,
    depth_condition,
    draw_openpose,
    load_controlnet,
    openpose_keypoints,
)
from portraitist.generate.stage import generate


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return samples.astronaut()


def test_pose_skeleton_is_drawn_where_mediapipe_finds_the_body(astronaut: Image.Image) -> None:
    keypoints = openpose_keypoints(astronaut)
    found = {i for i, k in enumerate(keypoints) if k is not None}
    # a head-and-shoulders portrait: nose, neck, shoulders, eyes are visible
    assert {0, 1, 2, 5, 14, 15} <= found
    pose = np.asarray(draw_openpose(keypoints, astronaut.size)).astype(int)
    assert pose.shape == (astronaut.height, astronaut.width, 3)
    for i in found:
        x, y = (round(v) for v in keypoints[i])  # type: ignore[misc]
        patch = pose[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3].reshape(-1, 3)
        assert (np.abs(patch - OPENPOSE_COLORS[i]).sum(axis=1) == 0).any(), (
            f"keypoint {i} not drawn in its colour"
        )
    # everything drawn lies around the detected points; the rest of the picture is black
    drawn = np.argwhere(pose.max(axis=2) > 0)
    points = np.array([k for k in keypoints if k is not None])
    margin = 8
    assert (
        drawn[:, 1].min() >= points[:, 0].min() - margin and drawn[:, 1].max() <= points[:, 0].max() + margin
    )
    assert (
        drawn[:, 0].min() >= points[:, 1].min() - margin and drawn[:, 0].max() <= points[:, 1].max() + margin
    )
    assert 0.002 < len(drawn) / (pose.shape[0] * pose.shape[1]) < 0.2


def test_pose_without_a_person_is_refused() -> None:
    with pytest.raises(PortraitistError, match="No person was found in the pose reference"):
        openpose_keypoints(samples.no_person())


@pytest.mark.parametrize("kind", ["pose", "canny"])
def test_conditions_have_the_output_size_and_shape(astronaut: Image.Image, kind: str) -> None:
    image = condition_image(kind, astronaut, (256, 448), depth_model="unused")
    assert image.size == (256, 448) and image.mode == "RGB"
    tensor = condition_tensor(image)
    assert tensor.shape == (1, 3, 448, 256)
    assert 0.0 <= float(tensor.min()) and float(tensor.max()) <= 1.0


def test_canny_is_white_edges_on_black(astronaut: Image.Image) -> None:
    edges = np.asarray(canny_condition(astronaut))
    assert set(np.unique(edges)) == {0, 255}
    assert (edges[..., 0] == edges[..., 1]).all() and (edges[..., 1] == edges[..., 2]).all()
    assert 0.01 < (edges[..., 0] > 0).mean() < 0.3


def test_depth_model_offline_says_what_to_do(astronaut: Image.Image) -> None:
    with pytest.raises(
        PortraitistError,
        match="depth model .Intel/dpt-hybrid-midas. comes from the Hugging Face hub.*--control pose or canny",
    ):
        depth_condition(astronaut, "Intel/dpt-hybrid-midas")


def test_missing_controlnet_weights_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(
        PortraitistError,
        match="There is no ControlNet at .*nothing-here. Give --controlnet a ControlNet folder",
    ):
        load_controlnet(str(tmp_path / "nothing-here"))


@pytest.fixture(scope="module")
def tiny_controlnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_controlnet("tiny", tmp_path_factory.mktemp("controlnet") / "tiny-canny")


def test_controlnet_steers_generation_and_is_logged(
    tmp_path: Path, astronaut: Image.Image, tiny_controlnet: Path
) -> None:
    reference = tmp_path / "reference.png"
    astronaut.save(reference)
    common = {"base": "tiny", "prompt": "a photo of a person", "n": 1, "steps": 3}
    plain = generate(None, GenerateConfig(out=tmp_path / "plain", **common))
    steered = generate(
        None,
        GenerateConfig(
            out=tmp_path / "c",
            control="canny",
            reference=reference,
            controlnet=str(tiny_controlnet),
            **common,
        ),
    )
    off = generate(
        None,
        GenerateConfig(
            out=tmp_path / "off", control="canny", reference=reference, controlnet=str(tiny_controlnet),
            control_scale=0.0, **common,
        ),
    )  # fmt: skip

    def px(path: Path) -> np.ndarray:
        return np.asarray(Image.open(path)).astype(int)

    assert np.abs(px(steered.images[0]) - px(plain.images[0])).mean() > 1
    assert np.array_equal(px(off.images[0]), px(plain.images[0]))  # scale 0: the ControlNet adds nothing
    record = json.loads((tmp_path / "c" / "generations.jsonl").read_text())
    assert record["control"] == {"kind": "canny", "reference": str(reference)}
