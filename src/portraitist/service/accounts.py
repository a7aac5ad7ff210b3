"""Users' lives: signing up (limited per client address) and deleting a user so that nothing stays.

Deleting removes the rows and then scrubs the database files (db.Database.scrub), so the
token hash and the prompts are not left readable in freed pages or the write-ahead log; then
the user's queue messages and stored files go.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import delete, select, update

from portraitist.service.auth import address_key, new_token
from portraitist.service.db import Database
from portraitist.service.models import Job, JobEvent, Photo, Signup, User
from portraitist.service.queue import JobQueue
from portraitist.service.storage import Storage, user_prefix

log = logging.getLogger(__name__)

SIGNUP_WINDOW_S = 3600.0


class TooManySignups(Exception):
    """This address signed up as often as allowed in the last hour."""

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


def sign_up(db: Database, address: str | None, per_hour: int) -> tuple[str, str]:
    """A new user's (id, token), unless `address` has made `per_hour` sign-ups in the last hour.

    `address` None: a sign-up the admin vouched for (the bot signs up all its chats from one
    address), counted against no address and so under no per-address limit.
    """
    now = time.time()
    with db.session() as session:
        # a write first: on SQLite it takes the write lock, so concurrent sign-ups count one by one
        session.execute(
            delete(Signup).where(Signup.user_id.is_(None), Signup.created_at < now - SIGNUP_WINDOW_S)
        )
        key = address_key(address) if address is not None else None
        recent = session.scalars(
            select(Signup.created_at)
            .where(Signup.address == key, Signup.created_at >= now - SIGNUP_WINDOW_S)
            .order_by(Signup.created_at)
        ).all()
        if key is not None and len(recent) >= per_hour:
            wait = recent[0] + SIGNUP_WINDOW_S - now
            raise TooManySignups(
                f"Too many sign-ups from your address ({per_hour} an hour); "
                f"try again in {wait / 60:.0f} min.",
                wait,
            )
        user = User(token_hash="")
        session.add(user)
        session.flush()
        token, user.token_hash = new_token(user.id)
        if key is not None:
            session.add(Signup(address=key, user_id=user.id, created_at=now))
    return user.id, token


def delete_user(db: Database, user_id: str) -> list[str]:
    """Delete the user's rows (jobs, events, photos, the user) and scrub them from the database
    files; returns the ids of the jobs that were deleted, for the queue to drop."""
    with db.session() as session:
        job_ids = list(session.scalars(select(Job.id).where(Job.user_id == user_id)))
        session.execute(delete(JobEvent).where(JobEvent.job_id.in_(job_ids)))
        session.execute(delete(Job).where(Job.user_id == user_id))
        session.execute(delete(Photo).where(Photo.user_id == user_id))
        session.execute(update(Signup).where(Signup.user_id == user_id).values(user_id=None))
        session.execute(delete(User).where(User.id == user_id))
    db.scrub()
    return job_ids


def erase_user(db: Database, queue: JobQueue, storage: Storage, user_id: str) -> None:
    """Delete the user and everything of theirs: rows (scrubbed), queue messages, stored files.

    A job still running stops at its next progress report (its row is gone) and removes what it
    uploaded after this.
    """
    job_ids = delete_user(db, user_id)
    try:
        queue.discard(job_ids)
    except Exception:  # the queue is away: a worker skips these messages anyway (no such job)
        log.exception("could not drop the queue messages of a deleted user's jobs")
    storage.delete_prefix(user_prefix(user_id))
