"""The class word (thesis 2.2.1): the coarse word that the instance token refines.

Among the candidates ([girl, man, boy, baby] by default), the word whose CLIP text embedding
has the smallest mean cosine distance to the CLIP image embeddings of the user's crops. The
thesis found gender- and age-aware words converge faster than "person", and "girl" rather than
"woman" (which aged young women).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from portraitist.models.clip import Clip

_BATCH = 16  # crops per CLIP forward pass: bounds memory with ViT-L on many photos


def class_distances(
    clip: Clip, crops: Sequence[Image.Image], words: Sequence[str], prompt: str
) -> dict[str, float]:
    """Mean cosine distance (1 - cosine similarity) from the crops to each word, word by word."""
    images = torch.cat([clip.embed_images(crops[i : i + _BATCH]) for i in range(0, len(crops), _BATCH)])
    texts = clip.embed_texts([prompt.format(word) for word in words])
    distances = (1 - images @ texts.T).mean(dim=0)
    return {word: float(d) for word, d in zip(words, distances)}


def nearest_word(distances: dict[str, float]) -> str:
    """The word at the smallest mean distance (the first one listed, on a tie)."""
    return min(distances, key=distances.__getitem__)
