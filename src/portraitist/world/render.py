"""A procedural face renderer: the people of the synthetic world and their photos.

A person is a fixed set of named attributes (hair, skin, glasses, ...) plus continuous shape
parameters, so two people with the same attributes still look different (what the face-ID judge
learns). A photo is a person in a scene: per-photo attributes (background, shirt, expression) and
nuisance pose (yaw, scale, rotation, light, noise). Everything is drawn with PIL at `size` pixels
(128 for the model's data, then box-downsampled to 32) and is deterministic by seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from portraitist.errors import PortraitistError

RGB = tuple[int, int, int]

# Colour words used for backgrounds and shirts: hues far apart, so each name stays unambiguous
# after 32 px downsampling, light changes and noise.
COLOURS: dict[str, RGB] = {
    "red": (205, 35, 35),
    "orange": (240, 135, 20),
    "yellow": (240, 215, 40),
    "green": (40, 155, 55),
    "blue": (35, 75, 205),
    "purple": (130, 50, 170),
    "white": (238, 238, 238),
    "black": (30, 30, 30),
}
# Skin and hair palettes keep every skin-hair pair at least ~55 apart (RGB distance), so the hair
# stays a visible region on every face at 32 px.
SKIN: dict[str, RGB] = {
    "pale": (247, 216, 196),
    "tan": (222, 170, 120),
    "brown": (160, 104, 64),
    "dark": (72, 46, 32),
}
HAIR: dict[str, RGB] = {
    "black": (24, 20, 22),
    "brown": (135, 72, 24),
    "blonde": (242, 210, 88),
    "red": (190, 52, 22),
    "grey": (170, 170, 176),
    "blue": (40, 95, 225),
}
EYES: dict[str, RGB] = {
    "brown": (100, 58, 28),
    "blue": (55, 125, 230),
    "green": (45, 150, 65),
}

IDENTITY_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "sex": ("man", "woman"),
    "skin": tuple(SKIN),
    "hair_style": ("bald", "short", "long", "bun"),
    "hair_colour": tuple(HAIR),
    "eye_colour": tuple(EYES),
    "beard": ("none", "beard"),
    "glasses": ("none", "glasses", "sunglasses"),
    "mole": ("none", "mole"),
}
SCENE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "background": tuple(COLOURS),
    "pattern": ("plain", "stripes", "dots"),
    "shirt": tuple(COLOURS),
    "expression": ("neutral", "smiling"),
}
# What a judge can read from a 32 px image; eye colour and the mole are a pixel or two there.
VISIBLE_AT_32: tuple[str, ...] = (
    "sex",
    "skin",
    "hair_style",
    "hair_colour",
    "beard",
    "glasses",
    "background",
    "pattern",
    "shirt",
    "expression",
)

# Continuous identity parameters, each uniform in [-1, 1]: the geometry and tone a person keeps
# in every photo (face-ID must tell apart people whose attributes are all equal).
SHAPE_NAMES: tuple[str, ...] = (
    "face_width",
    "face_height",
    "jaw",
    "eye_spacing",
    "eye_size",
    "eye_height",
    "brow_thickness",
    "brow_tilt",
    "brow_height",
    "nose_length",
    "nose_width",
    "mouth_width",
    "mouth_height",
    "ear_size",
    "hair_volume",
    "fringe",
    "shoulders",
    "skin_tone",
    "hair_tone",
    "mole_x",
    "mole_y",
    "parting",
)
# Per-photo nuisance: yaw/rotation/shift/scale of the head, light, smile strength, noise.
POSE_NAMES: tuple[str, ...] = (
    "yaw",
    "scale",
    "rotation",
    "shift_x",
    "shift_y",
    "light_angle",
    "light_strength",
    "brightness",
    "smile",
    "noise",
    "noise_seed",
    "pattern_phase",
)

HELD_OUT_START = 1_000_000
# Men only grow beards in this world; this share of men do.
BEARD_SHARE = 0.45


@dataclass(frozen=True)
class Person:
    """One identity: `attributes` (IDENTITY_ATTRIBUTES words) and `shape` (SHAPE_NAMES values)."""

    index: int
    attributes: dict[str, str]
    shape: tuple[float, ...]

    def shape_value(self, name: str) -> float:
        return self.shape[SHAPE_NAMES.index(name)]


@dataclass(frozen=True)
class Scene:
    """One photo's circumstances: `attributes` (SCENE_ATTRIBUTES words) and `pose` (POSE_NAMES values)."""

    attributes: dict[str, str]
    pose: tuple[float, ...]

    def pose_value(self, name: str) -> float:
        return self.pose[POSE_NAMES.index(name)]


