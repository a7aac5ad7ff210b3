"""A job's life as compare-and-set updates of its row, each logged as a JobEvent.

    queued --claim--> running --succeed--> succeeded
       ^                 |  \\--fail------> failed
       |                 |   \\-cancel----> cancelled   (also from queued)
       \\---requeue------/  (stale heartbeat or crash: attempt + 1, or failed after max_attempts)

Huey deletes a task when a worker takes it and is not at-least-once by design, so the row,
not the queue, says what must run. Every change names the attempt it expects
(`jobs.attempt == attempt`) and the status it leaves: a write from an attempt that was
taken over, cancelled or deleted matches no row and changes nothing, and the caller learns
so from the returned False. A queue message is only a hint to look at the row.

The reads the API serves (a user's jobs, one of them, a share link's job) are here too, so
routes hold no SQL.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.orm import Session

from portraitist.service.auth import same_secret
from portraitist.service.db import Database
from portraitist.service.models import ACTIVE, Job, JobEvent, Signup, User

_PROGRESS_FIELDS = ("stage", "step", "total", "eta_s", "message")


class TooManyJobs(Exception):
    """The user already has as many queued or running jobs as allowed."""


def _transition(session: Session, job_id: str, where: ColumnElement[bool], values: dict[str, Any]) -> bool:
    """Apply `values` to the job if `where` holds, and log the change; True if it applied."""
    changed = session.execute(
        update(Job)
        .where(Job.id == job_id, where)
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        return False
    columns = [getattr(Job, name) for name in _PROGRESS_FIELDS]
    row = session.execute(select(Job.attempt, Job.status, *columns).where(Job.id == job_id)).one()
    session.add(
        JobEvent(
            job_id=job_id,
            attempt=row.attempt,
            status=row.status,
            **{name: getattr(row, name) for name in _PROGRESS_FIELDS},
        )
    )
    return True


def _running(attempt: int) -> ColumnElement[bool]:
    return and_(Job.attempt == attempt, Job.status == "running")


def lock_user(session: Session, user_id: str) -> None:
    """Serialise per-user limit checks: a row lock on PostgreSQL, the write lock on SQLite."""
    session.execute(update(User).where(User.id == user_id).values(locked_at=time.time()))


def _active_jobs(session: Session, users: Any) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(Job).where(Job.user_id.in_(users), Job.status.in_(ACTIVE))
        )
        or 0
    )


def create_job(
    db: Database,
    user_id: str,
    config: dict[str, Any],
    photo_ids: list[str],
    limit: int,
    address_limit: int,
) -> Job:
    """A queued job, unless the user already has `limit` active ones, or the users who signed up
    from the user's address have `address_limit` (TooManyJobs): new accounts do not make room."""
    with db.session() as session:
        lock_user(session, user_id)
        active = _active_jobs(session, [user_id])
        if active >= limit:
            raise TooManyJobs(
                f"You already have {active} jobs queued or running (the limit is {limit}); "
                "wait for one to finish or cancel one."
            )
        address = select(Signup.address).where(Signup.user_id == user_id).scalar_subquery()
        neighbours = _active_jobs(session, select(Signup.user_id).where(Signup.address == address))
        if neighbours >= address_limit:
            raise TooManyJobs(
                f"Accounts from your network address have {neighbours} jobs queued or running (the limit "
                f"is {address_limit}); wait for one to finish or cancel one."
            )
        job = Job(
            user_id=user_id,
            config=config,
            photo_ids=photo_ids,
            status="queued",
            attempt=1,
            enqueued_at=time.time(),
        )
        session.add(job)
        session.flush()
        session.add(JobEvent(job_id=job.id, attempt=1, status="queued", message="waiting for a worker"))
    return job


def claim(db: Database, job_id: str, attempt: int, worker_id: str) -> bool:
    """Start running `attempt` of the job; False if it is not queued as that attempt (a stale message)."""
    now = time.time()
    with db.session() as session:
        return _transition(
            session,
            job_id,
            and_(Job.attempt == attempt, Job.status == "queued"),
            {
                "status": "running",
                "worker_id": worker_id,
                "heartbeat_at": now,
                "message": "started",
                "started_at": func.coalesce(Job.started_at, now),
            },
        )


def heartbeat(db: Database, job_id: str, attempt: int) -> bool:
    """Say `attempt` still runs; False if the job is no longer this attempt's to run."""
    with db.session() as session:
        return (
            session.execute(
                update(Job)
                .where(Job.id == job_id, _running(attempt))
                .values(heartbeat_at=time.time())
                .execution_options(synchronize_session=False)
            ).rowcount
            == 1
        )


