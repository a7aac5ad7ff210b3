"""Attention kernels for a UNet on a CPU: PyTorch's flash kernel, one matmul + softmax, or slices.

PyTorch's CPU flash-attention kernel walks the score matrix in blocks, which pays off for long
sequences but costs more than it saves on small ones: cross-attention to 77 text tokens and
self-attention at 16x16 latents and below. Up to a 512x512 score matrix per head (which stays in
cache), diffusers' classic processor (baddbmm, softmax, bmm) is faster forward and backward;
measured numbers are in docs/train.md. Training uses `CpuAttnProcessor`.

Sampling in bf16 meets one more slow case: the first UNet level's self-attention, whose heads are
small (8 channels at cpu-bench's 32x32 = 1024 tokens). The flash kernel then runs as tiny matrix
products and takes most of a UNet step; batched products and one softmax, 4 heads at a time so the
scores stay in cache, are 1.5x faster (20 ms against 32 ms per layer on one core). Sampling uses
`SamplingCpuAttnProcessor`: the same attention, computed in another order. GPUs keep SDPA everywhere.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import (
    Attention,
    AttnProcessor,
    AttnProcessor2_0,
    SlicedAttnProcessor,
)

SMALL_SCORES = 512 * 512  # query x key positions up to which one matmul beats the flash kernel
# where the sliced form wins: self-attention, heads of at most 16 channels, at most 4096 tokens
SMALL_HEAD = 16
MAX_TOKENS = 4096
SLICE = 4  # (batch x heads) rows per slice


class CpuAttnProcessor(AttnProcessor2_0):
    """SDPA for large attention problems, the classic matmul/softmax path for small ones."""

    def __init__(self) -> None:
        super().__init__()
        self.small = AttnProcessor()

    def __call__(  # type: ignore[override]
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: object,
        **kwargs: object,
    ) -> torch.Tensor:
        keys = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if hidden_states.ndim == 3 and hidden_states.shape[1] * keys.shape[1] <= SMALL_SCORES:
            return self.small(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        return super().__call__(
            attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs
        )


class SamplingCpuAttnProcessor(CpuAttnProcessor):
    """CpuAttnProcessor, with small-head self-attention sliced."""

    def __init__(self) -> None:
        super().__init__()
        self.sliced = SlicedAttnProcessor(SLICE)

    def __call__(  # type: ignore[override]
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: object,
        **kwargs: object,
    ) -> torch.Tensor:
        if (
            encoder_hidden_states is None
            and hidden_states.ndim == 3
            and attn.inner_dim // attn.heads <= SMALL_HEAD
            and hidden_states.shape[1] <= MAX_TOKENS
        ):
            return self.sliced(attn, hidden_states, encoder_hidden_states, attention_mask)
        return super().__call__(
            attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs
        )
