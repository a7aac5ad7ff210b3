"""Face swap (thesis 2.4.1): the user's face painted into a picture they supply.

1. Find the face (BlazeFace) and cut a square around it, `context` face sizes wide.
2. Outline it with the face mesh and feather the outline: the mask.
3. Masked img2img in latent space at the model's resolution: noise the square's latents to
   `strength`, denoise with the user's model, and after every Euler step put the picture's
   own latents (noised to the current sigma) back outside the mask, so only the face is
   redrawn and it fits what surrounds it. A pose or canny ControlNet drawn from the original
   face can hold its angle.
4. Decode, scale back to the square's size and alpha-blend into the full-resolution picture
   with the feathered mask: outside the mask the picture is untouched, to the pixel.
Several seeds are drawn; with a workspace they are ranked by dlib face identity (models/face_id.py)
when its models are installed, else kept in seed order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from portraitist.devices import resolve_device
from portraitist.errors import PortraitistError
from portraitist.generate.config import SwapConfig
from portraitist.generate.control import canny_condition, pose_condition
from portraitist.generate.face_mask import Box, face_outline, feathered_mask, find_face, square_around
from portraitist.generate.guidance import GuidedUNet
from portraitist.generate.model import load_model, pick_dtype
from portraitist.generate.prompts import expand, workspace_subject
from portraitist.generate.sampling import StepCallback, euler_schedule, karras_denoiser, sample_euler
from portraitist.generate.stage import load_control, output_folder, read_image
from portraitist.generate.text import encode_prompt_pair
from portraitist.generate.txt2img import initial_noise, seed_generators
from portraitist.generate.vae import decode, encode
from portraitist.models.loading import StableDiffusion
from portraitist.progress import ProgressCallback, ProgressEvent, no_progress
from portraitist.workspace import Workspace

STAGE = "swap"


@dataclass(frozen=True)
class FaceRegion:
    """What swap repaints: the face's box, the square around it and the blend mask over the square."""

    face: Box
    square: tuple[int, int, int, int]
    mask: np.ndarray  # float32 (side, side) in [0, 1]

    def full_mask(self, picture_size: tuple[int, int]) -> np.ndarray:
        """The blend mask over the whole picture (0 outside the square)."""
        full = np.zeros((picture_size[1], picture_size[0]), dtype=np.float32)
        x0, y0, x1, y1 = self.square
        full[y0:y1, x0:x1] = self.mask
        return full


@dataclass(frozen=True)
class SwapResult:
    images: list[Path]  # best first
    seeds: list[int]  # in the same order
    region: FaceRegion
    ranked_by_identity: bool


def face_region(picture: Image.Image, context: float, feather: float) -> FaceRegion:
    face = find_face(picture)
    square = square_around(face, context, picture.size)
    x0, y0, x1, _y1 = square
    side = x1 - x0
    crop = picture.crop(square)
    face_in_crop = (face[0] - x0, face[1] - y0, face[2] - x0, face[3] - y0)
    outline = face_outline(crop, face_in_crop)
    face_side = max(face[2] - face[0], face[3] - face[1])
    return FaceRegion(face, square, feathered_mask(outline, (side, side), feather * face_side))


def latent_mask(mask: np.ndarray, latent_size: int) -> torch.Tensor:
    """1 on every latent cell the blend mask reaches at all: those are repainted freely."""
    touched = torch.from_numpy((mask > 0).astype(np.float32))[None, None]
    return (F.adaptive_max_pool2d(touched, latent_size) > 0).float()


