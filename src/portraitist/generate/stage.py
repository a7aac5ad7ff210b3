"""The generate stage (thesis 2.4): portraits from the user's model, written to outputs/.

Image i of a request uses seed + i, so any image can be remade alone (`--seed S+i -n 1`).
Batches share one text encoding and one VAE decoder call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from portraitist.devices import resolve_device
from portraitist.errors import PortraitistError
from portraitist.generate.config import GenerateConfig
from portraitist.generate.control import condition_image, condition_tensor, load_controlnet
from portraitist.generate.guidance import Control
from portraitist.generate.model import load_model, pick_dtype
from portraitist.generate.outputs import OutputFolder
from portraitist.generate.prompts import Prompt, build_prompt, workspace_subject
from portraitist.generate.sampling import SCHEDULERS
from portraitist.generate.sizes import image_size
from portraitist.generate.txt2img import txt2img
from portraitist.models.loading import StableDiffusion, vae_scale_factor
from portraitist.models.trained import read_model_info
from portraitist.progress import ProgressCallback, ProgressEvent, no_progress
from portraitist.workspace import Workspace

STAGE = "generate"


@dataclass(frozen=True)
class GenerateResult:
    images: list[Path]
    prompt: Prompt
    size: tuple[int, int]
    seeds: list[int]


def output_folder(workspace: Workspace | None, out: Path | None, images: str, log: str) -> OutputFolder:
    if workspace is not None:
        return OutputFolder.in_workspace(workspace, images, log)
    if out is None:
        raise PortraitistError(
            "Without --workspace, give --out DIR for the images (and --base MODEL to sample)."
        )
    return OutputFolder.plain(out, log)


def read_image(path: Path, what: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError as exc:
        raise PortraitistError(f"Cannot read the {what} {path}: {exc}") from exc


def load_control(
    kind: str,
    spec: str | None,
    condition: Image.Image,
    scale: float,
    model: StableDiffusion,
    dtype: torch.dtype,
) -> Control:
    """The ControlNet for `kind` (the model family's default weights unless `spec`) and the condition it
    reads; refused when it was trained for another family's UNet."""
    spec = spec or model.family.controlnets.get(kind)
    if spec is None:
        raise PortraitistError(
            f"{model.family.label} has no default {kind} ControlNet; give one with --controlnet."
        )
    controlnet = load_controlnet(spec)
    wanted, got = model.unet.config.cross_attention_dim, controlnet.config.cross_attention_dim
    if wanted != got or model.unet.config.get("addition_embed_type") != controlnet.config.get(
        "addition_embed_type"
    ):
        raise PortraitistError(
            f"The ControlNet {spec!r} was trained for another kind of model (it attends to {got}-wide text, "
            f"the {model.family.label} base to {wanted}-wide). "
            f"Give a ControlNet for {model.family.label} with --controlnet."
        )
    return Control(controlnet.to(device=model.unet.device, dtype=dtype), condition_tensor(condition), scale)


def generate(
    workspace: Workspace | None, config: GenerateConfig, progress: ProgressCallback = no_progress
) -> GenerateResult:
    """Sample config.n images into the workspace's outputs/ (or config.out) and log each one."""
    if config.scheduler not in SCHEDULERS:
        raise PortraitistError(
            f"Unknown scheduler {config.scheduler!r}. Schedulers: {', '.join(SCHEDULERS)}."
        )
    subject = workspace_subject(workspace) if workspace is not None else None
    prompt = build_prompt(config.style, config.prompt, config.negative_prompt, subject)
    folder = output_folder(workspace, config.out, "images", "generations.jsonl")
    reference = read_image(config.reference, "reference image") if config.reference is not None else None
    base = read_model_info(workspace).base if workspace is not None else config.base
    if config.size is not None and base is not None:  # a bad size is refused before the model loads
        image_size(config.aspect, config.size, vae_scale_factor(base))

    device = resolve_device(config.device)
    dtype = pick_dtype(config.dtype, device)
    model = load_model(workspace, config.base, config.vae, device, dtype)
    size = image_size(config.aspect, config.size or model.resolution, model.vae_scale_factor, model.family)

    control = None
    control_record = None
    if config.control is not None and reference is not None:
        condition = condition_image(config.control, reference, size, config.depth_model)
        control = load_control(
            config.control, config.controlnet, condition, config.control_scale, model, dtype
        )
        control_record = {"kind": config.control, "reference": str(config.reference)}

    settings: dict[str, Any] = {
        "prompt": prompt.text,
        "negative_prompt": prompt.negative,
        "style": prompt.style,
        "steps": config.steps,
        "guidance": config.guidance,
        "width": size[0],
        "height": size[1],
        "scheduler": config.scheduler,
        "vae": model.vae_source,
        "control": control_record,
    }
    seeds = [config.seed + i for i in range(config.n)]
    total = config.n * config.steps
    paths: list[Path] = []
    for start in range(0, config.n, config.batch_size):
        batch = seeds[start : start + config.batch_size]

        def report(step: int, steps: int, done: int = start, count: int = len(batch)) -> None:
            # units are image-steps, so batches of any size fill the bar evenly
            units = done * config.steps + count * step * config.steps // steps
            progress(ProgressEvent(STAGE, units, total, f"images {done + 1}-{done + count} of {config.n}"))

        images = txt2img(
            model, prompt.text, prompt.negative, batch, size, config.steps, config.guidance, config.scheduler,
            control, report, config.cuda_graphs,
        )  # fmt: skip
        paths += folder.save(
            prompt.style or "prompt", [(im, {**settings, "seed": s}) for im, s in zip(images, batch)]
        )
    return GenerateResult(paths, prompt, size, seeds)
