"""The masked cross-attention loss of thesis 2.3 (inspired by Prompt-to-Prompt, Hertz et al. 2022).

The instance token should attend to the person, not to the background. A custom attention
processor records, at one map resolution (16x16 in SD 1.x at 512 px), the cross-attention
probabilities of the instance token; the loss is the binary cross-entropy between their mean
map and an all-zero map, counted only where the inverted person mask says "background":

    L = weight * sum(outside * -log(1 - mean_map)) / sum(outside)

Only the instance token's maps enter the loss, so its gradient reaches the network through
those maps alone (the queries and the keys that made them). It roughly doubled convergence in
the thesis but cost expressiveness: off by default.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention

from portraitist.errors import PortraitistError

THESIS_RESOLUTION = 16


def cross_attention_resolutions(unet: UNet2DConditionModel) -> list[int]:
    """Sides of the UNet's cross-attention maps at its training resolution, largest first."""
    config = unet.config
    side = int(config.sample_size)
    n = len(config.down_block_types)
    sides = {side // 2**i for i, kind in enumerate(config.down_block_types) if "CrossAttn" in kind}
    sides |= {side // 2 ** (n - 1 - j) for j, kind in enumerate(config.up_block_types) if "CrossAttn" in kind}
    if "CrossAttn" in str(config.mid_block_type):
        sides.add(side // 2 ** (n - 1))
    return sorted(sides, reverse=True)


def choose_resolution(unet: UNet2DConditionModel, wanted: int | None) -> int:
    """The thesis's 16x16 when the UNet has such maps, else its largest; or the one asked for."""
    sides = cross_attention_resolutions(unet)
    if wanted is None:
        return THESIS_RESOLUTION if THESIS_RESOLUTION in sides else sides[0]
    if wanted not in sides:
        raise PortraitistError(
            f"attention_resolution {wanted} is not among this UNet's cross-attention maps {sides}."
        )
    return wanted


class AttentionRecorder:
    """Collects, for one step, the instance token's attention maps at one resolution."""

    def __init__(self, resolution: int):
        self.resolution = resolution
        self.positions: torch.Tensor | None = None  # (B,) index of the instance token, -1 where absent
        self.maps: list[torch.Tensor] = []  # each (B, heads, side * side)

    def start(self, positions: torch.Tensor) -> None:
        self.positions = positions
        self.maps = []

    def record(self, probs: torch.Tensor) -> None:
        """probs: (B, heads, pixels, tokens) softmax output of one cross-attention layer."""
        assert self.positions is not None
        index = self.positions.clamp(min=0).view(-1, 1, 1, 1).expand(*probs.shape[:3], 1)
        self.maps.append(probs.gather(-1, index).squeeze(-1))


class RecordingAttnProcessor:
    """The layer's own processor, except at the recorder's resolution: there the probabilities are
    computed explicitly so that the instance token's column can be kept (with its graph)."""

    def __init__(self, recorder: AttentionRecorder, fallback: object):
        self.recorder = recorder
        self.fallback = fallback

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
        pixels = hidden_states.shape[1] if hidden_states.ndim == 3 else 0
        if (
            self.recorder.positions is None
            or encoder_hidden_states is None
            or attention_mask is not None
            or math.isqrt(pixels) != self.recorder.resolution
        ):
            return self.fallback(
                attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs
            )  # type: ignore[operator]
        batch = hidden_states.shape[0]
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        value = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states))
        probs = attn.get_attention_scores(query, key, None)
        self.recorder.record(probs.unflatten(0, (batch, attn.heads)))
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        return attn.to_out[1](attn.to_out[0](out)) / attn.rescale_output_factor


def install(unet: UNet2DConditionModel, resolution: int) -> AttentionRecorder:
    """Put recording processors on every cross-attention layer (attn2); they record at `resolution`."""
    recorder = AttentionRecorder(resolution)
    for name, module in unet.named_modules():
        if isinstance(module, Attention) and name.endswith("attn2"):
            if module.spatial_norm is not None or module.group_norm is not None or module.residual_connection:
                raise PortraitistError(
                    f"{name} is not an SD 1.x cross-attention layer; the attention loss needs one."
                )
            module.set_processor(RecordingAttnProcessor(recorder, module.processor))
    return recorder


def attention_loss(recorder: AttentionRecorder, person_masks: torch.Tensor) -> torch.Tensor:
    """Masked BCE of the mean instance-token map against zero (per example, then averaged).

    person_masks: (B, 1, H, W), 1 = person. Examples without the instance token do not count.
    """
    assert recorder.positions is not None and recorder.maps, "no attention maps were recorded this step"
    side = recorder.resolution
    mean_map = torch.stack([m.float().mean(dim=1) for m in recorder.maps]).mean(dim=0)
    mean_map = mean_map.view(-1, side, side)
    outside = 1.0 - F.interpolate(person_masks.float(), size=(side, side), mode="area")[:, 0]
    bce = -torch.log1p(-mean_map.clamp(max=1 - 1e-6))
    per_example = (outside * bce).sum(dim=(1, 2)) / outside.sum(dim=(1, 2)).clamp(min=1e-6)
    counted = recorder.positions >= 0
    if not bool(counted.any()):
        return mean_map.sum() * 0.0
    return per_example[counted].mean()