@torch.no_grad()
def inpaint_latents(
    model: StableDiffusion,
    picture_latents: torch.Tensor,
    mask: torch.Tensor,
    unet: GuidedUNet,
    seeds: list[int],
    steps: int,
    strength: float,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Masked img2img with Euler: only the mask's latents are denoised; the rest follow the picture."""
    schedule = euler_schedule(model.scheduler.config, model.scheduler.alphas_cumprod, steps).tail(strength)
    known = picture_latents.expand(len(seeds), -1, -1, -1)
    noise = initial_noise(seed_generators(seeds), tuple(known.shape[1:])).to(known.device)
    mask = mask.to(known.device)

    def keep_picture(x: torch.Tensor, i: int) -> torch.Tensor:
        return mask * x + (1 - mask) * (known + noise * schedule.sigmas[i])

    denoiser = karras_denoiser(unet, schedule, model.prediction_type)
    return sample_euler(denoiser, known + noise * schedule.sigmas[0], schedule.sigmas, callback, keep_picture)


def paste(picture: Image.Image, face: Image.Image, region: FaceRegion) -> Image.Image:
    """Blend the repainted square into the picture with the feathered mask."""
    x0, y0, x1, y1 = region.square
    original = np.asarray(picture, dtype=np.float32)
    result = original.copy()
    alpha = region.mask[..., None]
    painted = np.asarray(face.resize((x1 - x0, y1 - y0), Image.LANCZOS), dtype=np.float32)
    result[y0:y1, x0:x1] = alpha * painted + (1 - alpha) * original[y0:y1, x0:x1]
    return Image.fromarray(np.round(result).astype(np.uint8))


def identity_order(workspace: Workspace | None, images: list[Image.Image]) -> list[int] | None:
    """Indices best first by likeness to the user's photos, or None when that cannot be judged."""
    if workspace is None:
        return None
    try:
        from portraitist.models.face_id import FaceDescriptors, identity_score

        identity = FaceDescriptors()
        crops = workspace.kept_crops(workspace.read_manifest())
        references = [d for d in map(identity.descriptor, crops) if d is not None]
    except (ImportError, PortraitistError):
        return None
    if not references:
        return None
    scores = [identity_score(identity.descriptor(image), references) for image in images]
    return sorted(range(len(images)), key=lambda i: (scores[i] is None, -(scores[i] or 0.0), i))


def swap(
    workspace: Workspace | None,
    picture_path: Path,
    config: SwapConfig,
    progress: ProgressCallback = no_progress,
) -> SwapResult:
    """config.n versions of the picture with its face repainted by the user's model."""
    subject = workspace_subject(workspace) if workspace is not None else None
    prompt = expand(config.prompt, subject)
    negative = expand(config.negative_prompt or "", subject)
    folder = output_folder(workspace, config.out, "swaps", "swaps.jsonl")
    picture = read_image(picture_path, "picture")
    region = face_region(picture, config.context, config.feather)

    device = resolve_device(config.device)
    dtype = pick_dtype(config.dtype, device)
    model = load_model(workspace, config.base, config.vae, device, dtype)
    size = model.resolution
    square = picture.crop(region.square).resize((size, size), Image.LANCZOS)
    picture_latents = encode(model, square)
    mask = latent_mask(region.mask, size // model.vae_scale_factor)

    control = None
    if config.control is not None:
        condition = pose_condition(square) if config.control == "pose" else canny_condition(square)
        control = load_control(
            config.control, config.controlnet, condition, config.control_scale, model, dtype
        )

    record: dict[str, Any] = {
        "picture": str(picture_path),
        "prompt": prompt,
        "negative_prompt": negative,
        "steps": config.steps,
        "guidance": config.guidance,
        "strength": config.strength,
        "vae": model.vae_source,
        "control": config.control,
        "face_box": [round(v, 1) for v in region.face],
        "square": list(region.square),
    }
    seeds = [config.seed + i for i in range(config.n)]
    swapped: list[Image.Image] = []
    for start in range(0, config.n, config.batch_size):
        batch = seeds[start : start + config.batch_size]
        cond, uncond = encode_prompt_pair(model, prompt, negative, len(batch), (size, size))
        unet = GuidedUNet(model.unet, cond, uncond, config.guidance, control, config.cuda_graphs)

        def report(
            step: int, steps: int, done: int = start, count: int = len(batch), first: int = batch[0]
        ) -> None:
            progress(ProgressEvent(STAGE, done * steps + count * step, config.n * steps, f"seed {first}"))

        latents = inpaint_latents(
            model, picture_latents, mask, unet, batch, config.steps, config.strength, report
        )
        swapped += [paste(picture, face, region) for face in decode(model, latents)]

    ranked = identity_order(workspace, swapped)
    order = ranked if ranked is not None else list(range(len(swapped)))
    items = [(swapped[i], {**record, "seed": seeds[i], "rank": r}) for r, i in enumerate(order)]
    paths = folder.save(Path(picture_path).stem, items)
    return SwapResult(paths, [seeds[i] for i in order], region, ranked is not None)
