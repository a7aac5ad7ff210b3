"""The world's renderer (issue 9): deterministic, and every label is what the picture shows."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from portraitist.cli import app
from portraitist.errors import PortraitistError
from portraitist.world.dataset import PEOPLE_PER_CHUNK, load_dataset, load_masks, render_dataset
from portraitist.world.render import (
    COLOURS,
    HAIR,
    HELD_OUT_START,
    IDENTITY_ATTRIBUTES,
    POSE_NAMES,
    SCENE_ATTRIBUTES,
    SKIN,
    VISIBLE_AT_32,
    Person,
    Scene,
    caption,
    downsample,
    held_out_person,
    person,
    random_scene,
    render,
    render_filtered,
    scene_prompt,
    visible_labels,
)

# A square-on photo: no turn, shift, tilt, light gradient or noise, so colours are exact.
STILL = {
    "yaw": 0.0,
    "scale": 1.0,
    "rotation": 0.0,
    "shift_x": 0.0,
    "shift_y": 0.0,
    "light_angle": 0.0,
    "light_strength": 0.0,
    "brightness": 1.0,
    "smile": 1.0,
    "noise": 0.0,
    "noise_seed": 0.0,
    "pattern_phase": 0.0,
}


def still_scene(**attributes: str) -> Scene:
    words = {"background": "green", "pattern": "plain", "shirt": "red", "expression": "neutral", **attributes}
    return Scene(attributes=words, pose=tuple(STILL[name] for name in POSE_NAMES))


def with_attributes(who: Person, **attributes: str) -> Person:
    return dataclasses.replace(who, attributes={**who.attributes, **attributes})


def nearest_colour(pixel: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    """The palette word closest to `pixel` up to brightness (the renderer's light scales colours)."""

    def distance(colour: tuple[int, int, int]) -> float:
        c = np.asarray(colour, dtype=np.float64)
        k = np.clip(pixel @ c / (c @ c), 0.6, 1.4)
        return float(np.linalg.norm(pixel - k * c))

    return min(palette, key=lambda word: distance(palette[word]))


def test_same_seed_same_pictures_and_people_differ() -> None:
    a = render(person(7, seed=1), random_scene(np.random.default_rng(3)))
    b = render(person(7, seed=1), random_scene(np.random.default_rng(3)))
    assert np.array_equal(a.image, b.image) and a.face_box == b.face_box and a.labels == b.labels
    assert person(7, seed=1) == person(7, seed=1)
    assert person(7, seed=1).shape != person(7, seed=2).shape
    assert person(7).shape != person(8).shape
    c = render(person(8, seed=1), random_scene(np.random.default_rng(3)))
    assert not np.array_equal(a.image, c.image)


def test_attributes_come_from_the_vocabulary() -> None:
    people = [person(i) for i in range(200)]
    for name, words in IDENTITY_ATTRIBUTES.items():
        seen = {p.attributes[name] for p in people}
        assert seen <= set(words) and len(seen) == len(words), name
    assert all(p.attributes["beard"] == "none" for p in people if p.attributes["sex"] == "woman")
    rng = np.random.default_rng(0)
    scenes = [random_scene(rng) for _ in range(200)]
    for name, words in SCENE_ATTRIBUTES.items():
        assert {s.attributes[name] for s in scenes} == set(words), name
    assert all(s.attributes["shirt"] != s.attributes["background"] for s in scenes)
    assert random_scene(rng, background="red").attributes["background"] == "red"
    with pytest.raises(PortraitistError, match="Unknown background"):
        random_scene(rng, background="mauve")


def test_background_and_shirt_labels_match_the_pixels_at_32px() -> None:
    """Corner regions show the background colour, the bottom centre the shirt, under random poses."""
    rng = np.random.default_rng(5)
    for i in range(40):
        scene = random_scene(rng)
        drawn = render_filtered(person(i), scene, 32)
        corners = np.concatenate([drawn.image[:4, :4], drawn.image[:4, -4:]]).reshape(-1, 3).mean(axis=0)
        shirt = drawn.image[-3:, 13:19].reshape(-1, 3).mean(axis=0)
        assert nearest_colour(corners, COLOURS) == scene.attributes["background"], (i, corners)
        assert nearest_colour(shirt, COLOURS) == scene.attributes["shirt"], (i, shirt)


def test_pattern_label_matches_the_backdrop() -> None:
    who = person(3)
    rows = {
        p: render(who, still_scene(pattern=p)).image[:20, :20].reshape(-1, 3) for p in ("plain", "stripes")
    }
    assert len(np.unique(rows["plain"], axis=0)) == 1
    assert len(np.unique(rows["stripes"], axis=0)) == 2


def test_glasses_darken_the_eyes_and_sunglasses_more() -> None:
    who = with_attributes(person(11), skin="pale")
    drawn = {
        g: render(with_attributes(who, glasses=g), still_scene()) for g in ("none", "glasses", "sunglasses")
    }
    changed = np.any(drawn["none"].image != drawn["sunglasses"].image, axis=-1)
    ys, xs = np.nonzero(changed)
    x0, y0, x1, y1 = drawn["none"].face_box
    height = y1 - y0
    assert ys.size and y0 + 0.25 * height < ys.min() and ys.max() < y0 + 0.65 * height  # the eye band
    assert x0 <= xs.min() and xs.max() <= x1
    brightness = {g: d.image[changed].mean() for g, d in drawn.items()}
    assert brightness["sunglasses"] < brightness["glasses"] < brightness["none"]


def test_hair_and_beard_labels_match_the_head() -> None:
    who = with_attributes(person(4), sex="man", skin="tan", hair_colour="blue")
    palette = {"hair": HAIR["blue"], "skin": SKIN["tan"]}
    for style, expected in (("bald", "skin"), ("short", "hair"), ("long", "hair"), ("bun", "hair")):
        drawn = render(with_attributes(who, hair_style=style, beard="none"), still_scene())
        x0, y0, x1, y1 = drawn.face_box
        crown = drawn.image[y0 + (y1 - y0) // 12, (x0 + x1) // 2].astype(np.float64)
        assert nearest_colour(crown, palette) == expected, style
    for beard, expected in (("none", "skin"), ("beard", "hair")):
        drawn = render(with_attributes(who, beard=beard), still_scene())
        x0, y0, x1, y1 = drawn.face_box
        chin = drawn.image[y1 - (y1 - y0) // 10, (x0 + x1) // 2].astype(np.float64)
        assert nearest_colour(chin, palette) == expected, beard


def test_smiling_shows_teeth() -> None:
    who = with_attributes(person(2), skin="brown", beard="none")

    def white_pixels(expression: str) -> int:
        image = render(who, still_scene(expression=expression)).image
        return int(np.all(image > 230, axis=-1).sum())

    assert white_pixels("smiling") > white_pixels("neutral") + 10


def test_face_box_and_mask_cover_the_head() -> None:
    rng = np.random.default_rng(9)
    for i in range(20):
        drawn = render(person(i), random_scene(rng))
        x0, y0, x1, y1 = drawn.face_box
        assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 128
        assert drawn.person_mask[y0:y1, x0:x1].mean() > 0.7
        assert not drawn.person_mask[:3, :3].any() and drawn.person_mask[-1, 64]


def test_downsample_is_a_box_filter() -> None:
    image = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    image[:, :4, :4] = 200
    image[1, 0, 0] = 0
    small = downsample(image, 2)
    assert small.shape == (2, 2, 2, 3)
    assert small[0, 0, 0, 0] == 200 and small[0, 1, 1, 0] == 0
    assert small[1, 0, 0, 0] == round(200 * 15 / 16)
    with pytest.raises(ValueError):
        downsample(np.zeros((30, 30, 3), dtype=np.uint8), 32)


def test_held_out_people_are_not_pretraining_people(tmp_path: Path) -> None:
    assert held_out_person(0) == person(HELD_OUT_START)
    render_dataset(tmp_path / "pre", identities=3, photos=1, seed=0)
    render_dataset(tmp_path / "held", identities=3, photos=1, seed=0, held_out=True)
    pre = {row["person"] for row in load_dataset(tmp_path / "pre")[1]}
    held = {row["person"] for row in load_dataset(tmp_path / "held")[1]}
    assert pre == {0, 1, 2} and held == {HELD_OUT_START, HELD_OUT_START + 1, HELD_OUT_START + 2}
    with pytest.raises(PortraitistError, match="held out"):
        render_dataset(tmp_path / "too-many", identities=HELD_OUT_START + 1, photos=1, seed=0)


def test_caption_names_the_attributes_and_drop_removes_phrases() -> None:
    who = Person(
        0,
        {
            "sex": "woman",
            "skin": "pale",
            "hair_style": "bald",
            "hair_colour": "red",
            "eye_colour": "green",
            "beard": "none",
            "glasses": "glasses",
            "mole": "none",
        },
        person(0).shape,
    )
    scene = still_scene(expression="smiling", shirt="red", background="green", pattern="dots")
    full = caption(who, scene)
    assert full == (
        "a photo of a bald woman with pale skin and green eyes, smiling, wearing glasses and a red shirt, "
        "on a dotted green background"
    )
    rng = np.random.default_rng(0)
    assert caption(who, scene, rng, drop=1.0) == "a photo of a woman"
    dropped = [caption(who, scene, rng, drop=0.5) for _ in range(20)]
    for c in dropped:
        assert c.startswith("a photo of a") and "woman" in c and len(c) <= len(full)
        assert set(c.replace(",", "").split()) <= set(full.replace(",", "").split())
    assert len(set(dropped)) > 5 and any(len(c) < len(full) for c in dropped)
    personal = caption(who, scene, subject="<me> person")
    assert personal.startswith("a photo of <me> person, smiling") and "pale" not in personal
    assert scene_prompt("<me> person", background="red") == "a photo of <me> person, on a red background"
    assert "a blue shirt" in scene_prompt("<me> person", shirt="blue")
    with pytest.raises(PortraitistError):
        scene_prompt("<me> person", shirt="mauve")


def test_visible_labels_leave_out_what_cannot_be_seen() -> None:
    labels = {**person(0).attributes, **still_scene().attributes}
    assert set(visible_labels({**labels, "hair_style": "short"})) == set(VISIBLE_AT_32)
    assert "hair_colour" not in visible_labels({**labels, "hair_style": "bald", "beard": "none"})
    assert "hair_colour" in visible_labels({**labels, "hair_style": "bald", "beard": "beard"})


def test_dataset_round_trip_is_deterministic(tmp_path: Path) -> None:
    a = render_dataset(tmp_path / "a", identities=2, photos=3, seed=4)
    b = render_dataset(tmp_path / "b", identities=2, photos=3, seed=4)
    images, labels = load_dataset(a)
    assert images.shape == (6, 32, 32, 3) and images.dtype == np.uint8 and len(labels) == 6
    assert (a / "images.npy").read_bytes() == (b / "images.npy").read_bytes()
    assert (a / "labels.jsonl").read_text() == (b / "labels.jsonl").read_text()
    masks = load_masks(a)
    assert masks.shape == (6, 32, 32) and masks.dtype == bool
    for row, mask in zip(labels, masks, strict=True):
        who = person(row["person"], seed=4)
        assert {k: row[k] for k in who.attributes} == who.attributes
        x0, y0, x1, y1 = row["face_box"]
        assert 0 <= x0 < x1 <= 32 and mask[(y0 + y1) // 2, (x0 + x1) // 2]
        assert row["caption"].startswith("a photo of")
    assert Image.open(a / "preview.png").size == (8 * 128, 128)
    assert json.loads((a / "world.json").read_text())["seed"] == 4
    with pytest.raises(PortraitistError, match="world render"):
        load_dataset(tmp_path)


def test_worker_processes_render_the_same_files(tmp_path: Path) -> None:
    people = PEOPLE_PER_CHUNK + 1  # two chunks, one per process
    one = render_dataset(tmp_path / "one", identities=people, photos=1, seed=2, workers=1)
    two = render_dataset(tmp_path / "two", identities=people, photos=1, seed=2, workers=2)
    for name in ("images.npy", "masks.npy", "labels.jsonl"):
        assert (one / name).read_bytes() == (two / name).read_bytes()
    assert [row["person"] for row in load_dataset(two)[1]] == list(range(people))


def test_cli_render_and_photos(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "world",
            "render",
            "--out",
            str(tmp_path / "set"),
            "--identities",
            "2",
            "--photos",
            "2",
            "--held-out",
        ],
    )
    assert result.exit_code == 0, result.output
    images, labels = load_dataset(tmp_path / "set")
    assert len(images) == 4 and labels[0]["person"] == HELD_OUT_START

    out = tmp_path / "photos"
    result = runner.invoke(
        app, ["world", "photos", "--person", "1", "--out", str(out), "-n", "2", "--size", "128"]
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "world_person.json").read_text())
    assert meta["person"] == HELD_OUT_START + 1 and meta["attributes"] == held_out_person(1).attributes
    assert sorted(p.name for p in out.glob("*.png")) == [r["file"] for r in meta["photos"]]
    for record in meta["photos"]:
        photo = np.asarray(Image.open(out / record["file"]))
        mask = np.asarray(Image.open(out / record["mask"])) > 127
        assert photo.shape == (128, 128, 3) and mask.shape == (128, 128)
        x0, y0, x1, y1 = record["face_box"]
        assert mask[y0:y1, x0:x1].mean() > 0.7
