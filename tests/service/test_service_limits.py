"""Abuse limits and what a job may ask for, through the HTTP API: sign-ups per address, requests
per user, jobs per address, settings checked when the job is created, and answers that say
what is allowed without echoing the operator's settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from servicekit import TINY_JOB, make_settings, photo_files, sign_up

from portraitist.service.api import create_app


def _with_photo(client: TestClient, photos: list[Path]) -> dict[str, str]:
    headers = sign_up(client)
    assert client.post("/v1/photos", headers=headers, files=photo_files(photos[:1])).status_code == 200
    return headers


def test_sign_ups_per_address_are_limited_and_deleting_does_not_reset_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, {}, signups_per_hour=3)
    with TestClient(create_app(settings)) as client:
        users = [sign_up(client) for _ in range(3)]
        refused = client.post("/v1/users")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        assert "an hour" in refused.json()["detail"]
        assert client.delete("/v1/me", headers=users[0]).status_code == 204
        assert client.post("/v1/users").status_code == 429
        assert client.get("/v1/me", headers=users[1]).status_code == 200  # users already in are not affected


def test_requests_per_user_are_limited_with_retry_after(tmp_path: Path, sample_photos: list[Path]) -> None:
    settings = make_settings(tmp_path, {}, requests_per_minute=5)
    with TestClient(create_app(settings)) as client:
        alice, bob = sign_up(client), sign_up(client)
        assert [client.get("/v1/me", headers=alice).status_code for _ in range(5)] == [200] * 5
        refused = client.get("/v1/jobs", headers=alice)
        assert refused.status_code == 429 and 0 < int(refused.headers["retry-after"]) <= 60
        # an upload of a user over the rate is refused before its body is read, the same way
        upload = client.post("/v1/photos", headers=alice, files=photo_files(sample_photos[:1]))
        assert upload.status_code == 429 and "retry-after" in upload.headers
        assert client.get("/v1/me", headers=bob).status_code == 200  # per user


def test_signing_up_again_does_not_make_room_for_more_jobs(
    tmp_path: Path, backend: dict[str, str], sample_photos: list[Path]
) -> None:
    settings = make_settings(tmp_path, backend, max_jobs_per_user=1, max_jobs_per_address=2)
    with TestClient(create_app(settings)) as client:
        first, second, third = (_with_photo(client, sample_photos) for _ in range(3))
        assert client.post("/v1/jobs", headers=first, json=TINY_JOB).status_code == 201
        assert client.post("/v1/jobs", headers=first, json=TINY_JOB).status_code == 429  # per user
        assert client.post("/v1/jobs", headers=second, json=TINY_JOB).status_code == 201
        refused = client.post("/v1/jobs", headers=third, json=TINY_JOB)
        assert refused.status_code == 429 and "address" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ({"seed": 2**70}, "less than or equal to 4294967295"),
        ({"seed": -1}, "greater than or equal to 0"),
        ({"steps": 1}, "too few for the staged recipe's 2 stages"),
        ({"scale": 3}, "2 or 4"),
        ({"sed": 3}, "sed"),  # a misspelt field is refused, not dropped
    ],
)
def test_settings_that_could_only_fail_later_are_refused_at_once(
    tmp_path: Path, sample_photos: list[Path], bad: dict[str, object], says: str
) -> None:
    secret_default = {"prepare": {"clip_model": "/srv/models/operator-only-clip"}}
    settings = make_settings(tmp_path, {}, job_defaults=secret_default)
    with TestClient(create_app(settings)) as client:
        headers = _with_photo(client, sample_photos)
        response = client.post("/v1/jobs", headers=headers, json={**TINY_JOB, **bad})
        assert response.status_code == 422, response.text
        assert says in json.dumps(response.json()["detail"])
        assert client.get("/v1/jobs", headers=headers).json()["jobs"] == []


def test_a_refused_job_does_not_show_the_operators_defaults(
    tmp_path: Path, sample_photos: list[Path]
) -> None:
    # an operator default that the pipeline refuses: the message names the field, not its value
    settings = make_settings(tmp_path, {}, job_defaults={"upscale": {"tile": "operator-secret-value"}})
    with TestClient(create_app(settings)) as client:
        headers = _with_photo(client, sample_photos)
        response = client.post("/v1/jobs", headers=headers, json=TINY_JOB)
        assert response.status_code == 422 and "upscale.tile" in response.json()["detail"]
        assert "operator-secret-value" not in response.text


def test_a_last_event_id_out_of_range_is_a_clear_422(client: TestClient, sample_photos: list[Path]) -> None:
    headers = _with_photo(client, sample_photos)
    job_id = client.post("/v1/jobs", headers=headers, json=TINY_JOB).json()["id"]
    for bad in ("99999999999999999999999", "-1", "abc"):
        response = client.get(f"/v1/jobs/{job_id}/events", headers={**headers, "Last-Event-ID": bad})
        assert response.status_code == 422, bad


def test_html_pages_carry_security_headers(client: TestClient) -> None:
    for path in ("/", "/docs"):
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        scripts = policy.split("script-src")[1].split(";")[0]
        assert "frame-ancestors 'none'" in policy and "'unsafe-inline'" not in scripts
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "no-referrer"
    assert client.get("/static/app.js").headers["x-content-type-options"] == "nosniff"


def test_sign_ups_the_admin_vouches_for_are_not_limited_per_address(
    tmp_path: Path, sample_photos: list[Path]
) -> None:
    # the bot signs up every chat from one address, with the admin token
    settings = make_settings(
        tmp_path, {}, admin_token="bot-secret", signups_per_hour=1, max_jobs_per_address=1
    )
    admin = {"Authorization": "Bearer bot-secret"}
    with TestClient(create_app(settings)) as client:
        tokens = [client.post("/v1/users", headers=admin) for _ in range(3)]
        assert [t.status_code for t in tokens] == [201] * 3
        for token in tokens[:2]:
            headers = {"Authorization": f"Bearer {token.json()['token']}"}
            client.post("/v1/photos", headers=headers, files=photo_files(sample_photos[:1]))
            assert client.post("/v1/jobs", headers=headers, json=TINY_JOB).status_code == 201
        assert client.post("/v1/users").status_code == 201
        assert client.post("/v1/users").status_code == 429  # anyone else still is
