"""Jobs: what a job may ask for, starting one, watching it (poll or Server-Sent Events), cancelling it."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, status
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from portraitist.config import validation_problems
from portraitist.errors import PortraitistError
from portraitist.generate.prompts import ME
from portraitist.generate.styles import STYLES, get_style
from portraitist.run_config import RunConfig
from portraitist.service import jobs, photos
from portraitist.service.dependencies import (
    CurrentUser,
    DatabaseDep,
    OwnedJob,
    QueueDep,
    SessionDep,
    SettingsDep,
    StorageDep,
)
from portraitist.service.events import event_stream
from portraitist.service.schemas import JobCreated, JobOut, JobRequest, JobsOut, OptionsOut, StyleOut
from portraitist.service.settings import Settings
from portraitist.service.storage import workspace_prefix

log = logging.getLogger(__name__)
router = APIRouter(tags=["jobs"])


@router.get("/options", response_model=OptionsOut)
def options(settings: SettingsDep) -> OptionsOut:
    """What a job may ask for on this server: base models, styles and limits."""
    return OptionsOut(
        bases=settings.allowed_bases,
        styles=[StyleOut(name=s.name, description=s.description) for s in STYLES.values()],
        max_images=settings.max_images,
        max_steps=settings.max_steps,
        max_photos=settings.max_photos,
        max_upload_files=settings.max_upload_files,
        max_photo_bytes=settings.max_photo_bytes,
    )


@router.post("/jobs", status_code=status.HTTP_201_CREATED, response_model=JobCreated)
def create_job(
    body: JobRequest,
    user: CurrentUser,
    settings: SettingsDep,
    db: DatabaseDep,
    queue: QueueDep,
    session: SessionDep,
) -> JobCreated:
    """Start making portraits from all the user's stored photos."""
    photo_ids = photos.ids_of_user(session, user.id)
    if not photo_ids:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "Upload photos first (POST /v1/photos).")
    config = body.model_dump(exclude_none=True)
    _check_run_config(settings, settings.job_config(config))
    try:
        job = jobs.create_job(
            db, user.id, config, photo_ids, settings.max_jobs_per_user, settings.max_jobs_per_address
        )
    except jobs.TooManyJobs as exc:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(exc)) from exc
    try:
        queue.enqueue(job.id, job.attempt)
    except Exception:  # the row is the truth: the reaper enqueues it again once the queue is back
        log.exception("job %s saved but not enqueued", job.id)
    return JobCreated(id=job.id)


@router.get("/jobs", response_model=JobsOut)
def list_jobs(user: CurrentUser, session: SessionDep) -> JobsOut:
    return JobsOut(jobs=[JobOut.of(job) for job in jobs.of_user(session, user.id)])


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job: OwnedJob) -> JobOut:
    """The job's status, stage, step of total and ETA (poll this, or stream /events)."""
    return JobOut.of(job)


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
def job_events(
    job: OwnedJob, db: DatabaseDep, last_event_id: Annotated[int, Header(ge=0, le=2**63 - 1)] = 0
) -> StreamingResponse:
    """Progress as Server-Sent Events (`event: progress`, JSON data), in order, ending after the
    event with status succeeded, failed or cancelled. Reconnect with Last-Event-ID to resume."""
    return StreamingResponse(
        event_stream(db, job.id, last_event_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
def cancel_job(
    job: OwnedJob, user: CurrentUser, db: DatabaseDep, storage: StorageDep, session: SessionDep
) -> JobOut:
    """Cancel a queued or running job; a running one stops at its next progress report."""
    was_queued = job.status == "queued"
    if not jobs.cancel(db, user.id, job.id):
        raise HTTPException(status.HTTP_409_CONFLICT, f"The job is already {job.status}.")
    if was_queued:
        # no worker holds it: nothing else will clean its workspace (a resumed job has one)
        storage.delete_prefix(workspace_prefix(user.id, job.id))
    session.refresh(job)
    return JobOut.of(job)


def _check_run_config(settings: Settings, config: dict[str, Any]) -> None:
    """422 unless the pipeline accepts the config and it stays within this server's caps.

    Everything a stage would refuse only hours later, once the job reaches it, is checked here:
    each stage's settings (a validated copy), the recipe and its stages against the steps, the
    styles. Messages name the fields, never the values: the operator's job_defaults are in there.
    """
    try:
        run = RunConfig(**config)
        run.stage_configs()["train"].plan()
        for style in run.styles:
            get_style(style)
    except ValidationError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"Invalid job: {validation_problems(exc)}"
        ) from exc
    except PortraitistError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"Invalid job: {exc}") from exc
    problems = [f"the prompt {p!r} must say {ME} where you appear" for p in run.prompts if ME not in p]
    if run.base not in settings.allowed_bases:
        problems.append(f"base must be one of {', '.join(settings.allowed_bases)}")
    if run.n > settings.max_images:
        problems.append(f"n must be at most {settings.max_images}")
    if run.steps is not None and run.steps > settings.max_steps:
        problems.append(f"steps must be at most {settings.max_steps}")
    if problems:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "Invalid job: " + "; ".join(problems) + "."
        )
