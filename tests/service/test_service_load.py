"""Load: 50 users on loopback upload photos and start a job at the same moment, against one API
process and two workers; every job must finish, once, with no server error on the way."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from servicekit import OFFLINE_STAGES, TINY_JOB, ServiceProcesses, make_settings, photo_files

USERS = 50
PHOTOS = 5
POLL_S = 2.0
DEADLINE_S = 1800
JOB = {**TINY_JOB, "steps": 2, "n": 1, "k": 1}


class Recorder:
    """Every API call's latency and status, from all users' threads."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = {}
        self.errors: list[str] = []
        self.retried: list[str] = []
        self._lock = threading.Lock()

    def call(self, send: Callable[[], httpx.Response], what: str, read: bool = False) -> httpx.Response:
        """Send, time and check one request; a read (GET) is sent once more if its reused keep-alive
        connection was closed by the server at that very moment, as browsers do."""
        for retry in (False, True):
            start = time.perf_counter()
            try:
                response = send()
            except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
                if not read or retry:
                    raise
                with self._lock:
                    self.retried.append(f"{what}: {exc!r}")
                continue
            elapsed = time.perf_counter() - start
            with self._lock:
                self.latencies.setdefault(what, []).append(elapsed)
                if response.status_code >= 500:
                    self.errors.append(f"{what}: {response.status_code} {response.text[:200]}")
            return response
        raise AssertionError("unreachable")


def _user(
    url: str, photos: list[Path], recorder: Recorder, start: threading.Barrier, outcome: dict[str, object]
) -> None:
    """One user's whole visit; what went wrong lands in outcome["error"] for the test to report."""
    try:
        _visit(url, photos, recorder, start, outcome)
    except Exception as exc:  # noqa: BLE001  (whatever broke the visit is the test's report)
        outcome["error"] = repr(exc)


def _visit(
    url: str, photos: list[Path], recorder: Recorder, start: threading.Barrier, outcome: dict[str, object]
) -> None:
    with httpx.Client(base_url=url, timeout=600) as client:
        start.wait()
        token = recorder.call(lambda: client.post("/v1/users"), "sign-up").json()["token"]
        client.headers["Authorization"] = f"Bearer {token}"
        uploaded = recorder.call(
            lambda: client.post("/v1/photos", files=photo_files(photos)), "upload"
        ).json()
        assert [p["status"] for p in uploaded["photos"]] == ["kept"] * len(photos)
        job_id = recorder.call(lambda: client.post("/v1/jobs", json=JOB), "job").json()["id"]
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            job = recorder.call(lambda: client.get(f"/v1/jobs/{job_id}"), "status", read=True).json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(POLL_S)
        outcome["job"] = job
        outcome["jobs"] = recorder.call(lambda: client.get("/v1/jobs"), "list", read=True).json()["jobs"]
        outcome["results"] = recorder.call(
            lambda: client.get(f"/v1/jobs/{job_id}/results"), "results", read=True
        ).json()


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 50 jobs on two CPU workers: 15-25 minutes on a busy 2-core machine
def test_fifty_users_at_once(
    tmp_path: Path, sample_photos: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(
        tmp_path, {}, job_defaults=OFFLINE_STAGES, heartbeat_interval_s=2.0, stale_after_s=60.0
    )
    service = ServiceProcesses(settings, tmp_path)
    recorder = Recorder()
    outcomes: list[dict[str, object]] = [{} for _ in range(USERS)]
    try:
        service.start_api()
        service.start_worker()
        service.start_worker()
        start = threading.Barrier(USERS)
        users = [
            threading.Thread(
                target=_user, args=(service.url, sample_photos[:PHOTOS], recorder, start, outcome)
            )
            for outcome in outcomes
        ]
        began = time.monotonic()
        for user in users:
            user.start()
        for user in users:
            user.join()
        wall = time.monotonic() - began
    finally:
        service.stop()

    assert recorder.errors == []
    assert [o.get("error") for o in outcomes] == [None] * USERS
    jobs = [outcome["job"] for outcome in outcomes]
    assert [job["status"] for job in jobs] == ["succeeded"] * USERS, [j.get("error") for j in jobs]
    assert len({job["id"] for job in jobs}) == USERS
    assert all(len(outcome["jobs"]) == 1 for outcome in outcomes)  # nobody got a second, phantom job
    assert all(len(outcome["results"]["portraits"]) == JOB["k"] for outcome in outcomes)
    assert all(job["attempt"] == 1 for job in jobs)  # no worker was lost, so nothing ran twice

    every = [latency for latencies in recorder.latencies.values() for latency in latencies]
    uploads = recorder.latencies["upload"]
    figures = (
        f"load: {USERS} users, {len(every)} requests in {wall:.0f} s = {len(every) / wall:.1f} requests/s, "
        f"p95 latency {_p95(every) * 1000:.0f} ms "
        f"(uploads of {PHOTOS} photos: p95 {_p95(uploads) * 1000:.0f} ms), "
        f"{len(recorder.retried)} reads resent after a connection reset, "
        f"{USERS}/{USERS} jobs done, {USERS / wall * 60:.1f} jobs/min"
    )
    with capsys.disabled():
        print("\n" + figures)


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]
