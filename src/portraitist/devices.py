"""Which torch device a stage runs on, and whether the CPU computes bf16 natively."""

from __future__ import annotations

import functools

import torch

from portraitist.errors import PortraitistError


def resolve_device(wanted: str | None = "auto") -> torch.device:
    """`auto` (or None): CUDA when torch sees a GPU, else the CPU; a GPU asked for and absent is refused."""
    if wanted is None or wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        raise PortraitistError(f"--device {wanted} asked for a GPU, and torch sees none; use --device cpu.")
    return torch.device(wanted)


@functools.cache  # the hardware does not change; training loops ask every step
def cpu_has_bf16() -> bool:
    """oneDNN reports whether this CPU has native bf16 instructions (AVX512-BF16 or AMX)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
