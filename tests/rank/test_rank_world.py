"""`rank` on the synthetic world's rendered people (docs/world.md), whose 32 px cartoon faces dlib cannot
see: with identity_model = world the judges' face gate and face-ID put the user's renders first,
another person's next, and noise and a bare background last."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from portraitist.rank.config import RankConfig
from portraitist.rank.identity import FaceIdentity
from portraitist.rank.stage import RankResult, rank
from portraitist.samples import noise_image
from portraitist.workspace import DatasetManifest, PhotoRecord, Workspace
from portraitist.world import render as world
from portraitist.world.dataset import scene_rng
from portraitist.world.identity import WorldIdentity

OFFLINE = {"clip_model": "tiny", "aesthetic_weights": "random", "lpips_backbone": "random"}
SIZE = 128  # the size a world demo's crops have; the judges box-filter them to 32 px


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def photos(k: int, count: int, skip: int = 0) -> list[Image.Image]:
    """Held-out person k's photos (each a different scene), after the first `skip` of them."""
    who = world.held_out_person(k)
    rng = scene_rng(who, seed=0)
    scenes = [world.random_scene(rng) for _ in range(skip + count)][skip:]
    return [Image.fromarray(world.render_filtered(who, scene, SIZE).image) for scene in scenes]


def bare_background() -> Image.Image:
    return Image.fromarray(world.background("blue", "stripes", SIZE, 0.0))


def world_workspace(root: Path) -> Workspace:
    """Person 0's four crops as `prepare` keeps them; generations of person 0, person 1 and non-faces."""
    ws = Workspace(root)
    records = []
    for i, crop in enumerate(photos(0, 4)):
        path = ws.dataset_dir / "crops" / f"{i:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        crop.save(path)
        records.append(
            PhotoRecord(
                source=f"w{i}.png", status="kept", image=ws.relative(path), caption="a photo of <me> man"
            )
        )
    ws.write_manifest(
        DatasetManifest(
            class_token="man", instance_token="<me>", context="photo_of", resolution=SIZE, photos=records
        )
    )
    generated = {
        **{f"user-{i}": image for i, image in enumerate(photos(0, 3, skip=4))},
        **{f"other-{i}": image for i, image in enumerate(photos(1, 3))},
        "none-noise": noise_image(SIZE),
        "none-background": bare_background(),
    }
    lines = []
    for seed, (name, image) in enumerate(generated.items()):
        path = ws.outputs_dir / "images" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        lines.append(
            json.dumps(
                {
                    "file": ws.relative(path),
                    "prompt": "a photo of <me> man, on a red background",
                    "seed": seed,
                }
            )
        )
    (ws.outputs_dir / "generations.jsonl").write_text("\n".join(lines) + "\n")
    return ws


@pytest.fixture(scope="module")
def ranked(tmp_path_factory: pytest.TempPathFactory) -> RankResult:
    config = RankConfig(identity_model="world", by=["identity"], k=3, **OFFLINE)
    return rank(world_workspace(tmp_path_factory.mktemp("world-rank")), config)


def kind(file: str) -> str:
    return Path(file).stem.split("-")[0]


def test_world_identity_ranks_the_user_first_and_non_faces_last(ranked: RankResult) -> None:
    order = [kind(image.file) for image in ranked.images]
    assert order == ["user"] * 3 + ["other"] * 3 + ["none"] * 2
    assert ranked.reference_faces == 4  # the crops pass the face gate
    assert [kind(image.file) for image in ranked.selected] == ["user"] * 3
    assert all(image.passes_identity for image in ranked.images[:3])
    assert all(image.scores["identity"] is None for image in ranked.images[-2:])


def test_scores_json_names_the_face_model_and_its_threshold(ranked: RankResult) -> None:
    scores = json.loads((ranked.workspace.outputs_dir / "scores.json").read_text())
    assert scores["identity_model"] == "world"
    judges = WorldIdentity()
    assert scores["identity_max_distance"] == pytest.approx(judges.max_distance)
    metrics = judges.judges.info["metrics"]
    assert metrics["cosine_other_people"] < 1 - judges.max_distance < metrics["cosine_same_person"]


def test_dlib_sees_no_face_at_the_worlds_32_px() -> None:
    """Why the world needs its own face model: the world's base draws 32 px images, where dlib's
    detector finds no face at all (at 128 px it finds some: 10 of 24 renders, measured)."""
    faces = FaceIdentity()
    found = [
        faces.descriptor(image.resize((32, 32), Image.BOX)) is not None
        for image in photos(0, 4) + photos(1, 4)
    ]
    assert not any(found)
