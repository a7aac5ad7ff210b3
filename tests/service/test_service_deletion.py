"""Deleting a user leaves nothing of theirs: not in the database's files (SQLite's main file and
write-ahead log, read as bytes), not in the queue, not in the scratch folders of dead processes."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from fastapi.testclient import TestClient
from servicekit import TINY_JOB, make_settings, photo_files, sign_up
from sqlalchemy import select

from portraitist.service.api import create_app
from portraitist.service.models import Job, Photo, Signup, User
from portraitist.service.reaper import reap_once
from portraitist.service.scratch import scratch_folder
from portraitist.service.settings import Settings

PROMPT = "a photo of {me} beside a quite unmistakable zebra-striped lighthouse"


def _database_files(settings: Settings) -> list[Path]:
    return [p for p in settings.data_dir.iterdir() if p.name.startswith(("portraitist.db", "queue.db"))]


def test_a_deleted_users_rows_are_gone_from_the_database_files_and_the_queue(
    tmp_path: Path, backend: dict[str, str], sample_photos: list[Path]
) -> None:
    settings = make_settings(tmp_path, backend)
    with TestClient(create_app(settings, reaper=False)) as client:
        headers = sign_up(client)
        user_id = headers["Authorization"].split()[1].split(".")[0]
        client.post("/v1/photos", headers=headers, files=photo_files(sample_photos[:1]))
        job_id = client.post("/v1/jobs", headers=headers, json={**TINY_JOB, "prompts": [PROMPT]}).json()["id"]
        service = client.app.state.service
        with service.db.session() as session:
            token_hash = session.get_one(User, user_id).token_hash
        assert (job_id, 1) in service.queue.pending()
        secrets = [token_hash.encode(), PROMPT.encode(), job_id.encode()]
        if not backend:  # before: they are there to be found, so finding none after means something
            assert all(any(s in p.read_bytes() for p in _database_files(settings)) for s in secrets)

        assert client.delete("/v1/me", headers=headers).status_code == 204

        assert service.queue.pending() == set()
        with service.db.session() as session:
            for table in (User, Photo, Job):
                assert session.scalars(select(table)).all() == [], table
            assert session.scalars(select(Signup.user_id)).all() == [None]
        # read while the service still runs: closing its last connection would checkpoint by itself
        for path in _database_files(settings) if not backend else []:
            data = path.read_bytes()
            assert not [s for s in secrets if s in data], path


def test_the_reaper_removes_what_a_dead_process_left_in_scratch(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, {})
    assert settings.scratch_dir is not None
    gone = subprocess.Popen(["true"])
    gone.wait()
    left = settings.scratch_dir / f"{socket.gethostname()}+{gone.pid}+job-abc+x1"
    (left / "photos").mkdir(parents=True)
    (left / "photos" / "me.jpg").write_bytes(b"a user's photo")
    elsewhere = settings.scratch_dir / f"another-host+{os.getpid()}+job-def+x2"  # not this host's to judge
    elsewhere.mkdir()
    with TestClient(create_app(settings, reaper=False)) as client:
        service = client.app.state.service
        with scratch_folder(settings.scratch_dir, "job-live") as live:
            reaped = reap_once(service.db, service.queue, settings)
            assert reaped.swept == [left] and live.exists() and elsewhere.exists()
        assert not live.exists()  # its own process removes it on the way out
