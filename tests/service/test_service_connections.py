"""Hostile connections against a real API process on loopback: bodies that are never read unless
their sender is known and they fit, and connections that send slowly or not at all.

Each check talks raw HTTP over a socket, so what the server does before reading a body is
visible: had it read the 200 MB body it was promised first, the answer would never come.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servicekit import ServiceProcesses, make_settings, sign_up

PROMISED = 200_000_000  # bytes announced, never sent


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcesses]:
    tmp_path = tmp_path_factory.mktemp("connections")
    settings = make_settings(
        tmp_path, {}, header_timeout_s=1.0, body_timeout_s=1.0, idle_timeout_s=1.0, max_json_bytes=10_000
    )
    processes = ServiceProcesses(settings, tmp_path)
    processes.start_api()
    yield processes
    processes.stop()


@pytest.fixture(scope="module")
def token(service: ServiceProcesses) -> str:
    with service.client() as client:
        return sign_up(client)["Authorization"]


def _connect(service: ServiceProcesses) -> socket.socket:
    return socket.create_connection(("127.0.0.1", service.port), timeout=30)


def _exchange(service: ServiceProcesses, request: bytes) -> bytes:
    """Send `request` (headers, maybe part of a body) and read what comes back until the server closes."""
    with _connect(service) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer


def _head(method: str, path: str, *headers: str) -> bytes:
    return ("\r\n".join([f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]) + "\r\n\r\n").encode()


def _post_job(token: str, *headers: str) -> bytes:
    return _head("POST", "/v1/jobs", f"Authorization: {token}", "Content-Type: application/json", *headers)


def test_an_unknown_caller_gets_401_before_its_body_is_read(service: ServiceProcesses) -> None:
    for path, kind in [("/v1/jobs", "application/json"), ("/v1/photos", "multipart/form-data; boundary=x")]:
        request = _head("POST", path, f"Content-Type: {kind}", f"Content-Length: {PROMISED}") + b"{"
        answer = _exchange(service, request)
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_an_oversized_body_is_413_before_it_is_read(service: ServiceProcesses, token: str) -> None:
    answer = _exchange(service, _post_job(token, f"Content-Length: {PROMISED}"))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_chunked_body_is_cut_off_at_the_limit(service: ServiceProcesses, token: str) -> None:
    chunk = b'{"prompts": ["' + b"x" * 4000
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5))  # 20 KB, never ended
    answer = _exchange(service, _post_job(token, "Transfer-Encoding: chunked") + body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_body_that_stops_arriving_is_408(service: ServiceProcesses, token: str) -> None:
    answer = _exchange(service, _post_job(token, "Content-Length: 100") + b'{"n": ')
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


@pytest.mark.parametrize("sent", [b"", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"])
def test_connections_that_send_no_or_half_a_request_are_closed(
    service: ServiceProcesses, sent: bytes
) -> None:
    with _connect(service) as connection:
        connection.sendall(sent)
        assert connection.recv(65536) == b""  # closed by the server (the socket's own timeout is 30 s)


def test_an_idle_kept_alive_connection_is_closed(service: ServiceProcesses) -> None:
    with _connect(service) as connection:
        connection.sendall(_head("GET", "/v1/options"))
        assert connection.recv(65536).startswith(b"HTTP/1.1 200")
        rest = b""
        while chunk := connection.recv(65536):
            rest += chunk
        assert b"HTTP/1.1" not in rest  # nothing more came, and then the server closed it


def test_ordinary_requests_still_work(
    service: ServiceProcesses, token: str, sample_photos: list[Path]
) -> None:
    with httpx.Client(base_url=service.url, headers={"Authorization": token}, timeout=60) as client:
        files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in sample_photos[:2]]
        response = client.post("/v1/photos", files=files)
        assert [p["status"] for p in response.json()["photos"]] == ["kept", "kept"]
        job = {"base": "tiny", "styles": ["photo"], "n": 1, "k": 1}
        assert client.post("/v1/jobs", json=job).status_code == 201
