"""AdamW over fp32 master weights of a bf16 model, in one fused pass over memory.

With bf16 weights (precision `master-bf16`) a step has to read the bf16 gradients, update the
fp32 masters and the two moments, and write the bf16 weights back. Done as separate operations
(gradient copy, norm, fused AdamW, weight copy) that is about twice the memory traffic of the
update itself, and on a CPU that traffic is most of the optimizer's time. Here the masters, the
moments, the weights and the gradients each live in one flat buffer per recipe part
(`FlatPart`), so torch.compile turns the whole update into one loop over memory, and the
gradient norm into one read of the bf16 gradients (for cpu-bench's UNet on one core: 91 ms ->
47 ms per step; docs/train.md).

The math is torch.optim.AdamW's (decoupled weight decay, bias-corrected moments), with the
global-norm gradient clipping of clip_grad_norm_ applied as a scale inside the same pass.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable

import torch
from torch import nn


def _update(
    grad: torch.Tensor,
    master: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    weight: torch.Tensor,
    lr: torch.Tensor,
    bias_correction1: torch.Tensor,
    bias_correction2_sqrt: torch.Tensor,
    grad_scale: torch.Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> None:
    """torch.optim.AdamW's single-tensor step on the master, then the bf16 copy, in one pass."""
    g = grad.float() * grad_scale
    master.mul_(1 - lr * weight_decay)
    exp_avg.lerp_(g, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    master.sub_(exp_avg / denom * (lr / bias_correction1))
    weight.copy_(master)


def _sum_of_squares(grad: torch.Tensor) -> torch.Tensor:
    """For the global gradient norm; compiled, a bf16 buffer is read once (no fp32 copy)."""
    return grad.float().square().sum()


@functools.cache
def compiled(fn: Callable[..., torch.Tensor | None]) -> Callable[..., torch.Tensor | None]:
    """`fn` through torch.compile, or op by op where inductor cannot build it (no C++ compiler
    on the machine): slower, same result."""
    state: dict[str, Callable[..., torch.Tensor | None] | None] = {"fn": None}
    fast = torch.compile(fn, dynamic=True)

    def call(*args: object) -> torch.Tensor | None:
        chosen = state["fn"]
        if chosen is not None:
            return chosen(*args)
        try:
            result = fast(*args)
            state["fn"] = fast
        except Exception as exc:  # noqa: BLE001  (inductor fails in many ways: no compiler, unsupported op, ...)
            warnings.warn(
                f"torch.compile of {fn.__name__} failed ({type(exc).__name__}); running it op by op"
            )
            state["fn"] = fn
            result = fn(*args)
        return result

    return call


class FlatPart:
    """One recipe part's trainable tensors, each kind in one flat buffer: the bf16 weights the
    model computes with, their fp32 masters (what is trained and saved) and the bf16 gradients.

    The parameters stay the model's objects; their storage becomes views into `weights`, and
    their `.grad` views into `grad`, which autograd then accumulates into (no per-step gradient
    allocation, no gathering). Built once per run on `device` from the fp32 weights, whose memory
    is freed.
    """

    def __init__(self, params: list[nn.Parameter], dtype: torch.dtype, device: torch.device):
        total = sum(p.numel() for p in params)
        self.masters = torch.empty(total, dtype=torch.float32, device=device)
        self.weights = torch.empty(total, dtype=dtype, device=device)
        self.grad = torch.zeros(total, dtype=dtype, device=device)
        self.master_views: list[torch.Tensor] = []
        offset = 0
        with torch.no_grad():
            for p in params:
                size = p.numel()
                master = self.masters[offset : offset + size].view(p.shape)
                master.copy_(p)
                weight = self.weights[offset : offset + size].view(p.shape)
                weight.copy_(master)
                p.data = weight
                p.grad = self.grad[offset : offset + size].view(p.shape)
                self.master_views.append(master)
                offset += size


class MasterAdamW:
    """AdamW for (FlatPart, learning rate) groups."""

    def __init__(
        self,
        groups: list[tuple[FlatPart, float]],
        betas: tuple[float, float],
        eps: float,
        weight_decay: float,
    ):
        self.groups = groups
        self.moments = [
            (torch.zeros_like(part.masters), torch.zeros_like(part.masters)) for part, _ in groups
        ]
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.update = compiled(_update)
        self.sum_of_squares = compiled(_sum_of_squares)
        self.steps = 0

    def step(self, max_grad_norm: float | None) -> None:
        device = self.groups[0][0].grad.device
        scale = torch.ones((), device=device)
        if max_grad_norm:
            norm = torch.stack([self.sum_of_squares(part.grad) for part, _ in self.groups]).sum().sqrt()  # type: ignore[misc]
            # clip_grad_norm_'s rule: multiply by min(max_norm / (norm + 1e-6), 1)
            scale = torch.clamp(max_grad_norm / (norm + 1e-6), max=1.0)
        self.steps += 1
        beta1, beta2 = self.betas
        bc1 = torch.tensor(1 - beta1**self.steps, device=device)
        bc2_sqrt = torch.tensor(math.sqrt(1 - beta2**self.steps), device=device)
        with torch.no_grad():
            for (part, lr), (exp_avg, exp_avg_sq) in zip(self.groups, self.moments):
                self.update(
                    part.grad,
                    part.masters,
                    exp_avg,
                    exp_avg_sq,
                    part.weights,
                    torch.tensor(lr, device=device),
                    bc1,
                    bc2_sqrt,
                    scale,
                    beta1,
                    beta2,
                    self.eps,
                    self.weight_decay,
                )
                part.grad.zero_()  # autograd accumulates the next step's gradients into it

    def state_dict(self) -> dict[str, object]:
        return {"steps": self.steps, "moments": [list(m) for m in self.moments]}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.steps = int(state["steps"])  # type: ignore[call-overload]
        for (exp_avg, exp_avg_sq), (saved_avg, saved_avg_sq) in zip(self.moments, state["moments"]):  # type: ignore[call-overload]
            exp_avg.copy_(saved_avg)
            exp_avg_sq.copy_(saved_avg_sq)
