"""The folder one user's job lives in, and the manifests that describe its stages' artefacts.

    photos/    what the user sent, untouched
    dataset/   manifest.json, crops/, masks/          (written by `prepare`)
    model/     tokens.json, weights, train_log.jsonl  (written by `train`)
    outputs/   images/, scores.json, selected/        (written by `generate`, `rank`, ...)

Every stage reads the previous stage's files and writes its own, so any stage can be re-run
or inspected by hand.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from PIL import Image
from pydantic import BaseModel, Field

from portraitist.errors import PortraitistError

MANIFEST_VERSION = 1


class PhotoRecord(BaseModel):
    """What `prepare` decided about one input file."""

    source: str = Field(description="The file name as the user gave it.")
    status: Literal["kept", "rejected"]
    reason: str | None = Field(None, description="Machine-readable rejection code, e.g. no_person.")
    message: str | None = Field(None, description="A human sentence explaining the decision.")
    flags: list[str] = Field(default_factory=list, description="Warnings on kept photos (e.g. blurry).")
    image: str | None = Field(None, description="The square crop, relative to the workspace.")
    mask: str | None = Field(None, description="The person mask of the crop, relative to the workspace.")
    face_box: list[float] | None = Field(
        None, description="Face box [x0, y0, x1, y1] in the upright source photo's pixels."
    )
    crop_box: list[float] | None = Field(
        None, description="The square [x0, y0, x1, y1] cut from the upright source photo (may exceed it)."
    )
    caption: str | None = Field(None, description="Training caption: '<context> <instance> <class>'.")
    background_token: str | None = Field(None, description="This photo's own context token, if any.")
    phash: str | None = Field(None, description="Perceptual hash of the crop, for duplicate checks.")


class TokenInit(BaseModel):
    """How the instance token's embedding row starts (thesis 2.2.2)."""

    kind: Literal["word", "noise", "rare"] = "word"
    word: str | None = Field("face", description="The word whose embedding is copied (kind=word).")


class IdentityCheck(BaseModel):
    """What prepare's one-person check (prepare/identity.py) did."""

    status: Literal["checked", "skipped", "off"] = Field(
        description="checked; skipped: dlib saw fewer than two faces to compare; off: identity_check = false."
    )
    photos: int = Field(0, description="Photos the other checks kept, which this one looked at.")
    faces: int = Field(0, description="Of those, photos where dlib found a face: only these were compared.")
    max_distance: float | None = Field(
        None, description="Largest descriptor distance counted as the same person."
    )
    note: str = Field("", description="What it found, in a sentence.")


class DatasetManifest(BaseModel):
    """dataset/manifest.json: the training set `prepare` made."""

    version: int = MANIFEST_VERSION
    class_token: str
    class_scores: dict[str, float] = Field(
        default_factory=dict, description="Mean cosine distance of each candidate class word."
    )
    class_model: str | None = Field(
        None, description="The CLIP that chose the class word (None: it was given)."
    )
    instance_token: str
    instance_init: TokenInit = Field(default_factory=TokenInit)
    context: str = Field(
        description="Caption context strategy: photo_of, background_tokens, templates, captions."
    )
    resolution: int
    upscale_small_faces: bool = Field(False, description="Whether small crops went through Real-ESRGAN.")
    upscaler: str | None = Field(
        None, description="The Real-ESRGAN model they went through (None: its default)."
    )
    identity: IdentityCheck | None = Field(None, description="The check that every photo shows one person.")
    photos: list[PhotoRecord]

    @property
    def kept(self) -> list[PhotoRecord]:
        return [p for p in self.photos if p.status == "kept"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once: os.umask can only be read by setting it, which would race with other threads' files.
UMASK = _umask()


def fsync(path: Path) -> None:
    """Flush a file, or a folder's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary file beside `path` to write, renamed onto it when the block ends, so a crash never
    leaves half a file. Its mode is what open() would give (0644 under umask 022), not mkstemp's 0600:
    outputs are for the user's other programs and for the service's other processes too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~UMASK)
        os.close(fd)
        yield Path(tmp)
        fsync(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename (atomic_path)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: Path, data: Any) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode())


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """A temporary folder beside `path` to fill, renamed onto it when the block ends, so a crash or a
    full disk never leaves half a folder: an older folder there is renamed aside first and removed
    once the new one is in, so whenever `path` exists it is whole. Its mode is what mkdir would give,
    not mkdtemp's 0700 (see atomic_path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    old = path.with_name(f"{tmp.name}.old")
    try:
        tmp.chmod(0o777 & ~UMASK)
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                fsync(f)
        if path.exists():
            os.replace(path, old)  # a folder cannot be renamed onto a full one
        os.replace(tmp, path)
        fsync(path.parent)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        if old.exists() and not path.exists():
            os.replace(old, path)  # the new folder did not go in: the old one stays
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class Workspace:
    """Paths of one job's folder; creates nothing until a stage writes."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    @property
    def photos_dir(self) -> Path:
        return self.root / "photos"

    @property
    def dataset_dir(self) -> Path:
        return self.root / "dataset"

    @property
    def manifest_path(self) -> Path:
        return self.dataset_dir / "manifest.json"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def outputs_dir(self) -> Path:
        return self.root / "outputs"

    def path(self, relative: str) -> Path:
        """Resolve a path that a manifest stores relative to the workspace."""
        return self.root / relative

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.root).as_posix()

    def write_manifest(self, manifest: DatasetManifest) -> None:
        write_json_atomic(self.manifest_path, manifest.model_dump(mode="json"))

    def read_manifest(self) -> DatasetManifest:
        if not self.manifest_path.exists():
            raise PortraitistError(
                f"{self.root} has no prepared dataset ({self.manifest_path} is missing). "
                f"Run `portraitist prepare PHOTOS... --workspace {self.root}` first."
            )
        try:
            return DatasetManifest.model_validate_json(self.manifest_path.read_text())
        except ValueError as exc:
            raise PortraitistError(
                f"{self.manifest_path} is not a valid dataset manifest ({exc}). "
                "Re-run `portraitist prepare` to rebuild it."
            ) from exc

    def kept_crops(self, manifest: DatasetManifest) -> list[Image.Image]:
        """The kept photos' crops as prepare cut them: the user's face, which later stages compare with."""
        crops = [Image.open(self.path(p.image)).convert("RGB") for p in manifest.kept if p.image]
        if not crops:
            raise PortraitistError(
                f"The dataset in {self.root} keeps no photos, so there is no face to compare with; "
                "run `portraitist prepare` with usable photos."
            )
        return crops
