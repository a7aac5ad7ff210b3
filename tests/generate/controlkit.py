"""Random ControlNets for the generate tests (no ControlNet weights can be downloaded here)."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import ControlNetModel

from portraitist.models.loading import load_base


def random_controlnet(base: str, folder: Path) -> Path:
    """A random ControlNet shaped for `base`'s UNet, its zero-initialised outputs made non-zero so that
    it steers, saved to `folder`."""
    controlnet = ControlNetModel.from_unet(load_base(base).unet)
    torch.manual_seed(0)
    with torch.no_grad():
        for block in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            block.weight.normal_(0, 0.5)
    controlnet.save_pretrained(folder)
    return folder
