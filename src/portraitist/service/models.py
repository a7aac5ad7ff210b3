"""The service's tables: users, their photos, their jobs, and each job's progress events.

The job row is the source of truth for a job's life (not the queue): its `attempt` number
fences every write a worker makes, so an attempt that was taken over can never change it
again (see jobs.py). Times are Unix seconds (floats): one comparable type on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, ClassVar, Literal

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
ACTIVE: tuple[JobStatus, ...] = ("queued", "running")
TERMINAL: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled")


def new_id() -> str:
    """An unguessable id: users cannot enumerate each other's things."""
    return secrets.token_hex(12)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[str]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    # written before a per-user limit is checked, which locks the row until the check's insert
    # commits: two requests at once cannot both pass the same count (see jobs.lock_user)
    locked_at: Mapped[float | None] = mapped_column(Float)


class Signup(Base):
    """One sign-up's client address (hashed) and time: the per-address limits count these.

    Kept, without the user, after the user is deleted, so that deleting and signing up again
    does not reset the count; rows older than the sign-up window go at the next sign-up.
    """

    __tablename__ = "signups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[float] = mapped_column(Float, default=time.time, index=True)


class Photo(Base):
    __tablename__ = "photos"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255), doc="The upload's file name, for display only.")
    suffix: Mapped[str] = mapped_column(String(8), doc="File suffix from the decoded format, e.g. .jpg.")
    size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    config: Mapped[dict[str, Any]] = mapped_column(JSON, doc="The RunConfig fields the user asked for.")
    photo_ids: Mapped[list[str]] = mapped_column(JSON, doc="The user's photos when the job was created.")
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    enqueued_at: Mapped[float] = mapped_column(Float, default=time.time)
    heartbeat_at: Mapped[float | None] = mapped_column(Float)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    stage: Mapped[str | None] = mapped_column(String(32))
    step: Mapped[int | None] = mapped_column(Integer)
    total: Mapped[int | None] = mapped_column(Integer)
    eta_s: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    results: Mapped[list[str]] = mapped_column(
        JSON, default=list, doc="Files of outputs/selected/, in rank order."
    )
    report: Mapped[str | None] = mapped_column(
        String(255), doc="The report page, relative to the result folder."
    )
    share_key: Mapped[str] = mapped_column(String(64), default=lambda: secrets.token_urlsafe(24))
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    started_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)


class JobEvent(Base):
    """One progress or status change, in order: what the SSE stream replays."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str | None] = mapped_column(String(32))
    step: Mapped[int | None] = mapped_column(Integer)
    total: Mapped[int | None] = mapped_column(Integer)
    eta_s: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
