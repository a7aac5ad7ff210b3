"""Whole jobs through the service as it runs in production: an API process and worker processes.

The tiny random model keeps each job to seconds of compute; what is checked is the service's
promise: progress events in order, results downloadable, and no job lost or duplicated when
a worker is killed in the middle of training or the API dies while jobs wait. The two crash
tests take about two minutes each per backend on a 2-core machine, so they are marked slow.
"""

from __future__ import annotations

import io
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from servicekit import (
    OFFLINE_STAGES,
    TINY_JOB,
    ServiceProcesses,
    make_settings,
    photo_files,
    read_events,
    user_files,
    wait_for,
)

from portraitist.service.settings import Settings
from portraitist.service.storage import Storage

JOB_TIMEOUT = 300


@pytest.fixture
def service_settings(tmp_path: Path, backend: dict[str, str]) -> Settings:
    return make_settings(tmp_path, backend, job_defaults=OFFLINE_STAGES, max_jobs_per_user=5)


@pytest.fixture
def service(service_settings: Settings, tmp_path: Path) -> Iterator[ServiceProcesses]:
    processes = ServiceProcesses(service_settings, tmp_path)
    yield processes
    processes.stop()


def _signed_up_with_photos(service: ServiceProcesses, photos: list[Path]) -> httpx.Client:
    client = service.client()
    token = client.post("/v1/users").json()["token"]
    client.headers["Authorization"] = f"Bearer {token}"
    kept = client.post("/v1/photos", files=photo_files(photos)).json()["photos"]
    assert [p["status"] for p in kept] == ["kept"] * len(photos)
    return client


def _status(client: httpx.Client, job_id: str) -> dict[str, object]:
    return client.get(f"/v1/jobs/{job_id}").json()


def _image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_a_job_from_upload_to_downloaded_portraits(
    service: ServiceProcesses, service_settings: Settings, sample_photos: list[Path]
) -> None:
    service.start_api()
    service.start_worker()
    client = _signed_up_with_photos(service, sample_photos)
    storage = Storage(service_settings.storage_url)
    user_id = client.headers["Authorization"].split()[1].split(".")[0]

    # a job cancelled while it trains stops there, cleans up, and frees the worker for the next one
    cancelled = client.post("/v1/jobs", json={**TINY_JOB, "steps": 500}).json()["id"]
    job_id = client.post("/v1/jobs", json={**TINY_JOB, "k": 2}).json()["id"]
    wait_for(
        lambda: (
            (_status(client, cancelled)["step"] or 0) > 0 and _status(client, cancelled)["stage"] == "train"
        ),
        JOB_TIMEOUT,
        "the first job to train",
    )
    assert client.post(f"/v1/jobs/{cancelled}/cancel").json()["status"] == "cancelled"
    assert read_events(client, cancelled, 30)[-1]["status"] == "cancelled"

    events = read_events(client, job_id, JOB_TIMEOUT)
    assert storage.list(f"users/{user_id}/jobs/{cancelled}") == []  # its worker removed its workspace

    assert events[0]["status"] == "queued" and events[-1]["status"] == "succeeded"
    assert [e["id"] for e in events] == sorted({e["id"] for e in events})
    stages = list(dict.fromkeys(e["stage"] for e in events if e["stage"] and e["stage"] != "run"))
    assert [s for s in stages if s in ("prepare", "train", "generate", "rank", "upscale")] == [
        "prepare",
        "train",
        "generate",
        "rank",
        "upscale",
    ]
    train_steps = [e["step"] for e in events if e["stage"] == "train"]
    assert train_steps == sorted(train_steps) and train_steps[-1] == TINY_JOB["steps"]
    assert all(e["attempt"] == 1 for e in events)

    job = _status(client, job_id)
    assert job["status"] == "succeeded" and job["eta_s"] == 0 and job["error"] is None
    results = client.get(f"/v1/jobs/{job_id}/results").json()
    assert len(results["portraits"]) == 2
    anonymous = httpx.Client(base_url=service.url)  # the links work without the token (img tags)
    for portrait in results["portraits"]:
        linked = _image(anonymous.get(portrait["url"]).content)
        direct = client.get(f"/v1/jobs/{job_id}/results/{portrait['name']}")
        assert direct.headers["content-type"] == "image/png"
        assert _image(direct.content).size == linked.size
    report = anonymous.get(results["report_url"])
    assert report.status_code == 200 and "<html" in report.text.lower()
    assert "sandbox" in report.headers["content-security-policy"]
    assert str(service_settings.scratch_dir) not in report.text and "/tmp" not in report.text
    report_dir = results["report_url"].rsplit("/", 1)[0]
    sources = re.findall(r'<img src="([^"]+)"', report.text)
    assert any("selected/" in src for src in sources)
    for src in sources:  # every picture the report shows is served beside it
        assert anonymous.get(f"{report_dir}/{src}").status_code == 200, src

    # the workspace (weights, checkpoints) is gone; only the published results stay
    kept = storage.list(f"users/{user_id}/jobs/{job_id}")
    assert kept and all(key.startswith("results/1/") for key in kept)

    # and deleting the user leaves nothing: not in storage, not in the database, not on local disk
    assert client.delete("/v1/me").status_code == 204
    assert storage.list(f"users/{user_id}") == []
    assert user_files(service_settings, service.tmpdir) == []
    assert client.get(f"/v1/jobs/{job_id}").status_code == 401
    assert anonymous.get(results["report_url"]).status_code == 404


