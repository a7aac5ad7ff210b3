"""prepare with given face boxes and masks (`--boxes`): rendered people of the synthetic world
(docs/world.md), whose exact boxes and masks the renderer writes, go through the usual crop, blur,
duplicate and caption steps; a wrong boxes file is a clear error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from portraitist.cli import app
from portraitist.errors import PortraitistError
from portraitist.prepare import stage
from portraitist.prepare.boxes import GroundTruth
from portraitist.prepare.config import PrepareConfig
from portraitist.prepare.crop import cut_with_edge_padding
from portraitist.prepare.stage import prepare
from portraitist.workspace import Workspace
from portraitist.world.dataset import render_photos

CONFIG = PrepareConfig(class_word="man", resolution=128, margin=0.6)


@pytest.fixture(scope="module")
def world_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five photos of a held-out world person at 256 px, with world_person.json beside them."""
    return render_photos(tmp_path_factory.mktemp("world") / "person", k=1, count=5, size=256, seed=0)


def entries(folder: Path) -> list[dict]:
    return json.loads((folder / "world_person.json").read_text())["photos"]


def write_boxes(path: Path, photos: list[dict]) -> Path:
    path.write_text(json.dumps({"photos": photos}))
    return path


def copy_photos(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_given_boxes_and_masks_replace_the_detector(world_photos: Path, tmp_path: Path, monkeypatch) -> None:
    def no_mediapipe(*args: object) -> None:
        raise AssertionError("mediapipe must not load when the boxes file gives every face and mask")

    monkeypatch.setattr(stage, "PersonDetector", no_mediapipe)
    ws = Workspace(tmp_path / "ws")
    # the folder holds world_person.json itself: it is the boxes file, not a photo to reject
    result = prepare(ws, [world_photos], CONFIG, boxes=world_photos / "world_person.json")

    given = entries(world_photos)
    assert [Path(p.source).name for p in result.manifest.photos] == [e["file"] for e in given]
    assert len(result.kept) == 5
    for record, entry in zip(result.kept, given):
        assert record.face_box == entry["face_box"]
        assert "box from world_person.json" in (record.message or "")
        # the mask is the given one, cut and scaled like the crop
        photo_mask = Image.open(world_photos / entry["mask"]).convert("RGB")
        square = tuple(int(v) for v in record.crop_box or [])
        expected = (
            np.asarray(cut_with_edge_padding(photo_mask, square).convert("L").resize((128, 128))) >= 128
        )
        saved = np.asarray(Image.open(ws.path(record.mask or "")))
        assert set(np.unique(saved)) <= {0, 255}
        assert (saved == 255).mean() == pytest.approx(expected.mean(), abs=0.01)
        assert Image.open(ws.path(record.image or "")).size == (128, 128)
    assert result.manifest.class_token == "man"
    assert result.kept[0].caption == "<bg0> <me> man"


def test_photos_without_a_mask_get_one_from_segmentation(world_photos: Path, tmp_path: Path) -> None:
    files = [world_photos / e["file"] for e in entries(world_photos)[:3]]
    boxes = write_boxes(
        tmp_path / "no_masks.json",
        [{"file": str(f), "face_box": e["face_box"]} for f, e in zip(files, entries(world_photos))],
    )
    ws = Workspace(tmp_path / "ws")
    result = prepare(ws, files, CONFIG, boxes=boxes)
    assert len(result.kept) == 3
    for record in result.kept:
        mask = np.asarray(Image.open(ws.path(record.mask or "")))
        assert mask.shape == (128, 128)


def test_the_other_checks_still_apply(world_photos: Path, tmp_path: Path) -> None:
    folder = copy_photos(world_photos, tmp_path / "photos")
    given = entries(folder)
    # the same photo again under another name: a duplicate
    shutil.copy(folder / given[0]["file"], folder / "zz_again.png")
    given.append({**given[0], "file": "zz_again.png"})
    # a face box far smaller than min_face_size: too small to learn from
    given[1]["face_box"] = [100, 100, 120, 120]
    boxes = write_boxes(folder / "world_person.json", given)
    result = prepare(Workspace(tmp_path / "ws"), [folder], CONFIG, boxes=boxes)
    reasons = {Path(p.source).name: p.reason for p in result.manifest.photos}
    assert reasons["zz_again.png"] == "duplicate"
    assert reasons[given[1]["file"]] == "face_too_small"
    assert len(result.kept) == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda photos: photos.append({**photos[0]}), "a second time"),
        (lambda photos: photos[0].update(face_box=[1, 2, 3]), "four numbers"),
        (lambda photos: photos[0].update(face_box=[10, 10, 10, 40]), "is empty"),
        (lambda photos: photos[0].update(face_box="0 0 9 9"), "four numbers"),
        (lambda photos: photos[0].pop("file"), 'needs a "file"'),
        (lambda photos: photos[0].update(mask="masks/nothing.png"), "does not exist"),
    ],
)
def test_a_malformed_boxes_file_is_a_clear_error(
    world_photos: Path, tmp_path: Path, change, message: str
) -> None:
    folder = copy_photos(world_photos, tmp_path / "photos")
    photos = entries(folder)
    change(photos)
    with pytest.raises(PortraitistError, match=message):
        GroundTruth.load(write_boxes(folder / "world_person.json", photos))


