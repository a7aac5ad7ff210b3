"""Memory of the API process under hostile uploads, read from /proc: a 7000x7000 palette PNG is a
~50 KB file that decodes to hundreds of MB, and many at once must cost about what a few do."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from servicekit import ServiceProcesses, make_settings, photo_files, sign_up

SIDE = 7000  # 49 MP: under the default 50 MP cap, so it is decoded, not refused by its header


def _palette_png() -> bytes:
    image = Image.new("P", (SIDE, SIDE), 0)
    image.putpalette([value for i in range(256) for value in (i, 255 - i, i // 2)])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _reset_peak(pid: int) -> None:
    """Start VmHWM (the peak resident size) again from the current size."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _peak_mib(pid: int, url: str, headers: dict[str, str], png: bytes, count: int) -> float:
    """The process's peak resident size while `count` uploads of `png` at once are answered."""
    _reset_peak(pid)
    answers: list[int] = []
    start = threading.Barrier(count)

    def upload() -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=600) as client:
            start.wait()
            files = [("files", ("poster.png", io.BytesIO(png), "image/png"))]
            answers.append(client.post("/v1/photos", files=files).status_code)

    threads = [threading.Thread(target=upload) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * count
    return _status_kib(pid, "VmHWM") / 1024


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[ServiceProcesses, int]]:
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux's /proc/PID/clear_refs to measure a peak")
    processes = ServiceProcesses(make_settings(tmp_path, {}), tmp_path)
    pid = processes.start_api().pid
    yield processes, pid
    processes.stop()


def test_concurrent_hostile_uploads_cost_about_what_one_does(
    api: tuple[ServiceProcesses, int], sample_photos: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    service, pid = api
    with service.client() as client:
        headers = sign_up(client)
        # a first ordinary upload loads the detectors, which stay
        client.post("/v1/photos", headers=headers, files=photo_files(sample_photos[:1]))
    png = _palette_png()
    before = _status_kib(pid, "VmRSS") / 1024
    one = _peak_mib(pid, service.url, headers, png, 1)
    eight = _peak_mib(pid, service.url, headers, png, 8)
    after = _status_kib(pid, "VmRSS") / 1024
    with capsys.disabled():
        print(
            f"\nAPI RSS {before:.0f} MiB; peak with 1 upload of a {len(png) // 1024} KB {SIDE}x{SIDE} PNG "
            f"{one:.0f} MiB, with 8 at once {eight:.0f} MiB; afterwards {after:.0f} MiB"
        )
    # the photo checks run two at a time: eight uploads hold at most two decoded photos
    assert eight - before < 2.5 * max(one - before, 100) + 100
