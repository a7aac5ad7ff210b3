"""The person filter (thesis 2.1.1) on real photos: exactly one subject, background people ignored."""

from __future__ import annotations

import os
import threading
import time

import pytest
from PIL import Image

from portraitist.prepare.config import PrepareConfig
from portraitist.prepare.detect import PersonDetector, _native_stderr_closed
from portraitist.prepare.rejection import PhotoRejected
from portraitist.samples import astronaut, no_person, noise_image, two_people


def with_passer_by(main_side: int = 1024, other_side: int = 480) -> Image.Image:
    """The astronaut large in front and a smaller copy of her in a corner: a person behind."""
    photo = astronaut().resize((main_side, main_side), Image.LANCZOS)
    photo.paste(astronaut().resize((other_side, other_side), Image.LANCZOS), (main_side - other_side,) * 2)
    return photo


def rejection(detector: PersonDetector, photo: Image.Image) -> str:
    with pytest.raises(PhotoRejected) as caught:
        detector.subject(photo)
    return caught.value.reason


def test_one_person_is_the_subject(detector: PersonDetector) -> None:
    subject = detector.subject(astronaut())
    x0, y0, x1, y1 = subject.face.box
    # Eileen Collins' face in skimage's astronaut photo lies around x 170-280, y 65-175
    assert 160 < x0 < x1 < 290 and 55 < y0 < y1 < 185
    assert subject.background_faces == 0


def test_two_people_are_rejected(detector: PersonDetector) -> None:
    assert rejection(detector, two_people()) == "multiple_people"


@pytest.mark.parametrize("photo", [no_person(), noise_image()], ids=["coffee", "noise"])
def test_no_person_is_rejected(detector: PersonDetector, photo: Image.Image) -> None:
    assert rejection(detector, photo) == "no_person"


def test_a_smaller_face_behind_the_subject_does_not_reject_the_photo(detector: PersonDetector) -> None:
    photo = with_passer_by()
    assert len(detector.find_faces(photo)) == 2
    subject = detector.subject(photo)
    assert subject.background_faces == 1
    assert subject.face.side > 150  # the big face in front is the subject
    # the same photo with a stricter rule counts the second face as a second subject
    with PersonDetector(PrepareConfig(subject_face_ratio=0.3)) as strict:
        assert rejection(strict, photo) == "multiple_people"


def test_small_faces_are_too_small(detector: PersonDetector) -> None:
    # a 53 px face: found, but below min_face_size (64 px)
    assert rejection(detector, astronaut().resize((256, 256), Image.LANCZOS)) == "face_too_small"
    # a person far away: the pose model sees her, the face detector cannot find her face
    far = Image.new("RGB", (800, 800), (120, 130, 140))
    far.paste(astronaut().resize((192, 192), Image.LANCZOS), (300, 300))
    assert detector.find_faces(far) == []
    assert rejection(detector, far) == "face_too_small"


def test_large_photos_are_detected_on_a_shrunk_copy_with_boxes_in_full_size_pixels(
    detector: PersonDetector,
) -> None:
    big = astronaut().resize((2560, 2560), Image.LANCZOS)  # detect_max_side is 1280
    small_box = detector.subject(astronaut()).face.box
    big_box = detector.subject(big).face.box
    for small, large in zip(small_box, big_box):
        assert abs(large / 5 - small) < 4


def test_silencing_mediapipe_from_several_threads_leaves_stderr_open() -> None:
    """The service judges photos on two threads at once; file descriptor 2 is the whole process's."""
    before = os.fstat(2)

    def silenced_calls() -> None:
        for _ in range(20):
            with _native_stderr_closed():
                time.sleep(0.001)  # a graph running, while the other thread wants the same

    threads = [threading.Thread(target=silenced_calls) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
