"""Without a network, a model named by its hub id fails at once with the setting that gives a local
model or an offline stand-in, instead of after the hub libraries' retries."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from portraitist.errors import PortraitistError
from portraitist.generate.control import depth_condition, load_controlnet
from portraitist.models import offline
from portraitist.models.clip import load_clip
from portraitist.models.loading import load_base, load_vae
from portraitist.prepare.captions import blip_captions
from portraitist.rank.aesthetic import weights_file

# ids no hub cache holds, so each load must go to the hub
LOADS: dict[str, tuple[Callable[[], object], str]] = {
    "base": (lambda: load_base("portraitist-tests/no-such-sd15"), "Give --base a diffusers folder"),
    "vae": (lambda: load_vae("portraitist-tests/no-such-vae"), "Give --vae a VAE folder"),
    "clip": (lambda: load_clip("portraitist-tests/no-such-clip"), "Give --clip-model .* or `tiny`"),
    "blip": (
        lambda: blip_captions([Image.new("RGB", (32, 32))], "portraitist-tests/no-such-blip", "cpu"),
        "Set caption_model to a BLIP folder .* or use another context",
    ),
    "controlnet": (lambda: load_controlnet("portraitist-tests/no-such-controlnet"), "Give --controlnet"),
    "depth": (
        lambda: depth_condition(Image.new("RGB", (32, 32)), "portraitist-tests/no-such-dpt"),
        "Give --depth-model .* or use --control pose or canny",
    ),
    "aesthetic": (
        lambda: weights_file("portraitist-tests/no-such-head:head.pth"),
        "set aesthetic_weights .* `random`",
    ),
}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[object, float | None]]]:
    """The machine without a network, HF_HUB_OFFLINE unset: the probe has to find out; its calls are kept."""
    calls: list[tuple[object, float | None]] = []

    def unreachable(address: object, timeout: float | None = None, *_: object, **__: object) -> socket.socket:
        calls.append((address, timeout))
        raise OSError("Network is unreachable")

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(socket, "create_connection", unreachable)
    offline.hub_unreachable.cache_clear()
    yield calls
    offline.hub_unreachable.cache_clear()


@pytest.mark.parametrize("what", LOADS)
def test_a_hub_model_offline_fails_at_once_naming_the_setting_to_use_instead(
    no_network: list[tuple[object, float | None]], what: str
) -> None:
    load, instead = LOADS[what]
    with pytest.raises(PortraitistError, match=f"out of reach .*Network is unreachable.*{instead}"):
        load()
    assert no_network == [(("huggingface.co", 443), offline.PROBE_TIMEOUT_S)]  # probed once, briefly


def test_the_probe_runs_once_per_process(no_network: list[tuple[object, float | None]]) -> None:
    for load, _ in LOADS.values():
        with pytest.raises(PortraitistError):
            load()
    assert len(no_network) == 1


def test_hf_hub_offline_is_taken_at_its_word(
    no_network: list[tuple[object, float | None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PortraitistError, match="out of reach \\(HF_HUB_OFFLINE is set\\)"):
        load_clip("portraitist-tests/no-such-clip")
    assert no_network == []  # no probe needed


def test_a_missing_local_folder_is_not_looked_for_on_the_hub(
    no_network: list[tuple[object, float | None]], tmp_path: Path
) -> None:
    with pytest.raises(PortraitistError, match="There is no CLIP model at .*Give --clip-model"):
        load_clip(str(tmp_path / "no-such-folder"))
    assert no_network == []
