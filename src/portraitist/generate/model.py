"""The model to sample from: a workspace's trained model or any base model, placed for speed.

Full fine-tunes and LoRA outputs both come through `load_trained` (models/trained.py), which
applies the trained weights; the VAE override (thesis 2.4.2: sd-vae-ft-mse sharpens the
eyes) replaces the decoder afterwards.
"""

from __future__ import annotations

import torch

from portraitist.config import PrecisionChoice
from portraitist.devices import cpu_has_bf16
from portraitist.errors import PortraitistError
from portraitist.models.cpu_attention import SamplingCpuAttnProcessor
from portraitist.models.loading import StableDiffusion, cast, load_base, replace_vae
from portraitist.models.trained import load_trained
from portraitist.workspace import Workspace

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def pick_dtype(precision: PrecisionChoice, device: torch.device) -> torch.dtype:
    """auto: fp16 on GPUs (as diffusers' reference runs), bf16 on CPUs with bf16 instructions, else fp32."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if cpu_has_bf16() else torch.float32
    if precision == "fp16" and device.type == "cpu":
        raise PortraitistError("fp16 is slow and inexact on CPUs; use --dtype bf16 or fp32 there.")
    return _DTYPES[precision]


def load_model(
    workspace: Workspace | None,
    base: str | None,
    vae: str | None,
    device: torch.device,
    dtype: torch.dtype,
) -> StableDiffusion:
    """The workspace's trained model, or `base` when there is no workspace, on device in dtype."""
    if workspace is not None:
        if base is not None:
            raise PortraitistError(
                "--base samples a plain base model and writes to --out; with --workspace the workspace's "
                "trained model is used. Give one of the two."
            )
        model = load_trained(workspace)
        if vae:
            replace_vae(model, vae)
    elif base is not None:
        model = load_base(base, vae=vae)
    else:
        raise PortraitistError(
            "Give --workspace WS (your trained model) or --base MODEL --out DIR (any base model)."
        )
    return place(model, device, dtype)


def place(model: StableDiffusion, device: torch.device, dtype: torch.dtype) -> StableDiffusion:
    """UNet and VAE in `dtype` (the text encoders, run once per batch, stay fp32 on CPUs; a VAE that
    asks for it, SDXL's, decodes in fp32 under fp16, which overflows it); the attention and memory
    layouts that are fastest on the device."""
    text_dtype = dtype if device.type == "cuda" else torch.float32
    vae_dtype = torch.float32 if dtype == torch.float16 and model.vae.config.get("force_upcast") else dtype
    encoders = [(encoder, text_dtype) for _, _, encoder in model.text_encoders]
    for module, wanted in ((model.unet, dtype), (model.vae, vae_dtype), *encoders):
        module.to(device)
        if module.dtype != wanted:
            cast(module, dtype=wanted)
    if device.type == "cpu" and dtype == torch.bfloat16:
        model.unet.set_attn_processor(SamplingCpuAttnProcessor())
    if device.type == "cuda":
        # tensor cores read convolutions in NHWC
        model.unet.to(memory_format=torch.channels_last)
        model.vae.to(memory_format=torch.channels_last)
    return model
