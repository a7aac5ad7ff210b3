"""Which number formats a training run computes and keeps its weights in.

- `master-bf16`: the model's weights are bf16, so matrix products run in bf16 with no per-step
  casting; the optimizer updates fp32 master copies of the trained tensors and writes them back
  rounded. Updates of lr 2e-6 would vanish in bf16 weights alone (8 bits of mantissa), so the
  fp32 copies are what is trained and saved. Used on CPUs with bf16 instructions (e.g.
  AVX512-BF16/AMX), and on GPUs with bf16 when the UNet does not train whole (LoRA, textual
  inversion): its frozen weights then take half the memory (SDXL's UNet: 5.1 GB, not 10.3), as
  diffusers' LoRA scripts keep them.
- `autocast-bf16` / `autocast-fp16` (GPUs, when the UNet trains whole; fp16 where bf16 is
  missing): fp32 weights, autocast computes in half precision; fp16 scales the loss (GradScaler)
  against underflow. On a GPU the casts cost little, and fp32 weights need no second copy for
  the optimizer, which keeps peak memory down when most weights train (and `--low-memory`'s 8-bit
  AdamW applies).
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


def check_precision(wanted: PrecisionChoice, device: torch.device) -> None:
    """Refuse a precision the device cannot train in (before the model loads)."""
    if wanted == "fp16" and device.type != "cuda":
        raise PortraitistError("fp16 training needs a CUDA GPU; on the CPU use --precision bf16 or fp32.")


def training_precision(wanted: PrecisionChoice, device: torch.device, whole_unet: bool) -> TrainingPrecision:
    """How a run on this device computes and keeps its weights, for the config's `precision` setting;
    `whole_unet`: a stage trains every UNet weight (the module's docstring says why that matters)."""
    check_precision(wanted, device)
    if wanted == "fp32":
        return FP32
    if device.type == "cuda":
        if wanted == "fp16" or (wanted == "auto" and not torch.cuda.is_bf16_supported()):
            return AUTOCAST_FP16
        return AUTOCAST_BF16 if whole_unet else MASTER_BF16
    if wanted == "bf16" or cpu_has_bf16():
        return MASTER_BF16
    return FP32
