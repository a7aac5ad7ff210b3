"""Face swap (thesis 2.4.1): only the face region of the user's picture changes, at full size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from portraitist import samples
from portraitist.errors import PortraitistError
from portraitist.generate.config import SwapConfig
from portraitist.generate.face_mask import FACE_OVAL, face_outline, feathered_mask, find_face
from portraitist.generate.swap import identity_order, swap
from portraitist.workspace import Workspace


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The astronaut in a wider frame (not square, not the model's size), as a user's picture."""
    canvas = Image.new("RGB", (700, 560), (40, 90, 160))
    canvas.paste(samples.astronaut(), (150, 40))
    path = tmp_path_factory.mktemp("pictures") / "film_still.png"
    canvas.save(path)
    return path


def test_swap_changes_only_the_feathered_face_mask_and_keeps_the_size(picture: Path, tmp_path: Path) -> None:
    result = swap(
        None, picture, SwapConfig(base="tiny", out=tmp_path, n=2, steps=4, prompt="a photo of a person")
    )
    original = np.asarray(Image.open(picture)).astype(int)
    mask = result.region.full_mask((original.shape[1], original.shape[0]))
    face = result.region.face
    assert len(result.images) == 2 and result.seeds == [0, 1]
    for path in result.images:
        out = np.asarray(Image.open(path)).astype(int)
        assert out.shape == original.shape
        changed = np.abs(out - original).max(axis=2) > 0
        assert not (changed & (mask == 0)).any(), "a pixel outside the feathered mask changed"
        inside = mask > 0.99
        assert changed[inside].mean() > 0.5  # the face itself was repainted
    # the mask covers the detected face and stays near it
    x0, y0, x1, y1 = (round(v) for v in face)
    assert mask[(y0 + y1) // 2, (x0 + x1) // 2] == 1.0
    ys, xs = np.nonzero(mask)
    side = max(x1 - x0, y1 - y0)
    assert xs.min() > x0 - side and xs.max() < x1 + side and ys.min() > y0 - side and ys.max() < y1 + side
    log = [json.loads(line) for line in (tmp_path / "swaps.jsonl").read_text().splitlines()]
    assert [r["seed"] for r in log] == [0, 1] and log[0]["picture"] == str(picture)


def test_swap_in_a_trained_workspace_uses_the_subject(trained: Workspace, picture: Path) -> None:
    result = swap(trained, picture, SwapConfig(n=2, steps=2))
    subject = json.loads((trained.model_dir / "model.json").read_text())["subject"]
    records = [json.loads(line) for line in (trained.outputs_dir / "swaps.jsonl").read_text().splitlines()]
    assert records[0]["prompt"] == f"a photo of {subject}"
    assert [r["rank"] for r in records] == [0, 1]
    assert result.ranked_by_identity  # dlib's face identity against the workspace's crops
    assert result.images[0].parent == trained.outputs_dir / "swaps"
    assert Image.open(result.images[0]).size == Image.open(picture).size


def test_identity_ranks_the_users_face_before_a_faceless_image(trained: Workspace) -> None:
    assert identity_order(trained, [samples.noise_image(256), samples.astronaut()]) == [1, 0]
    assert identity_order(None, [samples.astronaut()]) is None


def test_picture_without_a_face_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "coffee.png"
    samples.no_person().save(path)
    with pytest.raises(PortraitistError, match="No face was found in the picture"):
        swap(None, path, SwapConfig(base="tiny", out=tmp_path, prompt="a photo of a person"))


def test_face_mesh_outline_and_its_ellipse_fallback() -> None:
    astronaut = samples.astronaut()
    face = find_face(astronaut)
    outline = face_outline(astronaut, face)
    assert outline.shape == (len(FACE_OVAL), 2)
    # the mesh's oval surrounds the detection box's centre
    mask = feathered_mask(outline, astronaut.size, 0)
    assert mask[round((face[1] + face[3]) / 2), round((face[0] + face[2]) / 2)] == 1.0
    # no face for the mesh to find: an ellipse inside the given box
    fallback = face_outline(samples.noise_image(128), (32.0, 32.0, 96.0, 96.0))
    assert fallback.shape == (36, 2)
    assert fallback[:, 0].min() >= 32 - 1e-6 and fallback[:, 0].max() <= 96 + 1e-6


def test_feather_is_zero_beyond_its_reach() -> None:
    square = np.array([[40, 40], [60, 40], [60, 60], [40, 60]], dtype=float)
    mask = feathered_mask(square, (100, 100), feather_px=9)
    assert mask[50, 50] == pytest.approx(1.0)
    assert 0 < mask[50, 66] < 1  # the ramp, past the grown edge
    _ys, xs = np.nonzero(mask)
    # grown by 9/2 px (rounded to 4), then blurred over at most 9 px more
    assert xs.min() >= 40 - 4 - 9 and xs.max() <= 60 + 4 + 9
