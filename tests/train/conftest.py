"""A prepared workspace built directly (crops, masks, manifest), so training tests need no `prepare`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from portraitist.samples import portrait_variants
from portraitist.workspace import DatasetManifest, PhotoRecord, TokenInit, Workspace

RESOLUTION = 64  # the tiny model's


def person_mask(size: int) -> Image.Image:
    """An upright ellipse where a head and shoulders would be (255 = person)."""
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).ellipse((size * 0.2, size * 0.1, size * 0.8, size * 1.2), fill=255)
    return mask


def write_prepared_workspace(root: Path, n_photos: int = 4, context: str = "background_tokens") -> Workspace:
    ws = Workspace(root)
    (ws.dataset_dir / "crops").mkdir(parents=True, exist_ok=True)
    (ws.dataset_dir / "masks").mkdir(parents=True, exist_ok=True)
    photos = []
    for i, photo in enumerate(portrait_variants(n_photos)):
        side = min(photo.size)
        crop = photo.crop((0, 0, side, side)).resize((RESOLUTION, RESOLUTION), Image.LANCZOS)
        crop.save(ws.dataset_dir / "crops" / f"{i:02d}.png")
        person_mask(RESOLUTION).save(ws.dataset_dir / "masks" / f"{i:02d}.png")
        background = f"<bg{i}>" if context == "background_tokens" else None
        photos.append(
            PhotoRecord(
                source=f"astronaut_{i:02d}.jpg",
                status="kept",
                image=f"dataset/crops/{i:02d}.png",
                mask=f"dataset/masks/{i:02d}.png",
                caption=f"{background} <sks> girl" if background else "a photo of <sks> girl",
                background_token=background,
            )
        )
    photos.append(
        PhotoRecord(source="coffee.jpg", status="rejected", reason="no_person", message="No person.")
    )
    ws.write_manifest(
        DatasetManifest(
            class_token="girl",
            instance_token="<sks>",
            instance_init=TokenInit(kind="word", word="face"),
            context=context,
            resolution=RESOLUTION,
            photos=photos,
        )
    )
    return ws


@pytest.fixture(scope="session")
def prepared_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_prepared_workspace(tmp_path_factory.mktemp("prepared") / "ws").root


@pytest.fixture
def prepared(prepared_template: Path, tmp_path: Path) -> Workspace:
    """A fresh copy of a prepared workspace: 4 astronaut crops at 64 px, masks, background tokens."""
    shutil.copytree(prepared_template, tmp_path / "ws")
    return Workspace(tmp_path / "ws")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from a second thread, and on a busy machine OpenMP threads that
    wait for each other make every step many times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def train_in_memory():
    """`train`, also giving the model as training left it (peft adapters unmerged, token tables split,
    text encoders kept): a validation hook at the last step hands it over, as `evaluate`'s does."""
    from portraitist.train.stage import train

    def run(workspace: Workspace, config):
        states = []
        keeping = config.model_copy(update={"validate_every": config.steps})
        result = train(workspace, keeping, validate=states.append)
        assert states[-1].step == result.steps_done
        return result, states[-1].model

    return run
