"""Which number formats a training run computes and keeps its weights in.

- `master-bf16` (CPUs with bf16 instructions, e.g. AVX512-BF16/AMX): the model's weights are
  bf16, so matrix products run in bf16 with no per-step casting; the optimizer updates fp32
  master copies and writes them back rounded. Updates of lr 2e-6 would vanish in bf16
  weights alone (8 bits of mantissa), so the fp32 copies are what is trained and saved.
- `autocast-bf16` / `autocast-fp16` (GPUs; and the low-memory mode): fp32 weights, autocast
  computes in half precision; fp16 scales the loss (GradScaler) against underflow. On a GPU the
  casts cost little, and fp32 weights need no second copy, which keeps peak memory down.
- `fp32`: everywhere else, and when asked.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from portraitist.config import PrecisionChoice
from portraitist.devices import cpu_has_bf16
from portraitist.errors import PortraitistError


@dataclass(frozen=True)
class TrainingPrecision:
    """How a training run computes and keeps its weights (the module's docstring says which runs where)."""

    name: str
    weights: torch.dtype  # the dtype the model's weights are stored in while training
    autocast: torch.dtype | None  # autocast compute dtype, None: compute in `weights`
    master: bool  # optimizer steps fp32 copies of bf16 weights
    scale_loss: bool  # fp16 needs a GradScaler

    def context(self, device: torch.device) -> AbstractContextManager[object]:
        if self.autocast is None:
            return nullcontext()
        return torch.autocast(device.type, dtype=self.autocast)


FP32 = TrainingPrecision("fp32", torch.float32, None, master=False, scale_loss=False)
MASTER_BF16 = TrainingPrecision("master-bf16", torch.bfloat16, None, master=True, scale_loss=False)
AUTOCAST_BF16 = TrainingPrecision(
    "autocast-bf16", torch.float32, torch.bfloat16, master=False, scale_loss=False
)
AUTOCAST_FP16 = TrainingPrecision(
    "autocast-fp16", torch.float32, torch.float16, master=False, scale_loss=True
)


def training_precision(wanted: PrecisionChoice, device: torch.device) -> TrainingPrecision:
    """How a run on this device computes and keeps its weights, for the config's `precision` setting."""
    if wanted == "fp32":
        return FP32
    if device.type == "cuda":
        if wanted == "fp16" or (wanted == "auto" and not torch.cuda.is_bf16_supported()):
            return AUTOCAST_FP16
        return AUTOCAST_BF16
    if wanted == "fp16":
        raise PortraitistError("fp16 training needs a CUDA GPU; on the CPU use --precision bf16 or fp32.")
    if wanted == "bf16" or cpu_has_bf16():
        return MASTER_BF16
    return FP32