def record_progress(
    db: Database,
    job_id: str,
    attempt: int,
    stage: str,
    step: int,
    total: int | None,
    eta_s: float | None,
    message: str,
) -> bool:
    with db.session() as session:
        return _transition(
            session,
            job_id,
            _running(attempt),
            {
                "stage": stage,
                "step": step,
                "total": total,
                "eta_s": eta_s,
                "message": message,
                "heartbeat_at": time.time(),
            },
        )


def succeed(db: Database, job_id: str, attempt: int, results: list[str], report: str | None) -> bool:
    with db.session() as session:
        return _transition(
            session,
            job_id,
            _running(attempt),
            {
                "status": "succeeded",
                "results": results,
                "report": report,
                "eta_s": 0.0,
                "message": "done",
                "finished_at": time.time(),
            },
        )


def fail(db: Database, job_id: str, attempt: int, error: str) -> bool:
    """Fail the job for good (a user error such as too few usable photos: retrying cannot help)."""
    with db.session() as session:
        return _transition(
            session,
            job_id,
            _running(attempt),
            {
                "status": "failed",
                "error": error,
                "eta_s": None,
                "message": "failed",
                "finished_at": time.time(),
            },
        )


def requeue(
    db: Database, job_id: str, attempt: int, reason: str, max_attempts: int, stale_before: float | None = None
) -> int | None:
    """Hand a running attempt's job to attempt + 1, or fail it once `max_attempts` were used.

    `stale_before`: only if the heartbeat is older than this (the reaper's check, repeated
    inside the update so a heartbeat that lands meanwhile wins). Returns the new attempt
    number to enqueue, or None if the job was failed or was not this attempt's any more.
    """
    where = _running(attempt)
    if stale_before is not None:
        where = and_(where, Job.heartbeat_at < stale_before)
    with db.session() as session:
        if attempt >= max_attempts:
            _transition(
                session,
                job_id,
                where,
                {
                    "status": "failed",
                    "eta_s": None,
                    "message": "failed",
                    "finished_at": time.time(),
                    "error": f"Gave up after {attempt} attempts; the last one ended because {reason}.",
                },
            )
            return None
        moved = _transition(
            session,
            job_id,
            where,
            {
                "status": "queued",
                "attempt": attempt + 1,
                "worker_id": None,
                "heartbeat_at": None,
                "enqueued_at": time.time(),
                "eta_s": None,
                "message": f"attempt {attempt} ended because {reason}; waiting to resume",
            },
        )
        return attempt + 1 if moved else None


def touch_enqueued(db: Database, job_id: str, attempt: int, enqueued_at: float) -> bool:
    """Mark a queued job as enqueued again; False if someone else did (or it moved on) first."""
    with db.session() as session:
        return (
            session.execute(
                update(Job)
                .where(
                    Job.id == job_id,
                    Job.attempt == attempt,
                    Job.status == "queued",
                    Job.enqueued_at == enqueued_at,
                )
                .values(enqueued_at=time.time())
                .execution_options(synchronize_session=False)
            ).rowcount
            == 1
        )


def cancel(db: Database, user_id: str, job_id: str) -> bool:
    """Cancel a queued or running job of this user; its worker notices at its next progress write."""
    with db.session() as session:
        return _transition(
            session,
            job_id,
            and_(Job.user_id == user_id, Job.status.in_(ACTIVE)),
            {"status": "cancelled", "eta_s": None, "message": "cancelled", "finished_at": time.time()},
        )


def owned(session: Session, user_id: str, job_id: str) -> Job | None:
    """The user's job with this id; None for another user's job, as for one that does not exist."""
    job = session.get(Job, job_id)
    return job if job is not None and job.user_id == user_id else None


def of_user(session: Session, user_id: str) -> Sequence[Job]:
    """The user's jobs, newest first."""
    return session.scalars(select(Job).where(Job.user_id == user_id).order_by(Job.created_at.desc())).all()


def count_of_user(session: Session, user_id: str) -> int:
    """The user's jobs, any status."""
    return session.scalar(select(func.count()).select_from(Job).where(Job.user_id == user_id)) or 0


def shared(session: Session, job_id: str, key: str) -> Job | None:
    """The succeeded job whose share key this is (compared in constant time), else None."""
    job = session.get(Job, job_id)
    if job is None or job.status != "succeeded" or not same_secret(key, job.share_key):
        return None
    return job
