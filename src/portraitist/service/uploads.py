"""Judging an uploaded photo as `prepare` would: readable, within the caps, exactly one person.

The decision is prepare's own (its photo reader and person filter, thesis 2.1.1), taken at
upload time so the user learns at once which photos cannot be used and why; the job's
prepare stage judges the kept ones again with the rest of its checks (blur, duplicates).
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import ExifTags, Image

from portraitist.prepare.config import PrepareConfig
from portraitist.prepare.detect import PersonDetector
from portraitist.prepare.photos import read_photo
from portraitist.prepare.rejection import PhotoRejected

# formats Pillow names, and the suffix a stored photo gets (the user's file name plays no part)
SUFFIXES = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "HEIF": ".heic",
    "AVIF": ".avif",
    "GIF": ".gif",
    "TIFF": ".tif",
    "BMP": ".bmp",
    "MPO": ".jpg",
}


# EXIF orientations that turn the photo a quarter (width and height swap once upright)
_QUARTER_TURNS = {5, 6, 7, 8}


@dataclass(frozen=True)
class Judged:
    """Kept (with the photo's size and suffix) or rejected (with prepare's reason and sentence)."""

    kept: bool
    reason: str | None = None
    message: str | None = None
    width: int = 0
    height: int = 0
    suffix: str = ""


def copy_capped(source: BinaryIO, target: Path, max_bytes: int) -> bool:
    """Copy an upload to a file, stopping past `max_bytes`; False if it was larger."""
    written = 0
    with open(target, "wb") as out:
        while chunk := source.read(1 << 20):
            written += len(chunk)
            if written > max_bytes:
                return False
            out.write(chunk)
    return True


class PhotoJudge:
    """Judges uploads for the API's threads, on a few threads of its own.

    Decoding is where a hostile upload costs memory (a small file can hold a 50 MP image), so
    the decode and the person check run on `slots` threads, however many requests wait for them:
    at most that many decoded photos exist at once, and a JPEG is decoded only as large as the
    detector looks. Own threads, not a lock in the request threads, because the C allocator keeps
    the memory a thread freed for that thread's next use: a photo decoded on each of forty request
    threads would leave forty photos' worth of memory behind. The threads also bound the mediapipe
    graphs, which are not thread-safe.
    """

    def __init__(self, max_pixels: int, max_bytes: int, slots: int = 2):
        self.config = PrepareConfig(max_pixels=max_pixels, max_file_bytes=max_bytes)
        self._idle: queue.Queue[PersonDetector] = queue.Queue()
        self._threads = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="photo-check")

    @contextmanager
    def _detector(self) -> Iterator[PersonDetector]:
        try:
            detector = self._idle.get_nowait()
        except queue.Empty:
            detector = PersonDetector(self.config)
        try:
            yield detector
        finally:
            self._idle.put(detector)

    def judge(self, path: Path) -> Judged:
        """Judge one photo file; waits for a free photo-check thread."""
        return self._threads.submit(self._judge, path).result()

    def _judge(self, path: Path) -> Judged:
        try:
            photo = read_photo(
                path, self.config.max_pixels, self.config.max_file_bytes, self.config.detect_max_side
            )
            width, height, suffix = _header(path)
            with self._detector() as detector:
                detector.subject(photo, source_scale=max(width, height) / max(photo.size))
        except PhotoRejected as rejected:
            return Judged(False, rejected.reason, rejected.message)
        return Judged(True, None, "Kept: one person, face found.", width, height, suffix)

    def close(self) -> None:
        self._threads.shutdown()
        while not self._idle.empty():
            self._idle.get_nowait().close()


def _header(path: Path) -> tuple[int, int, str]:
    """The photo's upright size at full resolution and its stored suffix, from the file's header."""
    with Image.open(path) as header:
        width, height = header.size
        if header.getexif().get(ExifTags.Base.Orientation) in _QUARTER_TURNS:
            width, height = height, width
        return width, height, SUFFIXES.get(header.format or "", ".img")
