"""The training set as tensors: VAE latents encoded once (photos and their mirror images), person
masks for the attention loss, the token ids of each photo's prompt and its size conditioning.

Encoding once instead of every step is what DreamBooth scripts skip; the VAE then leaves memory.
The latent *distribution* is cached (mean and std), so each step still draws a fresh sample,
as encoding anew would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL
from PIL import Image, ImageOps
from transformers import CLIPTokenizer

from portraitist.errors import PortraitistError
from portraitist.models.family import SizeInfo, size_rows
from portraitist.workspace import PhotoRecord, Workspace

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass
class Photo:
    """One training image at the model's resolution, its person mask, its prompt and its sizes."""

    image: Image.Image
    mask: Image.Image | None  # L mode, 255 = person
    prompt: str
    size: SizeInfo


@dataclass
class TrainingSet:
    """Cached tensors, one row per example (the photos, then their mirror images)."""

    latent_mean: torch.Tensor  # (N, 4, h, w), already times the VAE's scaling factor
    latent_std: torch.Tensor
    masks: torch.Tensor  # (N, 1, H, W), 1 = person
    input_ids: torch.Tensor  # (N, 77)
    sizes: torch.Tensor  # (N, 6): SizeInfo rows (SDXL's micro-conditioning; other families ignore them)

    def __len__(self) -> int:
        return self.latent_mean.shape[0]

    def sample_latents(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(self.latent_std[index].shape, generator=generator).to(self.latent_std.device)
        return self.latent_mean[index] + self.latent_std[index] * noise


def _square(image: Image.Image, resolution: int, resample: int) -> Image.Image:
    if image.size != (resolution, resolution):
        image = ImageOps.fit(image, (resolution, resolution), resample)
    return image


def _crop_size(record: PhotoRecord, image: Image.Image, resolution: int) -> SizeInfo:
    """SDXL's size conditioning of a crop: the square's side in the source photo (a small face crop
    enlarged to the training size is marked as such), uncropped, at the training size."""
    side = round(record.crop_box[2] - record.crop_box[0]) if record.crop_box else max(image.size)
    return SizeInfo((side, side), (0, 0), (resolution, resolution))


def load_photos(workspace: Workspace, prompts: list[str], resolution: int) -> list[Photo]:
    """The kept crops and masks from dataset/, resized to the model's resolution."""
    manifest = workspace.read_manifest()
    kept = manifest.kept
    if not kept:
        raise PortraitistError(
            f"{workspace.manifest_path} keeps no photos; "
            "add photos of one person and re-run `portraitist prepare`."
        )
    photos = []
    for record, prompt in zip(kept, prompts, strict=True):
        path = workspace.path(record.image) if record.image else None
        if path is None or not path.exists():
            raise PortraitistError(
                f"The crop {record.image!r} of {record.source} is missing; re-run `portraitist prepare`."
            )
        original = Image.open(path).convert("RGB")
        image = _square(original, resolution, Image.LANCZOS)
        mask = None
        if record.mask and workspace.path(record.mask).exists():
            mask = _square(Image.open(workspace.path(record.mask)).convert("L"), resolution, Image.BILINEAR)
        photos.append(Photo(image, mask, prompt, _crop_size(record, original, resolution)))
    return photos


def load_class_images(folder: Path, prompt: str, resolution: int) -> list[Photo]:
    """Prior-preservation images: every picture in a folder, with the class prompt."""
    files = sorted(p for p in Path(folder).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if folder else []
    if not files:
        raise PortraitistError(
            f"Prior preservation needs class images ('{prompt}'), and {folder} has none. "
            f"Generate 100-200 with `portraitist generate --base ... --prompt '{prompt}'` into a folder "
            "and pass it as --class-images."
        )
    photos = []
    for f in files:
        image = Image.open(f).convert("RGB")
        size = SizeInfo((image.height, image.width), (0, 0), (resolution, resolution))
        photos.append(Photo(_square(image, resolution, Image.LANCZOS), None, prompt, size))
    return photos


def _pixels(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1)


def _mask(mask: Image.Image | None, resolution: int) -> torch.Tensor:
    if mask is None:  # no mask: everything counts as the person, so the attention loss ignores it
        return torch.ones(1, resolution, resolution)
    return torch.from_numpy(np.asarray(mask, dtype=np.float32) / 255.0)[None]


@torch.no_grad()
def encode(
    photos: list[Photo],
    vae: AutoencoderKL,
    tokenizer: CLIPTokenizer,
    flip: bool,
    device: torch.device,
    batch: int = 4,
) -> TrainingSet:
    """Encode every photo (and its mirror image when `flip`) once; keep the latent distribution."""
    resolution = photos[0].image.size[0]
    pixels = torch.stack([_pixels(p.image) for p in photos])
    masks = torch.stack([_mask(p.mask, resolution) for p in photos])
    ids = tokenizer(
        [p.prompt for p in photos],
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )["input_ids"]
    sizes = size_rows(p.size for p in photos)
    if flip:
        pixels = torch.cat([pixels, pixels.flip(-1)])
        masks = torch.cat([masks, masks.flip(-1)])
        ids = torch.cat([ids, ids])
        sizes = torch.cat([sizes, sizes])
    means, stds = [], []
    for start in range(0, len(pixels), batch):
        chunk = pixels[start : start + batch].to(device, vae.dtype)
        dist = vae.encode(chunk).latent_dist
        means.append(dist.mean.float())
        stds.append(dist.std.float())
    scale = vae.config.scaling_factor
    return TrainingSet(
        latent_mean=torch.cat(means) * scale,
        latent_std=torch.cat(stds) * scale,
        masks=masks.to(device),
        input_ids=ids.to(device),
        sizes=sizes.to(device),
    )
