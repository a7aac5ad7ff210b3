"""`portraitist worker`: runs jobs one at a time, each attempt resumable and fenced by its number.

An attempt: claim the job row, copy the job's workspace (what earlier attempts finished, the
training checkpoint) and the user's photos from storage into a scratch folder under the
service's scratch_dir (scratch.py: removed on every way out, or by the reaper after a crash), run the
pipeline there, upload the workspace as it grows (so the next attempt can resume), publish
the results under the attempt's own prefix, and mark the job succeeded only if the row is
still this attempt's (jobs.py). One Huey worker thread and nothing prefetched: a worker holds
at most the one job it runs, so a message it has not started stays in the queue for others.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import signal
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from huey.consumer import Consumer
from pydantic import ValidationError
from sqlalchemy import select

from portraitist.errors import MachineError, PortraitistError
from portraitist.pipeline import run_pipeline
from portraitist.progress import ProgressEvent
from portraitist.run_config import RunConfig
from portraitist.service import jobs
from portraitist.service.db import Database
from portraitist.service.lease import JobStopped, Lease
from portraitist.service.models import Job, Photo
from portraitist.service.queue import JobQueue
from portraitist.service.reaper import Reaper
from portraitist.service.scratch import scratch_folder
from portraitist.service.settings import Settings
from portraitist.service.storage import (
    FileState,
    Storage,
    job_prefix,
    photo_key,
    results_prefix,
    workspace_prefix,
)
from portraitist.workspace import Workspace

log = logging.getLogger(__name__)

# what the report page needs besides itself: every output, and the training crops it shows
PUBLISHED = ("outputs", "dataset/crops")
# how often a worker started by serve --with-worker looks whether serve is still there
PARENT_CHECK_S = 1.0


class WorkerStopping(JobStopped):
    """The worker is shutting down: the attempt saved its workspace and hands the job on."""


@dataclass
class _StageClock:
    """When the current stage started (in this attempt), for its ETA."""

    stage: str
    started: float
    first_step: int


@dataclass
class ProgressWriter:
    """The pipeline's progress callback: writes the job row (throttled) and uploads the workspace.

    Raises JobStopped when the job is no longer this attempt's (cancelled, deleted, taken over):
    the pipeline stops at once and re-raises it.
    """

    db: Database
    storage: Storage
    lease: Lease
    job: Job
    workspace: Workspace
    settings: Settings
    uploaded: dict[str, FileState]
    stopping: threading.Event
    _clock: _StageClock | None = None
    _written_at: float = 0.0
    _synced_at: float = field(default_factory=time.monotonic)

    def __call__(self, event: ProgressEvent) -> None:
        self.lease.check()
        if self.stopping.is_set():
            self.sync()  # the checkpoint and finished stages, for whichever worker resumes the job
            raise WorkerStopping(f"job {self.job.id}: the worker is stopping")
        now = time.monotonic()
        new_stage = self._clock is None or self._clock.stage != event.stage
        if new_stage:
            self._clock = _StageClock(event.stage, now, event.step)
        finished = event.total is not None and event.step >= event.total
        if not (new_stage or finished or now - self._written_at >= self.settings.progress_interval_s):
            return
        # a new stage means the previous one finished: worth saving before anything else
        if new_stage or now - self._synced_at >= self.settings.sync_interval_s:
            self.sync()
        if not jobs.record_progress(
            self.db,
            self.job.id,
            self.job.attempt,
            event.stage,
            event.step,
            event.total,
            self._eta(event, now),
            event.message,
        ):
            raise JobStopped(f"job {self.job.id} is no longer attempt {self.job.attempt}'s to run")
        self.lease.confirm()
        self._written_at = now

    def _eta(self, event: ProgressEvent, now: float) -> float | None:
        """Seconds left in the current stage, from its pace so far in this attempt."""
        clock = self._clock
        assert clock is not None
        done = event.step - clock.first_step
        if event.total is None or done <= 0:
            return None
        return round((now - clock.started) / done * max(event.total - event.step, 0), 1)

    def sync(self) -> None:
        """Upload what changed in the workspace, while this attempt still holds the job."""
        self.lease.check()
        self.uploaded = self.storage.sync_dir(
            self.workspace.root, workspace_prefix(self.job.user_id, self.job.id), self.uploaded
        )
        self._synced_at = time.monotonic()


class JobRunner:
    """Runs one attempt of a job; the function behind the queue's `run_job` task."""

    def __init__(self, settings: Settings, db: Database, storage: Storage, queue: JobQueue, worker_id: str):
        self.settings = settings
        self.db = db
        self.storage = storage
        self.queue = queue
        self.worker_id = worker_id
        # set when the worker shuts down: the running attempt stops at its next progress report
        self.stopping = threading.Event()

    def __call__(self, job_id: str, attempt: int) -> None:
        if not jobs.claim(self.db, job_id, attempt, self.worker_id):
            log.info(
                "job %s attempt %d is not queued (a duplicate or stale message); skipped", job_id, attempt
            )
            return
        log.info("job %s attempt %d: started", job_id, attempt)
        with self.db.session() as session:
            job = session.get_one(Job, job_id)
        lease = Lease(
            self.db, job_id, attempt, self.settings.heartbeat_interval_s, self.settings.stale_after_s
        )
        with lease, scratch_folder(self.settings.scratch_dir, f"job-{job_id}") as tmp:
            try:
                self._run(job, lease, tmp)
            except WorkerStopping:
                self._retry(job_id, attempt, "its worker was stopped")
            except JobStopped as stopped:
                log.info("job %s attempt %d stopped: %s", job_id, attempt, stopped)
                self._clean_after_stop(job)
            except MachineError as exc:
                # out of GPU memory or disk: this machine's trouble, not the request's; the checkpoint is kept
                log.warning("job %s attempt %d: %s", job_id, attempt, exc)
                self._retry(job_id, attempt, f"the worker ran out: {exc}")
            except (PortraitistError, ValidationError) as exc:
                # the user's inputs cannot work (too few usable photos, a bad setting): no retry
                if jobs.fail(self.db, job_id, attempt, str(exc)):
                    self.storage.delete_prefix(workspace_prefix(job.user_id, job_id))
            except Exception as exc:
                log.exception("job %s attempt %d crashed", job_id, attempt)
                self._retry(job_id, attempt, f"it crashed: {type(exc).__name__}: {exc}")

    def _retry(self, job_id: str, attempt: int, reason: str) -> None:
        """Hand the job to its next attempt (any worker), or fail it once max_attempts are used."""
        next_attempt = jobs.requeue(self.db, job_id, attempt, reason, self.settings.max_attempts)
        if next_attempt is not None:
            self.queue.enqueue(job_id, next_attempt)
        else:
            log.error("job %s: %s", job_id, traceback.format_exc(limit=5))

    def _run(self, job: Job, lease: Lease, tmp: Path) -> None:
        workspace = Workspace(tmp / "workspace")
        uploaded = self.storage.download_dir(workspace_prefix(job.user_id, job.id), workspace.root)
        photos = self._download_photos(job, tmp / "photos")
        writer = ProgressWriter(
            self.db, self.storage, lease, job, workspace, self.settings, uploaded, self.stopping
        )
        result = run_pipeline(
            workspace, photos, RunConfig(**self.settings.job_config(job.config)), progress=writer
        )

        lease.check()
        prefix = results_prefix(job.user_id, job.id, job.attempt)
        for folder in PUBLISHED:
            self.storage.sync_dir(workspace.root / folder, f"{prefix}/{folder}", {})
        # the portraits are the images among the selected files (upscale.json sits beside them)
        names = [workspace.relative(path) for path in result.selected if _is_image(path)]
        report = workspace.relative(result.report) if result.report else None
        if jobs.succeed(self.db, job.id, job.attempt, names, report):
            log.info("job %s attempt %d: succeeded with %d portraits", job.id, job.attempt, len(names))
            self._drop_all_but(job, keep=prefix)
        else:
            self.storage.delete_prefix(prefix)
            self._clean_after_stop(job)

    def _download_photos(self, job: Job, folder: Path) -> list[Path]:
        """The job's photos under their ids; photos the user deleted since are left out."""
        with self.db.session() as session:
            photos = session.scalars(select(Photo).where(Photo.id.in_(job.photo_ids))).all()
        paths = []
        for photo in sorted(photos, key=lambda p: job.photo_ids.index(p.id)):
            path = folder / f"{photo.id}{photo.suffix}"
            self.storage.get_file(photo_key(job.user_id, photo.id, photo.suffix), path)
            paths.append(path)
        if not paths:
            raise PortraitistError("The photos of this job were deleted; upload photos and start a new job.")
        return paths

    def _drop_all_but(self, job: Job, keep: str) -> None:
        """After success: the workspace (weights, checkpoints) and other attempts' results go."""
        self.storage.delete_prefix(workspace_prefix(job.user_id, job.id))
        results = f"{job_prefix(job.user_id, job.id)}/results"
        for attempt in {key.split("/", 1)[0] for key in self.storage.list(results)}:
            if f"{results}/{attempt}" != keep:
                self.storage.delete_prefix(f"{results}/{attempt}")

    def _clean_after_stop(self, job: Job) -> None:
        """Once this attempt has stopped writing: a deleted job leaves nothing behind, a cancelled
        one keeps no workspace; a job taken over by a newer attempt is that attempt's to clean."""
        with self.db.session() as session:
            status = session.scalar(select(Job.status).where(Job.id == job.id))
        if status is None:
            self.storage.delete_prefix(job_prefix(job.user_id, job.id))
        elif status == "cancelled":
            self.storage.delete_prefix(workspace_prefix(job.user_id, job.id))


