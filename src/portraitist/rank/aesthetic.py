"""LAION's improved aesthetic predictor, the scorer the thesis's vote picked (2.4.2).

An MLP trained on SAC + LOGOS + AVA ratings over L2-normalised CLIP ViT-L/14 image embeddings
(C. Schuhmann, improved-aesthetic-predictor); it predicts a mean rating of about 1-10.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from portraitist.errors import PortraitistError
from portraitist.models.offline import load_from_hub

DEFAULT_AESTHETIC = "camenduru/improved-aesthetic-predictor:sac+logos+ava1-l14-linearMSE.pth"
RANDOM_AESTHETIC = "random"  # seeded random weights: offline tests and the demo


class AestheticHead(nn.Module):
    """LAION's layout exactly (Linear 1024-128-64-16-1 with dropouts, no activations, as it was
    trained), so its published state dict (`layers.0.weight`, ...) loads as is."""

    def __init__(self, input_size: int = 768):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(input_size, 1024),
            nn.Dropout(0.2),
            nn.Linear(1024, 128),
            nn.Dropout(0.2),
            nn.Linear(128, 64),
            nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Normalised CLIP image embeddings (n, input_size) -> predicted ratings (n,)."""
        return self.layers(embeddings).squeeze(-1)


def weights_file(spec: str) -> Path:
    """A local file, or 'REPO:FILE' fetched (once, then cached) from the Hugging Face hub."""
    if Path(spec).expanduser().is_file():
        return Path(spec).expanduser()
    if ":" not in spec:
        raise PortraitistError(
            f"Aesthetic predictor weights {spec} not found. Give the .pth file of LAION's "
            f"improved-aesthetic-predictor, a hub file as REPO:FILE (default {DEFAULT_AESTHETIC}), "
            "or `random`."
        )
    from huggingface_hub import hf_hub_download

    repo, filename = spec.split(":", 1)
    try:
        return Path(load_from_hub(
            lambda local_only: hf_hub_download(repo, filename, local_files_only=local_only), repo,
            "aesthetic predictor",
            f"Download {filename} and set aesthetic_weights to its path, or to `random` for offline tests.",
        ))  # fmt: skip
    except PortraitistError:
        raise
    except Exception as exc:  # offline, missing repo or file: all mean "cannot get it from here"
        raise PortraitistError(
            f"Could not fetch the aesthetic predictor {spec} from the hub ({str(exc).splitlines()[0]}). "
            "Download sac+logos+ava1-l14-linearMSE.pth and give its path, or use `random` for offline tests."
        ) from exc


def load_aesthetic(spec: str, embed_dim: int, seed: int = 0) -> AestheticHead:
    """The head for `embed_dim`-wide CLIP embeddings (768 for ViT-L/14); `random`: seeded random weights."""
    torch.manual_seed(seed)
    head = AestheticHead(embed_dim)
    if spec != RANDOM_AESTHETIC:
        state = torch.load(weights_file(spec), map_location="cpu", weights_only=True)
        try:
            head.load_state_dict(state)
        except RuntimeError as exc:
            raise PortraitistError(
                f"{spec} does not fit an aesthetic head over {embed_dim}-d CLIP embeddings; "
                f"LAION's weights need CLIP ViT-L/14 (768-d) as --clip-model. ({str(exc).splitlines()[0]})"
            ) from exc
    return head.eval()
