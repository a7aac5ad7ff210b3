"""Which precision a run trains in: master-bf16 keeps frozen weights in bf16, autocast keeps fp32 weights."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from portraitist.errors import PortraitistError
from portraitist.train import precision
from portraitist.train.config import TrainConfig
from portraitist.train.precision import AUTOCAST_BF16, AUTOCAST_FP16, FP32, MASTER_BF16, training_precision
from portraitist.train.stage import train

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("wanted", "gpu_has_bf16", "whole_unet", "expected"),
    [
        ("auto", True, True, AUTOCAST_BF16),  # most weights train: one fp32 copy, no masters
        ("auto", True, False, MASTER_BF16),  # a frozen UNet is stored in bf16 (LoRA, textual inversion)
        ("bf16", True, False, MASTER_BF16),
        ("auto", False, False, AUTOCAST_FP16),  # no bf16 on the card: fp16 with loss scaling
        ("fp16", True, False, AUTOCAST_FP16),
        ("fp32", True, False, FP32),
    ],
)
def test_gpu_precision(monkeypatch, wanted, gpu_has_bf16, whole_unet, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: gpu_has_bf16)
    assert training_precision(wanted, CUDA, whole_unet) == expected


@pytest.mark.parametrize(("cpu_has_bf16", "expected"), [(True, MASTER_BF16), (False, FP32)])
def test_cpu_precision_follows_the_instructions_whatever_trains(monkeypatch, cpu_has_bf16, expected):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: cpu_has_bf16)
    assert training_precision("auto", CPU, whole_unet=True) == expected
    assert training_precision("auto", CPU, whole_unet=False) == expected
    assert training_precision("bf16", CPU, whole_unet=True) == MASTER_BF16


def test_fp16_on_the_cpu_is_refused_before_the_model_loads(prepared):
    with pytest.raises(PortraitistError, match="fp16 training needs a CUDA GPU"):
        train(prepared, TrainConfig(base="no/such-model", precision="fp16", device="cpu", steps=2))


@pytest.mark.gpu
def test_sdxl_lora_on_a_gpu_keeps_the_frozen_unet_in_bf16_and_saves_fp32(prepared):
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    config = TrainConfig(base="tiny-xl", recipe="lora", steps=3, flip=False, device="cuda")
    result = train(prepared, config)
    checkpoint = prepared.model_dir / "checkpoints" / "step-0000003" / "checkpoint.json"
    assert json.loads(checkpoint.read_text())["fingerprint"]["precision"] == "master-bf16"
    adapters = load_file(str(prepared.model_dir / "unet_lora.safetensors"))
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in adapters.values())
    assert any(t.abs().sum() > 0 for k, t in adapters.items() if "lora_B" in k)  # the adapters moved
    assert result.peak_gpu_mb is not None
