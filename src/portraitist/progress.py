"""One progress signature for all long work: the CLI draws it, the service stores it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProgressEvent:
    """Where a stage stands: `step` of `total` units done (total None when unknown)."""

    stage: str
    step: int
    total: int | None
    message: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)


ProgressCallback = Callable[[ProgressEvent], None]


def no_progress(event: ProgressEvent) -> None:
    """The default callback: report nothing."""