@pytest.mark.slow
def test_a_worker_killed_in_training_is_replaced_and_the_job_resumes(
    tmp_path: Path, backend: dict[str, str], sample_photos: list[Path]
) -> None:
    # every progress event written (no throttling), so the steps each attempt trained are visible
    settings = make_settings(tmp_path, backend, job_defaults=OFFLINE_STAGES, progress_interval_s=0.001)
    service = ServiceProcesses(settings, tmp_path)
    try:
        service.start_api()
        doomed = service.start_worker()
        client = _signed_up_with_photos(service, sample_photos)
        job_id = client.post("/v1/jobs", json={**TINY_JOB, "steps": 20}).json()["id"]
        storage = Storage(settings.storage_url)
        user_id = client.headers["Authorization"].split()[1].split(".")[0]
        checkpoints = f"users/{user_id}/jobs/{job_id}/workspace/model/checkpoints"

        def saved_step() -> int:
            steps = [
                int(m.group(1))
                for key in storage.list(checkpoints)
                if (m := re.match(r"step-(\d+)/checkpoint.json$", key))
            ]
            return max(steps, default=0)

        killed_after = wait_for(lambda: saved_step() >= 4 and saved_step(), 240, "a checkpoint in storage")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        assert user_files(settings, service.tmpdir)  # the dead attempt's copy of the photos, for now
        service.start_worker()
        events = read_events(client, job_id, JOB_TIMEOUT)
        portraits = client.get(f"/v1/jobs/{job_id}/results").json()["portraits"]
        # the reaper removed what the killed attempt left; the second removed its own
        wait_for(lambda: user_files(settings, service.tmpdir) == [], 30, "the dead attempt's files to go")
    finally:
        service.stop()

    assert events[-1]["status"] == "succeeded" and events[-1]["attempt"] == 2
    handed_on = [e for e in events if e["status"] == "queued" and e["attempt"] == 2]
    assert len(handed_on) == 1 and "heartbeat" in handed_on[0]["message"]
    second = [e["step"] for e in events if e["attempt"] == 2 and e["stage"] == "train" and e["step"]]
    assert second and min(second) > killed_after, "the second attempt trained from scratch"
    first = [e["step"] for e in events if e["attempt"] == 1 and e["stage"] == "train" and e["step"]]
    assert max(first) >= killed_after
    stages_done_twice = [e for e in events if e["attempt"] == 2 and e["stage"] == "prepare"]
    assert stages_done_twice == [], "prepare had finished and must not run again"
    # one set of results, the second attempt's: nothing duplicated by the attempt that died
    assert all(key.startswith("results/2/") for key in storage.list(f"users/{user_id}/jobs/{job_id}"))
    assert len(portraits) == TINY_JOB["k"]


@pytest.mark.slow
def test_jobs_queued_when_the_api_dies_are_all_done(
    service: ServiceProcesses, sample_photos: list[Path]
) -> None:
    api = service.start_api()
    client = _signed_up_with_photos(service, sample_photos)
    job = {**TINY_JOB, "steps": 2, "n": 1}
    job_ids = [client.post("/v1/jobs", json={**job, "seed": seed}).json()["id"] for seed in (1, 2)]
    api.send_signal(signal.SIGKILL)
    api.wait()
    service.start_api()
    service.start_worker()
    for job_id in job_ids:
        events = read_events(client, job_id, JOB_TIMEOUT)
        assert events[-1]["status"] == "succeeded"
        assert sum(e["status"] == "running" and e["stage"] is None for e in events) == 1  # started once
    assert {j["id"] for j in client.get("/v1/jobs").json()["jobs"]} == set(job_ids)
