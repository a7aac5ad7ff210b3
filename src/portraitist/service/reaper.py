"""Finds jobs that nobody is running and hands them on: the part of 'no job is lost' Huey lacks.

Two kinds: a running job whose heartbeat is stale (its worker died or was cut off) goes to its
next attempt, or fails once max_attempts were used; a queued job with no message in the queue
(the process that enqueued it died between the database commit and the enqueue, or a worker
took the message and died before claiming) gets its message again. A pass also removes the
scratch folders (a user's photos and workspace) that processes which died on this host left.
Every process may run a reaper (the API and each worker do): each change is a compare-and-set,
so two reapers never hand the same job on twice.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from portraitist.service import jobs
from portraitist.service.db import Database
from portraitist.service.models import Job
from portraitist.service.queue import JobQueue
from portraitist.service.scratch import sweep
from portraitist.service.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Reaped:
    """What one pass did, by job id."""

    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    swept: list[Path] = field(default_factory=list)


def reap_once(db: Database, queue: JobQueue, settings: Settings) -> Reaped:
    """One pass over the job table, and over the scratch folders of processes that died."""
    done = Reaped()
    done.swept = sweep(settings.scratch_dir)
    now = time.time()
    cutoff = now - settings.stale_after_s
    with db.session() as session:
        stale = session.execute(
            select(Job.id, Job.attempt, Job.worker_id, Job.heartbeat_at).where(
                Job.status == "running", Job.heartbeat_at < cutoff
            )
        ).all()
        waiting = session.execute(
            select(Job.id, Job.attempt, Job.enqueued_at).where(
                Job.status == "queued", Job.enqueued_at < cutoff
            )
        ).all()
    for job in stale:
        reason = f"its worker {job.worker_id} sent no heartbeat for {now - job.heartbeat_at:.0f} s"
        attempt = jobs.requeue(db, job.id, job.attempt, reason, settings.max_attempts, stale_before=cutoff)
        if attempt is not None:
            queue.enqueue(job.id, attempt)
            done.requeued.append(job.id)
            log.warning("job %s: %s; resuming as attempt %d", job.id, reason, attempt)
        elif job.attempt >= settings.max_attempts:
            done.failed.append(job.id)
            log.warning("job %s: %s; failed after %d attempts", job.id, reason, job.attempt)
    if waiting:
        pending = queue.pending()
        for job in waiting:
            if (job.id, job.attempt) in pending:
                continue
            if jobs.touch_enqueued(db, job.id, job.attempt, job.enqueued_at):
                queue.enqueue(job.id, job.attempt)
                done.resent.append(job.id)
                log.warning(
                    "job %s attempt %d was queued with no message; enqueued it again", job.id, job.attempt
                )
    return done


class Reaper:
    """`reap_once` every `reaper_interval_s` in a daemon thread, until stopped."""

    def __init__(self, db: Database, queue: JobQueue, settings: Settings):
        self.db = db
        self.queue = queue
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reaper", daemon=True)

    def start(self) -> Reaper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.reaper_interval_s):
            try:
                reap_once(self.db, self.queue, self.settings)
            except Exception:  # the database or queue is away for a moment: try again next round
                log.exception("reaper pass failed")
