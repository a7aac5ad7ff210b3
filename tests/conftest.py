"""Shared test set-up: offline hub, GPU marker, and small real inputs."""

from __future__ import annotations

import os

# Nothing here may reach a model hub; fail fast instead of retrying for half a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pathlib import Path

import pytest
import torch

import portraitist.world.plugin  # noqa: F401  (the world registers its family, judges and settings)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; this machine has none")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def sample_photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Six JPEG photos of the astronaut, as a user would send them."""
    from portraitist.samples import write_sample_photos

    return write_sample_photos(tmp_path_factory.mktemp("photos"))


CHROMIUM = Path("/usr/bin/chromium")
# Chromium as root on a closed network: no sandbox, no background connections (env notes).
CHROMIUM_FLAGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser_page(tmp_path: Path):
    """A page in headless Debian Chromium driven by playwright (skipped where chromium is missing)."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            chromium_sandbox=False,
        )
        try:
            yield browser.new_page()
        finally:
            browser.close()
