"""Results: a succeeded job's portraits, by bearer token or by the job's secret share link."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import StreamingResponse

from portraitist.service import jobs
from portraitist.service.dependencies import OwnedJob, SessionDep, StorageDep
from portraitist.service.headers import SANDBOXED_CSP
from portraitist.service.schemas import PortraitOut, ResultsOut
from portraitist.service.storage import Storage, check_key, results_prefix

router = APIRouter(tags=["results"])


@router.get("/jobs/{job_id}/results", response_model=ResultsOut)
def job_results(job: OwnedJob) -> ResultsOut:
    """The selected portraits, best first, with links that work in an <img> tag or a browser tab."""
    if job.status != "succeeded":
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"The job is {job.status}; results come when it succeeds."
        )
    base = f"/v1/jobs/{job.id}/files/{job.share_key}"
    return ResultsOut(
        portraits=[PortraitOut(name=Path(rel).name, url=f"{base}/{rel}") for rel in job.results],
        report_url=f"{base}/{job.report}" if job.report else None,
    )


@router.get("/jobs/{job_id}/results/{name}", response_class=StreamingResponse)
def job_result_file(name: str, job: OwnedJob, storage: StorageDep) -> StreamingResponse:
    """One portrait, by the name /results lists."""
    matches = [rel for rel in job.results if Path(rel).name == name] if job.status == "succeeded" else []
    if not matches:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such result.")
    return _stream(storage, f"{results_prefix(job.user_id, job.id, job.attempt)}/{matches[0]}", name)


@router.get("/jobs/{job_id}/files/{key}/{path:path}", response_class=StreamingResponse)
def job_shared_file(
    job_id: str, key: str, path: str, storage: StorageDep, session: SessionDep
) -> StreamingResponse:
    """A file of a succeeded job (a portrait, the report page and its images), by the job's secret
    link key from /results, so that <img> tags and a plain browser tab can fetch it."""
    job = jobs.shared(session, job_id, key)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such file.")
    try:
        check_key(path)
    except ValueError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such file.") from exc
    return _stream(
        storage,
        f"{results_prefix(job.user_id, job.id, job.attempt)}/{path}",
        Path(path).name,
        {"Content-Security-Policy": SANDBOXED_CSP},
    )


def _stream(
    storage: Storage, key: str, filename: str, headers: dict[str, str] | None = None
) -> StreamingResponse:
    """The stored file as a download shown inline, typed by its name; 404 if it is not there."""
    if not storage.exists(key):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such file.")
    media_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return StreamingResponse(
        storage.iter_bytes(key),
        media_type=media_type,
        headers={
            "Content-Length": str(storage.size(key)),
            "Content-Disposition": f'inline; filename="{filename}"',
            **(headers or {}),
        },
    )
