"""The HTTP API under /v1 (OpenAPI at /docs) and the web page at /.

Routes are thin: they validate, check ownership and delegate to jobs.py (state changes),
storage.py (files) and uploads.py (judging photos). The user arrives through the
`current_user` dependency (bearer token), the database session through `db_session`. Anything
of another user's answers 404, exactly as something that does not exist.
"""

from __future__ import annotations

import logging
import math
import mimetypes
import unicodedata
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    File,
    Header,
    HTTPException,
    Request,
    Response,
    UploadFile,
    status,
)
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portraitist.config import validation_problems
from portraitist.errors import PortraitistError
from portraitist.generate.prompts import ME
from portraitist.generate.styles import STYLES, get_style
from portraitist.pipeline import RunConfig
from portraitist.service import accounts, jobs
from portraitist.service.auth import WRONG_TOKEN, find_user, same_secret
from portraitist.service.db import Database
from portraitist.service.events import event_stream
from portraitist.service.guard import BodyGuard, too_many_requests
from portraitist.service.headers import SANDBOXED_CSP, SecurityHeaders, with_inline_scripts_allowed
from portraitist.service.limits import RateLimiter
from portraitist.service.models import Job, Photo, User
from portraitist.service.queue import JobQueue
from portraitist.service.reaper import Reaper
from portraitist.service.scratch import scratch_folder
from portraitist.service.schemas import (
    JobCreated,
    JobOut,
    JobRequest,
    JobsOut,
    MeOut,
    OptionsOut,
    PhotoOut,
    PhotosOut,
    PortraitOut,
    ResultsOut,
    StyleOut,
    TokenOut,
)
from portraitist.service.settings import Settings
from portraitist.service.storage import (
    Storage,
    check_key,
    photo_key,
    results_prefix,
    user_prefix,
    workspace_prefix,
)
from portraitist.service.supervisor import SupervisedWorker
from portraitist.service.uploads import PhotoJudge, copy_capped

log = logging.getLogger(__name__)

STATIC = resources.files("portraitist.service") / "static"
# where Swagger UI's files come from (FastAPI's default), allowed on the /docs page only
_DOCS_CDN = "https://cdn.jsdelivr.net"


@dataclass
class Service:
    """What every request needs, built once per process."""

    settings: Settings
    db: Database
    storage: Storage
    queue: JobQueue
    judge: PhotoJudge
    limiter: RateLimiter


def service(request: Request) -> Service:
    return request.app.state.service


def db_session(request: Request) -> Iterator[Session]:
    """A session for the request; routes that write commit it themselves before answering."""
    with service(request).db.sessions() as session:
        yield session


DbSession = Annotated[Session, Depends(db_session)]
ServiceDep = Annotated[Service, Depends(service)]
_bearer = HTTPBearer(auto_error=False, description="The token from POST /v1/users.")


def _too_many(detail: str, wait_s: float) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS, detail, headers={"Retry-After": str(math.ceil(wait_s))}
    )


