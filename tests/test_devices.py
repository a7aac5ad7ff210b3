"""Device choice, shared by every stage: `auto` finds the GPU, a GPU asked for and absent is refused."""

from __future__ import annotations

import pytest
import torch

from portraitist.devices import resolve_device
from portraitist.errors import PortraitistError


def test_auto_and_unset_take_the_gpu_when_torch_sees_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == resolve_device(None) == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device(None) == torch.device("cpu")


def test_a_gpu_asked_for_on_a_machine_without_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(PortraitistError, match="use --device cpu"):
        resolve_device("cuda:1")
    assert resolve_device("cpu") == torch.device("cpu")
