"""One person per photo set (prepare/identity.py): measured on real photos of different people.

The user is the astronaut (scikit-image) or Grace Hopper (matplotlib), each in photos made from
her one portrait by cropping, mirroring, relighting, tilting and shrinking; the strangers are
those two and scikit-image's LFW faces (25 px photos of other people, enlarged).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from portraitist import samples
from portraitist.errors import PortraitistError
from portraitist.models.face_id import SAME_PERSON_DISTANCE, FaceDescriptors
from portraitist.prepare.config import PrepareConfig
from portraitist.prepare.crop import face_crop
from portraitist.prepare.detect import PersonDetector
from portraitist.prepare.identity import check_identity, find_majority
from portraitist.prepare.stage import prepare
from portraitist.workspace import Workspace

FACE_SIDE = 512 / 3  # the face's side in a default crop (margin 1: three faces wide)
STRANGERS = 20  # LFW faces used as strangers


def gallery(photo: Image.Image, count: int) -> list[Image.Image]:
    """`count` photos of one person from one portrait: framing, mirror, light, tilt and size vary."""
    out = []
    for i in range(count):
        rng = np.random.default_rng(i)
        w, h = photo.size
        left, top = rng.integers(0, w // 6), rng.integers(0, h // 8)
        image = photo.crop((left, top, w - rng.integers(0, w // 6), h - rng.integers(0, h // 10)))
        if i % 2:
            image = ImageOps.mirror(image)
        image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.6, 1.4)))
        image = image.rotate(float(rng.uniform(-8, 8)), resample=Image.BICUBIC, fillcolor=(128, 128, 128))
        if i % 3 == 0:
            image = image.resize((image.width * 2 // 3, image.height * 2 // 3), Image.LANCZOS)
        out.append(image)
    return out


@pytest.fixture(scope="module")
def crops(detector: PersonDetector) -> dict[str, list[Image.Image]]:
    """Training crops as prepare cuts them: 12 of each woman, and LFW faces (already face-centred)."""

    def cut(photos: list[Image.Image]) -> list[Image.Image]:
        return [face_crop(p, detector.subject(p).face.box, 1.0, 512, False)[0] for p in photos]

    return {
        "astronaut": cut(gallery(samples.astronaut(), 12)),
        "hopper": cut(gallery(samples.grace_hopper(), 12)),
    }


@pytest.fixture(scope="module")
def descriptors(crops: dict[str, list[Image.Image]]) -> dict[str, list[np.ndarray]]:
    faces, enlarged = FaceDescriptors(upsample=0), FaceDescriptors(upsample=1)
    images = {**crops, "lfw": samples.lfw_faces(STRANGERS + 5)}  # dlib misses a few LFW faces
    found = {
        name: [
            d
            for image in group
            if (d := (enlarged if name == "lfw" else faces).descriptor(image)) is not None
        ]
        for name, group in images.items()
    }
    found["lfw"] = found["lfw"][:STRANGERS]
    return found


def others(faces: list[np.ndarray]) -> list[int]:
    majority = find_majority(faces, SAME_PERSON_DISTANCE)
    assert majority is not None
    return majority.outsiders(SAME_PERSON_DISTANCE)


def test_a_one_person_set_loses_no_photo(descriptors: dict[str, list[np.ndarray]]) -> None:
    for person in ("astronaut", "hopper"):
        faces = descriptors[person]
        assert len(faces) == 12  # dlib sees every face of a 512 crop
        assert others(faces) == []  # false rejects: 0 of 12 for each woman


def test_a_stranger_among_the_user_s_photos_is_rejected(descriptors: dict[str, list[np.ndarray]]) -> None:
    for user, other in (("astronaut", "hopper"), ("hopper", "astronaut")):
        own = descriptors[user]
        strangers = descriptors[other][:3] + descriptors["lfw"]
        caught = 0
        for k, stranger in enumerate(strangers):
            photos = [own[(k + j) % len(own)] for j in range(5)] + [stranger]
            found = others(photos)
            assert set(found) <= {5}  # never one of the user's own photos
            caught += found == [5]
        # measured: 23 of 23 both ways (docs/prepare.md); one of tolerance for another CPU's arithmetic
        assert caught >= len(strangers) - 1, (user, caught, len(strangers))


def test_the_majority_rule() -> None:
    rng = np.random.default_rng(0)
    user, friend = rng.normal(size=128), rng.normal(size=128)
    user, friend = user / np.linalg.norm(user), friend / np.linalg.norm(friend)

    def near(centre: np.ndarray, spread: float) -> np.ndarray:
        step = rng.normal(size=128)
        return centre + spread * step / np.linalg.norm(step)

    five_and_one = [near(user, 0.25) for _ in range(5)] + [friend]
    assert others(five_and_one) == [5]
    # a less typical view of the user: beyond 0.6 of the anchor perhaps, but close to the rest on average
    assert others([near(user, 0.25) for _ in range(4)] + [near(user, 0.5)]) == []
    assert (
        find_majority([near(user, 0.2) for _ in range(3)] + [near(friend, 0.2) for _ in range(3)], 0.6)
        is None
    )
    # a look-alike of one photo (0.55 from it, so in the anchor's majority) but not of the others
    own = [near(user, 0.25) for _ in range(5)]
    look_alike = near(own[0], 0.55)
    majority = find_majority([*own, look_alike], 0.6)
    assert majority is not None and 5 in majority.members and majority.outsiders(0.6) == [5]


def test_half_and_half_is_an_error_that_says_so(crops: dict[str, list[Image.Image]]) -> None:
    mixed = crops["astronaut"][:2] + crops["hopper"][:2]
    with pytest.raises(PortraitistError, match="none of them is in more than half of the 4 photos"):
        check_identity(mixed, [f"{i}.jpg" for i in range(4)], SAME_PERSON_DISTANCE, FACE_SIDE)


def test_faces_dlib_cannot_see_are_kept_unchecked(crops: dict[str, list[Image.Image]]) -> None:
    cartoon = Image.new("RGB", (512, 512), (200, 150, 120))  # no face for dlib: not another person either
    result = check_identity(crops["astronaut"][:3] + [cartoon], list("abcd"), SAME_PERSON_DISTANCE, FACE_SIDE)
    assert result.others == {} and result.check.status == "checked" and result.check.faces == 3
    alone = check_identity(crops["astronaut"][:1] + [cartoon], list("ab"), SAME_PERSON_DISTANCE, FACE_SIDE)
    assert alone.check.status == "skipped" and "too few to compare" in alone.check.note


def test_prepare_rejects_another_person_s_photo(tmp_path: Path, sample_photos: list[Path]) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in sample_photos[:4]:
        shutil.copy(photo, folder)
    samples.grace_hopper().save(folder / "astronaut_01_friend.jpg")  # sorts among the astronaut's photos
    result = prepare(Workspace(tmp_path / "ws"), [folder], PrepareConfig(class_word="girl"))

    by_name = {Path(p.source).name: p for p in result.manifest.photos}
    assert by_name["astronaut_01_friend.jpg"].reason == "other_person"
    assert "not the person most of the photos show" in (by_name["astronaut_01_friend.jpg"].message or "")
    assert len(result.kept) == 4
    assert [p.image for p in result.kept] == [f"dataset/crops/{i:02d}.png" for i in range(4)]  # no gap
    assert sorted(p.name for p in (tmp_path / "ws" / "dataset" / "crops").iterdir()) == [
        f"{i:02d}.png" for i in range(4)
    ]
    identity = result.manifest.identity
    assert identity is not None and (identity.status, identity.faces, identity.max_distance) == (
        "checked",
        5,
        0.6,
    )

    unchecked = prepare(
        Workspace(tmp_path / "ws2"), [folder], PrepareConfig(class_word="girl", identity_check=False)
    )
    assert len(unchecked.kept) == 5 and unchecked.manifest.identity.status == "off"