@dataclass
class Render:
    """A drawn photo with its ground truth: face box (x0, y0, x1, y1 px), person mask, labels."""

    image: np.ndarray
    face_box: tuple[int, int, int, int]
    person_mask: np.ndarray
    labels: dict[str, str]


def person(index: int, seed: int = 0) -> Person:
    """The world's person number `index`: the same (seed, index) always gives the same person."""
    rng = np.random.default_rng([seed, index, 0x9E5])
    drawn = {name: str(rng.choice(words)) for name, words in IDENTITY_ATTRIBUTES.items() if name != "beard"}
    bearded = drawn["sex"] == "man" and rng.random() < BEARD_SHARE
    attributes = {name: drawn.get(name, "beard" if bearded else "none") for name in IDENTITY_ATTRIBUTES}
    shape = tuple(float(v) for v in rng.uniform(-1.0, 1.0, len(SHAPE_NAMES)))
    return Person(index=index, attributes=attributes, shape=shape)


def held_out_person(k: int, seed: int = 0) -> Person:
    """Held-out person `k`: indices from HELD_OUT_START on, which pretraining never draws."""
    return person(HELD_OUT_START + k, seed)


def random_scene(rng: np.random.Generator, **fixed: str) -> Scene:
    """A random photo setting; `fixed` pins scene words (e.g. background="red").

    Unless both are pinned, the shirt differs from the background so the two stay separate regions.
    """
    for name, word in fixed.items():
        check_word(SCENE_ATTRIBUTES, name, word)
    attributes = {name: str(rng.choice(words)) for name, words in SCENE_ATTRIBUTES.items()}
    attributes.update(fixed)
    if attributes["shirt"] == attributes["background"] and not ("shirt" in fixed and "background" in fixed):
        free, other = ("background", "shirt") if "shirt" in fixed else ("shirt", "background")
        attributes[free] = str(rng.choice([w for w in SCENE_ATTRIBUTES[free] if w != attributes[other]]))
    pose = (
        float(rng.uniform(-1.0, 1.0)),  # yaw
        float(rng.uniform(0.85, 1.12)),  # scale
        float(rng.uniform(-12.0, 12.0)),  # rotation, degrees
        float(rng.uniform(-0.05, 0.05)),  # shift_x, fraction of the image
        float(rng.uniform(-0.04, 0.04)),  # shift_y
        float(rng.uniform(0.0, 2 * math.pi)),  # light_angle
        float(rng.uniform(0.0, 0.35)),  # light_strength
        float(rng.uniform(0.82, 1.12)),  # brightness
        float(rng.uniform(0.6, 1.0)),  # smile strength (used when smiling)
        float(rng.uniform(0.0, 9.0)),  # noise sigma in 0-255 units at the drawn size
        float(rng.integers(0, 2**31)),  # noise_seed
        float(rng.uniform(0.0, 1.0)),  # pattern_phase
    )
    return Scene(attributes=attributes, pose=pose)


def check_word(vocabulary: dict[str, tuple[str, ...]], name: str, word: str) -> None:
    if name not in vocabulary:
        raise PortraitistError(f"Unknown world attribute {name!r}: use one of {', '.join(vocabulary)}.")
    if word not in vocabulary[name]:
        raise PortraitistError(f"Unknown {name} {word!r}: use one of {', '.join(vocabulary[name])}.")


def shade(colour: RGB, factor: float) -> RGB:
    return tuple(int(min(255, max(0, round(c * factor)))) for c in colour)  # type: ignore[return-value]


def jitter(colour: RGB, amount: float) -> RGB:
    return shade(colour, 1.0 + amount)


