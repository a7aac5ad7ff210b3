"""Stable Diffusion 1.x/2.x: one CLIP text encoder, its last hidden states as the conditioning."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from torch import nn
from transformers import CLIPTextModel, CLIPTokenizer

from portraitist.errors import PortraitistError
from portraitist.models.family import Conditioning, Family, register

if TYPE_CHECKING:
    from portraitist.models.loading import StableDiffusion


def load_clip_parts(
    root: str, local_only: bool, vae: nn.Module | None = None, **extra: Any
) -> dict[str, Any]:
    """tokenizer, text_encoder, unet, vae (unless given) and the training scheduler of a diffusers
    folder or repo, and `extra` parts."""
    kw: dict[str, Any] = {"local_files_only": local_only}
    return dict(
        tokenizer=CLIPTokenizer.from_pretrained(root, subfolder="tokenizer", **kw),
        text_encoder=CLIPTextModel.from_pretrained(root, subfolder="text_encoder", **kw),
        unet=UNet2DConditionModel.from_pretrained(root, subfolder="unet", **kw),
        vae=vae if vae is not None else AutoencoderKL.from_pretrained(root, subfolder="vae", **kw),
        scheduler=DDPMScheduler.from_pretrained(root, subfolder="scheduler", **kw),
        **extra,
    )


class SD1(Family):
    name = "sd1"
    label = "Stable Diffusion 1.x/2.x"
    controlnets = {
        "pose": "lllyasviel/control_v11p_sd15_openpose",
        "canny": "lllyasviel/control_v11p_sd15_canny",
        "depth": "lllyasviel/control_v11f1p_sd15_depth",
    }
    checkpoint_encoders = {"text_encoder": ("cond_stage_model.transformer.", "transformers")}
    pipeline_options = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    single_file_preset = "sd15-random"
    kohya_encoders = {"text_encoder": "lora_te"}

    def recognises(self, index: dict[str, Any]) -> bool:
        return index.get("_class_name") == "StableDiffusionPipeline" and "text_encoder_2" not in index

    def recognises_checkpoint(self, keys: set[str]) -> bool:
        # the LDM layout with a CLIP text model (1.x) or an OpenCLIP one (2.x), and no second encoder
        return "model.diffusion_model.input_blocks.0.0.weight" in keys and not any(
            k.startswith("conditioner.embedders.1.") for k in keys
        )

    def load_folder(self, root: str, local_only: bool) -> dict[str, Any]:
        return load_clip_parts(root, local_only)

    def check(self, model: StableDiffusion) -> None:
        unet, text_encoder = model.unet.config, model.text_encoder.config
        if unet.get("addition_embed_type"):
            raise PortraitistError(
                f"{model.source} has an SDXL-style UNet with a single text encoder; use a complete SD 1.x or "
                "SDXL model."
            )
        if unet.cross_attention_dim != text_encoder.hidden_size:
            raise PortraitistError(
                f"{model.source} does not fit together: the UNet attends to {unet.cross_attention_dim}-wide "
                f"text embeddings but the text encoder makes {text_encoder.hidden_size}-wide ones. Use one "
                "SD 1.x/2.x model."
            )
        check_latent_channels(model)

    def encode(self, model: StableDiffusion, input_ids: torch.Tensor, sizes: torch.Tensor) -> Conditioning:
        return Conditioning(model.text_encoder(input_ids.to(model.text_encoder.device))[0])


def check_latent_channels(model: StableDiffusion) -> None:
    """The UNet must take the VAE's latents (an inpainting or depth UNet takes more channels)."""
    if model.unet.config.in_channels != model.vae.config.latent_channels:
        raise PortraitistError(
            f"{model.source}'s UNet takes {model.unet.config.in_channels} input channels (an inpainting or "
            "depth model); train a plain text-to-image model."
        )


SD1_FAMILY = register(SD1())