def _is_image(path: Path) -> bool:
    return (mimetypes.guess_type(path.name)[0] or "").startswith("image/")


def worker_id(gpu: int | None) -> str:
    device = f"gpu{gpu}" if gpu is not None else "cpu"
    return f"{socket.gethostname()}:{os.getpid()}:{device}"


class _Consumer(Consumer):
    """Huey's consumer, stopping gracefully on SIGTERM as on SIGINT, and telling the job first."""

    def __init__(self, runner: JobRunner, *args: object, **kwargs: object):
        super().__init__(*args, graceful_signal="TERM", **kwargs)
        self.runner = runner

    def stop(self, graceful: bool = False) -> None:
        self.runner.stopping.set()
        super().stop(graceful=True)


def watch_parent(parent_pid: int) -> None:
    """Stop this worker (as SIGTERM would) once `parent_pid` is no longer its parent: the serve
    process that started it died, even by kill -9, and nothing else would stop it."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_S)
        log.warning("the serve process %d is gone; stopping", parent_pid)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def run_worker(settings: Settings, gpu: int | None = None, parent_pid: int | None = None) -> None:
    """Serve jobs until SIGINT/SIGTERM, then hand the running job on; a reaper runs beside the consumer.

    `gpu`: the CUDA device to use, made the only visible one before torch initialises CUDA.
    `parent_pid`: also stop once that process is gone (serve --with-worker).
    """
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    db = Database(settings.database_url)
    db.create_tables()
    storage = Storage(settings.storage_url, settings.storage_options)
    queue = JobQueue(settings.queue_url, settings.queue_name)
    runner = JobRunner(settings, db, storage, queue, worker_id(gpu))
    queue.runner = runner
    reaper = Reaper(db, queue, settings).start()
    # workers=1 and no periodic tasks: one job at a time, and Huey takes a message from the queue
    # only when its one thread is free, so nothing waits inside this process
    consumer = _Consumer(
        runner,
        queue.huey,
        workers=1,
        worker_type="thread",
        periodic=False,
        max_delay=settings.poll_interval_s,
        initial_delay=min(0.1, settings.poll_interval_s),
    )
    if parent_pid is not None:
        watch_parent(parent_pid)
    log.info("worker %s: queue %s, storage %s", runner.worker_id, settings.queue_url, settings.storage_url)
    try:
        consumer.run()
    finally:
        reaper.stop()
        db.dispose()
