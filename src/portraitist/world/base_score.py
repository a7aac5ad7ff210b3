"""How close a world base comes to the targets a usable base meets, judged on many held-out prompts.

The targets: on prompts of held-out people (full captions: every attribute and the scene), the
judges' attribute accuracy on generated images at least 90% of what they score on real renders
of the same prompts; background and shirt colour at least 0.95; the face gate passing at least
0.9 of the images. Pretraining's sample grid judges 32 images as it goes; this judges as many
as asked, with the real renders beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from portraitist.generate.txt2img import txt2img
from portraitist.models.loading import load_base
from portraitist.progress import ProgressCallback, ProgressEvent, no_progress
from portraitist.world import model as world_model
from portraitist.world.dataset import preview_grid
from portraitist.world.judges import Judges, load_judges
from portraitist.world.pretrain import reference_images, sample_prompts

STAGE = "world score"
ATTRIBUTE_RATIO = 0.9  # generated attribute accuracy / real renders' (the mean over attributes)
COLOUR = 0.95  # background and shirt colour read as prompted
FACE_RATE = 0.9  # images the face gate passes


@dataclass
class BaseScore:
    prompts: int
    generated: dict[str, float]  # per attribute: the share of generated images the judge reads as prompted
    real: dict[str, float]  # the same on real renders of the same prompts
    face_rate: float
    real_face_rate: float

    @property
    def attribute_ratio(self) -> float:
        return float(np.mean(list(self.generated.values())) / np.mean(list(self.real.values())))

    def targets(self) -> list[tuple[str, float, float, bool]]:
        """(target, value, threshold, met) for each target (module docstring)."""
        rows = [
            ("attribute accuracy / real renders'", self.attribute_ratio, ATTRIBUTE_RATIO),
            ("background colour", self.generated["background"], COLOUR),
            ("shirt colour", self.generated["shirt"], COLOUR),
            ("face gate pass rate", self.face_rate, FACE_RATE),
        ]
        return [(name, value, threshold, value >= threshold) for name, value, threshold in rows]


def score_base(
    base: str = "world",
    count: int = 128,
    seed: int = 0,
    steps: int = 20,
    guidance: float = 4.0,
    batch: int = 32,
    judges: Judges | None = None,
    grid: Path | None = None,
    progress: ProgressCallback = no_progress,
) -> BaseScore:
    """Generate one image for each of `count` held-out prompts, judge them and the real renders."""
    judges = judges or load_judges()
    model = load_base(base)
    prompts, labels = sample_prompts(seed, count)
    size = (world_model.RESOLUTION, world_model.RESOLUTION)
    images = []
    for start in range(0, count, batch):
        chunk = prompts[start : start + batch]
        seeds = [seed + start + i for i in range(len(chunk))]
        drawn = txt2img(model, chunk, "", seeds, size, steps, guidance)  # type: ignore[arg-type]
        images += [np.asarray(image) for image in drawn]
        progress(ProgressEvent(STAGE, len(images), count))
    generated, real = np.stack(images), reference_images(seed, count)
    if grid is not None:
        preview_grid(np.concatenate([real[:32], generated[:32]]), columns=16).save(grid)
    return BaseScore(
        prompts=count,
        generated=judges.agreement(generated, labels),
        real=judges.agreement(real, labels),
        face_rate=float(np.mean(judges.is_face(generated))),
        real_face_rate=float(np.mean(judges.is_face(real))),
    )
