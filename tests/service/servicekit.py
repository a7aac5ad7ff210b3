"""Helpers the service tests share: settings, signing up, photo uploads, and the service as real processes."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from portraitist.service.settings import Settings


def make_settings(tmp_path: Path, backend: dict[str, str], **overrides: Any) -> Settings:
    """Settings for a test: everything under tmp_path, short timings so recovery happens in seconds."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "heartbeat_interval_s": 0.5,
        "stale_after_s": 4.0,
        "reaper_interval_s": 0.5,
        "poll_interval_s": 0.2,
        "progress_interval_s": 0.2,
        "sync_interval_s": 0.0,
        "max_attempts": 3,
        # the tests sign up many users from one address (loopback); the limit has its own test
        "signups_per_hour": 1000,
        "max_jobs_per_address": 1000,
    }
    values.update(backend)
    values.update(overrides)
    return Settings(**values)


def sign_up(client: Any) -> dict[str, str]:
    """A new user's Authorization header."""
    response = client.post("/v1/users")
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def photo_files(paths: list[Path]) -> list[tuple[str, tuple[str, io.BytesIO, str]]]:
    """Multipart `files` fields for photo files, as a browser sends them."""
    return [("files", (path.name, io.BytesIO(path.read_bytes()), "image/jpeg")) for path in paths]


# what a job of the tests runs: the tiny random model, offline scorers, a few steps of everything
OFFLINE_STAGES = {
    "prepare": {"clip_model": "tiny"},
    "rank": {"clip_model": "tiny", "aesthetic_weights": "random", "lpips_backbone": "random"},
    "generate": {"steps": 2},
    "train": {"checkpoint_every": 2},
    "upscale": {"model": "realesr-animevideov3"},
}
TINY_JOB = {"base": "tiny", "styles": ["photo"], "n": 2, "k": 1, "steps": 4}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy; fail the test saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class ServiceProcesses:
    """The API and workers as real processes, started as `portraitist serve` and `portraitist worker` are."""

    def __init__(self, settings: Settings, logs: Path):
        self.settings = settings
        self.logs = logs
        # the processes' own temporary folder, so a test can see that nothing of a user's lands there
        self.tmpdir = logs / "tmp"
        self.tmpdir.mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            **settings.as_environment(),
            "HF_HUB_OFFLINE": "1",
            "TMPDIR": str(self.tmpdir),
        }
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen[bytes]] = []

    def _start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-c", "from portraitist.cli import main; main()", *args]
        with open(
            self.logs / f"{name}-{len(self.processes)}.log", "wb"
        ) as log:  # the child keeps its own handle
            process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def start_api(self, *options: str) -> subprocess.Popen[bytes]:
        """`portraitist serve` with `options` (e.g. --with-worker), once it answers."""
        process = self._start("api", "serve", "--port", str(self.port), *options)

        def ready() -> bool:
            assert process.poll() is None, f"the API exited; see {self.logs}"
            try:
                return httpx.get(f"{self.url}/openapi.json", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, 120, "the API to answer")
        return process

    def start_worker(self) -> subprocess.Popen[bytes]:
        return self._start("worker", "worker")

    def client(self, headers: dict[str, str] | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=headers or {}, timeout=60)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def user_files(settings: Settings, tmpdir: Path) -> list[Path]:
    """Files a job or an upload left outside storage: in the scratch folder or the processes' TMPDIR."""
    assert settings.scratch_dir is not None
    roots = [root for root in (settings.scratch_dir, tmpdir) if root.exists()]
    # torch.compile's kernels and precompiled headers (TMPDIR/torchinductor_USER; the headers go there
    # whatever TORCHINDUCTOR_CACHE_DIR says) come from code and tensor shapes, never from a user's photos
    compiler_cache = list(tmpdir.glob("torchinductor_*"))
    return [
        path
        for root in roots
        for path in root.rglob("*")
        if path.is_file() and not any(path.is_relative_to(cache) for cache in compiler_cache)
    ]


def read_events(client: httpx.Client, job_id: str, timeout: float) -> list[dict[str, Any]]:
    """Every event of the job, from its SSE stream, until the stream ends at a terminal status."""
    events = []
    with client.stream(
        "GET", f"/v1/jobs/{job_id}/events", timeout=httpx.Timeout(timeout, connect=10)
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events
