"""A job may name any base the operator allows, SDXL included; the bot offers them as buttons."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from servicekit import TINY_JOB, make_settings, photo_files, sign_up

from portraitist.service.api import create_app
from portraitist.service.bot import PortraitBot


def test_an_sdxl_base_is_accepted_where_the_operator_allows_it(
    tmp_path: Path, backend: dict[str, str], sample_photos: list[Path]
) -> None:
    sdxl = {**TINY_JOB, "base": "tiny-xl"}
    for allowed, status in ((["tiny", "tiny-xl"], 201), (["tiny"], 422)):
        settings = make_settings(tmp_path / str(status), backend, allowed_bases=allowed)
        with TestClient(create_app(settings)) as client:
            headers = sign_up(client)
            client.post("/v1/photos", headers=headers, files=photo_files(sample_photos[:1]))
            response = client.post("/v1/jobs", headers=headers, json=sdxl)
            assert response.status_code == status, response.json()
            assert client.get("/v1/options").json()["bases"] == allowed


def test_the_bot_offers_the_allowed_bases_and_starts_the_chosen_one(
    tmp_path: Path, backend: dict[str, str]
) -> None:
    bot = PortraitBot(make_settings(tmp_path, backend, bot_job={**TINY_JOB, "base": "tiny"}))
    bot.styles, bot.bases = ["photo", "anime"], ["tiny", "tiny-xl"]

    rows = bot.keyboard({"photo"}, "tiny-xl").inline_keyboard

    assert [(b.text, b.callback_data) for b in rows[1]] == [
        ("tiny", "base:tiny"),
        ("✅ tiny-xl", "base:tiny-xl"),
    ]
    assert rows[-1][0].callback_data == "start"
    assert bot.job_request({"photo"}, "tiny-xl") == {**TINY_JOB, "base": "tiny-xl", "styles": ["photo"]}
    bot.bases = ["tiny"]  # one base: nothing to choose
    assert len(bot.keyboard({"photo"}, "tiny").inline_keyboard) == 2