@lru_cache(maxsize=8)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-0.5, 0.5] (x across, y down) for light and patterns."""
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    return axis[None, :], axis[:, None]


def background(colour: str, pattern: str, size: int, phase: float) -> np.ndarray:
    """The backdrop: a colour, plain or with stripes/dots in a shade of the same colour."""
    base = np.array(COLOURS[colour], dtype=np.uint8)
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = base
    if pattern == "plain":
        return image
    luminance = 0.3 * base[0] + 0.59 * base[1] + 0.11 * base[2]
    mix = 255.0 if luminance < 70 else 0.0
    ink = (0.68 * base + 0.32 * mix).astype(np.uint8)
    x, y = grid(size)
    period = 0.125
    if pattern == "stripes":
        on = ((x + phase * period) % period) < period / 2
        on = np.broadcast_to(on, (size, size))
    else:
        dx = (x + phase * period) % (2 * period) - period
        dy = (y + phase * period) % (2 * period) - period
        on = dx * dx + dy * dy < (0.045**2)
    image[on] = ink
    return image


@dataclass(frozen=True)
class Head:
    """Where one photo's head is drawn, in px: centre, half width and height, yaw, the person's unit size."""

    cx: float
    cy: float
    hw: float
    hh: float
    yaw: float
    unit: float

    def x(self, offset: float, depth: float) -> float:
        """x of a face part `offset` px from the midline, turned by the yaw (parts further out move more)."""
        return self.cx + offset * (1 - 0.12 * abs(self.yaw)) + self.yaw * self.hw * depth


@dataclass(frozen=True)
class Look:
    """One person's colours (their tones jittered by the shape parameters)."""

    skin: RGB
    shadow: RGB
    hair: RGB
    brows: RGB
    lips: RGB


def place_head(person: Person, scene: Scene, size: int) -> Head:
    s, p = person.shape_value, scene.pose_value
    woman = person.attributes["sex"] == "woman"
    unit = size * p("scale")
    return Head(
        cx=size * (0.5 + p("shift_x")),
        cy=size * (0.40 + p("shift_y")) + (1.0 - p("scale")) * size * 0.12,
        hw=unit * 0.175 * (1 + 0.12 * s("face_width")) * (0.93 if woman else 1.0),
        hh=unit * 0.225 * (1 + 0.10 * s("face_height")),
        yaw=p("yaw"),
        unit=unit,
    )


def look(person: Person) -> Look:
    a, s = person.attributes, person.shape_value
    skin = jitter(SKIN[a["skin"]], 0.07 * s("skin_tone"))
    hair = jitter(HAIR[a["hair_colour"]], 0.08 * s("hair_tone"))
    return Look(
        skin=skin,
        shadow=shade(skin, 0.8),
        hair=hair,
        brows=hair if a["hair_colour"] == "black" else shade(hair, 0.75),
        lips=(190, 40, 60) if a["sex"] == "woman" else shade(skin, 0.68),
    )


def draw_body(
    d: ImageDraw.ImageDraw, person: Person, shirt: RGB, head: Head, colours: Look, size: int
) -> None:
    """Shoulders in the shirt, the neck with its V, long hair behind and over the shoulders, a bun."""
    a, s = person.attributes, person.shape_value
    cx, cy, hw, hh, u = head.cx, head.cy, head.hw, head.hh, head.unit
    woman = a["sex"] == "woman"
    shoulder_y = cy + hh + u * 0.075
    sw = u * (0.30 if woman else 0.36) * (1 + 0.07 * s("shoulders"))
    neck_w = hw * (0.40 if woman else 0.48)
    vol = 1.18 + 0.08 * s("hair_volume")
    hair_end = shoulder_y + u * 0.09
    if a["hair_style"] == "long":
        d.rounded_rectangle(
            (cx - hw * vol, cy - hh * 0.55, cx + hw * vol, hair_end), radius=hw * 0.5, fill=colours.hair
        )
    d.rectangle((cx - neck_w, cy + hh * 0.5, cx + neck_w, shoulder_y + u * 0.05), fill=colours.shadow)
    d.rounded_rectangle((cx - sw, shoulder_y, cx + sw, size * 2.0), radius=u * 0.1, fill=shirt)
    d.polygon(
        [
            (cx - neck_w * 0.9, shoulder_y - 1),
            (cx + neck_w * 0.9, shoulder_y - 1),
            (cx, shoulder_y + u * 0.08),
        ],
        fill=colours.shadow,
    )
    if a["hair_style"] == "long":  # falling over the shoulders, in front of the shirt
        d.rounded_rectangle((cx - hw * vol, cy, cx - hw * 0.72, hair_end), radius=hw * 0.2, fill=colours.hair)
        d.rounded_rectangle((cx + hw * 0.72, cy, cx + hw * vol, hair_end), radius=hw * 0.2, fill=colours.hair)
    if a["hair_style"] == "bun":  # a round knot on top, half hidden behind the hair cap
        r = hw * (0.40 + 0.06 * s("hair_volume"))
        by = cy - hh * 1.08 - r * 0.35
        d.ellipse((cx - r, by - r, cx + r, by + r), fill=colours.hair)


