"""Face boxes and person masks given with the photos, instead of found by mediapipe (`--boxes`).

For photos a detector cannot see (drawn or rendered faces: the synthetic world (docs/world.md),
whose renderer knows every face box and person mask exactly) or whose boxes are known from
elsewhere (a labelled data set). The file is JSON, the format `portraitist world photos` writes
as world_person.json; keys other than these are ignored:

    {"photos": [{"file": "a.png", "face_box": [x0, y0, x1, y1], "mask": "masks/a.png"}, ...]}

`file` and the optional `mask` are relative to the JSON file's folder (or absolute). A box is in
the pixels of the upright photo (after its EXIF orientation), x1 > x0, y1 > y0, inside the
photo. A mask is an image of the photo's size, white (>= 128) where the person is; without one,
selfie segmentation makes the crop's mask as usual. Every given photo needs an entry; the
boxes file itself may sit among the photos and is skipped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from portraitist.errors import PortraitistError
from portraitist.prepare.crop import Box, cut_with_edge_padding
from portraitist.prepare.detect import Face, Subject, check_face_size

MASK_THRESHOLD = 128
_FORMAT = (
    'a JSON object {"photos": [{"file": "a.png", "face_box": [x0, y0, x1, y1], "mask": "masks/a.png"}, ...]}'
)


@dataclass(frozen=True)
class GivenPerson:
    """What the boxes file says about one photo."""

    face_box: Box
    mask: Path | None


class GroundTruth:
    """The boxes file, read and checked: per photo path (resolved), its face box and mask file."""

    def __init__(self, source: Path, people: dict[Path, GivenPerson]):
        self.source = source
        self.people = people

    @classmethod
    def load(cls, path: Path) -> GroundTruth:
        """Read and check `path`; PortraitistError naming the file and entry when anything is off."""
        path = Path(path).expanduser()
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise PortraitistError(
                f"The boxes file {path} does not exist. Check the path given to --boxes."
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PortraitistError(
                f"Cannot read the boxes file {path} as JSON ({exc}); it must be {_FORMAT}."
            ) from exc
        entries = data.get("photos") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise PortraitistError(f"The boxes file {path} has no list of photos; it must be {_FORMAT}.")
        folder = path.resolve().parent
        people: dict[Path, GivenPerson] = {}
        for number, entry in enumerate(entries):
            where = f"{path}, photos[{number}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
                raise PortraitistError(f'{where} needs a "file" name; each entry must look like {_FORMAT}.')
            file = (folder / entry["file"]).resolve()
            if file in people:
                raise PortraitistError(
                    f"{where} names {entry['file']} a second time; give each photo one entry."
                )
            mask = entry.get("mask")
            if mask is not None and not isinstance(mask, str):
                raise PortraitistError(f'{where}: "mask" must be a file name, got {mask!r}.')
            mask_path = (folder / mask).resolve() if mask else None
            if mask_path is not None and not mask_path.is_file():
                raise PortraitistError(f"{where}: the mask file {mask_path} does not exist.")
            people[file] = GivenPerson(_parse_box(entry.get("face_box"), where), mask_path)
        return cls(path, people)

    def photos(self, files: Sequence[Path]) -> list[Path]:
        """`files` without the boxes file itself; PortraitistError if any other has no entry."""
        own = self.source.resolve()
        files = [f for f in files if f.resolve() != own]
        missing = [str(f) for f in files if f.resolve() not in self.people]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise PortraitistError(
                f"The boxes file {self.source} has no entry for {shown}. "
                'Add one per photo ("file" is relative '
                "to the boxes file's folder), or leave those photos out."
            )
        return files

    def segments_any(self, files: Sequence[Path]) -> bool:
        """Whether some photo has no mask, so that selfie segmentation has to make its mask."""
        return any(self.people[f.resolve()].mask is None for f in files)

    def subject(self, path: Path, photo: Image.Image, min_face_size: int) -> Subject:
        """The given face of `path` as the photo's one subject; PortraitistError if it lies outside the
        photo, PhotoRejected('face_too_small') under min_face_size as for a detected face."""
        box = self.people[path.resolve()].face_box
        x0, y0, x1, y1 = box
        if x0 < 0 or y0 < 0 or x1 > photo.width or y1 > photo.height:
            raise PortraitistError(
                f"The face box {list(box)} of {path.name} in {self.source} lies outside the photo "
                f"({photo.width}x{photo.height} px, upright); "
                "boxes are [x0, y0, x1, y1] in the photo's pixels."
            )
        face = Face(box, 1.0)
        check_face_size(face, min_face_size)
        return Subject(face, background_faces=0)

    def mask(
        self, path: Path, photo_size: tuple[int, int], crop_box: Box, resolution: int
    ) -> Image.Image | None:
        """The given person mask cut like the crop (L mode, 255 = person), or None if none was given."""
        mask_path = self.people[path.resolve()].mask
        if mask_path is None:
            return None
        with Image.open(mask_path) as image:
            if image.size != photo_size:
                raise PortraitistError(
                    f"The mask {mask_path} is {image.width}x{image.height} px but its photo {path.name} is "
                    f"{photo_size[0]}x{photo_size[1]}; a mask must have its photo's size."
                )
            grey = image.convert("L")
        square = tuple(int(v) for v in crop_box)
        # edge padding as the crop has, so a person cut by the photo's edge continues past it as in the crop
        cut = cut_with_edge_padding(grey.convert("RGB"), square).convert("L")  # type: ignore[arg-type]
        cut = cut.resize((resolution, resolution), Image.BILINEAR)
        return Image.fromarray(np.where(np.asarray(cut) >= MASK_THRESHOLD, 255, 0).astype(np.uint8), "L")


def _parse_box(value: object, where: str) -> Box:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 4
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    ):
        raise PortraitistError(
            f'{where}: "face_box" must be four numbers [x0, y0, x1, y1] in pixels, got {value!r}.'
        )
    x0, y0, x1, y1 = (float(v) for v in value)
    if x1 <= x0 or y1 <= y0:
        raise PortraitistError(f"{where}: the face box {list(value)} is empty; it needs x1 > x0 and y1 > y0.")
    return x0, y0, x1, y1