def test_unreadable_or_missing_boxes_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(PortraitistError, match="does not exist"):
        GroundTruth.load(tmp_path / "nowhere.json")
    (tmp_path / "notes.json").write_text("boxes: soon")
    with pytest.raises(PortraitistError, match="as JSON"):
        GroundTruth.load(tmp_path / "notes.json")
    (tmp_path / "list.json").write_text("[[1, 2, 3, 4]]")
    with pytest.raises(PortraitistError, match="no list of photos"):
        GroundTruth.load(tmp_path / "list.json")


def test_a_photo_without_an_entry_or_outside_its_box_stops_prepare(
    world_photos: Path, tmp_path: Path
) -> None:
    folder = copy_photos(world_photos, tmp_path / "photos")
    given = entries(folder)
    shutil.copy(folder / given[0]["file"], folder / "stranger.png")
    with pytest.raises(PortraitistError, match="no entry for .*stranger.png"):
        prepare(Workspace(tmp_path / "ws"), [folder], CONFIG, boxes=folder / "world_person.json")

    given[0]["face_box"] = [200, 200, 300, 300]  # the photos are 256 px
    absolute = [{**e, "file": str(folder / e["file"]), "mask": str(folder / e["mask"])} for e in given]
    boxes = write_boxes(tmp_path / "outside.json", absolute)
    with pytest.raises(PortraitistError, match="outside the photo"):
        prepare(Workspace(tmp_path / "ws2"), [folder / given[0]["file"]], CONFIG, boxes=boxes)


def test_a_mask_of_another_size_is_refused(world_photos: Path, tmp_path: Path) -> None:
    folder = copy_photos(world_photos, tmp_path / "photos")
    given = entries(folder)
    Image.new("L", (64, 64), 255).save(folder / given[0]["mask"])
    with pytest.raises(PortraitistError, match="must have its photo's size"):
        prepare(
            Workspace(tmp_path / "ws"),
            [folder / given[0]["file"]],
            CONFIG,
            boxes=folder / "world_person.json",
        )


def test_cli_prepare_with_boxes(world_photos: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ws = tmp_path / "ws"
    args = ["prepare", str(world_photos), "-w", str(ws), "--class-word", "woman"]
    result = runner.invoke(app, [*args, "--boxes", str(world_photos / "world_person.json")])
    assert result.exit_code == 0, result.output
    assert "5 of 5 photos kept" in result.output
    result = runner.invoke(app, [*args, "--boxes", str(tmp_path / "missing.json")])
    assert isinstance(result.exception, PortraitistError)
    assert "does not exist" in str(result.exception)