def draw_head(d: ImageDraw.ImageDraw, person: Person, head: Head, colours: Look) -> None:
    """Ears, the head (women: an oval; men: with a squarer jaw), the hair cap or a bald shine, the beard."""
    a, s = person.attributes, person.shape_value
    cx, cy, hw, hh = head.cx, head.cy, head.hw, head.hh
    ear_rx = hw * 0.15 * (1 + 0.25 * s("ear_size"))
    ear_ry = hh * 0.19 * (1 + 0.2 * s("ear_size"))
    for side in (-1, 1):
        ex = cx + side * hw * 0.97 - head.yaw * hw * 0.12
        d.ellipse((ex - ear_rx, cy - ear_ry, ex + ear_rx, cy + ear_ry), fill=colours.shadow)
    d.ellipse((cx - hw, cy - hh, cx + hw, cy + hh), fill=colours.skin)
    if a["sex"] == "man":
        jaw = hw * (0.80 + 0.1 * s("jaw"))
        d.rounded_rectangle((cx - jaw, cy, cx + jaw, cy + hh), radius=hw * 0.45, fill=colours.skin)

    if a["hair_style"] == "bald":
        d.ellipse(
            (cx - hw * 0.45, cy - hh * 0.92, cx - hw * 0.05, cy - hh * 0.72), fill=shade(colours.skin, 1.12)
        )
    else:
        vol = 1.0 + 0.06 * s("hair_volume") + (0.08 if a["hair_style"] != "short" else 0.0)
        # The fringe is the chord's straight edge: its height and slant (a side parting) are the person's.
        angle = 22 + 8 * s("fringe")
        slant = 9 * s("parting")
        d.chord(
            (cx - hw * 1.07 * vol, cy - hh * 1.12 * vol, cx + hw * 1.07 * vol, cy + hh * 0.95),
            180 + angle + slant,
            360 - angle + slant,
            fill=colours.hair,
        )
        if a["hair_style"] == "short":
            for side in (-1, 1):  # sideburns
                x0 = cx + side * hw * 0.98
                x1 = x0 - side * hw * 0.14
                d.rectangle((min(x0, x1), cy - hh * 0.45, max(x0, x1), cy), fill=colours.hair)

    if a["beard"] == "beard":  # drawn before the face parts: the mouth shows through it
        beard = shade(colours.hair, 0.9)
        d.chord((cx - hw * 1.01, cy - hh * 0.95, cx + hw * 1.01, cy + hh * 1.03), 12, 168, fill=beard)
        d.rounded_rectangle(
            (cx - hw * 0.9, cy + hh * 0.3, cx + hw * 0.9, cy + hh * 1.02), radius=hw * 0.45, fill=beard
        )


