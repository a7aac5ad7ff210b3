"""`serve --with-worker` as real processes: its worker goes when serve goes, however serve goes,
and a job it was running is handed on, not lost."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from servicekit import (
    OFFLINE_STAGES,
    TINY_JOB,
    ServiceProcesses,
    make_settings,
    photo_files,
    read_events,
    sign_up,
    user_files,
    wait_for,
)

from portraitist.service.db import Database
from portraitist.service.models import Job
from portraitist.service.settings import Settings

LEFT_AFTER_S = 20  # how long after the signal no process of serve's may be left


@pytest.fixture
def service_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, {}, job_defaults=OFFLINE_STAGES)


@pytest.fixture
def service(service_settings: Settings, tmp_path: Path) -> Iterator[ServiceProcesses]:
    processes = ServiceProcesses(service_settings, tmp_path)
    yield processes
    processes.stop()


def _with_worker(service: ServiceProcesses) -> tuple[subprocess.Popen[bytes], list[psutil.Process]]:
    serve = service.start_api("--with-worker")
    children = wait_for(
        lambda: psutil.Process(serve.pid).children(recursive=True), 60, "serve to start its worker"
    )
    return serve, children


def _left_after_signal(
    serve: subprocess.Popen[bytes], children: list[psutil.Process]
) -> list[subprocess.Popen[bytes] | psutil.Process]:
    """What of serve and its children still runs LEFT_AFTER_S seconds after serve was signalled."""
    deadline = time.monotonic() + LEFT_AFTER_S
    try:
        serve.wait(timeout=LEFT_AFTER_S)
    except subprocess.TimeoutExpired:
        return [serve, *children]
    _, alive = psutil.wait_procs(children, timeout=max(deadline - time.monotonic(), 0))
    return alive


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_the_worker_stops_with_serve(service: ServiceProcesses, how: signal.Signals) -> None:
    serve, children = _with_worker(service)
    serve.send_signal(how)
    # SIGKILL: serve could not stop it; the worker sees its parent gone and stops by itself
    assert _left_after_signal(serve, children) == []


@pytest.mark.slow
def test_a_job_running_when_serve_is_stopped_is_handed_on_and_finishes_later(
    service: ServiceProcesses, service_settings: Settings, sample_photos: list[Path]
) -> None:
    serve, children = _with_worker(service)
    client = service.client(sign_up(service.client()))
    client.post("/v1/photos", files=photo_files(sample_photos))
    job_id = client.post("/v1/jobs", json={**TINY_JOB, "steps": 40}).json()["id"]
    wait_for(lambda: (client.get(f"/v1/jobs/{job_id}").json()["step"] or 0) > 0, 300, "the job to train")
    serve.send_signal(signal.SIGTERM)
    assert _left_after_signal(serve, children) == []
    with Database(service_settings.database_url).session() as session:
        job = session.get_one(Job, job_id)
        assert (job.status, job.attempt) == ("queued", 2) and "stopped" in (job.message or "")

    service.start_api("--with-worker")
    events = read_events(client, job_id, 300)
    assert events[-1]["status"] == "succeeded" and events[-1]["attempt"] == 2
    # the attempt that finished removes its scratch folder just after it marks the job succeeded
    wait_for(lambda: user_files(service_settings, service.tmpdir) == [], 30, "the scratch folder to go")
