"""Helpers the service tests share: settings for a test, signing up, multipart photo fields."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

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
