"""Photos: uploading (each file judged as `prepare` would), listing and deleting them."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Response, UploadFile, status
from sqlalchemy.orm import Session

from portraitist.service import photos
from portraitist.service.dependencies import CurrentUser, JudgeDep, SessionDep, SettingsDep, StorageDep
from portraitist.service.schemas import PhotoOut, PhotosOut
from portraitist.service.scratch import scratch_folder
from portraitist.service.settings import Settings
from portraitist.service.storage import Storage
from portraitist.service.uploads import PhotoJudge, copy_capped

router = APIRouter(tags=["photos"])


@router.post("/photos", response_model=PhotosOut)
def upload_photos(
    files: Annotated[
        list[UploadFile], File(description="Photos (JPEG, PNG, WebP, HEIC, ...), many at once.")
    ],
    user: CurrentUser,
    settings: SettingsDep,
    storage: StorageDep,
    judge: JudgeDep,
    session: SessionDep,
) -> PhotosOut:
    """Upload photos. Each file is judged as `prepare` would (readable, within the caps, exactly one
    person); kept ones are stored, rejected ones come back with the reason and are not stored."""
    with scratch_folder(settings.scratch_dir, "upload") as tmp:
        batch = _Upload(user.id, settings, storage, judge, session, Path(tmp))
        return PhotosOut(photos=[batch.take(index, upload) for index, upload in enumerate(files)])


@router.get("/photos", response_model=PhotosOut)
def list_photos(user: CurrentUser, session: SessionDep) -> PhotosOut:
    return PhotosOut(photos=[PhotoOut.of(photo) for photo in photos.of_user(session, user.id)])


@router.delete("/photos/{photo_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_photo(photo_id: str, user: CurrentUser, storage: StorageDep, session: SessionDep) -> Response:
    if not photos.delete(session, storage, user.id, photo_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such photo.")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@dataclass
class _Upload:
    """One upload request: where its files land while judged, and what keeps the good ones."""

    user_id: str
    settings: Settings
    storage: Storage
    judge: PhotoJudge
    session: Session
    folder: Path

    def take(self, index: int, upload: UploadFile) -> PhotoOut:
        """The record of the request's `index`-th file: kept (and stored) or rejected with the reason."""
        settings = self.settings
        name = _display_name(upload.filename)
        if index >= settings.max_upload_files:
            return _rejected(name, "too_many", f"At most {settings.max_upload_files} files per upload.")
        path = self.folder / str(index)  # the upload's own name never reaches the file system
        if not copy_capped(upload.file, path, settings.max_photo_bytes):
            return _rejected(
                name, "too_large", f"The file is larger than {settings.max_photo_bytes / 2**20:.0f} MiB."
            )
        judged = self.judge.judge(path)
        if not judged.kept:
            return _rejected(name, judged.reason, judged.message)
        try:
            photo = photos.keep(
                self.session, self.storage, self.user_id, name, path, judged, settings.max_photos
            )
        except photos.TooManyPhotos as exc:
            return _rejected(name, "too_many", str(exc))
        return PhotoOut.of(photo).model_copy(update={"message": judged.message})


def _rejected(name: str, reason: str | None, message: str | None) -> PhotoOut:
    return PhotoOut(id=None, name=name, status="rejected", reason=reason, message=message)


def _display_name(filename: str | None) -> str:
    """The upload's name for showing it back: last path part, no control characters, capped."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")
    return name[:255] or "photo"
