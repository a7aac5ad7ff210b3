"""Style presets: a prompt and a negative prompt per look, picked by name (thesis 2.4).

`{me}` stands for the user (see prompts.py). Prompts follow the thesis's examples ("an oil
painting of S*"): the subject first, then the look, then quality words the base model knows.
"""

from __future__ import annotations

from dataclasses import dataclass

from portraitist.errors import PortraitistError

# what spoils most portraits, whatever the style
_COMMON_NEGATIVE = (
    "deformed, disfigured, bad anatomy, extra limbs, extra fingers, duplicate head, cropped head, "
    "out of frame, blurry, lowres, jpeg artifacts, watermark, text, signature"
)


@dataclass(frozen=True)
class Style:
    name: str
    prompt: str
    negative_prompt: str
    description: str


def _style(name: str, description: str, prompt: str, negative: str = "") -> Style:
    return Style(name, prompt, ", ".join(s for s in (negative, _COMMON_NEGATIVE) if s), description)


STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        _style(
            "photo",
            "a natural photograph",
            "a photo of {me}, portrait, natural light, 85mm lens, sharp focus, detailed skin",
            "painting, drawing, cartoon, 3d render",
        ),
        _style(
            "studio",
            "a studio headshot",
            "a professional studio headshot of {me}, softbox lighting, neutral grey backdrop, sharp focus",
            "painting, drawing, cartoon, harsh shadows",
        ),
        _style(
            "oil-painting",
            "a classical oil painting",
            "an oil painting of {me}, portrait, visible brush strokes, rich colours, canvas texture, "
            "masterpiece",
            "photo, photograph, 3d render, flat colours",
        ),
        _style(
            "renaissance",
            "a Renaissance master's portrait",
            "a renaissance portrait of {me}, by a 16th century italian master, sfumato, dark background, "
            "oil on panel, museum quality",
            "photo, modern clothes, 3d render, cartoon",
        ),
        _style(
            "pencil-sketch",
            "a graphite drawing",
            "a detailed pencil sketch of {me}, graphite on paper, cross-hatching, fine lines, monochrome",
            "colour, colourful, photo, painting",
        ),
        _style(
            "watercolor",
            "a loose watercolour",
            "a watercolor painting of {me}, soft washes, paper texture, delicate colours",
            "photo, 3d render, harsh lines",
        ),
        _style(
            "anime",
            "an anime character",
            "{me} as an anime character, cel shading, studio ghibli style, vibrant colours, clean lines",
            "photo, photorealistic, 3d render, realistic",
        ),
        _style(
            "comic",
            "a comic-book panel",
            "{me} as a comic book hero, bold ink outlines, halftone shading, dynamic pose, vivid colours",
            "photo, photorealistic, blurry",
        ),
        _style(
            "pop-art",
            "Warhol-style pop art",
            "a pop art portrait of {me}, andy warhol style, flat bold colours, screen print",
            "photo, photorealistic, muted colours",
        ),
        _style(
            "cyborg",
            "half human, half machine",
            "a portrait of {me} as a cyborg, chrome and circuitry, glowing blue eyes, sci-fi, "
            "highly detailed, cinematic lighting",
            "cartoon, drawing, lowpoly",
        ),
        _style(
            "cyberpunk",
            "neon city at night",
            "a portrait of {me} in a cyberpunk city at night, neon lights, rain, reflections, cinematic",
            "daylight, cartoon, drawing",
        ),
        _style(
            "astronaut",
            "in a spacesuit",
            "a photo of {me} as an astronaut in a spacesuit, helmet off, earth in the background, nasa photo",
            "cartoon, drawing, painting",
        ),
        _style(
            "knight",
            "a fantasy knight",
            "a portrait of {me} as a fantasy knight in ornate armour, epic, dramatic lighting, "
            "digital painting",
            "modern clothes, photo, cartoon",
        ),
        _style(
            "cinematic",
            "a film still",
            "a cinematic film still of {me}, dramatic lighting, shallow depth of field, anamorphic lens, "
            "color graded, 35mm film",
            "cartoon, drawing, flat lighting",
        ),
        _style(
            "noir",
            "black-and-white film noir",
            "a film noir portrait of {me}, black and white, hard shadows, venetian blinds light, 1940s",
            "colour, colourful, cartoon",
        ),
        _style(
            "vintage",
            "a 1970s film photo",
            "a vintage 1970s photo of {me}, kodachrome, film grain, warm faded colours",
            "digital, modern, cartoon",
        ),
        _style(
            "3d-cartoon",
            "an animated-film character",
            "{me} as a 3d animated movie character, pixar style, soft lighting, cute, octane render",
            "photo, photorealistic, drawing",
        ),
    )
}


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def get_style(name: str) -> Style:
    """The preset called `name` ('oil painting', 'oil_painting' and 'oil-painting' alike)."""
    style = STYLES.get(_key(name))
    if style is None:
        raise PortraitistError(
            f"Unknown style {name!r}. Styles: {', '.join(STYLES)} "
            "(`portraitist generate --list-styles` describes them), or write your own with --prompt."
        )
    return style
