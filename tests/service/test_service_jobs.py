"""The job row's state machine and the reaper, without a pipeline: who may write, and when."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select, update

from portraitist.errors import MachineError, PortraitistError
from portraitist.service import jobs
from portraitist.service.db import Database
from portraitist.service.models import Job, JobEvent, User
from portraitist.service.queue import JobQueue
from portraitist.service.reaper import reap_once
from portraitist.service.settings import Settings
from portraitist.service.storage import Storage
from portraitist.service.worker import JobRunner


@pytest.fixture
def db(settings: Settings) -> Database:
    database = Database(settings.database_url)
    database.create_tables()
    yield database
    database.dispose()


@pytest.fixture
def queue(settings: Settings) -> JobQueue:
    return JobQueue(settings.queue_url, settings.queue_name)


def _user(db: Database) -> str:
    with db.session() as session:
        user = User(token_hash="0" * 64)
        session.add(user)
    return user.id


def _job(db: Database) -> str:
    return jobs.create_job(db, _user(db), {"base": "tiny"}, ["p1"], limit=5, address_limit=5).id


def _silence(db: Database, job_id: str, seconds: float) -> None:
    """As if the job's worker had sent no heartbeat for `seconds`."""
    with db.session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=time.time() - seconds))


def _row(db: Database, job_id: str) -> Job:
    with db.session() as session:
        return session.get_one(Job, job_id)


def test_one_claim_per_attempt(db: Database) -> None:
    job_id = _job(db)
    assert jobs.claim(db, job_id, 1, "worker-a")
    assert not jobs.claim(db, job_id, 1, "worker-b")  # a duplicate message
    assert not jobs.claim(db, job_id, 2, "worker-b")  # a message for an attempt that does not exist
    assert _row(db, job_id).worker_id == "worker-a"


def test_a_taken_over_attempt_can_write_nothing(db: Database, settings: Settings, queue: JobQueue) -> None:
    job_id = _job(db)
    assert jobs.claim(db, job_id, 1, "worker-a")
    assert jobs.record_progress(db, job_id, 1, "train", 3, 10, 7.0, "")
    _silence(db, job_id, settings.stale_after_s + 1)

    reaped = reap_once(db, queue, settings)
    assert reaped.requeued == [job_id]
    assert (job_id, 2) in queue.pending()
    row = _row(db, job_id)
    assert (row.status, row.attempt, row.worker_id) == ("queued", 2, None)

    # attempt 1 was only cut off, not dead: every write it tries now matches no row
    assert not jobs.heartbeat(db, job_id, 1)
    assert not jobs.record_progress(db, job_id, 1, "train", 9, 10, 1.0, "")
    assert not jobs.succeed(db, job_id, 1, ["outputs/selected/stale.png"], None)
    assert not jobs.fail(db, job_id, 1, "stale")
    assert jobs.claim(db, job_id, 2, "worker-b")
    assert jobs.succeed(db, job_id, 2, ["outputs/selected/00.png"], "outputs/report.html")
    row = _row(db, job_id)
    assert (row.status, row.attempt, row.results) == ("succeeded", 2, ["outputs/selected/00.png"])


def test_a_fresh_heartbeat_is_not_reaped(db: Database, settings: Settings, queue: JobQueue) -> None:
    job_id = _job(db)
    assert jobs.claim(db, job_id, 1, "worker-a")
    assert jobs.heartbeat(db, job_id, 1)
    assert reap_once(db, queue, settings).requeued == []
    assert _row(db, job_id).status == "running"


def test_after_max_attempts_the_job_fails_with_the_reason(
    db: Database, settings: Settings, queue: JobQueue
) -> None:
    job_id = _job(db)
    for attempt in range(1, settings.max_attempts + 1):
        assert jobs.claim(db, job_id, attempt, f"worker-{attempt}")
        _silence(db, job_id, settings.stale_after_s + 1)
        reap_once(db, queue, settings)
    row = _row(db, job_id)
    assert (row.status, row.attempt) == ("failed", settings.max_attempts)
    assert f"Gave up after {settings.max_attempts} attempts" in row.error and "heartbeat" in row.error


def test_a_queued_job_whose_message_was_lost_is_enqueued_again(
    db: Database, settings: Settings, queue: JobQueue
) -> None:
    job_id = _job(db)  # saved, but the process died before it enqueued the message
    assert reap_once(db, queue, settings).resent == []  # too recent to call lost
    with db.session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(enqueued_at=time.time() - 60))
    assert reap_once(db, queue, settings).resent == [job_id]
    assert (job_id, 1) in queue.pending()
    with db.session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(enqueued_at=time.time() - 60))
    assert reap_once(db, queue, settings).resent == []  # its message is waiting now: nothing to do


def test_per_user_job_limit(db: Database) -> None:
    user_id = _user(db)
    first = jobs.create_job(db, user_id, {}, ["p"], limit=2, address_limit=10)
    jobs.create_job(db, user_id, {}, ["p"], limit=2, address_limit=10)
    with pytest.raises(jobs.TooManyJobs):
        jobs.create_job(db, user_id, {}, ["p"], limit=2, address_limit=10)
    assert jobs.cancel(db, user_id, first.id)
    jobs.create_job(db, user_id, {}, ["p"], limit=2, address_limit=10)


def test_cancel_only_own_and_active_jobs(db: Database) -> None:
    job_id = _job(db)
    assert not jobs.cancel(db, _user(db), job_id)
    owner = _row(db, job_id).user_id
    assert jobs.cancel(db, owner, job_id)
    assert not jobs.cancel(db, owner, job_id)
    assert not jobs.claim(db, job_id, 1, "worker-a")


def test_every_change_is_an_event_in_order(db: Database) -> None:
    job_id = _job(db)
    jobs.claim(db, job_id, 1, "w")
    for step in range(1, 4):
        jobs.record_progress(db, job_id, 1, "train", step, 3, None, f"step {step}")
    jobs.succeed(db, job_id, 1, [], None)
    with db.session() as session:
        events = session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
        ).all()
        seen = [(e.status, e.stage, e.step) for e in events]
    assert seen == [
        ("queued", None, None),
        ("running", None, None),
        ("running", "train", 1),
        ("running", "train", 2),
        ("running", "train", 3),
        ("succeeded", "train", 3),
    ]


@pytest.mark.parametrize(
    ("error", "status", "attempt"),
    [
        (MachineError("The GPU ran out of memory."), "queued", 2),  # the machine's trouble: another attempt
        (PortraitistError("Too few usable photos."), "failed", 1),  # the request's: retrying cannot help
    ],
)
def test_a_worker_out_of_memory_or_disk_retries_the_job_a_user_error_fails_it(
    db: Database,
    settings: Settings,
    queue: JobQueue,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    status: str,
    attempt: int,
) -> None:
    job_id = _job(db)
    runner = JobRunner(
        settings, db, Storage(settings.storage_url, settings.storage_options), queue, "worker-a"
    )

    def run_out(*_: object) -> None:
        raise error

    monkeypatch.setattr(runner, "_run", run_out)
    runner(job_id, 1)
    row = _row(db, job_id)
    assert (row.status, row.attempt) == (status, attempt)
    assert str(error) in (row.error if status == "failed" else row.message)
    assert ((job_id, 2) in queue.pending()) == (status == "queued")
