"""The app: the HTTP API under /v1 (OpenAPI at /docs), the web page at /, and what guards them.

Routes live in routes/, one module per resource; what they need (the process's parts, a
database session, the user) arrives as dependencies from dependencies.py. In front of the
app, BodyGuard (guard.py) authenticates and sizes a request before its body is read, and
SecurityHeaders (headers.py) sets the headers every answer carries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from portraitist.errors import PortraitistError
from portraitist.service.db import Database
from portraitist.service.dependencies import Service
from portraitist.service.guard import BodyGuard
from portraitist.service.headers import SecurityHeaders
from portraitist.service.limits import RateLimiter
from portraitist.service.queue import JobQueue
from portraitist.service.reaper import Reaper
from portraitist.service.routes import jobs, pages, photos, results, users
from portraitist.service.settings import Settings
from portraitist.service.storage import Storage
from portraitist.service.supervisor import SupervisedWorker
from portraitist.service.uploads import PhotoJudge


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
    for resource in (users, photos, jobs, results):
        app.include_router(resource.router, prefix="/v1")
    app.include_router(pages.router)
    app.add_exception_handler(PortraitistError, _user_error)
    app.mount("/static", StaticFiles(directory=str(pages.STATIC)), name="static")
    app.add_middleware(BodyGuard, settings=settings)
    app.add_middleware(SecurityHeaders)
    return app


async def _user_error(request: Request, exc: Exception) -> JSONResponse:
    """A PortraitistError a route let through is the user's to fix: 400 with its sentence."""
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_400_BAD_REQUEST)
