"""Stable Diffusion 1.x models with seeded random weights and the real architecture classes.

Tests and the offline demo run on these, with nothing to download.
Compute does not depend on weight values, so the `sd15-random` preset times like SD 1.5.
The presets have the shapes and seeds of the external benchmark harness's models of the same
names, so that figures measured on either agree (change both together).
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from portraitist.models.sd1 import SD1_FAMILY
from portraitist.models.tokenizer import VOCAB_SIZE, clip_tokenizer

# SD 1.5's noise schedule (scheduler_config.json of stable-diffusion-v1-5).
SD_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "clip_sample": False,
    "timestep_spacing": "leading",
}

_FULL_BLOCKS = {
    "down_block_types": (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
}

# CLIP text encoders the presets share (SDXL's first encoder has the SD 1.x preset's shape)
SMALL_TEXT = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4,
              "projection_dim": 32}  # fmt: skip
CPU_BENCH_TEXT = {"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 6,
                  "num_attention_heads": 6, "projection_dim": 384}  # fmt: skip
CLIP_L_TEXT = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
               "num_attention_heads": 12, "projection_dim": 768}  # CLIP ViT-L/14's text model  # fmt: skip

PRESETS: dict[str, dict[str, Any]] = {
    # 64 px, 3.4M parameters: CPU unit tests and the offline demo
    "tiny": {
        "resolution": 64,
        "unet": {
            "block_out_channels": (32, 64),
            "layers_per_block": 1,
            "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
            "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
            "cross_attention_dim": 32,
        },
        "vae": {"block_out_channels": (32, 32, 64, 64), "layers_per_block": 1},
        "text": SMALL_TEXT,
    },
    # 256 px, 70M parameters: CPU benchmarks
    "cpu-bench": {
        "resolution": 256,
        "unet": dict(
            block_out_channels=(64, 128, 256, 256),
            layers_per_block=2,
            cross_attention_dim=384,
            **_FULL_BLOCKS,
        ),
        "vae": {"block_out_channels": (32, 64, 128, 128), "layers_per_block": 2},
        "text": CPU_BENCH_TEXT,
    },
    # 512 px, SD 1.5's exact shapes (1.07B parameters): GPU benchmarks
    "sd15-random": {
        "resolution": 512,
        "unet": dict(
            block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2,
            cross_attention_dim=768,
            **_FULL_BLOCKS,
        ),
        "vae": {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2},
        "text": CLIP_L_TEXT,
    },
}


def build_unet(preset: str, seed: int = 0) -> UNet2DConditionModel:
    p = PRESETS[preset]
    latent = p["resolution"] // 2 ** (len(p["vae"]["block_out_channels"]) - 1)
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=latent,
        in_channels=4,
        out_channels=4,
        attention_head_dim=8,
        norm_num_groups=32,
        **p["unet"],
    )


def build_vae(preset: str, seed: int = 0) -> AutoencoderKL:
    return vae_from(PRESETS[preset], seed, scaling_factor=0.18215)


def vae_from(p: dict[str, Any], seed: int, **extra: Any) -> AutoencoderKL:
    """A random AutoencoderKL for preset dict `p` (seed + 1, as the benchmark harness draws it)."""
    n_blocks = len(p["vae"]["block_out_channels"])
    torch.manual_seed(seed + 1)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        sample_size=p["resolution"],
        down_block_types=("DownEncoderBlock2D",) * n_blocks,
        up_block_types=("UpDecoderBlock2D",) * n_blocks,
        norm_num_groups=32,
        **p["vae"],
        **extra,
    )


def build_text_encoder(preset: str, seed: int = 0) -> CLIPTextModel:
    torch.manual_seed(seed + 2)
    return CLIPTextModel(clip_text_config(PRESETS[preset]["text"]))


def clip_text_config(shape: dict[str, Any], **extra: Any) -> CLIPTextConfig:
    """A CLIP text encoder's config over the real vocabulary and 77 positions."""
    settings: dict[str, Any] = {
        "vocab_size": VOCAB_SIZE,
        "max_position_embeddings": 77,
        "hidden_act": "quick_gelu",
        "bos_token_id": 49406,
        "eos_token_id": 49407,
        "pad_token_id": 49407,
    }
    return CLIPTextConfig(**{**settings, **extra}, **shape)


def build_components(preset: str, seed: int = 0) -> dict[str, Any]:
    """tokenizer, text_encoder, unet, vae, scheduler and family of a random SD 1.x model."""
    if preset not in PRESETS:
        raise KeyError(preset)
    return {
        "family": SD1_FAMILY,
        "tokenizer": clip_tokenizer(),
        "text_encoder": build_text_encoder(preset, seed),
        "unet": build_unet(preset, seed),
        "vae": build_vae(preset, seed),
        "scheduler": DDPMScheduler(**SD_SCHEDULER),
    }
