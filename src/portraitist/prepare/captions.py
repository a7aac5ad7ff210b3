"""Training captions: "<context> <instance_token> <class_token>" (thesis 2.1.2, 2.2.3).

The context is what a caption says besides the subject, so that the new token learns the
person and not the photo's surroundings. Four strategies the thesis compared:
  photo_of           "a photo of <me> girl" for every photo (DreamBooth);
  background_tokens  "<bg3> <me> girl": a new token per photo absorbs that photo's background
                     (the thesis's choice, the cheapest that stops shared backgrounds leaking);
  templates          a Textual Inversion template per photo, "a rendering of a <me> girl";
  captions           a BLIP caption per photo with its person word replaced by the subject.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from portraitist.errors import PortraitistError
from portraitist.models.offline import load_pretrained
from portraitist.prepare.config import Context

# Textual Inversion's imagenet_templates_small (Gal et al. 2022), as CLIP-style prompts.
TEMPLATES = (
    "a photo of a {}",
    "a rendering of a {}",
    "a cropped photo of the {}",
    "the photo of a {}",
    "a photo of a clean {}",
    "a photo of a dirty {}",
    "a dark photo of the {}",
    "a photo of my {}",
    "a photo of the cool {}",
    "a close-up photo of a {}",
    "a bright photo of the {}",
    "a cropped photo of a {}",
    "a photo of the {}",
    "a good photo of the {}",
    "a photo of one {}",
    "a close-up photo of the {}",
    "a rendition of the {}",
    "a photo of the clean {}",
    "a rendition of a {}",
    "a photo of a nice {}",
    "a good photo of a {}",
    "a photo of the nice {}",
    "a photo of the small {}",
    "a photo of the weird {}",
    "a photo of the large {}",
    "a photo of a cool {}",
    "a photo of a small {}",
)

# Words by which a caption model names a single person.
_PERSON_WORD = re.compile(
    r"\b(?:man|woman|person|girl|boy|lady|guy|gentleman|child|kid|baby|toddler|teenager|teen|male|female)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Caption:
    text: str
    background_token: str | None = None


def background_token(index: int) -> str:
    return f"<bg{index}>"


def insert_subject(caption: str, subject: str) -> str:
    """Name the subject in a caption: its first person word becomes the subject (thesis 2.2.3).

    "a woman sitting on a bench" -> "a <me> girl sitting on a bench"; a caption without a person
    word gets the subject in front: "a red wall" -> "<me> girl, a red wall". Only the first word is
    replaced because later ones are usually something else (a print on a shirt, a statue).
    """
    replaced, count = _PERSON_WORD.subn(subject, caption.strip(), count=1)
    return replaced if count else f"{subject}, {caption.strip()}"


def make_captions(
    context: Context, crops: Sequence[Image.Image], subject: str, seed: int, caption_model: str, device: str
) -> list[Caption]:
    """One caption per crop, in order; `subject` is "<instance_token> <class_token>"."""
    if context == "photo_of":
        return [Caption(f"a photo of {subject}") for _ in crops]
    if context == "background_tokens":
        return [Caption(f"{background_token(i)} {subject}", background_token(i)) for i in range(len(crops))]
    if context == "templates":
        rng = random.Random(seed)
        return [Caption(rng.choice(TEMPLATES).format(subject)) for _ in crops]
    return [Caption(insert_subject(text, subject)) for text in blip_captions(crops, caption_model, device)]


def blip_captions(crops: Sequence[Image.Image], model_id: str, device: str) -> list[str]:
    """What BLIP (Li et al. 2022) says each crop shows; it needs the weights (hub or a folder)."""
    from transformers import BlipForConditionalGeneration, BlipProcessor

    try:
        processor, model = load_pretrained(
            model_id, "BLIP caption model",
            "Set caption_model to a BLIP folder you have (in the [prepare] table of a --config file), or use "
            "another context such as --context background_tokens.",
            BlipProcessor, BlipForConditionalGeneration,
        )  # fmt: skip
        model = model.to(device).eval()
    except (OSError, ValueError) as exc:
        raise PortraitistError(
            f"Could not load the BLIP caption model {model_id!r} ({str(exc).splitlines()[0]}). "
            "It downloads from the Hugging Face hub on first use: connect to the internet, "
            "give a local folder with --config (caption_model), "
            "or use another context such as --context background_tokens."
        ) from exc
    texts = []
    for crop in crops:
        inputs = processor(images=crop, return_tensors="pt").to(device)
        output = model.generate(**inputs, max_new_tokens=30)
        texts.append(processor.decode(output[0], skip_special_tokens=True))
    return texts
