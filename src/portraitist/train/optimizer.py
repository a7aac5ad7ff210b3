"""One stage's optimizer: AdamW over the stage's trainable tensors, with the precision's bookkeeping.

With fp32 master copies (precision `master-bf16`) the backward pass fills the bf16 weights'
gradients and master_adamw.MasterAdamW updates masters and weights in one fused pass.
Otherwise torch's fused AdamW (or bitsandbytes' 8-bit AdamW) steps the model's own fp32
weights, with a GradScaler for fp16.
"""

from __future__ import annotations

import torch

from portraitist.errors import PortraitistError
from portraitist.train.master_adamw import MasterAdamW
from portraitist.train.precision import TrainingPrecision
from portraitist.train.trainee import StageGroup

# diffusers' DreamBooth / Textual Inversion scripts' AdamW settings
BETAS = (0.9, 0.999)
WEIGHT_DECAY = 1e-2
EPS = 1e-8


def _adamw(groups: list[dict[str, object]], device: torch.device, eight_bit: bool) -> torch.optim.Optimizer:
    if eight_bit:
        if device.type != "cuda":
            raise PortraitistError("8-bit AdamW (the low-memory mode) needs a CUDA GPU.")
        try:
            import bitsandbytes as bnb
        except ImportError as exc:
            raise PortraitistError(
                "The low-memory mode needs bitsandbytes: `pip install bitsandbytes`."
            ) from exc
        return bnb.optim.AdamW8bit(groups, betas=BETAS, weight_decay=WEIGHT_DECAY, eps=EPS)
    # the fused kernel does the whole update in one pass over memory (CPU and CUDA)
    return torch.optim.AdamW(groups, betas=BETAS, weight_decay=WEIGHT_DECAY, eps=EPS, fused=True)


class StageOptimizer:
    """AdamW for one stage's parts (Trainee.begin_stage)."""

    def __init__(
        self,
        groups: list[StageGroup],
        precision: TrainingPrecision,
        device: torch.device,
        max_grad_norm: float | None,
        eight_bit: bool = False,
    ):
        self.precision = precision
        self.max_grad_norm = max_grad_norm
        self.params = [p for group in groups for p in group.params]
        self.scaler = torch.amp.GradScaler(device.type) if precision.scale_loss else None
        # bf16 weights with fp32 masters (train/precision.py says where); 8-bit AdamW serves the autocast runs
        self.fused_master = None
        if precision.master:
            flat = [(g.flat, g.lr) for g in groups if g.flat is not None]
            self.fused_master = MasterAdamW(flat, BETAS, EPS, WEIGHT_DECAY)
        self.optimizer = (
            None
            if self.fused_master
            else _adamw([{"params": g.params, "lr": g.lr} for g in groups], device, eight_bit)
        )

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def step(self) -> None:
        if self.fused_master is not None:
            self.fused_master.step(self.max_grad_norm)
            return
        assert self.optimizer is not None
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if self.max_grad_norm:
            self._clip(self.max_grad_norm)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _clip(self, max_norm: float) -> None:
        """Clip the gradients' global norm to max_norm, as torch's clip_grad_norm_ does.

        The fused AdamW kernel divides every gradient by `grad_scale` as it reads it (the hook
        GradScaler uses), so the rescaling costs no extra pass over the gradients.
        """
        assert self.optimizer is not None
        if self.scaler is not None or not self.optimizer.defaults.get("fused"):
            torch.nn.utils.clip_grad_norm_(self.params, max_norm)
            return
        grads = [p.grad for p in self.params if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        # clip_grad_norm_ multiplies by min(max_norm / (norm + 1e-6), 1)
        self.optimizer.grad_scale = torch.clamp((norm + 1e-6) / max_norm, min=1.0)  # type: ignore[attr-defined]

    def state_dict(self) -> dict[str, object]:
        optimizer = self.fused_master or self.optimizer
        assert optimizer is not None
        return {
            "optimizer": optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        optimizer = self.fused_master or self.optimizer
        assert optimizer is not None
        optimizer.load_state_dict(state["optimizer"])  # type: ignore[arg-type]
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])  # type: ignore[arg-type]
