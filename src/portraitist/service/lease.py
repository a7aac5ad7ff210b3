"""One attempt's hold on its job: a heartbeat thread, and the rule for when it may still write.

The reaper takes a job over once its heartbeat is older than `stale_after_s`. The attempt
stops writing (to the database and to storage) once its last confirmed heartbeat is older than
half of that, so the old and the new attempt never write at the same time even when the old
one is alive but cut off (a network partition, a long pause), as long as the machines' clocks
agree to within a quarter of `stale_after_s`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Self

from portraitist.service import jobs
from portraitist.service.db import Database

log = logging.getLogger(__name__)


class JobStopped(Exception):
    """This attempt may no longer run: the job was cancelled or deleted, or a newer attempt has it."""


class Lease:
    """Heartbeats for (job, attempt) while the `with` block runs."""

    def __init__(
        self, db: Database, job_id: str, attempt: int, heartbeat_interval_s: float, stale_after_s: float
    ):
        self.db = db
        self.job_id = job_id
        self.attempt = attempt
        self.interval = heartbeat_interval_s
        self.max_age = stale_after_s / 2
        self.confirmed_at = time.monotonic()  # claim() wrote the first heartbeat
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                alive = jobs.heartbeat(self.db, self.job_id, self.attempt)
            except Exception:  # a database hiccup: the lease simply ages; check() decides
                log.exception("heartbeat of job %s attempt %d failed", self.job_id, self.attempt)
                continue
            if not alive:
                self.lost = True
                return
            self.confirmed_at = time.monotonic()

    def confirm(self) -> None:
        """A successful write of this attempt's row also proves the lease."""
        self.confirmed_at = time.monotonic()

    def check(self) -> None:
        """Raise JobStopped unless this attempt still holds the job and may write."""
        if self.lost:
            raise JobStopped(f"job {self.job_id} is no longer attempt {self.attempt}'s to run")
        age = time.monotonic() - self.confirmed_at
        if age > self.max_age:
            raise JobStopped(
                f"job {self.job_id}: no heartbeat confirmed for {age:.0f} s; another attempt may take over"
            )
