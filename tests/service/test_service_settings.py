"""Service settings: defaults under one folder, a TOML file, the environment, explicit flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from portraitist.errors import PortraitistError
from portraitist.service.settings import Settings, load_settings


def test_everything_lives_under_the_data_dir_by_default(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path / 'portraitist.db'}"
    assert settings.queue_url == f"sqlite:///{tmp_path / 'queue.db'}"
    assert settings.storage_url == str(tmp_path / "storage")


def test_flags_win_over_the_environment_which_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "service.toml"
    config.write_text(
        '[service]\nmax_photos = 7\nmax_images = 8\nsignup = "admin"\nadmin_token = "t"\n'
        '[service.job_defaults]\nprepare = { clip_model = "tiny" }\n'
    )
    monkeypatch.setenv("PORTRAITIST_CONFIG", str(config))
    monkeypatch.setenv("PORTRAITIST_MAX_PHOTOS", "9")
    settings = load_settings(data_dir=tmp_path, max_images=None)
    assert (settings.max_photos, settings.max_images, settings.signup) == (9, 8, "admin")
    assert settings.job_config({"n": 2}) == {"prepare": {"clip_model": "tiny"}, "n": 2}
    assert load_settings(data_dir=tmp_path, max_photos=11).max_photos == 11


def test_a_child_process_gets_the_same_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        queue_url="redis://127.0.0.1:6379/3",
        allowed_bases=["tiny"],
        storage_options={"endpoint_url": "http://127.0.0.1:9000"},
    )
    for name, value in settings.as_environment().items():
        monkeypatch.setenv(name, value)
    assert Settings() == settings


def test_bad_settings_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(PortraitistError, match="admin_token"):
        load_settings(data_dir=tmp_path, signup="admin")
    with pytest.raises(PortraitistError, match="twice heartbeat_interval_s"):
        load_settings(data_dir=tmp_path, heartbeat_interval_s=10, stale_after_s=15)
