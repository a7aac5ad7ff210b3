"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric"), the thesis's first ranking score and evaluation metric (2.4.2, 1.3).

Distances of every image to every crop reuse each picture's features: the lpips package's
forward() recomputes both sides for each pair, so n images x m crops would cost 2nm passes.
"""

from __future__ import annotations

import warnings
from urllib.error import URLError

import lpips
import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from portraitist.errors import PortraitistError


def load_lpips(
    net: str = "alex", backbone: str = "pretrained", device: str | torch.device = "cpu"
) -> lpips.LPIPS:
    """LPIPS v0.1 with its shipped linear heads; `backbone` random is for offline tests."""
    torch.manual_seed(0)  # a random backbone is the same on every run
    try:
        with warnings.catch_warnings():  # lpips still passes torchvision's deprecated `pretrained=`
            warnings.simplefilter("ignore", UserWarning)
            model = lpips.LPIPS(net=net, pnet_rand=backbone == "random", verbose=False)
    except (URLError, OSError) as exc:
        raise PortraitistError(
            f"LPIPS needs torchvision's ImageNet {net} weights, downloaded once into the torch cache "
            f"(~/.cache/torch/hub/checkpoints), and the download failed ({exc}). "
            "Connect once, or copy the file there; lpips_backbone = 'random' runs offline but only for tests."
        ) from exc
    return model.to(device).eval()


def to_lpips_input(images: list[Image.Image], size: int, device: torch.device) -> torch.Tensor:
    """RGB images -> (n, 3, size, size) in [-1, 1], the range LPIPS expects."""
    tensors = [pil_to_tensor(im.convert("RGB").resize((size, size), Image.BICUBIC)) for im in images]
    return (torch.stack(tensors).float().to(device) / 127.5) - 1.0


@torch.no_grad()
def lpips_features(model: lpips.LPIPS, pixels: torch.Tensor) -> list[torch.Tensor]:
    """Unit-normalised backbone activations per layer, as LPIPS.forward computes them."""
    return [lpips.normalize_tensor(f) for f in model.net.forward(model.scaling_layer(pixels))]


@torch.no_grad()
def lpips_to_references(
    model: lpips.LPIPS, image: list[torch.Tensor], references: list[torch.Tensor]
) -> torch.Tensor:
    """LPIPS distance from one image's features (batch of 1) to each reference: shape (m,)."""
    total = torch.zeros(references[0].shape[0], device=references[0].device)
    for layer, (ours, theirs) in enumerate(zip(image, references)):
        total += model.lins[layer]((ours - theirs) ** 2).mean(dim=(1, 2, 3))
    return total
