"""A job's next attempt (after the machine ran out) runs the same pipeline and resumes where it stopped."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from servicekit import OFFLINE_STAGES, TINY_JOB, make_settings, photo_files, sign_up
from sqlalchemy import select

from portraitist import pipeline
from portraitist.errors import MachineError
from portraitist.service.models import Job, JobEvent
from portraitist.service.queue import JobQueue
from portraitist.service.settings import Settings
from portraitist.service.storage import Storage
from portraitist.service.worker import JobRunner


@pytest.fixture
def settings(tmp_path: Path, backend: dict[str, str]) -> Settings:
    return make_settings(tmp_path, backend, job_defaults=OFFLINE_STAGES, progress_interval_s=0.001)


def test_a_retried_attempt_with_the_same_settings_resumes(
    client: TestClient, settings: Settings, sample_photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = sign_up(client)
    client.post("/v1/photos", headers=headers, files=photo_files(sample_photos))
    job_id = client.post("/v1/jobs", headers=headers, json=TINY_JOB).json()["id"]
    db = client.app.state.service.db
    storage = Storage(settings.storage_url, settings.storage_options)
    runner = JobRunner(settings, db, storage, JobQueue(settings.queue_url, settings.queue_name), "worker-a")

    def out_of_memory(*_: object) -> None:
        raise MachineError("The GPU ran out of memory.")

    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "rank", out_of_memory)  # attempt 1 gets as far as ranking
        runner(job_id, 1)
    with db.session() as session:
        assert session.get_one(Job, job_id).attempt == 2
    runner(job_id, 2)

    with db.session() as session:
        assert session.get_one(Job, job_id).status == "succeeded"
        events = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)).all()
    first = {e.stage for e in events if e.attempt == 1}
    second = {e.stage for e in events if e.attempt == 2}
    assert {"prepare", "train", "generate"} <= first
    assert not {"prepare", "train", "generate"} & second  # finished with the same settings: not run again
    assert {"rank", "upscale"} <= second