def draw_face(
    d: ImageDraw.ImageDraw, person: Person, scene: Scene, head: Head, colours: Look, size: int
) -> None:
    """Eyes and brows, glasses, nose, mouth (closed, or an open smile with teeth), mole."""
    a, s = person.attributes, person.shape_value
    cy, hw, hh, yaw = head.cy, head.hw, head.hh, head.yaw
    woman = a["sex"] == "woman"
    smiling = scene.attributes["expression"] == "smiling"

    ey = cy - hh * 0.06 + hh * 0.06 * s("eye_height")
    spacing = hw * 0.40 * (1 + 0.14 * s("eye_spacing"))
    erx = hw * 0.17 * (1 + 0.15 * s("eye_size"))
    ery = erx * (0.48 if smiling else 0.62)
    brow_w = max(1, round(hh * 0.055 * (1 + 0.3 * s("brow_thickness")) * (1.0 if woman else 1.5)))
    eyes = []
    for side in (-1, 1):
        ex = head.x(side * spacing, 0.25)
        rx = erx * (1 - 0.22 * max(0.0, side * yaw))  # the eye turned away looks narrower
        eyes.append((ex, rx))
        d.ellipse((ex - rx, ey - ery, ex + rx, ey + ery), fill=(250, 250, 250))
        iris = ery * 0.95
        ix = ex + yaw * rx * 0.25
        d.ellipse((ix - iris, ey - iris, ix + iris, ey + iris), fill=EYES[a["eye_colour"]])
        pupil = iris * 0.45
        d.ellipse((ix - pupil, ey - pupil, ix + pupil, ey + pupil), fill=(15, 12, 12))
        if woman:  # lashes
            d.arc(
                (ex - rx, ey - ery, ex + rx, ey + ery),
                190,
                350,
                fill=(20, 15, 15),
                width=max(1, round(size / 48)),
            )
        by = ey - ery - hh * 0.11 * (1 + 0.2 * s("brow_height"))
        tilt = hh * 0.04 * s("brow_tilt")
        d.line(
            [(ex - side * rx * 1.05, by + tilt), (ex + side * rx * 1.1, by - tilt)],
            fill=colours.brows,
            width=brow_w,
        )

    if a["glasses"] != "none":  # glasses: thin rings around the eyes; sunglasses: larger solid dark lenses
        frame = (18, 18, 22)
        width = max(1, round(size * 0.016))
        dark = a["glasses"] == "sunglasses"
        grow = 1.75 if dark else 1.6
        gy = erx * (1.35 if dark else 1.3)
        lens = (20, 20, 28) if dark else None
        for ex, rx in eyes:
            d.ellipse(
                (ex - rx * grow, ey - gy, ex + rx * grow, ey + gy), fill=lens, outline=frame, width=width
            )
        (left, left_rx), (right, right_rx) = eyes
        d.line([(left + left_rx * grow, ey), (right - right_rx * grow, ey)], fill=frame, width=width)

    # The nose, a shadow triangle, moves most with the yaw: it sticks out furthest.
    nx = head.x(0.0, 0.4)
    tip = cy + hh * 0.28 * (1 + 0.15 * s("nose_length"))
    nw = hw * 0.13 * (1 + 0.25 * s("nose_width"))
    d.polygon([(nx + yaw * nw * 0.5, ey + ery * 0.3), (nx - nw, tip), (nx + nw, tip)], fill=colours.shadow)

    mx = head.x(0.0, 0.25)
    my = cy + hh * (0.57 + 0.05 * s("mouth_height"))
    mw = hw * 0.40 * (1 + 0.2 * s("mouth_width"))
    if smiling:
        sh = hh * 0.2 * scene.pose_value("smile")
        d.chord((mx - mw * 1.1, my - sh, mx + mw * 1.1, my + sh), 0, 180, fill=colours.lips)
        d.chord((mx - mw * 0.95, my - sh * 0.75, mx + mw * 0.95, my + sh * 0.8), 0, 180, fill=(95, 20, 30))
        d.rectangle((mx - mw * 0.7, my, mx + mw * 0.7, my + sh * 0.3), fill=(245, 245, 240))
    else:
        lh = hh * 0.05
        d.ellipse((mx - mw, my - lh, mx + mw, my + lh), fill=colours.lips)

    if a["mole"] == "mole":
        side = 1 if s("mole_x") >= 0 else -1
        mo_x = head.x(side * hw * (0.42 + 0.2 * abs(s("mole_x"))), 0.25)
        mo_y = cy + hh * (0.28 + 0.1 * s("mole_y"))
        r = max(0.8, hw * 0.055)
        d.ellipse((mo_x - r, mo_y - r, mo_x + r, mo_y + r), fill=(60, 35, 25))


