"""The fixed set of images each checkpoint generates: same prompts, same seeds at every step and for
every recipe, so only training differs between them (thesis 2.3, Fig. 10-12)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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
    expect: dict[str, str] = field(default_factory=dict)  # scene words a judge must read (the world's edits)

    @property
    def clip_text(self) -> str:
        """The prompt with the subject removed, as Text Alignment compares it (thesis 1.3: "S* removed").

        The whole `{me}` goes, class word too, so every recipe is compared with the same text
        (DreamBooth's subject is 'sks girl', the others' '<new token> girl')."""
        return prompt_without_subject(self.template, [ME])


def evaluation_set(
    config: EvaluateConfig, edits: Sequence[tuple[str, dict[str, str]]] | None = None
) -> list[EvalImage]:
    """config.subject_images of the subject prompt, then one image per edit prompt; image i has seed + i.

    `edits`: (prompt, the scene words it must show) instead of config.edit_prompts (the world's checks)."""
    edits = edits if edits is not None else [(prompt, {}) for prompt in config.edit_prompts]
    subject = [(f"subject-{i}", config.subject_prompt, "subject", {}) for i in range(config.subject_images)]
    edited = [(f"edit-{i}", prompt, "edit", expect) for i, (prompt, expect) in enumerate(edits)]
    return [
        EvalImage(name, text, config.seed + i, kind, dict(expect))
        for i, (name, text, kind, expect) in enumerate(subject + edited)
    ]
