"""AdamW over fp32 master weights of a bf16 model, in one fused pass over memory.

With bf16 weights (precision `master-bf16`) a step has to read the bf16 gradients, update the
fp32 masters and the two moments, and write the bf16 weights back. Done as separate operations
(gradient copy, norm, fused AdamW, weight copy) that is about twice the memory traffic of the
update itself, and on a CPU that traffic is most of the optimizer's time. Here the masters, the
moments, the weights and the gradients each live in one flat buffer per parameter group, so
torch.compile turns the whole update into one loop over memory, and the gradient norm into one
read of the bf16 gradients (for cpu-bench's UNet on one core: 91 ms -> 47 ms per step;
docs/train.md). The model's parameters and the master tensors stay the same Python objects:
their storage becomes views into the flat buffers.

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
    on this machine): slower, same result."""
    state: dict[str, Callable[..., torch.Tensor | None] | None] = {"fn": None}
    fast = torch.compile(fn, dynamic=True)

    def call(*args: object) -> torch.Tensor | None:
        chosen = state["fn"]
        if chosen is not None:
            return chosen(*args)
        try:
            result = fast(*args)
            state["fn"] = fast
        except Exception as exc:  # noqa: BLE001  (any compiler failure: fall back, same math)
            warnings.warn(f"torch.compile of {fn.__name__} failed ({type(exc).__name__}); running it op by op")
            state["fn"] = fn
            result = fn(*args)
        return result

    return call


def _flatten(tensors: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """One buffer holding `tensors`' values; each tensor's storage becomes a view into it."""
    flat = torch.empty(sum(t.numel() for t in tensors), dtype=dtype, device=tensors[0].device)
    offset = 0
    for t in tensors:
        view = flat[offset : offset + t.numel()].view(t.shape)
        view.copy_(t.detach())
        t.data = view
        offset += t.numel()
    return flat


class FlatGroup:
    """One parameter group: bf16 weights, fp32 masters, moments and gradients, each flat."""

    def __init__(self, params: list[nn.Parameter], masters: list[torch.Tensor], lr: float):
        self.params = params
        self.lr = lr
        self.weights = _flatten(params, params[0].dtype)
        self.masters = _flatten(masters, torch.float32)
        self.exp_avg = torch.zeros_like(self.masters)
        self.exp_avg_sq = torch.zeros_like(self.masters)
        self.grad = torch.zeros_like(self.weights)

    def gather_grads(self) -> None:
        """Move the parameters' gradients into the flat buffer (zeros for unused ones)."""
        offset = 0
        with torch.no_grad():
            for p in self.params:
                part = self.grad[offset : offset + p.numel()]
                if p.grad is None:
                    part.zero_()
                else:
                    part.copy_(p.grad.reshape(-1))
                    p.grad = None
                offset += p.numel()


class MasterAdamW:
    """AdamW for groups of (bf16 params, their fp32 masters, learning rate)."""

    def __init__(
        self,
        groups: list[tuple[list[nn.Parameter], list[torch.Tensor], float]],
        betas: tuple[float, float],
        eps: float,
        weight_decay: float,
    ):
        self.groups = [FlatGroup(params, masters, lr) for params, masters, lr in groups if params]
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.update = compiled(_update)
        self.sum_of_squares = compiled(_sum_of_squares)
        self.steps = 0

    def step(self, max_grad_norm: float | None) -> None:
        for group in self.groups:
            group.gather_grads()
        scale = torch.ones((), device=self.groups[0].grad.device)
        if max_grad_norm:
            norm = torch.stack([self.sum_of_squares(g.grad) for g in self.groups]).sum().sqrt()  # type: ignore[misc]
            # clip_grad_norm_'s rule: multiply by min(max_norm / (norm + 1e-6), 1)
            scale = torch.clamp(max_grad_norm / (norm + 1e-6), max=1.0)
        self.steps += 1
        beta1, beta2 = self.betas
        bc1 = torch.tensor(1 - beta1**self.steps, device=scale.device)
        bc2_sqrt = torch.tensor(math.sqrt(1 - beta2**self.steps), device=scale.device)
        with torch.no_grad():
            for group in self.groups:
                self.update(
                    group.grad, group.masters, group.exp_avg, group.exp_avg_sq, group.weights,
                    torch.tensor(group.lr, device=scale.device), bc1, bc2_sqrt, scale,
                    beta1, beta2, self.eps, self.weight_decay,
                )

    def state_dict(self) -> dict[str, object]:
        return {
            "steps": self.steps,
            "exp_avg": [g.exp_avg for g in self.groups],
            "exp_avg_sq": [g.exp_avg_sq for g in self.groups],
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.steps = int(state["steps"])  # type: ignore[call-overload]
        for group, avg, avg_sq in zip(self.groups, state["exp_avg"], state["exp_avg_sq"]):  # type: ignore[call-overload]
            group.exp_avg.copy_(avg)
            group.exp_avg_sq.copy_(avg_sq)
