"""Jobs through the HTTP API without a worker: validation, limits, cancelling, events, isolation."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient
from servicekit import TINY_JOB, make_settings, photo_files, sign_up

from portraitist.service import jobs
from portraitist.service.api import create_app
from portraitist.service.settings import Settings

SERVICE_DOC = Path(__file__).resolve().parents[2] / "docs" / "service.md"


def _user_with_photos(client: TestClient, photos: list[Path]) -> dict[str, str]:
    headers = sign_up(client)
    response = client.post("/v1/photos", headers=headers, files=photo_files(photos))
    assert all(p["status"] == "kept" for p in response.json()["photos"])
    return headers


def _events(client: TestClient, job_id: str, headers: dict[str, str]) -> list[dict[str, object]]:
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]


def test_jobs_are_validated_against_the_pipeline_and_the_server_caps(
    client: TestClient, sample_photos: list[Path]
) -> None:
    headers = sign_up(client)
    assert client.post("/v1/jobs", headers=headers, json=TINY_JOB).status_code == 422  # no photos yet
    client.post("/v1/photos", headers=headers, files=photo_files(sample_photos[:1]))
    for bad, says in [
        ({"base": "/etc"}, "base must be one of"),
        ({"n": 10_000}, "n must be at most"),
        ({"recipe": "nonsense"}, "recipe"),
        ({"k": 0}, "greater than or equal"),
        ({"steps": 10**6}, "steps must be at most"),
        ({"styles": []}, "at least one style or prompt"),
        ({"prompts": ["a red background"]}, "must say {me} where you appear"),
        ({"prompts": ["{me}"] * 9}, "at most 8 items"),
    ]:
        response = client.post("/v1/jobs", headers=headers, json={**TINY_JOB, **bad})
        assert response.status_code == 422, bad
        assert says in json.dumps(response.json()["detail"]), response.json()
    prompts_only = {**TINY_JOB, "styles": [], "prompts": ["a photo of {me} on a red background"]}
    assert client.post("/v1/jobs", headers=headers, json=prompts_only).status_code == 201
    options = client.get("/v1/options").json()
    assert "tiny" in options["bases"] and "photo" in [s["name"] for s in options["styles"]]


def test_per_user_job_limit_and_cancelling(
    tmp_path: Path, backend: dict[str, str], sample_photos: list[Path]
) -> None:
    settings = make_settings(tmp_path, backend, max_jobs_per_user=2)
    with TestClient(create_app(settings)) as client:
        headers = _user_with_photos(client, sample_photos[:1])
        first = client.post("/v1/jobs", headers=headers, json=TINY_JOB).json()["id"]
        client.post("/v1/jobs", headers=headers, json=TINY_JOB)
        response = client.post("/v1/jobs", headers=headers, json=TINY_JOB)
        assert response.status_code == 429 and "limit is 2" in response.json()["detail"]
        other = _user_with_photos(client, sample_photos[:1])  # the limit is per user
        assert client.post("/v1/jobs", headers=other, json=TINY_JOB).status_code == 201

        cancelled = client.post(f"/v1/jobs/{first}/cancel", headers=headers).json()
        assert cancelled["status"] == "cancelled"
        assert client.post(f"/v1/jobs/{first}/cancel", headers=headers).status_code == 409
        assert client.post("/v1/jobs", headers=headers, json=TINY_JOB).status_code == 201
        assert [e["status"] for e in _events(client, first, headers)] == ["queued", "cancelled"]
        assert client.get(f"/v1/jobs/{first}/results", headers=headers).status_code == 409


def test_events_stream_in_order_until_the_end(
    client: TestClient, settings: Settings, sample_photos: list[Path]
) -> None:
    headers = _user_with_photos(client, sample_photos[:1])
    job_id = client.post("/v1/jobs", headers=headers, json=TINY_JOB).json()["id"]
    db = client.app.state.service.db
    assert jobs.claim(db, job_id, 1, "a-worker")
    for step in (1, 2, 3):
        jobs.record_progress(db, job_id, 1, "train", step, 3, 3.0 - step, "")
    jobs.fail(db, job_id, 1, "Only 1 of 1 photos can be used; at least 3 are needed.")
    events = _events(client, job_id, headers)
    assert [(e["status"], e["stage"], e["step"]) for e in events] == [
        ("queued", None, None),
        ("running", None, None),
        ("running", "train", 1),
        ("running", "train", 2),
        ("running", "train", 3),
        ("failed", "train", 3),
    ]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
    assert job["status"] == "failed" and "at least 3" in job["error"]
    # a client that reconnects says where it stopped, and gets only what came after
    with client.stream(
        "GET", f"/v1/jobs/{job_id}/events", headers={**headers, "Last-Event-ID": str(events[3]["id"])}
    ) as response:
        later = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert later == events[4:]


def test_another_users_things_are_404(client: TestClient, sample_photos: list[Path]) -> None:
    alice = _user_with_photos(client, sample_photos[:1])
    photo_id = client.get("/v1/photos", headers=alice).json()["photos"][0]["id"]
    job_id = client.post("/v1/jobs", headers=alice, json=TINY_JOB).json()["id"]
    db = client.app.state.service.db
    jobs.claim(db, job_id, 1, "a-worker")
    jobs.succeed(db, job_id, 1, ["outputs/selected/00.png"], "outputs/report.html")

    bob = sign_up(client)
    for method, path in [
        ("GET", f"/v1/jobs/{job_id}"),
        ("GET", f"/v1/jobs/{job_id}/events"),
        ("POST", f"/v1/jobs/{job_id}/cancel"),
        ("GET", f"/v1/jobs/{job_id}/results"),
        ("GET", f"/v1/jobs/{job_id}/results/00.png"),
        ("DELETE", f"/v1/photos/{photo_id}"),
        ("GET", f"/v1/jobs/{job_id}/files/not-the-key/outputs/selected/00.png"),
    ]:
        assert client.request(method, path, headers=bob).status_code == 404, path
        assert client.request(method, path).status_code in (401, 404), path
    assert client.get("/v1/jobs", headers=bob).json()["jobs"] == []
    assert client.get("/v1/photos", headers=bob).json()["photos"] == []
    assert client.delete("/v1/me", headers=bob).status_code == 204
    assert client.get(f"/v1/jobs/{job_id}", headers=alice).json()["status"] == "succeeded"
    assert len(client.get("/v1/photos", headers=alice).json()["photos"]) == 1


def test_the_page_and_the_api_docs_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "portraitist" in page.text and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/docs").status_code == 200


def _routes(paths: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """(method, path) with every path parameter written `{}`, as the docs and OpenAPI name them
    differently."""
    return {(method.upper(), re.sub(r"\{[^}]*\}", "{}", path)) for method, path in paths}


def test_the_docs_list_every_route_and_only_those_routes(client: TestClient) -> None:
    documented = re.findall(r"`(GET|POST|DELETE) (/v1/[^`]*)`", SERVICE_DOC.read_text())
    served = [(m, path) for path, ops in client.get("/openapi.json").json()["paths"].items() for m in ops]
    assert _routes(documented) == _routes(served)


def test_every_route_but_sign_up_options_and_share_links_needs_a_token(client: TestClient) -> None:
    open_routes = _routes([("POST", "/v1/users"), ("GET", "/v1/options"), ("GET", "/v1/jobs/{}/files/{}/{}")])
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        for method in operations:
            status = client.request(method, re.sub(r"\{[^}]*\}", "x", path)).status_code
            assert (status == 401) != bool(_routes([(method, path)]) & open_routes), (method, path, status)
