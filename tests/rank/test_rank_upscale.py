"""Real-ESRGAN: sizes, content kept, tiles invisible, the PyTorch path, and the `upscale` stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from spandrel.architectures.ESRGAN import ESRGAN

from portraitist import samples
from portraitist.errors import PortraitistError
from portraitist.upscale import UpscaleConfig, upscale, upscale_image
from portraitist.workspace import Workspace

FAST = "realesr-animevideov3"  # the compact shipped model, for tests that do not judge quality


def face(size: int) -> Image.Image:
    return samples.astronaut().crop((150, 30, 330, 210)).resize((size, size), Image.LANCZOS)


def psnr(a: Image.Image, b: Image.Image) -> float:
    mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse))


def test_x2_with_realesrgan_x4plus_doubles_the_size_and_keeps_the_content():
    small = face(48)  # the thesis's model is slow on a CPU: a small face keeps this test short

    big = upscale_image(small, 2, model="realesrgan-x4plus")

    assert big.size == (96, 96) and big.mode == "RGB"
    back = big.resize(small.size, Image.LANCZOS)
    # measured 29.2 dB and 6.2 levels; a one-pixel shift of the input scores 16 dB, half-size blur 24.7
    assert psnr(back, small) > 26
    assert np.abs(np.asarray(back, dtype=float) - np.asarray(small, dtype=float)).mean() < 8
    # not a plain resize: Real-ESRGAN restores edges, so it differs from Lanczos
    assert psnr(big, small.resize(big.size, Image.LANCZOS)) < 35


def test_x4_quadruples_the_size_and_keeps_the_content():
    small = face(48)
    big = upscale_image(small, 4, model=FAST)
    assert big.size == (192, 192)
    assert psnr(big.resize(small.size, Image.LANCZOS), small) > 26  # measured 28.7 dB


def test_tiles_overlap_so_seams_do_not_show():
    image = samples.astronaut().crop((100, 0, 196, 72))  # 96 x 72: several 32 px tiles, ragged edges
    whole = np.asarray(upscale_image(image, 2, model=FAST, tile=256), dtype=np.float64)
    tiled = np.asarray(upscale_image(image, 2, model=FAST, tile=32), dtype=np.float64)
    assert tiled.shape == whole.shape == (144, 192, 3)
    assert np.abs(tiled - whole).mean() < 1.0


def test_any_esrgan_checkpoint_runs_through_spandrel(tmp_path: Path):
    torch.manual_seed(0)
    path = tmp_path / "tiny_x2.pth"
    torch.save(ESRGAN(num_filters=8, num_blocks=1, scale=2).state_dict(), path)

    big = upscale_image(face(40), 2, model=str(path), tile=32, device="cpu")

    assert big.size == (80, 80)
    with pytest.raises(PortraitistError, match="x2"):
        upscale_image(face(40), 4, model=str(path), device="cpu")


@pytest.mark.parametrize(
    "model, scale, message",
    [
        ("no-such-model", 2, "Unknown upscaler"),
        ("/nowhere/RealESRGAN_x4plus.pth", 2, "not found"),
        (FAST, 5, "2, 3 or 4"),
    ],
)
def test_bad_models_and_scales_are_user_errors(model: str, scale: int, message: str):
    with pytest.raises(PortraitistError, match=message):
        upscale_image(face(40), scale, model=model)


def selected_workspace(root: Path) -> Workspace:
    ws = Workspace(root)
    folder = ws.outputs_dir / "selected"
    folder.mkdir(parents=True)
    face(64).save(folder / "01-a.png")
    samples.no_person().resize((48, 32)).save(folder / "02-b.png")
    return ws


def sizes(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: Image.open(p).size for p in sorted(folder.glob("*.png"))}


def test_stage_upscales_the_selection_keeps_originals_and_resumes(tmp_path: Path):
    ws = selected_workspace(tmp_path / "ws")
    folder = ws.outputs_dir / "selected"

    result = upscale(ws, UpscaleConfig(scale=2, model=FAST))

    assert sizes(folder) == {"01-a.png": (128, 128), "02-b.png": (96, 64)}
    assert sizes(folder / "original") == {"01-a.png": (64, 64), "02-b.png": (48, 32)}
    assert len(result.seconds) == 2 and result.reused == 0
    assert json.loads((folder / "upscale.json").read_text())["done"] == ["01-a.png", "02-b.png"]

    again = upscale(ws, UpscaleConfig(scale=2, model=FAST))  # nothing left to do
    assert again.reused == 2 and again.seconds == []

    bigger = upscale(ws, UpscaleConfig(scale=4, model=FAST))  # new settings: redone from the originals
    assert len(bigger.seconds) == 2
    assert sizes(folder) == {"01-a.png": (256, 256), "02-b.png": (192, 128)}


def test_stage_without_a_selection_says_to_rank_first(tmp_path: Path):
    with pytest.raises(PortraitistError, match="portraitist rank"):
        upscale(Workspace(tmp_path / "ws"), UpscaleConfig(model=FAST))


@pytest.mark.gpu
def test_a_full_size_realesrgan_checkpoint_upscales_512_px_on_the_gpu(tmp_path: Path):
    torch.manual_seed(0)
    path = tmp_path / "RealESRGAN_x4plus_shape.pth"  # the real architecture, random weights
    torch.save(ESRGAN(num_filters=64, num_blocks=23, scale=4).state_dict(), path)

    big = upscale_image(samples.astronaut(), 2, model=str(path), tile=512, device="cuda")

    assert big.size == (1024, 1024)
