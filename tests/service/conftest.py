"""Service test set-up: the two backends (SQLite + SqliteHuey, PostgreSQL + RedisHuey) and a client.

PostgreSQL (postgresql://postgres@127.0.0.1:5432/test, trust auth) and Redis (127.0.0.1:6379)
are used when they answer, each test in its own schema and Redis key prefix so runs never
collide; where they do not answer (a laptop), those cases skip and say why.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from servicekit import make_settings

from portraitist.service.settings import Settings

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"
BACKENDS = ["sqlite", "postgres+redis"]


def _unreachable() -> str | None:
    """Why the PostgreSQL + Redis backend cannot be tested here, or None if it can."""
    import psycopg
    import redis

    try:
        psycopg.connect(POSTGRES, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL at {POSTGRES} is not reachable ({str(exc).strip()[:120]})"
    try:
        redis.Redis.from_url(REDIS, socket_timeout=3, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis at {REDIS} is not reachable ({exc})"
    return None


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Settings that pick the backend: {} for SQLite, a private schema and queue name otherwise."""
    if request.param == "sqlite":
        yield {}
        return
    reason = _unreachable()
    if reason:
        pytest.skip(f"{reason}: the PostgreSQL + Redis variant of this test needs both on 127.0.0.1")
    import psycopg
    import redis

    run = uuid.uuid4().hex[:12]
    schema = f"portraitist_test_{run}"
    with psycopg.connect(POSTGRES, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    queue_name = f"portraitisttest{run}"
    try:
        yield {
            "database_url": f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}",
            "queue_url": REDIS,
            "queue_name": queue_name,
        }
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")
        client = redis.Redis.from_url(REDIS)
        for key in client.scan_iter(f"huey.*{queue_name}*"):
            client.delete(key)


@pytest.fixture
def settings(tmp_path: Path, backend: dict[str, str]) -> Settings:
    return make_settings(tmp_path, backend)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The API in this process (no worker): for what needs no job to run."""
    from portraitist.service.api import create_app

    with TestClient(create_app(settings)) as test_client:
        yield test_client
