"""The `prepare` stage: from the photos a user sent to a training set (thesis 2.1-2.2).

Each photo is read, checked for exactly one subject, cropped square around the face, checked
for blur and near-duplicates, and given a person mask; then the kept faces are checked for being
one person, the class word is chosen and the captions are written. With a boxes file
(prepare/boxes.py) the faces and masks it gives replace the detector's. WS/photos/ keeps copies
of the originals, WS/dataset/ the crops, masks and manifest.json. A bad photo is recorded with
its reason and never stops the run.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import imagehash
from PIL import Image

from portraitist.errors import PortraitistError
from portraitist.models.clip import load_clip
from portraitist.prepare.boxes import GroundTruth
from portraitist.prepare.captions import make_captions
from portraitist.prepare.classword import class_distances, nearest_word
from portraitist.prepare.config import PrepareConfig
from portraitist.prepare.crop import face_crop
from portraitist.prepare.detect import PersonDetector
from portraitist.prepare.identity import check_identity, other_person_message
from portraitist.prepare.masks import person_mask
from portraitist.prepare.photos import collect_photos, read_photo
from portraitist.prepare.quality import blur_flags, check_duplicate, perceptual_hash
from portraitist.prepare.rejection import PhotoRejected
from portraitist.progress import ProgressCallback, ProgressEvent, no_progress
from portraitist.workspace import DatasetManifest, IdentityCheck, PhotoRecord, Workspace, write_bytes_atomic

STAGE = "prepare"


@dataclass
class PrepareResult:
    workspace: Workspace
    manifest: DatasetManifest

    @property
    def kept(self) -> list[PhotoRecord]:
        return self.manifest.kept

    @property
    def rejected(self) -> list[PhotoRecord]:
        return [p for p in self.manifest.photos if p.status == "rejected"]


@dataclass
class _Kept:
    record: PhotoRecord
    crop: Image.Image
    mask: Image.Image
    phash: imagehash.ImageHash


def prepare(
    workspace: Workspace,
    photos: Sequence[Path],
    config: PrepareConfig | None = None,
    progress: ProgressCallback = no_progress,
    boxes: Path | None = None,
) -> PrepareResult:
    """Build WS/dataset/ from photo files and folders; PortraitistError if too few are usable.

    boxes: a JSON file of the photos' face boxes and person masks (prepare/boxes.py), used
    instead of mediapipe's detector; mediapipe then loads only to segment photos without a mask.
    """
    config = config or PrepareConfig()
    truth = GroundTruth.load(boxes) if boxes is not None else None
    files = collect_photos(photos)
    if truth is not None:
        files = truth.photos(files)
    _start_fresh(workspace, files)
    records: list[PhotoRecord] = []
    kept: list[_Kept] = []
    needs_detector = truth is None or truth.segments_any(files)
    with PersonDetector(config) if needs_detector else nullcontext() as detector:
        for index, path in enumerate(files):
            _copy_original(workspace, path, index, config.max_file_bytes)
            try:
                accepted = _examine(path, kept, detector, truth, config)
                kept.append(accepted)
                record = accepted.record
            except PhotoRejected as rejection:
                record = _rejected(path, rejection)
            records.append(record)
            outcome = "kept" if record.status == "kept" else f"rejected: {record.reason}"
            progress(ProgressEvent(STAGE, index + 1, len(files), f"{path.name} {outcome}"))

    kept, identity = _one_person(kept, records, config, progress)
    _save_kept(workspace, kept)
    if len(kept) < config.min_photos:
        manifest = _manifest(config, config.class_word or "", {}, records, identity)
        workspace.write_manifest(manifest)
        raise PortraitistError(_too_few_message(manifest, config.min_photos, workspace))

    crops = [k.crop for k in kept]
    class_word, scores = _class_word(crops, config, progress)
    subject = f"{config.instance_token} {class_word}"
    captions = make_captions(config.context, crops, subject, config.seed, config.caption_model, config.device)
    for item, caption in zip(kept, captions):
        item.record.caption = caption.text
        item.record.background_token = caption.background_token
    manifest = _manifest(config, class_word, scores, records, identity)
    workspace.write_manifest(manifest)
    return PrepareResult(workspace, manifest)


def _examine(
    path: Path,
    kept: Sequence[_Kept],
    detector: PersonDetector | None,
    truth: GroundTruth | None,
    config: PrepareConfig,
) -> _Kept:
    """One photo through every per-photo check: its crop and mask, saved once the set is decided.

    `truth` (given boxes and masks) replaces the detector where it has an answer; `detector` is
    None only when `truth` answers everything.
    """
    photo = read_photo(path, config.max_pixels, config.max_file_bytes)
    if truth is not None:
        subject = truth.subject(path, photo, config.min_face_size)
    else:
        subject = _need(detector).subject(photo)
    crop, crop_box = face_crop(
        photo, subject.face.box, config.margin, config.resolution, config.upscale_small_faces, config.upscaler
    )
    flags = blur_flags(crop, config)
    if subject.background_faces:
        flags.append("background_people")
    phash = perceptual_hash(crop)
    check_duplicate(phash, [(Path(k.record.source).name, k.phash) for k in kept], config.duplicate_distance)

    given = truth.mask(path, photo.size, crop_box, config.resolution) if truth is not None else None
    mask = given if given is not None else person_mask(_need(detector), crop)
    notes = [*flags, f"box from {truth.source.name}"] if truth is not None else flags
    note = f" ({', '.join(notes)})" if notes else ""
    record = PhotoRecord(
        source=str(path),
        status="kept",
        message=f"Kept: a {subject.face.side:.0f} px face{note}.",
        flags=flags,
        face_box=[round(v, 1) for v in subject.face.box],
        crop_box=list(crop_box),
        phash=str(phash),
    )
    return _Kept(record, crop, mask, phash)


def _rejected(path: Path, rejection: PhotoRejected) -> PhotoRecord:
    return PhotoRecord(
        source=str(path), status="rejected", reason=rejection.reason, message=rejection.message
    )


def _one_person(
    kept: list[_Kept], records: list[PhotoRecord], config: PrepareConfig, progress: ProgressCallback
) -> tuple[list[_Kept], IdentityCheck]:
    """The kept photos less those of another person (prepare/identity.py); their records say so."""
    if not config.identity_check:
        return kept, IdentityCheck(
            status="off", photos=len(kept), note="identity_check = false: not checked."
        )
    progress(ProgressEvent("one person", 0, 1, "dlib face descriptors"))
    face_side = config.resolution / (1 + 2 * config.margin)
    result = check_identity(
        [k.crop for k in kept],
        [Path(k.record.source).name for k in kept],
        config.identity_distance,
        face_side,
    )
    for index, distance in result.others.items():
        rejection = PhotoRejected("other_person", other_person_message(distance, config.identity_distance))
        records[records.index(kept[index].record)] = _rejected(Path(kept[index].record.source), rejection)
    progress(ProgressEvent("one person", 1, 1, result.check.status))
    return [k for i, k in enumerate(kept) if i not in result.others], result.check


def _save_kept(workspace: Workspace, kept: Sequence[_Kept]) -> None:
    """Crops and masks as NN.png, numbered in input order among the photos finally kept."""
    for number, item in enumerate(kept):
        image_path = workspace.dataset_dir / "crops" / f"{number:02d}.png"
        mask_path = workspace.dataset_dir / "masks" / f"{number:02d}.png"
        _save_png(item.crop, image_path)
        _save_png(item.mask, mask_path)
        item.record.image = workspace.relative(image_path)
        item.record.mask = workspace.relative(mask_path)


def _need(detector: PersonDetector | None) -> PersonDetector:
    if detector is None:
        raise RuntimeError("prepare: the person detector was not loaded although a photo needs it")
    return detector


def _class_word(
    crops: list[Image.Image], config: PrepareConfig, progress: ProgressCallback
) -> tuple[str, dict[str, float]]:
    """The forced word, or CLIP's nearest candidate with every candidate's mean distance."""
    if config.class_word:
        return config.class_word, {}
    progress(ProgressEvent("class word", 0, 1, f"CLIP {config.clip_model}"))
    scores = class_distances(
        load_clip(config.clip_model, config.device), crops, config.class_words, config.class_prompt
    )
    word = nearest_word(scores)
    progress(ProgressEvent("class word", 1, 1, word))
    return word, scores


def _manifest(
    config: PrepareConfig,
    class_word: str,
    scores: dict[str, float],
    records: list[PhotoRecord],
    identity: IdentityCheck,
) -> DatasetManifest:
    return DatasetManifest(
        class_token=class_word,
        class_scores=scores,
        class_model=config.clip_model if scores else None,
        instance_token=config.instance_token,
        instance_init=config.token_init(),
        context=config.context,
        resolution=config.resolution,
        upscale_small_faces=config.upscale_small_faces,
        upscaler=config.upscaler,
        identity=identity,
        photos=records,
    )


def _too_few_message(manifest: DatasetManifest, needed: int, workspace: Workspace) -> str:
    lines = [
        (
            f"Only {len(manifest.kept)} of {len(manifest.photos)} photos can be used; "
            f"at least {needed} are needed."
        ),
    ]
    for photo in manifest.photos:
        if photo.status == "rejected":
            lines.append(f"  {photo.source}: {photo.reason}: {photo.message}")
    lines.append(
        "Add photos where you are alone and your face is clearly visible, or lower min_photos. "
        f"Details: {workspace.manifest_path}"
    )
    return "\n".join(lines)


def _start_fresh(workspace: Workspace, files: Sequence[Path]) -> None:
    """Remove a previous run's dataset (and copies, unless the inputs are those copies)."""
    workspace.manifest_path.unlink(missing_ok=True)
    for folder in ("crops", "masks"):
        shutil.rmtree(workspace.dataset_dir / folder, ignore_errors=True)
    photos_dir = workspace.photos_dir.resolve()
    if not any(photos_dir in f.resolve().parents for f in files):
        shutil.rmtree(photos_dir, ignore_errors=True)


def _copy_original(workspace: Workspace, path: Path, index: int, max_file_bytes: int) -> None:
    """Keep the user's file byte for byte in WS/photos/, under an ASCII-only name."""
    if workspace.photos_dir.resolve() in path.resolve().parents or path.stat().st_size > max_file_bytes:
        return
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", path.name)[-80:]
    target = workspace.photos_dir / f"{index:02d}_{safe}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)


def _save_png(image: Image.Image, path: Path) -> None:
    buffer = BytesIO()
    image.save(buffer, format="PNG")
    write_bytes_atomic(path, buffer.getvalue())
