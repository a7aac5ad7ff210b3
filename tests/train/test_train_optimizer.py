"""The stage optimizer: fp32 master weights for bf16 models, and clipping folded into fused AdamW."""

from __future__ import annotations

import torch
from torch import nn

from portraitist.train.master_adamw import FlatPart
from portraitist.train.optimizer import BETAS, EPS, WEIGHT_DECAY, StageOptimizer
from portraitist.train.precision import FP32, MASTER_BF16
from portraitist.train.trainee import StageGroup


def _grads(params: list[nn.Parameter], scale: float) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [(torch.randn(p.shape, generator=generator) * scale).to(p.dtype) for p in params]


def test_clipping_inside_fused_adamw_matches_clip_then_step():
    torch.manual_seed(0)
    reference = [nn.Parameter(torch.randn(64, 32)), nn.Parameter(torch.randn(32))]
    ours = [nn.Parameter(p.detach().clone()) for p in reference]
    plain = torch.optim.AdamW(
        reference, lr=1e-2, betas=BETAS, weight_decay=WEIGHT_DECAY, eps=EPS, foreach=False
    )
    stage = StageOptimizer([StageGroup(ours, 1e-2, None)], FP32, torch.device("cpu"), max_grad_norm=1.0)
    for step, scale in enumerate((10.0, 0.001, 5.0)):  # clipped, not clipped, clipped
        for r, o, g in zip(reference, ours, _grads(reference, scale)):
            r.grad, o.grad = g.clone(), g.clone()
        torch.nn.utils.clip_grad_norm_(reference, 1.0)
        plain.step()
        stage.step()
        for a, b in zip(reference, ours):
            torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7, msg=f"step {step}")


def test_bf16_weights_train_fp32_masters_in_one_fused_pass():
    """master_adamw: AdamW + clipping on the fp32 masters, the bf16 weights their rounding, and
    autograd accumulating straight into the flat gradient buffer."""
    torch.manual_seed(0)
    weights = [nn.Parameter(torch.randn(64, 32)), nn.Parameter(torch.randn(32))]
    reference = [nn.Parameter(w.detach().clone()) for w in weights]
    flat = FlatPart(weights, torch.bfloat16, torch.device("cpu"))
    assert all(w.dtype == torch.bfloat16 for w in weights)
    plain = torch.optim.AdamW(
        reference, lr=1e-3, betas=BETAS, weight_decay=WEIGHT_DECAY, eps=EPS, foreach=False
    )
    stage = StageOptimizer(
        [StageGroup(weights, 1e-3, flat)], MASTER_BF16, torch.device("cpu"), max_grad_norm=1.0
    )
    x = torch.randn(8, 32)
    for scale in (10.0, 0.001, 5.0):
        loss = ((x.bfloat16() @ weights[0].T).float().sum() + weights[1].float().sum()) * scale
        loss.backward()  # into flat.grad, through the parameters' .grad views
        for r, w in zip(reference, weights):
            r.grad = w.grad.float().clone()  # the same bf16 gradients, seen in fp32
        torch.nn.utils.clip_grad_norm_(reference, 1.0)
        plain.step()
        stage.step()
        for r, m, w in zip(reference, flat.master_views, weights):
            torch.testing.assert_close(m, r.detach(), rtol=1e-5, atol=1e-6)
            assert torch.equal(w, m.bfloat16())
        assert flat.grad.abs().sum() == 0  # cleared for the next step
