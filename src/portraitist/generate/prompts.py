"""The text a user writes, turned into what the model was trained on.

`{me}` (the thesis's S*) becomes the workspace's subject, "<instance> <class>" from
model/model.json: the new token and the class word it was trained with (thesis 2.2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from portraitist.errors import PortraitistError
from portraitist.generate.styles import get_style
from portraitist.workspace import Workspace

ME = "{me}"


@dataclass(frozen=True)
class Prompt:
    text: str
    negative: str
    style: str | None


def workspace_subject(workspace: Workspace) -> str:
    """What `{me}` means in this workspace: model.json's "subject"."""
    path = workspace.model_dir / "model.json"
    if not path.exists():
        raise PortraitistError(
            f"{workspace.root} has no trained model ({path} is missing). "
            f"Run `portraitist train --workspace {workspace.root}` first."
        )
    return str(json.loads(path.read_text())["subject"])


def expand(text: str, subject: str | None) -> str:
    if ME not in text:
        return text
    if subject is None:
        raise PortraitistError(
            f"The prompt {text!r} uses {ME}, which stands for the person a workspace's model was trained "
            "on; give --workspace, or write the prompt without it."
        )
    return text.replace(ME, subject)


def build_prompt(style: str | None, prompt: str | None, negative: str | None, subject: str | None) -> Prompt:
    """A style preset or a custom prompt (photo style when neither is given), `{me}` expanded."""
    if style and prompt:
        raise PortraitistError("Give either a style (--style) or your own prompt (--prompt), not both.")
    if prompt:
        return Prompt(expand(prompt, subject), expand(negative or "", subject), None)
    preset = get_style(style or "photo")
    text = preset.prompt if subject is not None else preset.prompt.replace(ME, "a person")
    return Prompt(
        expand(text, subject), negative if negative is not None else preset.negative_prompt, preset.name
    )
