"""Reading user photos: every common format and pixel layout becomes upright 8-bit RGB; bad files
are rejected with a reason code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from portraitist.errors import PortraitistError
from portraitist.prepare.config import PrepareConfig
from portraitist.prepare.photos import collect_photos, read_photo
from portraitist.prepare.rejection import PhotoRejected
from portraitist.samples import astronaut

LIMITS = {"max_pixels": PrepareConfig().max_pixels, "max_file_bytes": PrepareConfig().max_file_bytes}


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


@pytest.mark.parametrize("suffix", ["jpg", "png", "webp", "heic"])
def test_each_format_decodes_to_the_same_rgb_picture(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"me.{suffix}"
    astronaut().save(path, quality=90)
    photo = read_photo(path, **LIMITS)
    assert photo.mode == "RGB" and photo.size == (512, 512)
    assert mean_difference(photo, astronaut()) < 6


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "print.jpg"
    astronaut().convert("CMYK").save(path, quality=95)
    photo = read_photo(path, **LIMITS)
    assert photo.mode == "RGB"
    assert mean_difference(photo, astronaut()) < 12


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    levels = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (64, 1))
    path = tmp_path / "scan16.png"
    Image.fromarray(levels).save(path)
    assert Image.open(path).mode.startswith("I")
    pixels = np.asarray(read_photo(path, **LIMITS))
    assert pixels.shape == (64, 256, 3)
    assert pixels[0, 0].tolist() == [0, 0, 0] and pixels[0, -1].tolist() == [255, 255, 255]
    assert abs(int(pixels[0, 128, 0]) - 128) <= 1  # the middle grey stays middle grey


def test_grayscale_becomes_three_equal_channels(tmp_path: Path) -> None:
    path = tmp_path / "bw.png"
    astronaut().convert("L").save(path)
    pixels = np.asarray(read_photo(path, **LIMITS))
    assert pixels.shape == (512, 512, 3)
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()


@pytest.mark.parametrize("mode", ["RGBA", "P"])
def test_transparent_parts_become_white(tmp_path: Path, mode: str) -> None:
    rgba = astronaut().convert("RGBA")
    alpha = np.full((512, 512), 255, np.uint8)
    alpha[:, :200] = 0
    rgba.putalpha(Image.fromarray(alpha))
    image = rgba if mode == "RGBA" else rgba.convert("P")  # P keeps one transparent palette index
    path = tmp_path / f"cutout_{mode}.png"
    image.save(path)
    pixels = np.asarray(read_photo(path, **LIMITS))
    assert (pixels[:, :200] == 255).all()
    assert pixels[:, 300:].mean() < 200  # the opaque part is the photo, not white


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    upright = astronaut().crop((0, 0, 512, 384))
    sideways = upright.rotate(90, expand=True)  # as a phone held sideways stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "phone.jpg"
    sideways.save(path, quality=95, exif=exif)
    photo = read_photo(path, **LIMITS)
    assert photo.size == (512, 384)
    assert mean_difference(photo, upright) < 6


def test_bad_files_are_rejected_with_their_reason(bad_files: dict[str, Path]) -> None:
    for reason, path in bad_files.items():
        with pytest.raises(PhotoRejected) as caught:
            read_photo(path, **LIMITS)
        assert caught.value.reason == reason, path.name
        assert caught.value.message


def test_pixel_and_byte_caps_come_from_the_config(tmp_path: Path) -> None:
    path = tmp_path / "me.jpg"
    astronaut().save(path, quality=90)
    with pytest.raises(PhotoRejected, match="limit is 0 MP") as caught:
        read_photo(path, max_pixels=200_000, max_file_bytes=LIMITS["max_file_bytes"])
    assert caught.value.reason == "too_large"
    with pytest.raises(PhotoRejected, match="MiB") as caught:
        read_photo(path, max_pixels=LIMITS["max_pixels"], max_file_bytes=1000)
    assert caught.value.reason == "too_large"


def test_a_bomb_beyond_pillows_own_limit_is_too_large(
    tmp_path: Path, pixel_bomb: Callable[..., Path]
) -> None:
    bomb = pixel_bomb(tmp_path / "huge.png", 100_000, 100_000)  # 10^10 pixels in a few bytes
    with pytest.raises(PhotoRejected) as caught:
        read_photo(bomb, max_pixels=10**12, max_file_bytes=LIMITS["max_file_bytes"])
    assert caught.value.reason == "too_large"


def test_folders_list_every_visible_file_and_missing_paths_are_errors(tmp_path: Path) -> None:
    folder = tmp_path / "gallery"
    folder.mkdir()
    for name in ("b.jpg", "a.png", "notes.txt", ".DS_Store"):
        (folder / name).write_bytes(b"x")
    single = tmp_path / "c.heic"
    single.write_bytes(b"x")
    assert [p.name for p in collect_photos([folder, single])] == ["a.png", "b.jpg", "notes.txt", "c.heic"]
    with pytest.raises(PortraitistError, match="do not exist"):
        collect_photos([tmp_path / "typo.jpg"])
    (tmp_path / "nothing").mkdir()
    with pytest.raises(PortraitistError, match="No photos"):
        collect_photos([tmp_path / "nothing"])
