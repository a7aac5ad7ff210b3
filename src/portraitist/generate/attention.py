"""Attention for sampling on a CPU in bf16: training's CPU processor, plus sliced small heads.

portraitist.train.cpu_attention already sends small attention problems (cross-attention to 77
text tokens, self-attention at 16x16 latents and below) through one matmul and a softmax, and
large ones through PyTorch's flash kernel. Sampling in bf16 meets one more slow case: the first
UNet level's self-attention, whose heads are small (8 channels at cpu-bench's 32x32 = 1024
tokens). The flash kernel then runs as tiny matrix products and takes most of a UNet step;
batched products and one softmax, 4 heads at a time so the scores stay in cache, are 1.5x
faster (20 ms against 32 ms per layer on one core). The same attention, computed in another order.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import Attention, SlicedAttnProcessor

from portraitist.train.cpu_attention import CpuAttnProcessor

# where the sliced form wins: self-attention, heads of at most 16 channels, at most 4096 tokens
SMALL_HEAD = 16
MAX_TOKENS = 4096
SLICE = 4  # (batch x heads) rows per slice


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
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
