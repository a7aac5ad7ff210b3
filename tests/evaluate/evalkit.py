"""Offline evaluation settings shared by the evaluate tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from portraitist.evaluate.config import EvaluateConfig
from portraitist.rank.config import RankConfig
from portraitist.train.config import TrainConfig

# Offline stand-ins for the hub's metric models (as tests/pipeline's OFFLINE_TOML), the tiny base,
# and an evaluation set small enough for two CPU cores: two images per checkpoint, one Euler step.
OFFLINE_SCORING = RankConfig(clip_model="tiny", aesthetic_weights="random", lpips_backbone="random")


def offline_config(**changes: object) -> EvaluateConfig:
    settings: dict[str, object] = {
        "every": 2,
        "steps": 4,
        "subject_images": 1,
        "edit_prompts": ["Elmo holding a {me}"],
        "sampling_steps": 1,
        "train": TrainConfig(precision="fp32", flip=False),
        "scoring": OFFLINE_SCORING,
    }
    settings.update(changes)
    return EvaluateConfig.model_validate(settings)


# A small world comparison (--world): one image of the subject prompt per checkpoint, one Euler
# step, four small photos per person; fp32, so the numbers do not depend on the CPU's bf16 support.
# Each test appends its own [evaluate.world] keys.
WORLD_TOML = """
[evaluate]
subject_images = 1
sampling_steps = 1
[evaluate.train]
precision = "fp32"
flip = false
[evaluate.world]
photos = 4
photo_size = 128
references = 4
"""


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """The tiny models gain nothing from a second thread, and on a busy machine threads that wait
    for each other make every step slower (tests/train runs one thread per test too)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