def light_and_noise(image: np.ndarray, scene: Scene) -> np.ndarray:
    """A brightness gradient from the light's direction, then Gaussian sensor noise; back to uint8."""
    p = scene.pose_value
    x, y = grid(image.shape[0])
    light = p("brightness") * (
        1.0 + p("light_strength") * (math.cos(p("light_angle")) * x + math.sin(p("light_angle")) * y)
    )
    out = image.astype(np.float32)
    out *= light[..., None]
    if p("noise") > 0:
        noise = np.random.default_rng(int(p("noise_seed"))).standard_normal(out.shape, dtype=np.float32)
        noise *= p("noise")
        out += noise
    out += 0.5
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


def render(person: Person, scene: Scene, size: int = 128) -> Render:
    """Draw `person` in `scene` at `size` x `size` pixels, with face box, person mask and labels."""
    head = place_head(person, scene, size)
    colours = look(person)
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    draw_body(d, person, COLOURS[scene.attributes["shirt"]], head, colours, size)
    draw_head(d, person, head, colours)
    draw_face(d, person, scene, head, colours, size)
    # Tilt the person about the face centre and lay it over the backdrop.
    angle = scene.pose_value("rotation")
    if angle:
        layer = layer.rotate(angle, resample=Image.Resampling.BILINEAR, center=(head.cx, head.cy))
    words = scene.attributes
    canvas = Image.fromarray(
        background(words["background"], words["pattern"], size, scene.pose_value("pattern_phase"))
    )
    canvas.paste(layer, (0, 0), layer)
    return Render(
        image=light_and_noise(np.asarray(canvas), scene),
        face_box=face_box(head, angle, size),
        person_mask=np.asarray(layer.getchannel("A")) >= 128,
        labels={**person.attributes, **scene.attributes},
    )


def face_box(head: Head, angle: float, size: int) -> tuple[int, int, int, int]:
    """Bounding box of the head oval after PIL's counter-clockwise rotation by `angle` degrees."""
    cx, cy, hw, hh = head.cx, head.cy, head.hw, head.hh
    t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    ox, oy = hw * np.cos(t), hh * np.sin(t)
    a = math.radians(angle)
    # PIL rotates counter-clockwise on screen (y down): x' = x cos a + y sin a, y' = -x sin a + y cos a.
    rx = cx + ox * math.cos(a) + oy * math.sin(a)
    ry = cy - ox * math.sin(a) + oy * math.cos(a)
    x0, y0 = max(0, math.floor(rx.min())), max(0, math.floor(ry.min()))
    x1, y1 = min(size, math.ceil(rx.max())), min(size, math.ceil(ry.max()))
    return (x0, y0, x1, y1)


def downsample(image: np.ndarray, size: int = 32) -> np.ndarray:
    """Box-filter an (H, W, 3) or (N, H, W, 3) uint8 image to `size` x `size` (H, W multiples of size)."""
    h, w = image.shape[-3], image.shape[-2]
    if h % size or w % size:
        raise ValueError(f"downsample needs a multiple of {size} px, got {h}x{w}")
    fy, fx = h // size, w // size
    blocks = image.reshape(*image.shape[:-3], size, fy, size, fx, image.shape[-1])
    mean = blocks.mean(axis=(-4, -2), dtype=np.float32)
    return (mean + 0.5).astype(np.uint8)


DRAW_SIZE = 128  # small images are drawn at least this large, then box-filtered: smooth edges, as a camera's


