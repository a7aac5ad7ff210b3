"""What a route asks for, as FastAPI dependencies: the process's parts, a database session, the user.

The parts (settings, database, storage, queue, photo judge, rate limiter) are built once per
process by the app's lifespan (api.py) and kept on `app.state.service`; a route names the ones
it uses. The user arrives through `CurrentUser` (bearer token), a job of theirs through
`OwnedJob`. Anything of another user's answers 404, exactly as something that does not exist.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from portraitist.service import jobs
from portraitist.service.auth import WRONG_TOKEN, find_user
from portraitist.service.db import Database
from portraitist.service.guard import too_many_requests
from portraitist.service.limits import RateLimiter
from portraitist.service.models import Job, User
from portraitist.service.queue import JobQueue
from portraitist.service.settings import Settings
from portraitist.service.storage import Storage
from portraitist.service.uploads import PhotoJudge


@dataclass
class Service:
    """What every request needs, built once per process."""

    settings: Settings
    db: Database
    storage: Storage
    queue: JobQueue
    judge: PhotoJudge
    limiter: RateLimiter


def _service(request: Request) -> Service:
    return request.app.state.service


def _settings(request: Request) -> Settings:
    return _service(request).settings


def _database(request: Request) -> Database:
    return _service(request).db


def _storage(request: Request) -> Storage:
    return _service(request).storage


def _queue(request: Request) -> JobQueue:
    return _service(request).queue


def _judge(request: Request) -> PhotoJudge:
    return _service(request).judge


def _session(request: Request) -> Iterator[Session]:
    """A session for the request; the data layer commits what it writes before the route answers."""
    with _service(request).db.sessions() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(_settings)]
DatabaseDep = Annotated[Database, Depends(_database)]
StorageDep = Annotated[Storage, Depends(_storage)]
QueueDep = Annotated[JobQueue, Depends(_queue)]
JudgeDep = Annotated[PhotoJudge, Depends(_judge)]
SessionDep = Annotated[Session, Depends(_session)]

_bearer = HTTPBearer(auto_error=False, description="The token from POST /v1/users.")
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def too_many(detail: str, wait_s: float) -> HTTPException:
    """429 with the Retry-After a client should honour."""
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS, detail, headers={"Retry-After": str(math.ceil(wait_s))}
    )


def _current_user(request: Request, session: SessionDep, credentials: BearerCredentials) -> User:
    """The user whose token came in `Authorization: Bearer`, else 401; 429 over the request rate."""
    user = find_user(session, credentials.credentials if credentials else "")
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, WRONG_TOKEN, headers={"WWW-Authenticate": "Bearer"})
    wait = _service(request).limiter.hit(user.id)
    if wait is not None:
        raise too_many(too_many_requests(wait), wait)
    return user


CurrentUser = Annotated[User, Depends(_current_user)]


def _owned_job(job_id: str, user: CurrentUser, session: SessionDep) -> Job:
    """The user's job with this id; 404 for a job that is not theirs, as for one that does not exist."""
    job = jobs.owned(session, user.id, job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such job.")
    return job


OwnedJob = Annotated[Job, Depends(_owned_job)]
