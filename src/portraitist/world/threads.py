"""Torch's CPU thread count for a block of work, restored afterwards: the world's small models
gain little from many threads, and on a busy CPU lose much."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with `count` torch threads, then give back the thread count it had."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