def render_filtered(person: Person, scene: Scene, size: int = 32, factor: int | None = None) -> Render:
    """`render` drawn `factor` times larger and box-filtered down to `size` (smooth edges).

    By default the drawing is at least DRAW_SIZE px. The face box is scaled to `size`; the mask
    keeps the pixels the person covers at least half of.
    """
    factor = factor or max(1, -(-DRAW_SIZE // size))
    drawn = render(person, scene, size * factor)
    if factor == 1:
        return drawn
    mask = drawn.person_mask.reshape(size, factor, size, factor).mean(axis=(1, 3)) >= 0.5
    x0, y0, x1, y1 = drawn.face_box
    box = (x0 // factor, y0 // factor, -(-x1 // factor), -(-y1 // factor))
    return Render(image=downsample(drawn.image, size), face_box=box, person_mask=mask, labels=drawn.labels)


def visible_labels(labels: dict[str, str]) -> dict[str, str]:
    """The VISIBLE_AT_32 labels a 32 px picture really shows: the judges' targets.

    A bald head without a beard shows its hair colour only in one-pixel brows, so it is left out.
    """
    shown = {name: word for name, word in labels.items() if name in VISIBLE_AT_32}
    if labels.get("hair_style") == "bald" and labels.get("beard") != "beard":
        shown.pop("hair_colour", None)
    return shown


# --- captions -----------------------------------------------------------------------------------

PATTERN_WORDS = {"plain": "plain", "stripes": "striped", "dots": "dotted"}


def identity_phrases(attributes: dict[str, str]) -> tuple[list[str], str, list[str], list[str]]:
    """(adjectives before the noun, noun, 'with ...' phrases, 'wearing ...' phrases) of a person."""
    adjectives, with_, wearing = [], [], []
    style, colour = attributes["hair_style"], attributes["hair_colour"]
    if style == "bald":
        adjectives.append("bald")
    elif style == "bun":
        with_.append(f"{colour} hair in a bun")
    else:
        with_.append(f"{style} {colour} hair")
    with_.append(f"{attributes['skin']} skin")
    if attributes["glasses"] != "sunglasses":
        with_.append(f"{attributes['eye_colour']} eyes")
    if attributes["beard"] == "beard":
        with_.append(f"a {colour} beard" if style == "bald" else "a beard")
    if attributes["mole"] == "mole":
        with_.append("a mole")
    if attributes["glasses"] != "none":
        wearing.append(attributes["glasses"])
    return adjectives, attributes["sex"], with_, wearing


def join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def describe(
    subject: str | None,
    identity: dict[str, str] | None,
    scene: dict[str, str],
    keep: Callable[[str], bool],
) -> str:
    """Assemble a caption; `keep(phrase)` says whether an optional phrase stays."""
    wearing: list[str] = []
    if subject is None and identity is not None:
        adjectives, noun, with_, wearing = identity_phrases(identity)
        adjectives = [w for w in adjectives if keep(w)]
        with_ = [w for w in with_ if keep(w)]
        wearing = [w for w in wearing if keep(w)]
        head = " ".join([*adjectives, noun])
        subject = f"{article(head)} {head}" + (f" with {join(with_)}" if with_ else "")
    elif subject is None:
        subject = "a person"
    parts = [f"a photo of {subject}"]
    if "expression" in scene and keep("expression"):
        parts.append("smiling" if scene["expression"] == "smiling" else "with a neutral face")
    if "shirt" in scene and keep("shirt"):
        wearing.append(f"{article(scene['shirt'])} {scene['shirt']} shirt")
    if wearing:
        parts.append(f"wearing {join(wearing)}")
    backdrop = []
    if "pattern" in scene and keep("pattern"):
        backdrop.append(PATTERN_WORDS[scene["pattern"]])
    if "background" in scene and keep("background"):
        backdrop.append(scene["background"])
    if backdrop:
        parts.append(f"on {article(backdrop[0])} {' '.join(backdrop)} background")
    return ", ".join(parts)


def caption(
    person: Person | None,
    scene: Scene,
    rng: np.random.Generator | None = None,
    drop: float = 0.0,
    subject: str | None = None,
) -> str:
    """A plain-words caption, e.g. "a photo of a bald woman with pale skin and green eyes, smiling,
    wearing a red shirt, on a green background"; each phrase is left out with probability `drop`.

    With `subject` (e.g. "<portraitist-me> person") the person's description is replaced by it.
    """
    if drop > 0 and rng is None:
        raise ValueError("caption: dropping phrases needs an rng")

    def keep(_: str) -> bool:
        return drop <= 0 or bool(rng.random() >= drop)  # type: ignore[union-attr]

    return describe(subject, person.attributes if person else None, scene.attributes, keep)


def scene_prompt(subject: str, **scene_words: str) -> str:
    """A prompt for `subject` in a given scene, e.g. scene_prompt("<me> person", background="red")."""
    for name, word in scene_words.items():
        check_word(SCENE_ATTRIBUTES, name, word)
    return describe(subject, None, scene_words, lambda _: True)
