"""A user's stored photos: a row each in the database and the file in storage, keyed by the row's id.

A photo's row and file are written together: the row is flushed (which gives the id the file's
key needs), the file put, then the row committed, so a failed put leaves no row behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portraitist.service.jobs import lock_user
from portraitist.service.models import Photo
from portraitist.service.storage import Storage, photo_key
from portraitist.service.uploads import Judged


class TooManyPhotos(Exception):
    """The user has as many photos stored as allowed."""


def of_user(session: Session, user_id: str) -> Sequence[Photo]:
    """The user's photos, oldest first."""
    return session.scalars(select(Photo).where(Photo.user_id == user_id).order_by(Photo.created_at)).all()


def ids_of_user(session: Session, user_id: str) -> list[str]:
    """The ids of the user's photos, oldest first."""
    return list(session.scalars(select(Photo.id).where(Photo.user_id == user_id).order_by(Photo.created_at)))


def count_of_user(session: Session, user_id: str) -> int:
    return session.scalar(select(func.count()).select_from(Photo).where(Photo.user_id == user_id)) or 0


def keep(
    session: Session, storage: Storage, user_id: str, name: str, upload: Path, judged: Judged, max_photos: int
) -> Photo:
    """Store a photo `judged` kept: its row and its file, committed; TooManyPhotos at `max_photos`.

    The user's row is locked first, so concurrent uploads of one user count one after another.
    """
    lock_user(session, user_id)
    stored = count_of_user(session, user_id)
    if stored >= max_photos:
        session.rollback()
        raise TooManyPhotos(f"You have {stored} photos stored, the most allowed; delete some first.")
    photo = Photo(
        user_id=user_id,
        name=name,
        suffix=judged.suffix,
        size=upload.stat().st_size,
        width=judged.width,
        height=judged.height,
    )
    session.add(photo)
    session.flush()
    storage.put_file(upload, photo_key(user_id, photo.id, photo.suffix))
    session.commit()
    return photo


def delete(session: Session, storage: Storage, user_id: str, photo_id: str) -> bool:
    """Delete the user's photo, row then file; False if the user has no photo with this id."""
    photo = session.get(Photo, photo_id)
    if photo is None or photo.user_id != user_id:
        return False
    session.delete(photo)
    session.commit()
    storage.delete(photo_key(user_id, photo.id, photo.suffix))
    return True