def current_user(
    svc: ServiceDep,
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user whose token came in `Authorization: Bearer`, else 401; 429 over the request rate."""
    user = find_user(session, credentials.credentials if credentials else "")
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, WRONG_TOKEN, headers={"WWW-Authenticate": "Bearer"})
    wait = svc.limiter.hit(user.id)
    if wait is not None:
        raise _too_many(too_many_requests(wait), wait)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def owned_job(job_id: str, user: CurrentUser, session: DbSession) -> Job:
    """The user's job with this id; 404 for a job that is not theirs, as for one that does not exist."""
    job = session.get(Job, job_id)
    if job is None or job.user_id != user.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such job.")
    return job


OwnedJob = Annotated[Job, Depends(owned_job)]


def _display_name(filename: str | None) -> str:
    """The upload's name for showing it back: last path part, no control characters, capped."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")
    return name[:255] or "photo"


def _stream(
    storage: Storage, key: str, filename: str, headers: dict[str, str] | None = None
) -> StreamingResponse:
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


def _check_run_config(svc: Service, config: dict[str, Any]) -> None:
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
    if run.base not in svc.settings.allowed_bases:
        problems.append(f"base must be one of {', '.join(svc.settings.allowed_bases)}")
    if run.n > svc.settings.max_images:
        problems.append(f"n must be at most {svc.settings.max_images}")
    if run.steps is not None and run.steps > svc.settings.max_steps:
        problems.append(f"steps must be at most {svc.settings.max_steps}")
    if problems:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "Invalid job: " + "; ".join(problems) + "."
        )


def build_router() -> APIRouter:
    v1 = APIRouter(prefix="/v1")

    @v1.post("/users", status_code=status.HTTP_201_CREATED, response_model=TokenOut, tags=["users"])
    def create_user(
        request: Request,
        svc: ServiceDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> TokenOut:
        """Sign up: a new user and its API token (open sign-up, or the admin token when signup = admin);
        429 past signups_per_hour from one address, unless the admin token vouches for it (the bot)."""
        given = credentials.credentials if credentials else ""
        vouched = bool(svc.settings.admin_token) and same_secret(given, svc.settings.admin_token)
        if svc.settings.signup == "admin" and not vouched:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "Sign-up needs the admin token on this server.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        address = None if vouched else (request.client.host if request.client else "")
        try:
            user_id, token = accounts.sign_up(svc.db, address, svc.settings.signups_per_hour)
        except accounts.TooManySignups as exc:
            raise _too_many(str(exc), exc.retry_after_s) from exc
        return TokenOut(id=user_id, token=token)

    @v1.get("/me", response_model=MeOut, tags=["users"])
    def me(user: CurrentUser, session: DbSession) -> MeOut:
        photos = session.scalar(select(func.count()).select_from(Photo).where(Photo.user_id == user.id))
        count = session.scalar(select(func.count()).select_from(Job).where(Job.user_id == user.id))
        return MeOut(id=user.id, created_at=user.created_at, photos=photos or 0, jobs=count or 0)

    @v1.delete("/me", status_code=status.HTTP_204_NO_CONTENT, tags=["users"])
    def delete_me(user: CurrentUser, svc: ServiceDep, session: DbSession) -> Response:
        """Delete the user and everything of theirs: photos, models, results, jobs, from storage, the
        queue and the database (scrubbed from its files, not only unlinked).

        A job still running stops at its next progress report (its row is gone) and removes what it
        uploaded after this.
        """
        session.close()  # its read snapshot would hold up the scrub of the database files
        job_ids = accounts.delete_user(svc.db, user.id)
        try:
            svc.queue.discard(job_ids)
        except Exception:  # the queue is away: a worker skips these messages anyway (no such job)
            log.exception("could not drop the queue messages of a deleted user's jobs")
        svc.storage.delete_prefix(user_prefix(user.id))
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @v1.post("/photos", response_model=PhotosOut, tags=["photos"])
    def upload_photos(
        files: Annotated[
            list[UploadFile], File(description="Photos (JPEG, PNG, WebP, HEIC, ...), many at once.")
        ],
        user: CurrentUser,
        svc: ServiceDep,
        session: DbSession,
    ) -> PhotosOut:
        """Upload photos. Each file is judged as `prepare` would (readable, within the caps, exactly one
        person); kept ones are stored, rejected ones come back with the reason and are not stored."""
        settings = svc.settings
        out = []

        def reject(name: str, reason: str | None, message: str | None) -> None:
            out.append(PhotoOut(id=None, name=name, status="rejected", reason=reason, message=message))

        with scratch_folder(svc.settings.scratch_dir, "upload") as tmp:
            for index, upload in enumerate(files):
                name = _display_name(upload.filename)
                if index >= settings.max_upload_files:
                    reject(name, "too_many", f"At most {settings.max_upload_files} files per upload.")
                    continue
                path = Path(tmp) / str(index)  # the upload's own name never reaches the file system
                if not copy_capped(upload.file, path, settings.max_photo_bytes):
                    reject(
                        name,
                        "too_large",
                        f"The file is larger than {settings.max_photo_bytes / 2**20:.0f} MiB.",
                    )
                    continue
                judged = svc.judge.judge(path)
                if not judged.kept:
                    reject(name, judged.reason, judged.message)
                    continue
                jobs.lock_user(session, user.id)
                stored = session.scalar(
                    select(func.count()).select_from(Photo).where(Photo.user_id == user.id)
                )
                if stored >= settings.max_photos:
                    session.rollback()
                    reject(
                        name,
                        "too_many",
                        f"You have {stored} photos stored, the most allowed; delete some first.",
                    )
                    continue
                photo = Photo(
                    user_id=user.id,
                    name=name,
                    suffix=judged.suffix,
                    size=path.stat().st_size,
                    width=judged.width,
                    height=judged.height,
                )
                session.add(photo)
                session.flush()
                svc.storage.put_file(path, photo_key(user.id, photo.id, photo.suffix))
                session.commit()
                out.append(PhotoOut.of(photo).model_copy(update={"message": judged.message}))
        return PhotosOut(photos=out)

    @v1.get("/photos", response_model=PhotosOut, tags=["photos"])
    def list_photos(user: CurrentUser, session: DbSession) -> PhotosOut:
        photos = session.scalars(
            select(Photo).where(Photo.user_id == user.id).order_by(Photo.created_at)
        ).all()
        return PhotosOut(photos=[PhotoOut.of(p) for p in photos])

    @v1.delete("/photos/{photo_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["photos"])
    def delete_photo(photo_id: str, user: CurrentUser, svc: ServiceDep, session: DbSession) -> Response:
        photo = session.get(Photo, photo_id)
        if photo is None or photo.user_id != user.id:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such photo.")
        session.delete(photo)
        session.commit()
        svc.storage.delete(photo_key(user.id, photo.id, photo.suffix))
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @v1.get("/options", response_model=OptionsOut, tags=["jobs"])
    def options(svc: ServiceDep) -> OptionsOut:
        """What a job may ask for on this server: base models, styles and limits."""
        settings = svc.settings
        return OptionsOut(
            bases=settings.allowed_bases,
            styles=[StyleOut(name=s.name, description=s.description) for s in STYLES.values()],
            max_images=settings.max_images,
            max_steps=settings.max_steps,
            max_photos=settings.max_photos,
            max_upload_files=settings.max_upload_files,
            max_photo_bytes=settings.max_photo_bytes,
        )

    @v1.post("/jobs", status_code=status.HTTP_201_CREATED, response_model=JobCreated, tags=["jobs"])
    def create_job(body: JobRequest, user: CurrentUser, svc: ServiceDep, session: DbSession) -> JobCreated:
        """Start making portraits from all the user's stored photos."""
        photo_ids = list(
            session.scalars(select(Photo.id).where(Photo.user_id == user.id).order_by(Photo.created_at))
        )
        if not photo_ids:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "Upload photos first (POST /v1/photos)."
            )
        config = body.model_dump(exclude_none=True)
        _check_run_config(svc, svc.settings.job_config(config))
        try:
            job = jobs.create_job(
                svc.db,
                user.id,
                config,
                photo_ids,
                svc.settings.max_jobs_per_user,
                svc.settings.max_jobs_per_address,
            )
        except jobs.TooManyJobs as exc:
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(exc)) from exc
        try:
            svc.queue.enqueue(job.id, job.attempt)
        except Exception:  # the row is the truth: the reaper enqueues it again once the queue is back
            log.exception("job %s saved but not enqueued", job.id)
        return JobCreated(id=job.id)

    @v1.get("/jobs", response_model=JobsOut, tags=["jobs"])
    def list_jobs(user: CurrentUser, session: DbSession) -> JobsOut:
        rows = session.scalars(
            select(Job).where(Job.user_id == user.id).order_by(Job.created_at.desc())
        ).all()
        return JobsOut(jobs=[JobOut.of(job) for job in rows])

    @v1.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"])
    def get_job(job: OwnedJob) -> JobOut:
        """The job's status, stage, step of total and ETA (poll this, or stream /events)."""
        return JobOut.of(job)

    @v1.get(
        "/jobs/{job_id}/events",
        tags=["jobs"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    def job_events(
        job: OwnedJob, svc: ServiceDep, last_event_id: Annotated[int, Header(ge=0, le=2**63 - 1)] = 0
    ) -> StreamingResponse:
        """Progress as Server-Sent Events (`event: progress`, JSON data), in order, ending after the
        event with status succeeded, failed or cancelled. Reconnect with Last-Event-ID to resume."""
        return StreamingResponse(
            event_stream(svc.db, job.id, last_event_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @v1.post("/jobs/{job_id}/cancel", response_model=JobOut, tags=["jobs"])
    def cancel_job(job: OwnedJob, user: CurrentUser, svc: ServiceDep, session: DbSession) -> JobOut:
        """Cancel a queued or running job; a running one stops at its next progress report."""
        was_queued = job.status == "queued"
        if not jobs.cancel(svc.db, user.id, job.id):
            raise HTTPException(status.HTTP_409_CONFLICT, f"The job is already {job.status}.")
        if was_queued:
            # no worker holds it: nothing else will clean its workspace (a resumed job has one)
            svc.storage.delete_prefix(workspace_prefix(user.id, job.id))
        session.refresh(job)
        return JobOut.of(job)

    @v1.get("/jobs/{job_id}/results", response_model=ResultsOut, tags=["results"])
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

    @v1.get("/jobs/{job_id}/results/{name}", tags=["results"], response_class=StreamingResponse)
    def job_result_file(name: str, job: OwnedJob, svc: ServiceDep) -> StreamingResponse:
        """One portrait, by the name /results lists."""
        matches = [rel for rel in job.results if Path(rel).name == name] if job.status == "succeeded" else []
        if not matches:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such result.")
        return _stream(svc.storage, f"{results_prefix(job.user_id, job.id, job.attempt)}/{matches[0]}", name)

    @v1.get("/jobs/{job_id}/files/{key}/{path:path}", tags=["results"], response_class=StreamingResponse)
    def job_shared_file(
        job_id: str, key: str, path: str, svc: ServiceDep, session: DbSession
    ) -> StreamingResponse:
        """A file of a succeeded job (a portrait, the report page and its images), by the job's secret
        link key from /results, so that <img> tags and a plain browser tab can fetch it."""
        job = session.get(Job, job_id)
        if job is None or job.status != "succeeded" or not same_secret(key, job.share_key):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such file.")
        try:
            check_key(path)
        except ValueError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such file.") from exc
        return _stream(
            svc.storage,
            f"{results_prefix(job.user_id, job.id, job.attempt)}/{path}",
            Path(path).name,
            {"Content-Security-Policy": SANDBOXED_CSP},
        )

    return v1


def create_app(settings: Settings, reaper: bool = True, worker: bool = False) -> FastAPI:
    """The API app; `reaper`: also run the reaper in this process (serve does); `worker`: also run a
    job worker as a child process, stopped when the app shuts down (serve --with-worker)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url)
        db.create_tables()
        queue = JobQueue(settings.queue_url, settings.queue_name)
        judge = PhotoJudge(settings.max_photo_pixels, settings.max_photo_bytes, settings.photo_checks)
        storage = Storage(settings.storage_url, settings.storage_options)
        limiter = RateLimiter(settings.requests_per_minute)
        app.state.service = Service(settings, db, storage, queue, judge, limiter)
        running = Reaper(db, queue, settings).start() if reaper else None
        child = SupervisedWorker(settings).start() if worker else None
        try:
            yield
        finally:
            if child:
                child.stop()
            if running:
                running.stop()
            judge.close()
            db.dispose()

    app = FastAPI(
        title="portraitist",
        summary="Portraits of a person from a handful of photos: upload, start a job, watch it, download.",
        version="1",
        lifespan=lifespan,
        docs_url=None,
    )
    app.include_router(build_router())

    @app.exception_handler(PortraitistError)
    async def user_error(request: Request, exc: PortraitistError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_400_BAD_REQUEST)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        page = get_swagger_ui_html(openapi_url=app.openapi_url or "", title=f"{app.title} API")
        return with_inline_scripts_allowed(page, _DOCS_CDN)

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.add_middleware(BodyGuard, settings=settings)
    app.add_middleware(SecurityHeaders)
    return app
