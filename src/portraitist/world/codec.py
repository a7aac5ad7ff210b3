"""The world's stand-in for the VAE: a lossless space-to-depth rearrangement of the pixels.

An AutoencoderKL would take long to train on a CPU, and at 32 px there is nothing to
compress, so the UNet diffuses the image itself, rearranged from 32x32x3 to 16x16x12
(`pixel_unshuffle` by 2) or 8x8x48 (by 4) so that it has the shape of a latent. The class
answers the surface our train and generate code read of a VAE: `encode(x).latent_dist` (a
Gaussian of zero variance), `decode(z).sample`, `config.scaling_factor`, and
`config.block_out_channels`, whose length gives the scale factor (2 ** (2 - 1) = 2 or
2 ** (3 - 1) = 4) that the code derives as for SD's VAE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput

# The world's renders in [-1, 1] have standard deviation 0.60 and root mean square 0.62 (2000
# renders of 100 pretraining people, seed 0): scaled by 1.6 the latents have about unit variance,
# as SD's 0.18215 gives its VAE's.
SCALING_FACTOR = 1.6


class PixelCodec(ModelMixin, ConfigMixin):
    """Pixels <-> (latent_channels, H/f, W/f) latents by pixel (un)shuffle, no weights.

    f = 2 ** (len(block_out_channels) - 1), the scale factor our code derives from any VAE's config.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        latent_channels: int = 12,
        block_out_channels: tuple[int, ...] = (12, 12),
        sample_size: int = 32,
        scaling_factor: float = SCALING_FACTOR,
    ):
        super().__init__()
        factor = 2 ** (len(block_out_channels) - 1)
        if latent_channels != in_channels * factor**2:
            raise ValueError(f"latent_channels must be in_channels * {factor}**2 = {in_channels * factor**2}")
        self.factor = factor
        # no weights: this empty buffer carries the dtype and device that .to() gives the codec,
        # which ModelMixin.dtype/.device (and our callers) read
        self.register_buffer("anchor", torch.zeros(0), persistent=False)

    def encode(
        self, x: torch.Tensor, return_dict: bool = True
    ) -> AutoencoderKLOutput | tuple[DiagonalGaussianDistribution]:
        """(N, 3, H, W) in [-1, 1] -> a zero-variance Gaussian over (N, 3f², H/f, W/f), unscaled."""
        mean = F.pixel_unshuffle(x, self.factor)
        # parameters = [mean, log-variance]; deterministic makes std exactly 0, so sampling is the mean
        dist = DiagonalGaussianDistribution(
            torch.cat([mean, torch.zeros_like(mean)], dim=1), deterministic=True
        )
        return AutoencoderKLOutput(latent_dist=dist) if return_dict else (dist,)

    def decode(
        self, z: torch.Tensor, return_dict: bool = True, generator: torch.Generator | None = None
    ) -> DecoderOutput | tuple[torch.Tensor]:
        """(N, 3f², h, w) -> (N, 3, fh, fw); `generator` (diffusers' pipelines pass one) is not needed."""
        sample = F.pixel_shuffle(z, self.factor)
        return DecoderOutput(sample=sample) if return_dict else (sample,)
