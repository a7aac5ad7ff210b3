"""CLIP image and text embeddings (class-word choice, ranking, evaluation).

`spec` is a hub id or folder of a transformers CLIPModel (default ViT-L/14, the encoder SD 1.x
was trained with), or a random CLIP built in code with the real tokenizer: `tiny` for offline
tests, `vit-l-14-random` for timing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

from portraitist.errors import PortraitistError
from portraitist.models.offline import load_pretrained
from portraitist.models.tokenizer import VOCAB_SIZE, clip_tokenizer

DEFAULT_CLIP = "openai/clip-vit-large-patch14"
TINY_IMAGE_SIZE = 32


@dataclass
class Clip:
    model: CLIPModel
    processor: CLIPImageProcessor
    tokenizer: CLIPTokenizer

    @torch.no_grad()
    def embed_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """L2-normalised image embeddings, one row per image."""
        pixels = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")[
            "pixel_values"
        ]
        out = self.model.get_image_features(pixel_values=pixels.to(self.model.device, self.model.dtype))
        return F.normalize(_as_tensor(out).float(), dim=-1)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings, one row per text."""
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
        out = self.model.get_text_features(
            input_ids=tokens["input_ids"].to(self.model.device),
            attention_mask=tokens["attention_mask"].to(self.model.device),
        )
        return F.normalize(_as_tensor(out).float(), dim=-1)


def _as_tensor(out: torch.Tensor | object) -> torch.Tensor:
    # transformers 5 may return a model output whose pooled projection is the embedding
    if isinstance(out, torch.Tensor):
        return out
    return out.pooler_output  # type: ignore[attr-defined]


# Random CLIPs of real shapes: `tiny` for tests, `vit-l-14-random` (ViT-L/14's shapes, the
# compute of the real model) for benchmarks.
RANDOM_CLIPS: dict[str, dict[str, Any]] = {
    "tiny": {
        "text": {
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
        },
        "vision": {
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": TINY_IMAGE_SIZE,
            "patch_size": 8,
        },
        "projection_dim": 32,
    },
    "vit-l-14-random": {
        "text": {
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
        },
        "vision": {
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "image_size": 224,
            "patch_size": 14,
        },
        "projection_dim": 768,
    },
}


def random_clip(shape: str = "tiny", seed: int = 0) -> Clip:
    """A CLIP of the real architecture (ViT + text transformer) with seeded random weights."""
    spec = RANDOM_CLIPS[shape]
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=VOCAB_SIZE,
            max_position_embeddings=77,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
            **spec["text"],
        ),
        vision_config=spec["vision"],
        projection_dim=spec["projection_dim"],
    )
    side = spec["vision"]["image_size"]
    processor = CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    return Clip(CLIPModel(config).eval(), processor, clip_tokenizer())


def tiny_clip(seed: int = 0) -> Clip:
    """The 32 px random CLIP the tests and the offline demo use."""
    return random_clip("tiny", seed)


def load_clip(spec: str = DEFAULT_CLIP, device: str | torch.device = "cpu") -> Clip:
    if spec in RANDOM_CLIPS:
        clip = random_clip(spec)
    else:
        try:
            model, processor, tokenizer = load_pretrained(
                spec, "CLIP model",
                "Give --clip-model (clip_model in a --config file) a CLIP folder you have, "
                "or `tiny` for a small random CLIP that runs offline.",
                CLIPModel, CLIPImageProcessor, CLIPTokenizer,
            )  # fmt: skip
            clip = Clip(model.eval(), processor, tokenizer)
        except (OSError, ValueError) as exc:
            raise PortraitistError(
                f"Could not load the CLIP model {spec!r} ({str(exc).splitlines()[0]}). "
                f"Give a folder or a hub id you can download (default {DEFAULT_CLIP}), "
                "or `tiny` for an offline random CLIP."
            ) from exc
    clip.model.to(device)
    return clip
