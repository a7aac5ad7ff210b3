"""Fixtures for the prepare tests: one person detector per session, and bad files of every kind."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from portraitist.prepare.config import PrepareConfig
from portraitist.prepare.detect import PersonDetector
from portraitist.samples import astronaut


@pytest.fixture(scope="session")
def detector() -> Iterator[PersonDetector]:
    with PersonDetector(PrepareConfig()) as d:
        yield d


def write_pixel_bomb(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb)."""
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    # IHDR is the first chunk: length (8:12), type (12:16), width, height (16:24), ..., CRC (29:33)
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="session")
def pixel_bomb() -> Callable[[Path, int, int], Path]:
    """Writes tiny PNG files that claim to be width x height pixels."""
    return write_pixel_bomb


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    """One file per way a photo can be unusable before any detector runs, keyed by the reason."""
    folder = tmp_path / "bad"
    folder.mkdir()
    empty = folder / "empty.jpg"
    empty.write_bytes(b"")
    text = folder / "notes.jpg"
    text.write_text("this is not a photo\n")
    whole = folder / "whole.jpg"
    astronaut().save(whole, quality=90)
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    whole.unlink()
    return {
        "empty": empty,
        "not_an_image": text,
        "unreadable": truncated,
        "too_large": write_pixel_bomb(folder / "bomb.png", 30_000, 30_000),
    }
