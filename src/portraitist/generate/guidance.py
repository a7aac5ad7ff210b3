"""The UNet as the samplers see it: classifier-free guidance, optionally steered by a ControlNet.

Guidance (Ho & Salimans 2022) runs the conditional and unconditional predictions as one
batch of twice the size, so the UNet (and ControlNet) weights are read once per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import ControlNetModel, UNet2DConditionModel

from portraitist.generate.graphs import graphed
from portraitist.models.family import Conditioning


@dataclass
class Control:
    """A ControlNet and its condition images, one per image of the batch (thesis 2.4.1)."""

    model: ControlNetModel
    image: torch.Tensor  # (1, 3, H, W) in [0, 1], as ControlNet was trained; shared by the batch
    scale: float = 1.0


class GuidedUNet:
    """(x_in, t) -> the UNet's prediction (eps or v) for the guided batch."""

    def __init__(
        self,
        unet: UNet2DConditionModel,
        cond: Conditioning,
        uncond: Conditioning,
        guidance: float,
        control: Control | None = None,
        cuda_graphs: bool = True,
    ):
        self.unet = unet
        # CUDA graphs where a GPU would otherwise wait on kernel launches (not with a ControlNet,
        # whose residuals would need capturing too, nor with SDXL's added conditioning)
        self.use_graphs = cuda_graphs and unet.device.type == "cuda" and control is None and not cond.added
        self.guidance = guidance
        # guidance 1 is the plain conditional model: no unconditional half to compute
        self.batched = guidance != 1.0
        context = Conditioning.cat([uncond, cond]) if self.batched else cond
        self.context = context.to(unet.device, unet.dtype)
        self.control = control
        if control is not None:
            image = control.image.to(unet.device, control.model.dtype)
            self.control_image = image.expand(len(self.context), -1, -1, -1)

    def __call__(self, x_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x_in, x_in]) if self.batched else x_in
        x = x.to(self.unet.dtype)
        residuals = {}
        if self.control is not None:
            down, mid = self.control.model(
                x,
                t,
                controlnet_cond=self.control_image,
                conditioning_scale=self.control.scale,
                return_dict=False,
                **self.context.unet_kwargs(),
            )
            residuals = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        if residuals or not self.use_graphs:
            out = self.unet(x, t, **self.context.unet_kwargs(), **residuals).sample
        else:
            out = graphed(self.unet)(x, t, self.context.hidden)
        out = out.float()
        if not self.batched:
            return out
        uncond, cond = out.chunk(2)
        return uncond + self.guidance * (cond - uncond)
