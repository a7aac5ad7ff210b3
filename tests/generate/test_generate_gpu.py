"""GPU-only: CUDA-graph replay of the UNet gives the images eager execution gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from portraitist.generate.model import place
from portraitist.generate.txt2img import txt2img
from portraitist.models.loading import load_base


@pytest.mark.gpu
@pytest.mark.parametrize("batch", [1, 2])
def test_cuda_graphs_match_eager(batch: int) -> None:
    model = place(load_base("tiny"), torch.device("cuda"), torch.float16)
    seeds = list(range(batch))

    def images(graphs: bool) -> np.ndarray:
        out = txt2img(model, "a photo of a person", "", seeds, (64, 64), 5, 7.0, cuda_graphs=graphs)
        return np.stack([np.asarray(im) for im in out]).astype(int)

    eager = images(False)
    first = images(True)  # captures
    again = images(True)  # replays the captured graph
    assert np.abs(first - eager).max() <= 1
    assert np.array_equal(first, again)
