"""A workspace as `prepare` and `generate` leave it, built from real photos, for rank and upscale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from portraitist import samples
from portraitist.rank.config import RankConfig
from portraitist.rank.stage import RankResult, rank
from portraitist.workspace import DatasetManifest, PhotoRecord, Workspace

INSTANCE = "<sks>"
CROP = 192  # small crops keep the scorers fast; faces stay ~70 px, enough for dlib's detector


def user_crops() -> list[Image.Image]:
    """The astronaut cropped square around the face, as `prepare` would."""
    boxes = [(96, 0, 416, 320), (64, 16, 448, 400), (128, 8, 400, 280), (48, 8, 464, 424)]
    return [samples.astronaut().crop(box).resize((CROP, CROP), Image.LANCZOS) for box in boxes]


# What `generate` "made": two pictures of the user, another person's face, a person whose face
# the detector cannot see (the cameraman looks into his camera), and two with no face at all.
def generated_images() -> dict[str, Image.Image]:
    astronaut = samples.astronaut()
    return {
        "user-a": astronaut.crop((112, 16, 400, 304)).transpose(Image.FLIP_LEFT_RIGHT).resize((256, 256)),
        "user-b": astronaut.crop((80, 0, 432, 352)).rotate(4, fillcolor=(128, 128, 128)).resize((256, 256)),
        "other-hopper": samples.grace_hopper().crop((60, 40, 460, 440)).resize((256, 256)),
        "other-cameraman": samples.cameraman().resize((256, 256)),
        "no-face-coffee": samples.no_person().crop((100, 0, 500, 400)).resize((256, 256)),
        "no-face-noise": samples.noise_image(256),
    }


def write_workspace(root: Path) -> Workspace:
    ws = Workspace(root)
    photos = []
    for i, crop in enumerate(user_crops()):
        path = ws.dataset_dir / "crops" / f"{i:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        crop.save(path)
        photos.append(
            PhotoRecord(
                source=f"astronaut_{i}.jpg",
                status="kept",
                image=ws.relative(path),
                caption=f"<bg{i}> {INSTANCE} woman",
                background_token=f"<bg{i}>",
            )
        )
    photos.append(
        PhotoRecord(source="coffee.jpg", status="rejected", reason="no_person", message="No person.")
    )
    ws.write_manifest(
        DatasetManifest(
            class_token="woman",
            instance_token=INSTANCE,
            context="background_tokens",
            resolution=CROP,
            photos=photos,
        )
    )
    lines = []
    for seed, (name, image) in enumerate(generated_images().items()):
        path = ws.outputs_dir / "images" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        lines.append(
            json.dumps(
                {
                    "file": ws.relative(path),
                    "prompt": f"a photo of {INSTANCE} woman, portrait",
                    "negative_prompt": "",
                    "style": "photo",
                    "seed": seed,
                    "steps": 4,
                    "guidance": 7.5,
                    "width": 256,
                    "height": 256,
                    "scheduler": "euler",
                    "control": None,
                }
            )
        )
    (ws.outputs_dir / "generations.jsonl").write_text("\n".join(lines) + "\n")
    return ws


@pytest.fixture
def rank_workspace(tmp_path: Path) -> Workspace:
    return write_workspace(tmp_path / "ws")


# Offline models: a tiny random CLIP and aesthetic head, LPIPS with a random backbone; dlib is real.
OFFLINE = {"clip_model": "tiny", "aesthetic_weights": "random", "lpips_backbone": "random"}


@pytest.fixture(scope="session")
def ranked(tmp_path_factory: pytest.TempPathFactory) -> RankResult:
    """One default `rank` run (identity gate, then aesthetic; k=2), shared by tests that only read it."""
    return rank(write_workspace(tmp_path_factory.mktemp("ranked")), RankConfig(k=2, **OFFLINE))


@pytest.fixture
def offline() -> dict[str, str]:
    """RankConfig settings for the offline models."""
    return dict(OFFLINE)
