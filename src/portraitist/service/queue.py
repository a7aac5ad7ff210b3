"""The job queue: Huey, SqliteHuey on one machine and RedisHuey across machines, same code.

One task type, `run_job(job_id, attempt)`. A message is only a nudge: the worker claims the
job row for that attempt before doing anything, so duplicate or stale messages are harmless,
and the reaper re-sends messages that were lost (jobs.py, reaper.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey
from huey.storage import SqliteStorage
from sqlalchemy.engine import make_url

from portraitist.errors import PortraitistError

TASK_NAME = "run_job"


class JobQueue:
    """A Huey instance with the `run_job` task registered on it."""

    def __init__(self, url: str, name: str):
        self.huey = _make_huey(url, name)
        # the API only enqueues; a worker sets the function that runs a job
        self.runner: Callable[[str, int], None] | None = None

        def run_job(job_id: str, attempt: int) -> None:
            if self.runner is None:
                raise RuntimeError(f"job {job_id} attempt {attempt} reached a process that only enqueues")
            self.runner(job_id, attempt)

        # Huey names a task by its function's module and name, so every process registers this
        # same closure (module portraitist.service.queue) whatever runs behind it
        self._task = self.huey.task(name=TASK_NAME)(run_job)

    def enqueue(self, job_id: str, attempt: int) -> None:
        self._task(job_id, attempt)

    def pending(self) -> set[tuple[str, int]]:
        """(job id, attempt) of every message waiting in the queue."""
        return {(task.args[0], task.args[1]) for task in self.huey.pending() if task.name == TASK_NAME}

    def discard(self, job_ids: list[str]) -> None:
        """Remove the messages of these (deleted) jobs from the queue; a worker would only skip them."""
        storage = self.huey.storage
        for data in storage.enqueued_items():
            task = self.huey.deserialize_task(data)
            if task.name != TASK_NAME or task.args[0] not in job_ids:
                continue
            if isinstance(storage, SqliteStorage):
                storage.sql(
                    "delete from task where queue = ? and data = ?", (storage.name, data), commit=True
                )
            else:
                storage.conn.lrem(storage.queue_key, 0, data)
        if isinstance(storage, SqliteStorage):
            storage.sql("pragma wal_checkpoint(TRUNCATE)")


class _ScrubbingSqliteStorage(SqliteStorage):
    """SqliteHuey's storage with deleted messages zeroed on disk, not left in free pages."""

    def _create_connection(self) -> Any:
        connection = super()._create_connection()
        connection.execute("pragma secure_delete=on")
        return connection


def _make_huey(url: str, name: str) -> Huey:
    if url.startswith(("redis://", "rediss://", "unix://")):
        # results=False: the job row holds every outcome; nothing needs Huey's result store
        return RedisHuey(name, url=url, results=False)
    if url.startswith("sqlite:"):
        database = make_url(url).database
        if not database:
            raise PortraitistError(f"queue_url {url!r} names no file; use sqlite:///PATH/queue.db")
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(
            name, filename=database, results=False, timeout=60, storage_class=_ScrubbingSqliteStorage
        )
    raise PortraitistError(f"queue_url {url!r} is neither sqlite:///FILE nor redis://HOST:PORT/DB.")
