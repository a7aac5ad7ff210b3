"""The prepare stage end to end on a realistic mixed photo set: what is kept, what is rejected
and why, and what lands in the workspace."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from portraitist.errors import PortraitistError
from portraitist.prepare.config import PrepareConfig
from portraitist.prepare.crop import face_crop
from portraitist.prepare.detect import PersonDetector
from portraitist.prepare.stage import PrepareResult, prepare
from portraitist.progress import ProgressEvent
from portraitist.samples import astronaut, cameraman, no_person, two_people
from portraitist.workspace import Workspace

TINY = PrepareConfig(clip_model="tiny")


@pytest.fixture(scope="module")
def mixed_set(
    tmp_path_factory: pytest.TempPathFactory, sample_photos: list[Path], pixel_bomb: Callable[..., Path]
) -> Path:
    """A phone gallery: six photos of the user, other people, damaged and odd files."""
    gallery = tmp_path_factory.mktemp("gallery")
    for photo in sample_photos:
        shutil.copy(photo, gallery)
    two_people().save(gallery / "party.jpg", quality=90)
    no_person().save(gallery / "coffee.jpg", quality=90)
    cameraman().save(gallery / "cameraman.heic", quality=90)
    astronaut().filter(ImageFilter.GaussianBlur(4)).save(gallery / "shaky.jpg", quality=90)
    buffer = io.BytesIO()
    Image.open(sample_photos[0]).resize((400, 400), Image.LANCZOS).save(buffer, format="JPEG", quality=60)
    (gallery / "resent.jpg").write_bytes(buffer.getvalue())
    (gallery / "empty.jpg").write_bytes(b"")
    (gallery / "notes.txt").write_text("shopping list\n")
    (gallery / "cut.jpg").write_bytes((gallery / "party.jpg").read_bytes()[:5000])
    pixel_bomb(gallery / "bomb.png", 30_000, 30_000)  # 900 MP claimed in a 70-byte file
    return gallery


@pytest.fixture(scope="module")
def prepared(
    tmp_path_factory: pytest.TempPathFactory, mixed_set: Path
) -> tuple[PrepareResult, list[ProgressEvent]]:
    events: list[ProgressEvent] = []
    result = prepare(Workspace(tmp_path_factory.mktemp("ws")), [mixed_set], TINY, events.append)
    return result, events


def outcomes(result: PrepareResult) -> dict[str, str]:
    return {Path(p.source).name: p.reason or "kept" for p in result.manifest.photos}


def test_each_photo_gets_a_decision_and_bad_files_never_stop_the_run(prepared) -> None:
    result, _ = prepared
    assert outcomes(result) == {
        "astronaut_00.jpg": "kept",
        "astronaut_01.jpg": "kept",
        "astronaut_02.jpg": "kept",
        "astronaut_03.jpg": "kept",
        "astronaut_04.jpg": "kept",
        "bomb.png": "too_large",
        "astronaut_05.jpg": "duplicate",  # the same framing as 03, mirrored back and recoloured
        "cameraman.heic": "kept",
        "coffee.jpg": "no_person",
        "cut.jpg": "unreadable",
        "empty.jpg": "empty",
        "notes.txt": "not_an_image",
        "party.jpg": "multiple_people",
        "resent.jpg": "duplicate",
        "shaky.jpg": "blurry",
    }
    resent = next(p for p in result.manifest.photos if p.source.endswith("resent.jpg"))
    assert "astronaut_00.jpg" in resent.message
    assert all(p.message for p in result.manifest.photos)


def test_kept_photos_are_512_square_crops_with_the_face_centred(prepared, detector: PersonDetector) -> None:
    result, _ = prepared
    ws = result.workspace
    for number, photo in enumerate(result.kept):
        assert photo.image == f"dataset/crops/{number:02d}.png"
        crop = Image.open(ws.path(photo.image))
        assert crop.size == (512, 512) and crop.mode == "RGB"
        faces = detector.find_faces(crop)
        assert len(faces) == 1, photo.source
        cx, cy = (faces[0].box[0] + faces[0].box[2]) / 2, (faces[0].box[1] + faces[0].box[3]) / 2
        assert abs(cx - 256) < 30 and abs(cy - 256) < 30, (photo.source, cx, cy)
        x0, y0, x1, y1 = photo.crop_box
        assert x1 - x0 == y1 - y0
        fx0, fy0, fx1, fy1 = photo.face_box
        assert x0 < fx0 < fx1 < x1 and y0 < fy0 < fy1 < y1


def test_every_kept_crop_has_a_person_mask(prepared) -> None:
    result, _ = prepared
    for photo in result.kept:
        mask = Image.open(result.workspace.path(photo.mask))
        assert mask.mode == "L" and mask.size == (512, 512)
        pixels = np.asarray(mask)
        assert set(np.unique(pixels)) <= {0, 255}
        assert pixels[256, 256] == 255  # the face is the person
        assert 0.15 < (pixels == 255).mean() < 0.85  # and not everything is


def test_the_class_word_is_the_nearest_and_captions_use_background_tokens(prepared) -> None:
    manifest = prepared[0].manifest
    assert list(manifest.class_scores) == TINY.class_words
    assert manifest.class_token == min(manifest.class_scores, key=manifest.class_scores.get)
    assert manifest.instance_token == "<me>" and manifest.instance_init.word == "face"
    assert manifest.context == "background_tokens" and manifest.resolution == 512
    for number, photo in enumerate(manifest.kept):
        assert photo.background_token == f"<bg{number}>"
        assert photo.caption == f"<bg{number}> <me> {manifest.class_token}"


def test_the_workspace_keeps_the_originals_and_a_readable_manifest(prepared, mixed_set: Path) -> None:
    result, _ = prepared
    ws = result.workspace
    assert ws.read_manifest() == result.manifest
    copies = sorted(ws.photos_dir.iterdir())
    originals = sorted(mixed_set.iterdir())
    assert len(copies) == len(originals)
    for copy, original in zip(copies, originals):
        assert copy.name.endswith(original.name) and copy.read_bytes() == original.read_bytes()


def test_progress_is_reported_per_photo(prepared) -> None:
    result, events = prepared
    per_photo = [e for e in events if e.stage == "prepare"]
    assert [e.step for e in per_photo] == list(range(1, len(result.manifest.photos) + 1))
    assert "party.jpg rejected: multiple_people" in [e.message for e in per_photo]
    assert events[-1].stage == "class word" and events[-1].message == result.manifest.class_token


def test_an_exif_rotated_photo_is_cropped_upright(tmp_path: Path, detector: PersonDetector) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; "rotate 90 degrees clockwise to display"
    path = tmp_path / "phone.jpg"
    astronaut().rotate(90).save(path, quality=95, exif=exif)
    config = PrepareConfig(min_photos=1, class_word="girl")
    result = prepare(Workspace(tmp_path / "ws"), [path], config)

    upright_face = detector.subject(astronaut()).face.box
    assert result.kept[0].face_box == pytest.approx(upright_face, abs=6)
    upright_crop, _ = face_crop(astronaut(), upright_face, config.margin, 512, upscale=False)
    crop = Image.open(result.workspace.path(result.kept[0].image))
    difference = np.abs(np.asarray(crop, dtype=float) - np.asarray(upright_crop, dtype=float)).mean()
    assert difference < 10


def test_too_few_usable_photos_is_an_error_that_lists_why(tmp_path: Path, sample_photos: list[Path]) -> None:
    two_people().save(tmp_path / "party.jpg")
    no_person().save(tmp_path / "coffee.jpg")
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(PortraitistError) as caught:
        prepare(ws, [sample_photos[0], tmp_path / "party.jpg", tmp_path / "coffee.jpg"], TINY)
    message = str(caught.value)
    assert "Only 1 of 3 photos" in message and "at least 3" in message
    assert "party.jpg: multiple_people" in message and "coffee.jpg: no_person" in message
    # the manifest is still there to inspect
    assert [p.status for p in ws.read_manifest().photos] == ["kept", "rejected", "rejected"]


def test_a_rerun_replaces_the_previous_dataset(tmp_path: Path, sample_photos: list[Path]) -> None:
    ws = Workspace(tmp_path / "ws")
    prepare(ws, sample_photos, TINY)
    config = PrepareConfig(class_word="man", context="photo_of", instance_token="<sks>", min_photos=2)
    result = prepare(ws, sample_photos[:2], config)
    assert sorted(p.name for p in (ws.dataset_dir / "crops").iterdir()) == ["00.png", "01.png"]
    assert len(list(ws.photos_dir.iterdir())) == 2
    assert [p.caption for p in result.kept] == ["a photo of <sks> man"] * 2
    assert result.manifest.class_scores == {}  # a forced word needs no CLIP
    # preparing again from the workspace's own copies keeps them
    again = prepare(ws, [ws.photos_dir], config)
    assert len(again.kept) == 2 and len(list(ws.photos_dir.iterdir())) == 2
