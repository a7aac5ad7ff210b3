"""Stable Diffusion XL (Podell et al. 2023): two CLIP text encoders and size micro-conditioning.

The UNet attends to both encoders' penultimate hidden states side by side (768 + 1280 wide in
SDXL base 1.0) and adds to its time embedding the second encoder's pooled, projected output and
six numbers: the photo's original size, the crop's top-left corner and the target size.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from transformers import CLIPTextModelWithProjection, CLIPTokenizer

from portraitist.errors import PortraitistError
from portraitist.models.family import Conditioning, Family, register, tokenize
from portraitist.models.sd1 import check_latent_channels, load_clip_parts

if TYPE_CHECKING:
    from portraitist.models.loading import StableDiffusion


def second_ids(input_ids: torch.Tensor, eos_id: int, pad_id: int) -> torch.Tensor:
    """The first tokenizer's ids as the second tokenizer writes them: the same vocabulary (added tokens
    included), but padding after the end token with its own pad token ("!" in SDXL)."""
    padding = (input_ids == eos_id).int().cumsum(-1) > 1  # every end token after the first
    return torch.where(padding, torch.full_like(input_ids, pad_id), input_ids)


def pooled_projection(
    encoder: CLIPTextModelWithProjection, last: torch.Tensor, ids: torch.Tensor, eos_id: int
) -> torch.Tensor:
    """The projected state at the first end token. transformers takes the highest id's position when a
    config keeps the legacy eos_token_id 2 (SDXL's does), which an added token would win."""
    end = (ids == eos_id).int().argmax(dim=-1)
    pooled = last[torch.arange(last.shape[0], device=last.device), end]
    return encoder.text_projection(pooled)


class SDXL(Family):
    name = "sdxl"
    label = "Stable Diffusion XL"
    text_encoder_names = ("text_encoder", "text_encoder_2")
    controlnets = {
        "pose": "xinsir/controlnet-openpose-sdxl-1.0",
        "canny": "diffusers/controlnet-canny-sdxl-1.0",
        "depth": "diffusers/controlnet-depth-sdxl-1.0",
    }
    checkpoint_encoders = {
        "text_encoder": ("conditioner.embedders.0.transformer.", "transformers"),
        "text_encoder_2": ("conditioner.embedders.1.model.", "open_clip"),
    }
    kohya_encoders = {"text_encoder": "lora_te1", "text_encoder_2": "lora_te2"}
    pipeline_class = "StableDiffusionXLPipeline"
    # SDXL base 1.0's pipeline guides an empty negative prompt against zeros; no invisible watermark
    pipeline_options = {"force_zeros_for_empty_prompt": True, "add_watermarker": False}
    tokenizer_pads = {"text_encoder": "<|endoftext|>", "text_encoder_2": "!"}
    single_file_preset = "sdxl-random"
    # a full fine-tune of the 2.6B-parameter UNet needs about 36 GB (bf16 weights, fp32 masters and
    # AdamW moments) before activations: recipes train it as LoRA unless asked (docs/train.md)
    unet_lora_by_default = True
    kohya_unet_names = "ldm"  # kohya's SDXL UNet keeps the original (SGM) module names

    def recognises(self, index: dict[str, Any]) -> bool:
        # the refiner has no first text encoder: it cannot learn the instance token there
        return index.get("_class_name") == "StableDiffusionXLPipeline" and bool(
            (index.get("text_encoder") or [None])[0]
        )

    def recognises_checkpoint(self, keys: set[str]) -> bool:
        return (
            "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight" in keys
            and any(k.startswith("conditioner.embedders.1.model.") for k in keys)
        )

    def load_folder(self, root: str, local_only: bool) -> dict[str, Any]:
        kw: dict[str, Any] = {"local_files_only": local_only}
        return load_clip_parts(
            root,
            local_only,
            tokenizer_2=CLIPTokenizer.from_pretrained(root, subfolder="tokenizer_2", **kw),
            text_encoder_2=CLIPTextModelWithProjection.from_pretrained(
                root, subfolder="text_encoder_2", **kw
            ),
        )

    def check(self, model: StableDiffusion) -> None:
        unet = model.unet.config
        assert model.text_encoder_2 is not None and model.tokenizer_2 is not None
        widths = model.text_encoder.config.hidden_size + model.text_encoder_2.config.hidden_size
        if unet.get("addition_embed_type") != "text_time" or unet.cross_attention_dim != widths:
            raise PortraitistError(
                f"{model.source} does not fit together: its UNet is not an SDXL UNet attending to both text "
                f"encoders ({unet.cross_attention_dim} wide, the encoders make {widths}). Use one complete "
                "SDXL model."
            )
        if len(model.tokenizer) != len(model.tokenizer_2):
            raise PortraitistError(
                f"{model.source}'s two tokenizers have different vocabularies; use an SDXL base."
            )
        check_latent_channels(model)

    def encode(self, model: StableDiffusion, input_ids: torch.Tensor, sizes: torch.Tensor) -> Conditioning:
        assert model.text_encoder_2 is not None and model.tokenizer_2 is not None
        eos = int(model.tokenizer.eos_token_id)
        ids = input_ids.to(model.text_encoder.device)
        ids_2 = second_ids(ids, eos, int(model.tokenizer_2.pad_token_id)).to(model.text_encoder_2.device)
        first = model.text_encoder(ids, output_hidden_states=True)
        second = model.text_encoder_2(ids_2, output_hidden_states=True)
        hidden = torch.cat(
            [first.hidden_states[-2], second.hidden_states[-2].to(first.hidden_states[-2].device)], dim=-1
        )
        pooled = pooled_projection(model.text_encoder_2, second.last_hidden_state, ids_2, eos).to(
            hidden.device
        )
        time_ids = sizes.to(hidden.device, hidden.dtype).expand(len(ids), -1)
        return Conditioning(hidden, {"text_embeds": pooled, "time_ids": time_ids})

    def negative(self, model: StableDiffusion, text: str, sizes: torch.Tensor) -> Conditioning:
        """SDXL base 1.0's pipeline (force_zeros_for_empty_prompt) guides an empty negative prompt
        against zeros rather than the encoded empty text."""
        if text.strip():
            return self.encode(model, tokenize(model, [text]), sizes)
        assert model.text_encoder_2 is not None
        first, second = model.text_encoder, model.text_encoder_2
        like = {"device": first.device, "dtype": first.dtype}
        width = first.config.hidden_size + second.config.hidden_size
        hidden = torch.zeros(1, model.tokenizer.model_max_length, width, **like)
        pooled = torch.zeros(1, second.config.projection_dim, **like)
        return Conditioning(hidden, {"text_embeds": pooled, "time_ids": sizes.to(**like).expand(1, -1)})

    def pipeline_embeds(self, cond: Conditioning, uncond: Conditioning) -> dict[str, torch.Tensor]:
        return dict(
            super().pipeline_embeds(cond, uncond),
            pooled_prompt_embeds=cond.added["text_embeds"],
            negative_pooled_prompt_embeds=uncond.added["text_embeds"],
        )

    def image_size(self, ratio: tuple[int, int], short_side: int, multiple: int) -> tuple[int, int]:
        """SDXL was trained on buckets of about its resolution squared in area, sides in steps of 64 at
        1024 px (1024x1024, 896x1152, 768x1344, 1344x768): keep the area, not the short side."""
        w, h = ratio
        step = max(multiple, short_side // 16 // multiple * multiple)
        width = max(step, round(short_side * math.sqrt(w / h) / step) * step)
        height = max(step, round(short_side * math.sqrt(h / w) / step) * step)
        return width, height


SDXL_FAMILY = register(SDXL())
