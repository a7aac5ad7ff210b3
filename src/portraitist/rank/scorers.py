"""Every ranking score for a batch of generated images (thesis 2.4.2, plus face identity).

The user's crops are the reference: their CLIP embeddings, LPIPS features and face descriptors
(dlib's, or the world judges' face-ID for rendered people) are computed once (`References`); each
generated image is then embedded once by CLIP, and that embedding serves clip-image, clip-text and
aesthetic alike.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import lpips
import numpy as np
import torch
from PIL import Image

from portraitist.devices import resolve_device
from portraitist.models.clip import RANDOM_CLIPS, Clip, load_clip
from portraitist.rank.aesthetic import RANDOM_AESTHETIC, AestheticHead, load_aesthetic
from portraitist.rank.config import RankConfig
from portraitist.rank.identity import IdentityModel, load_identity
from portraitist.rank.perceptual import load_lpips, lpips_features, lpips_to_references, to_lpips_input

Scores = dict[str, float | None]


@dataclass
class ScoringModels:
    clip: Clip
    aesthetic: AestheticHead
    lpips: lpips.LPIPS
    faces: IdentityModel
    lpips_size: int
    device: torch.device


@dataclass
class References:
    """The user's crops, as each scorer compares with them."""

    clip: torch.Tensor  # (m, d) normalised CLIP image embeddings
    lpips: list[torch.Tensor]  # per LPIPS layer, (m, c, h, w)
    faces: list[np.ndarray]  # descriptors of the crops where a face was found

    @property
    def count(self) -> int:
        return self.clip.shape[0]


def load_scoring_models(config: RankConfig) -> ScoringModels:
    device = resolve_device(config.device)
    clip = load_clip(config.clip_model, device)
    head = load_aesthetic(config.aesthetic_weights, clip.model.config.projection_dim).to(device)
    perceptual = load_lpips(config.lpips_net, config.lpips_backbone, device)
    faces = load_identity(config)
    return ScoringModels(clip, head, perceptual, faces, config.lpips_size, device)


def stand_ins(config: RankConfig) -> dict[str, str]:
    """Scorers whose model is an offline random stand-in (tests, the demo), with which stand-in:
    their values are computed like the real ones but mean nothing."""
    found: dict[str, list[str]] = {}
    if config.clip_model in RANDOM_CLIPS:
        for name in ("clip-image", "clip-text", "aesthetic"):  # all three read the CLIP embedding
            found.setdefault(name, []).append(f"random CLIP {config.clip_model!r}")
    if config.aesthetic_weights == RANDOM_AESTHETIC:
        found.setdefault("aesthetic", []).append("random aesthetic head")
    if config.lpips_backbone == "random":
        found.setdefault("lpips", []).append("random LPIPS backbone")
    return {name: " and ".join(parts) for name, parts in found.items()}


def compute_references(models: ScoringModels, crops: Sequence[Image.Image]) -> References:
    descriptors = [models.faces.descriptor(crop) for crop in crops]
    return References(
        clip=models.clip.embed_images(list(crops)),
        lpips=lpips_features(models.lpips, to_lpips_input(list(crops), models.lpips_size, models.device)),
        faces=[d for d in descriptors if d is not None],
    )


def prompt_without_subject(prompt: str, tokens: Sequence[str]) -> str:
    """The prompt as CLIP can read it: the user's new tokens (S*, background tokens) removed
    (thesis 1.3's Text Alignment compares with 'the same prompts with S* removed')."""
    for token in tokens:
        prompt = prompt.replace(token, " ")
    return re.sub(r"\s+([,.])", r"\1", re.sub(r"\s+", " ", prompt)).strip()


@contextmanager
def timed(seconds: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start


@torch.no_grad()
def score_batch(
    models: ScoringModels,
    refs: References,
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    seconds: dict[str, float],
) -> list[Scores]:
    """Every scorer for every image of the batch; `seconds` accumulates time per scorer."""
    with timed(seconds, "clip-embed"):
        embeddings = models.clip.embed_images(list(images))
    with timed(seconds, "clip-image"):
        clip_image = (embeddings @ refs.clip.T).mean(dim=1)
    with timed(seconds, "clip-text"):
        clip_text = (embeddings * models.clip.embed_texts(list(prompts))).sum(dim=1)
    with timed(seconds, "aesthetic"):
        aesthetic = models.aesthetic(embeddings)
    with timed(seconds, "lpips"):
        features = lpips_features(
            models.lpips, to_lpips_input(list(images), models.lpips_size, models.device)
        )
        perceptual = [
            lpips_to_references(models.lpips, [f[i : i + 1] for f in features], refs.lpips).mean().item()
            for i in range(len(images))
        ]
    with timed(seconds, "identity"):
        identity = [models.faces.score(models.faces.descriptor(image), refs.faces) for image in images]
    return [
        {
            "identity": identity[i],
            "aesthetic": aesthetic[i].item(),
            "clip-image": clip_image[i].item(),
            "clip-text": clip_text[i].item(),
            "lpips": perceptual[i],
        }
        for i in range(len(images))
    ]
