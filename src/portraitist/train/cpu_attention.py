"""The attention kernel for training on a CPU: PyTorch's flash kernel, or one matmul + softmax.

PyTorch's CPU flash-attention kernel walks the score matrix in blocks, which pays off for long
sequences but costs more than it saves on small ones: cross-attention to 77 text tokens and
self-attention at 16x16 latents and below. Up to a 512x512 score matrix per head (which stays in
cache), diffusers' classic processor (baddbmm, softmax, bmm) is faster forward and backward;
measured numbers are in docs/train.md. GPUs keep SDPA everywhere.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor, AttnProcessor2_0

SMALL_SCORES = 512 * 512  # query x key positions up to which one matmul beats the flash kernel


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
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
