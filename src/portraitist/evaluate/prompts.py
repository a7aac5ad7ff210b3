"""The fixed set of images each checkpoint generates: same prompts, same seeds at every step and for
every recipe, so only training differs between them (thesis 2.3, Fig. 10-12)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from portraitist.evaluate.config import EvaluateConfig
from portraitist.generate.prompts import ME
from portraitist.rank.scorers import prompt_without_subject


@dataclass(frozen=True)
class EvalImage:
    name: str  # file stem: subject-0, subject-1, edit-0, ...
    template: str  # the prompt with {me}
    seed: int
    kind: Literal["subject", "edit"]

    @property
    def clip_text(self) -> str:
        """The prompt with the subject removed, as Text Alignment compares it (thesis 1.3: "S* removed").

        The whole `{me}` goes, class word too, so every recipe is compared with the same text
        (DreamBooth's subject is 'sks girl', the others' '<new token> girl')."""
        return prompt_without_subject(self.template, [ME])


def evaluation_set(config: EvaluateConfig) -> list[EvalImage]:
    """config.subject_images of the subject prompt, then one image per edit prompt; image i has seed + i."""
    subject = [(f"subject-{i}", config.subject_prompt, "subject") for i in range(config.subject_images)]
    edits = [(f"edit-{i}", prompt, "edit") for i, prompt in enumerate(config.edit_prompts)]
    return [
        EvalImage(name, text, config.seed + i, kind) for i, (name, text, kind) in enumerate(subject + edits)
    ]


def by_prompt(images: list[EvalImage]) -> list[list[EvalImage]]:
    """Images grouped by prompt, in order: one sampler call (one batch) per prompt."""
    groups: dict[str, list[EvalImage]] = {}
    for image in images:
        groups.setdefault(image.template, []).append(image)
    return list(groups.values())
