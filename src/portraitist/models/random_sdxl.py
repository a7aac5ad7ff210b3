"""SDXL models with seeded random weights and the real architecture classes (offline tests, benchmarks).

The `tiny-xl` and `cpu-bench-xl` presets have the shapes and seeds of the external benchmark
harness's models of the same names, so that figures measured on either agree (change both together):
three UNet levels (the first without attention), the "text_time" added conditioning, a CLIPTextModel
and a CLIPTextModelWithProjection.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from portraitist.models.random_sd import (
    CLIP_L_TEXT,
    CPU_BENCH_TEXT,
    SD_SCHEDULER,
    SMALL_TEXT,
    clip_text_config,
    vae_from,
)
from portraitist.models.sdxl import SDXL_FAMILY
from portraitist.models.tokenizer import clip_tokenizer

_SDXL_UNET = {
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "norm_num_groups": 32,
}

PRESETS: dict[str, dict[str, Any]] = {
    # 64 px, 6.3M parameters: CPU unit tests
    "tiny-xl": {
        "resolution": 64,
        "unet": {
            "block_out_channels": (32, 64, 64),
            "layers_per_block": 1,
            "transformer_layers_per_block": (1, 1, 2),
            "attention_head_dim": (1, 2, 2),
            "addition_time_embed_dim": 8,
        },
        "vae": {"block_out_channels": (32, 32, 64, 64), "layers_per_block": 1},
        "text": SMALL_TEXT,
        "text_2": SMALL_TEXT,
    },
    # 256 px, 168M parameters: CPU benchmarks
    "cpu-bench-xl": {
        "resolution": 256,
        "unet": {
            "block_out_channels": (64, 128, 256),
            "layers_per_block": 2,
            "transformer_layers_per_block": (1, 2, 4),
            "attention_head_dim": (1, 2, 4),
            "addition_time_embed_dim": 64,
        },
        "vae": {"block_out_channels": (32, 64, 128, 128), "layers_per_block": 2},
        "text": CPU_BENCH_TEXT,
        "text_2": {
            "hidden_size": 640,
            "intermediate_size": 2560,
            "num_hidden_layers": 8,
            "num_attention_heads": 10,
            "projection_dim": 640,
        },
    },
    # 1024 px, SDXL base 1.0's exact shapes (3.47B parameters): GPU benchmarks
    "sdxl-random": {
        "resolution": 1024,
        "unet": {
            "block_out_channels": (320, 640, 1280),
            "layers_per_block": 2,
            "transformer_layers_per_block": (1, 2, 10),
            "attention_head_dim": (5, 10, 20),
            "addition_time_embed_dim": 256,
        },
        "vae": {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2},
        "text": CLIP_L_TEXT,
        "text_2": {
            "hidden_size": 1280,
            "intermediate_size": 5120,
            "num_hidden_layers": 32,
            "num_attention_heads": 20,
            "projection_dim": 1280,
        },
    },
}


def build_unet(preset: str, seed: int = 0) -> UNet2DConditionModel:
    p = PRESETS[preset]
    latent = p["resolution"] // 2 ** (len(p["vae"]["block_out_channels"]) - 1)
    text, text_2 = p["text"], p["text_2"]
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=latent,
        in_channels=4,
        out_channels=4,
        # both encoders' hidden states side by side; 6 size numbers embedded plus the pooled text
        cross_attention_dim=text["hidden_size"] + text_2["hidden_size"],
        projection_class_embeddings_input_dim=6 * p["unet"]["addition_time_embed_dim"]
        + text_2["projection_dim"],
        **_SDXL_UNET,
        **p["unet"],
    )


def build_components(preset: str, seed: int = 0) -> dict[str, Any]:
    """Every part of a random SDXL model, seeded as the benchmark harness seeds them."""
    if preset not in PRESETS:
        raise KeyError(preset)
    p = PRESETS[preset]
    unet = build_unet(preset, seed)
    # force_upcast: as SDXL's VAE, decoded in fp32 when the rest runs in fp16
    vae = vae_from(p, seed, scaling_factor=0.13025, force_upcast=True)
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(clip_text_config(p["text"]))
    torch.manual_seed(seed + 3)
    # SDXL's second encoder is OpenCLIP's: GELU, and its tokenizer pads with "!" (id 0)
    text_encoder_2 = CLIPTextModelWithProjection(
        clip_text_config(p["text_2"], hidden_act="gelu", pad_token_id=0)
    )
    return {
        "family": SDXL_FAMILY,
        "tokenizer": clip_tokenizer(),
        "text_encoder": text_encoder,
        "tokenizer_2": clip_tokenizer(pad_token="!"),
        "text_encoder_2": text_encoder_2,
        "unet": unet,
        "vae": vae,
        "scheduler": DDPMScheduler(**SD_SCHEDULER),  # SDXL base 1.0 trains on SD's schedule
    }
