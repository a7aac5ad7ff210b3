"""Ordering generated images by their scores (thesis 2.4.2: the user gets the k best of n).

`--by` names scorers in order of importance. Each name contributes one sort key, earlier keys
win and later ones break ties, with one exception: `identity` is a gate, not a score to
maximise. Its key has three levels: the user (mean face distance to the user's crops within
the face model's threshold, dlib's 0.6), then someone else's face, then no face at all. So
among images that look like the user the next scorer decides, not "who looks most like the
passport photo", and an image of someone else or without a face comes after every image of
the user, whatever its other scores.
The identity value itself breaks the ties that remain. A missing score (None: no face, or a
scorer that could not run) sorts last for its key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from portraitist.errors import PortraitistError


@dataclass(frozen=True)
class ScorerInfo:
    name: str
    higher_is_better: bool
    description: str


SCORERS: dict[str, ScorerInfo] = {
    s.name: s
    for s in (
        ScorerInfo(
            "identity",
            True,
            "1 - mean dlib face-descriptor distance from the image's largest face to the user's crops, "
            "or with identity_model world the mean face-ID cosine (None: no face). A gate: passes when "
            "1 - it is within the threshold.",
        ),
        ScorerInfo(
            "aesthetic", True, "LAION improved aesthetic predictor on the CLIP image embedding (about 1-10)."
        ),
        ScorerInfo("clip-image", True, "Mean CLIP image-image cosine similarity to the user's crops."),
        ScorerInfo(
            "clip-text",
            True,
            "CLIP image-text cosine similarity to the prompt with the user's token removed.",
        ),
        ScorerInfo("lpips", False, "Mean LPIPS distance to the user's crops (lower is closer)."),
    )
}
GATE = "identity"
DEFAULT_ORDER = ("identity", "aesthetic")

Scores = Mapping[str, float | None]


def parse_order(text: str) -> list[str]:
    """'identity,aesthetic' -> ['identity', 'aesthetic']; unknown or repeated names are errors."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if not names:
        raise PortraitistError(f"--by needs at least one scorer name; choose from {', '.join(SCORERS)}.")
    for name in names:
        if name not in SCORERS:
            raise PortraitistError(
                f"Unknown scorer {name!r} in --by {text!r}; choose one or a comma-separated order of "
                f"{', '.join(SCORERS)} (default {','.join(DEFAULT_ORDER)})."
            )
    if len(set(names)) != len(names):
        raise PortraitistError(f"--by {text!r} names a scorer twice; each name may appear once.")
    return names


def passes_gate(identity: float | None, max_distance: float) -> bool:
    return is_number(identity) and 1.0 - identity <= max_distance  # type: ignore[operator]


def gate_level(identity: float | None, max_distance: float) -> int:
    """0: the user; 1: a face, someone else's; 2: no face."""
    if passes_gate(identity, max_distance):
        return 0
    return 1 if is_number(identity) else 2


def is_number(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def best_first(value: float | None, higher_is_better: bool) -> tuple[int, float]:
    """A sort key on one score: better values first, missing ones last."""
    if not is_number(value):
        return (1, 0.0)
    return (0, -value if higher_is_better else value)  # type: ignore[operator]


def sort_key(scores: Scores, order: Sequence[str], max_distance: float) -> tuple[tuple[int, float], ...]:
    key = []
    for name in order:
        if name == GATE:
            key.append((gate_level(scores.get(name), max_distance), 0.0))
        else:
            key.append(best_first(scores.get(name), SCORERS[name].higher_is_better))
    if GATE in order:
        key.append(best_first(scores.get(GATE), True))
    return tuple(key)


def rank_order(all_scores: Sequence[Scores], order: Sequence[str], max_distance: float) -> list[int]:
    """Indices of `all_scores`, best first; equal keys keep the generation order."""
    return sorted(range(len(all_scores)), key=lambda i: (sort_key(all_scores[i], order, max_distance), i))
