"""Tokens and uploads through the HTTP API: what gets in, what is turned away, and why."""

from __future__ import annotations

import io
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image
from servicekit import make_settings, photo_files, sign_up

from portraitist import samples
from portraitist.service.api import create_app
from portraitist.service.models import User
from portraitist.service.settings import DEFAULT_BASE, Settings


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_default_base_matches_the_model_loader() -> None:
    from portraitist.models.loading import DEFAULT_BASE as loader_default

    assert DEFAULT_BASE == loader_default


def test_missing_and_wrong_tokens_are_401(client: TestClient) -> None:
    headers = sign_up(client)
    user_id = headers["Authorization"].split()[1].split(".")[0]
    assert client.get("/v1/me", headers=headers).json()["id"] == user_id
    for bad in [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": f"Bearer {user_id}.wrong-secret"},
        {"Authorization": "Bearer nobody.secret"},
        {"Authorization": headers["Authorization"].replace("Bearer", "Basic")},
    ]:
        response = client.get("/v1/photos", headers=bad)
        assert response.status_code == 401, bad
        assert "Bearer" in response.headers["www-authenticate"]


def test_tokens_are_stored_hashed(client: TestClient) -> None:
    token = sign_up(client)["Authorization"].split()[1]
    with client.app.state.service.db.session() as session:
        stored = session.get(User, token.split(".")[0]).token_hash
    assert token.split(".")[1] not in stored and len(stored) == 64


def test_admin_only_sign_up(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, {}, signup="admin", admin_token="let-me-in")
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/users").status_code == 401
        assert client.post("/v1/users", headers={"Authorization": "Bearer guess"}).status_code == 401
        assert client.post("/v1/users", headers={"Authorization": "Bearer let-me-in"}).status_code == 201


def test_good_photos_are_kept_and_bad_ones_rejected_one_by_one(
    tmp_path: Path, backend: dict[str, str], sample_photos: list[Path]
) -> None:
    settings = make_settings(tmp_path, backend, max_photo_bytes=400_000, max_photo_pixels=2_000_000)
    big = Image.new("RGB", (1800, 1800), (120, 90, 60))  # 3.2 MP: over the pixel cap, small as a file
    files = photo_files(sample_photos[:3]) + [
        ("files", ("notes.jpg", io.BytesIO(b"this is not a photo"), "image/jpeg")),
        ("files", ("cut.jpg", io.BytesIO(sample_photos[3].read_bytes()[:3000]), "image/jpeg")),
        ("files", ("empty.png", io.BytesIO(b""), "image/png")),
        ("files", ("huge.jpg", io.BytesIO(b"\xff\xd8" + bytes(500_000)), "image/jpeg")),
        ("files", ("poster.png", io.BytesIO(_png(big)), "image/png")),
        ("files", ("coffee.jpg", io.BytesIO(_jpeg(samples.no_person())), "image/jpeg")),
        ("files", ("us.jpg", io.BytesIO(_jpeg(samples.two_people())), "image/jpeg")),
    ]
    with TestClient(create_app(settings)) as client:
        headers = sign_up(client)
        response = client.post("/v1/photos", headers=headers, files=files)
        assert response.status_code == 200, response.text
        records = {r["name"]: r for r in response.json()["photos"]}
        for path in sample_photos[:3]:
            assert records[path.name]["status"] == "kept" and records[path.name]["id"]
        reasons = {name: r["reason"] for name, r in records.items() if r["status"] == "rejected"}
        assert reasons == {
            "notes.jpg": "not_an_image",
            "cut.jpg": "unreadable",
            "empty.png": "empty",
            "huge.jpg": "too_large",
            "poster.png": "too_large",
            "coffee.jpg": "no_person",
            "us.jpg": "multiple_people",
        }
        assert all(records[name]["message"] and records[name]["id"] is None for name in reasons)
        listed = client.get("/v1/photos", headers=headers).json()["photos"]
        assert sorted(p["name"] for p in listed) == sorted(p.name for p in sample_photos[:3])


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_upload_names_never_become_paths(
    client: TestClient, settings: Settings, sample_photos: list[Path]
) -> None:
    headers = sign_up(client)
    photo = sample_photos[0].read_bytes()
    names = [
        "../../../../tmp/escaped.jpg",
        "..\\..\\escaped2.jpg",
        "/etc/passwd",
        "a/../../b.jpg",
        "x" * 999 + ".jpg",
    ]
    files = [("files", (name, io.BytesIO(photo), "image/jpeg")) for name in names]
    records = client.post("/v1/photos", headers=headers, files=files).json()["photos"]
    assert [r["status"] for r in records] == ["kept"] * len(names)
    assert [r["name"] for r in records] == ["escaped.jpg", "escaped2.jpg", "passwd", "b.jpg", "x" * 255]
    stored = sorted(
        p.relative_to(settings.data_dir)
        for p in settings.data_dir.rglob("*")
        if p.is_file() and "storage" in p.parts
    )
    user_id = headers["Authorization"].split()[1].split(".")[0]
    expected = sorted(Path("storage", "users", user_id, "photos", f"{r['id']}.jpg") for r in records)
    assert stored == expected
    assert not Path("/tmp/escaped.jpg").exists()


def test_upload_caps_count_and_request_size(
    tmp_path: Path, backend: dict[str, str], sample_photos: list[Path]
) -> None:
    settings = make_settings(tmp_path, backend, max_photos=4, max_upload_files=3, max_photo_bytes=300_000)
    with TestClient(create_app(settings)) as client:
        headers = sign_up(client)
        first = client.post("/v1/photos", headers=headers, files=photo_files(sample_photos[:4])).json()[
            "photos"
        ]
        assert [r["status"] for r in first] == ["kept", "kept", "kept", "rejected"]
        assert first[3]["reason"] == "too_many"
        second = client.post("/v1/photos", headers=headers, files=photo_files(sample_photos[4:6])).json()[
            "photos"
        ]
        assert [(r["status"], r["reason"]) for r in second] == [("kept", None), ("rejected", "too_many")]
        # a request larger than files x bytes in all is refused before it is read
        blob = io.BytesIO(bytes(3_000_000))
        response = client.post(
            "/v1/photos", headers=headers, files=[("files", ("x.jpg", blob, "image/jpeg"))]
        )
        assert response.status_code == 413


def test_deleting_a_photo(client: TestClient, settings: Settings, sample_photos: list[Path]) -> None:
    headers = sign_up(client)
    kept = client.post("/v1/photos", headers=headers, files=photo_files(sample_photos[:2])).json()["photos"]
    assert client.delete(f"/v1/photos/{kept[0]['id']}", headers=headers).status_code == 204
    assert [p["id"] for p in client.get("/v1/photos", headers=headers).json()["photos"]] == [kept[1]["id"]]
    assert client.delete(f"/v1/photos/{kept[0]['id']}", headers=headers).status_code == 404
    assert len([p for p in (settings.data_dir / "storage").rglob("*") if p.is_file()]) == 1


def test_a_large_jpeg_is_judged_from_a_smaller_decode_at_its_full_size(client: TestClient) -> None:
    # decoded at a fraction of its size (JPEG DCT scaling) for the check; measured at its own size
    headers = sign_up(client)
    large = samples.astronaut().resize((4096, 4096), Image.LANCZOS)
    files = [("files", ("large.jpg", io.BytesIO(_jpeg(large)), "image/jpeg"))]
    record = client.post("/v1/photos", headers=headers, files=files).json()["photos"][0]
    assert (record["status"], record["width"], record["height"]) == ("kept", 4096, 4096), record
