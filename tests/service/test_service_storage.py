"""The artefact store on local disk, in memory and on an S3 API (moto's server on loopback)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from servicekit import make_settings, photo_files, sign_up

from portraitist.service.api import create_app
from portraitist.service.storage import Storage, check_key


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """An S3 API on 127.0.0.1 (moto in server mode), with credentials that only it accepts."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def s3_storage(endpoint: str) -> tuple[str, dict[str, object]]:
    """A fresh bucket on the endpoint: (storage_url, storage_options)."""
    import boto3

    bucket = f"portraits-{uuid.uuid4().hex[:8]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/service", {"endpoint_url": endpoint, "key": "test", "secret": "test"}


@pytest.fixture(params=["local", "memory", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return Storage(str(tmp_path / "store"))
    if request.param == "memory":
        return Storage(f"memory://{uuid.uuid4().hex}")
    url, options = s3_storage(request.getfixturevalue("s3_endpoint"))
    return Storage(url, options)


def _put(storage: Storage, key: str, data: bytes, tmp_path: Path) -> None:
    local = tmp_path / "upload"
    local.write_bytes(data)
    storage.put_file(local, key)


def test_keys_cannot_climb_out(storage: Storage, tmp_path: Path) -> None:
    for key in ["../x", "users/../../x", "/etc/passwd", "users//x", "users/.hidden", "a/./b", "", "a\\b"]:
        with pytest.raises(ValueError):
            check_key(key)
        with pytest.raises(ValueError):
            _put(storage, key, b"no", tmp_path)


def test_files_round_trip_and_prefixes_delete(storage: Storage, tmp_path: Path) -> None:
    _put(storage, "users/a/photos/1.jpg", b"photo", tmp_path)
    _put(storage, "users/b/photos/2.jpg", b"other user", tmp_path)
    assert storage.exists("users/a/photos/1.jpg") and not storage.exists("users/a/photos/9.jpg")
    assert b"".join(storage.iter_bytes("users/a/photos/1.jpg")) == b"photo"
    assert storage.size("users/a/photos/1.jpg") == 5
    assert storage.list("users") == ["a/photos/1.jpg", "b/photos/2.jpg"]
    storage.delete_prefix("users/a")
    assert storage.list("users") == ["b/photos/2.jpg"]
    assert storage.list("nothing/here") == []


def test_a_workspace_syncs_only_what_changed(storage: Storage, tmp_path: Path) -> None:
    local = tmp_path / "ws"
    (local / "model" / "checkpoints").mkdir(parents=True)
    (local / "run.json").write_text("{}")
    (local / "model" / "checkpoints" / "step-10.bin").write_bytes(b"10")
    (local / "model" / ".step-20.bin.123.tmp").write_bytes(b"half-written")
    state = storage.sync_dir(local, "jobs/1/workspace", {})
    assert storage.list("jobs/1/workspace") == ["model/checkpoints/step-10.bin", "run.json"]

    (local / "model" / "checkpoints" / "step-10.bin").unlink()
    (local / "model" / "checkpoints" / "step-20.bin").write_bytes(b"20")
    storage.delete("jobs/1/workspace/run.json")  # unchanged locally, so a sync does not send it again
    state = storage.sync_dir(local, "jobs/1/workspace", state)
    assert storage.list("jobs/1/workspace") == ["model/checkpoints/step-20.bin"]

    elsewhere = tmp_path / "resumed"
    downloaded = storage.download_dir("jobs/1/workspace", elsewhere)
    assert (elsewhere / "model" / "checkpoints" / "step-20.bin").read_bytes() == b"20"
    assert set(downloaded) == {"model/checkpoints/step-20.bin"}


def test_the_api_keeps_photos_on_s3_and_deletes_them_with_the_user(
    tmp_path: Path, s3_endpoint: str, sample_photos: list[Path]
) -> None:
    url, options = s3_storage(s3_endpoint)
    settings = make_settings(tmp_path, {}, storage_url=url, storage_options=options)
    bucket = Storage(url, options)
    with TestClient(create_app(settings)) as client:
        headers = sign_up(client)
        kept = client.post("/v1/photos", headers=headers, files=photo_files(sample_photos[:2])).json()[
            "photos"
        ]
        user_id = headers["Authorization"].split()[1].split(".")[0]
        assert bucket.list(f"users/{user_id}") == sorted(f"photos/{p['id']}.jpg" for p in kept)
        assert client.delete("/v1/me", headers=headers).status_code == 204
        assert bucket.list(f"users/{user_id}") == []
        assert client.get("/v1/me", headers=headers).status_code == 401
    assert not (settings.data_dir / "storage").exists()
