"""Judging an uploaded photo as `prepare` would: readable, within the caps, exactly one person.

The decision is prepare's own (its photo reader and person filter, thesis 2.1.1), taken at
upload time so the user learns at once which photos cannot be used and why; the job's
prepare stage judges the kept ones again with the rest of its checks (blur, duplicates).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image

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
    """A few person detectors shared by the API's threads (mediapipe graphs are not thread-safe)."""

    def __init__(self, max_pixels: int, max_bytes: int, detectors: int = 2):
        self.config = PrepareConfig(max_pixels=max_pixels, max_file_bytes=max_bytes)
        self._idle: queue.Queue[PersonDetector] = queue.Queue()
        self._slots = threading.Semaphore(detectors)

    @contextmanager
    def _detector(self) -> Iterator[PersonDetector]:
        # at most `detectors` checks at once: each is CPU-bound, more would only queue on the cores
        with self._slots:
            try:
                detector = self._idle.get_nowait()
            except queue.Empty:
                detector = PersonDetector(self.config)
            try:
                yield detector
            finally:
                self._idle.put(detector)

    def judge(self, path: Path) -> Judged:
        try:
            photo = read_photo(path, self.config.max_pixels, self.config.max_file_bytes)
            with self._detector() as detector:
                detector.subject(photo)
        except PhotoRejected as rejected:
            return Judged(False, rejected.reason, rejected.message)
        with Image.open(path) as header:
            suffix = SUFFIXES.get(header.format or "", ".img")
        return Judged(True, None, "Kept: one person, face found.", photo.width, photo.height, suffix)

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().close()
