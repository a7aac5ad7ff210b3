"""Reading what users send: any phone or camera photo becomes an upright 8-bit RGB image.

JPEG, PNG, WebP, HEIC (iPhone) and whatever else Pillow reads; the EXIF orientation is applied,
CMYK, 16-bit, grayscale, palette and transparent images are converted, and colour profiles
(Display P3 on iPhones) are mapped to sRGB. Files that cannot serve as photos raise
PhotoRejected with a reason; nothing here stops the run.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from portraitist.errors import PortraitistError
from portraitist.prepare.rejection import PhotoRejected

pillow_heif.register_heif_opener()

_SRGB = ImageCms.createProfile("sRGB")
# modes Image.reduce averages
_REDUCIBLE = {"L", "LA", "RGB", "RGBA", "CMYK"}


def collect_photos(paths: Sequence[Path]) -> list[Path]:
    """The files to prepare: each file as given, and every visible file of each folder, sorted.

    Folders are not searched recursively; non-image files found in them are reported later as
    rejected, not treated as errors. A path that does not exist is a user error.
    """
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise PortraitistError(f"These paths do not exist: {', '.join(missing)}. Check the spelling.")
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith(".")))
        else:
            files.append(path)
    if not files:
        raise PortraitistError("No photos given: pass photo files or a folder that contains them.")
    return files


def check_file_size(path: Path, max_file_bytes: int) -> None:
    size = path.stat().st_size
    if size == 0:
        raise PhotoRejected("empty", "The file is empty (0 bytes).")
    if size > max_file_bytes:
        raise PhotoRejected(
            "too_large", f"The file is {size / 2**20:.1f} MiB; the limit is {max_file_bytes / 2**20:.1f} MiB."
        )


def read_photo(path: Path, max_pixels: int, max_file_bytes: int, max_side: int | None = None) -> Image.Image:
    """The photo upright, as 8-bit sRGB; PhotoRejected if it is empty, too large or unreadable.

    `max_side`: the caller only looks at the photo this big, so a format that can decode smaller
    (JPEG's DCT scaling) is decoded at no less than that, and any photo is shrunk to about that
    size before it is converted: a fraction of the full memory.
    """
    check_file_size(path, max_file_bytes)
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb warning; the pixel cap below is the limit that applies
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                pixels = image.width * image.height
                if pixels > max_pixels:
                    raise PhotoRejected(
                        "too_large",
                        f"The photo is {image.width}x{image.height} ({pixels / 1e6:.0f} MP); "
                        f"the limit is {max_pixels / 1e6:.0f} MP.",
                    )
                if max_side is not None:
                    image.draft("RGB", (max_side, max_side))
                image.load()
                small = _shrunk(image, max_side) if max_side is not None else image
                return to_rgb(ImageOps.exif_transpose(small))
    except Image.DecompressionBombError as exc:
        raise PhotoRejected("too_large", f"The photo has too many pixels to open safely ({exc}).") from exc
    except UnidentifiedImageError as exc:
        raise PhotoRejected("not_an_image", "This file is not a photo in a format Pillow can read.") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise PhotoRejected(
            "unreadable", f"The photo is damaged or cut short and cannot be decoded ({exc})."
        ) from exc


def _shrunk(image: Image.Image, max_side: int) -> Image.Image:
    """The image shrunk by a whole factor, its long side still at least `max_side`.

    Pixel averaging where Pillow's reduce does it; palette and other images by nearest pixel
    (averaging palette indices would mean nothing), which is enough to look for a person.
    """
    factor = max(image.size) // max_side
    if factor < 2:
        return image
    if image.mode in _REDUCIBLE:
        return image.reduce(factor)
    return image.resize((-(-image.width // factor), -(-image.height // factor)), Image.NEAREST)


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB in sRGB: 16-bit scaled down, transparency composited on white, profile converted."""
    icc = image.info.get("icc_profile")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit grayscale (PNG/TIFF): Pillow's own convert would clip at 255 instead of scaling
        levels = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.clip(levels + 0.5, 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        image = image.convert("L")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode == "P" and "transparency" in image.info
    ):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    image = image.convert("RGB") if image.mode != "CMYK" else image
    if icc:
        image = _to_srgb(image, icc)
    return image.convert("RGB")


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(image, source, _SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        # a broken or mismatched profile: the pixel values are still the best guess
        return image
