"""The world's judges: small CNNs that read a 32 px image as we read a photo.

Three networks, trained on renders of pretraining people and measured on held-out ones:
- the attribute classifier names every attribute readable at 32 px (`VISIBLE_AT_32`);
- the face-ID embedding maps a face to a unit vector; photos of one person lie close together;
- the face gate says whether an image is a face at all.

The trap: a face-ID net trained on faces alone calls noise similar to a person (cosine
0.85-0.99). So the embedding learns with non-faces as one extra class (noise,
blur, shuffled patches, flat colour, bare backgrounds, faces whose parts are smeared away), and
`Judges.similarity` asks the gate first unless told not to. The gate learns the same non-faces
against faces that carry the mild blur and noise a generated image has, so it fails the outputs
of a badly trained diffusion model without failing a decent one.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from scipy.stats import rankdata
from torch import nn

from portraitist.devices import cpu_has_bf16
from portraitist.errors import PortraitistError
from portraitist.progress import ProgressCallback, ProgressEvent, no_progress
from portraitist.world import render as world
from portraitist.world.threads import torch_threads

SIZE = 32
JUDGES_DIR = Path(__file__).parent / "judges"
WEIGHTS_FILE = "judges.safetensors"
INFO_FILE = "judges.json"
STAGE = "judges"
HIDDEN = -1  # label index of an attribute the picture does not show (render.visible_labels)
# What the face gate and the face-ID net learn as "not a face" (see make_negatives).
NEGATIVE_KINDS: tuple[str, ...] = ("noise", "blobs", "flat", "background", "blur", "shuffled", "faceless")
# Rendering stops at this share of the budget (a busy machine draws fewer people than asked for).
RENDER_SHARE = 0.3
# Share of the training time (after rendering) each network gets; the gate learns fastest.
TIME_SHARES = {"attributes": 0.35, "identity": 0.45, "gate": 0.20}
# How far a face may be degraded and stay a face (a generated image is never as clean as a render),
# and how far past that a blurred face counts as a non-face; between the two nothing is trained.
MILD_BLUR = 0.8  # largest Gaussian sigma (judge pixels) a face keeps through augmentation
STRONG_BLUR = (1.6, 3.0)  # sigma range that turns a face into a "blur" negative
NOISE_STD = 0.05  # largest added noise (0-1 units) on an augmented face

Images = np.ndarray | Image.Image | Sequence[np.ndarray | Image.Image]


# --- the networks -------------------------------------------------------------------------------


def conv_block(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
    )


class JudgeNet(nn.Module):
    """A small VGG-style CNN for 32 px images: three double-conv stages (32 -> 16 -> 8 -> 4 px),
    then a two-layer head on the 4x4 map (kept spatial: where the eyes sit is part of a face)."""

    def __init__(self, outputs: int, width: int = 24, features: int = 128):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for scale in (1, 2, 4):
            layers += [conv_block(channels, width * scale), conv_block(width * scale, width * scale)]
            layers.append(nn.MaxPool2d(2))
            channels = width * scale
        self.trunk = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Sequential(
            nn.Linear(channels * 16, features, bias=False),
            nn.BatchNorm1d(features),
            nn.ReLU(inplace=True),
            nn.Linear(features, outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, 32, 32) in [0, 1]."""
        return self.head(self.trunk((x - 0.5) / 0.25))


@dataclass(frozen=True)
class JudgeShapes:
    """The sizes the three networks are built with (stored in judges.json)."""

    vocabulary: dict[str, tuple[str, ...]]  # attribute -> its words, in output order
    width: int = 24
    embedding: int = 128
    gate_width: int = 16

    def build(self) -> dict[str, JudgeNet]:
        classes = sum(len(words) for words in self.vocabulary.values())
        return {
            "attributes": JudgeNet(classes, self.width),
            "identity": JudgeNet(self.embedding, self.width),
            "gate": JudgeNet(1, self.gate_width, features=64),
        }


# --- inputs -------------------------------------------------------------------------------------


def as_judge_images(images: Images) -> np.ndarray:
    """(N, 32, 32, 3) uint8 from what callers hold: a uint8 array (N, H, W, 3) or (H, W, 3),
    a float array in [0, 1], a PIL image, or a sequence of these. Larger images are box-filtered
    down (the renderer's downsample when the size divides, as the judges were trained on it);
    non-square ones are centre-cropped to a square first."""
    if isinstance(images, Image.Image) or (isinstance(images, np.ndarray) and images.ndim == 3):
        images = [images]
    if isinstance(images, np.ndarray) and images.ndim == 4 and images.shape[-1] == 3:
        batch = to_uint8(images)
        if batch.shape[1] == batch.shape[2] and batch.shape[1] % SIZE == 0:
            return batch if batch.shape[1] == SIZE else world.downsample(batch, SIZE)
    if isinstance(images, np.ndarray) and images.ndim != 4:
        raise PortraitistError(
            f"Judges read images as (N, H, W, 3) arrays; got an array of shape {images.shape}."
        )
    return (
        np.stack([one_judge_image(image) for image in images])
        if len(images)
        else np.zeros((0, SIZE, SIZE, 3), np.uint8)
    )


def to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        return (np.clip(array, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    raise PortraitistError(f"Judges read uint8 images or floats in [0, 1]; got {array.dtype}.")


def one_judge_image(image: np.ndarray | Image.Image) -> np.ndarray:
    array = (
        np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else to_uint8(np.asarray(image))
    )
    if array.ndim != 3 or array.shape[-1] != 3:
        raise PortraitistError(f"Judges read RGB images; got an image of shape {array.shape}.")
    h, w = array.shape[:2]
    side = min(h, w)
    array = array[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
    if side % SIZE == 0:
        return world.downsample(np.ascontiguousarray(array), SIZE)
    return np.asarray(Image.fromarray(array).resize((SIZE, SIZE), Image.Resampling.BOX))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, 32, 32, 3) uint8 -> (N, 3, 32, 32) float in [0, 1], channels-last in memory
    (faster convs on CPU)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    return x.contiguous(memory_format=torch.channels_last)


def from_tensor(x: torch.Tensor) -> np.ndarray:
    """(N, 3, 32, 32) in [0, 1] -> (N, 32, 32, 3) uint8, as an image file would hold it."""
    return (x.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)


# --- the judges -----------------------------------------------------------------------------------


class Judges:
    """The trained attribute classifier, face-ID embedding and face gate, for scoring images.

    Every method takes images as `as_judge_images` does and answers per image.
    """

    def __init__(
        self, shapes: JudgeShapes, nets: dict[str, JudgeNet], threshold: float = 0.5, info: dict | None = None
    ):
        self.shapes = shapes
        self.nets = {name: net.eval() for name, net in nets.items()}
        self.threshold = threshold
        self.info = info or {}

    @property
    def vocabulary(self) -> dict[str, tuple[str, ...]]:
        return self.shapes.vocabulary

    @torch.inference_mode()
    def run(self, net: str, images: Images, batch: int = 512) -> torch.Tensor:
        pixels = as_judge_images(images)
        model = self.nets[net]
        outputs = [model(to_tensor(pixels[i : i + batch])) for i in range(0, len(pixels), batch)]
        return torch.cat(outputs) if outputs else torch.zeros(0, model.head[-1].out_features)

    def attribute_probs(self, images: Images) -> dict[str, np.ndarray]:
        """Per attribute, an (N, len(words)) array of probabilities over `vocabulary[attribute]`."""
        logits = self.run("attributes", images)
        probs, start = {}, 0
        for name, words in self.vocabulary.items():
            probs[name] = torch.softmax(logits[:, start : start + len(words)], dim=1).numpy()
            start += len(words)
        return probs

    def attributes(self, images: Images) -> list[dict[str, str]]:
        """The most likely word of every attribute the judge reads (VISIBLE_AT_32), per image."""
        probs = self.attribute_probs(images)
        count = len(next(iter(probs.values())))
        return [
            {name: words[int(np.argmax(probs[name][i]))] for name, words in self.vocabulary.items()}
            for i in range(count)
        ]

    def agreement(self, images: Images, labels: Sequence[Mapping[str, str]]) -> dict[str, float]:
        """Per attribute the judge reads: the share of the images whose labels name it (a row may
        leave out what its picture does not show, see render.visible_labels) where the judge agrees."""
        said = self.attributes(images)
        agree: dict[str, float] = {}
        for name in self.vocabulary:
            pairs = [(s[name], row[name]) for s, row in zip(said, labels) if name in row]
            if pairs:
                agree[name] = float(np.mean([judged == truth for judged, truth in pairs]))
        return agree

    def embed(self, images: Images) -> np.ndarray:
        """(N, D) unit face-ID embeddings; only meaningful for images that pass `is_face`."""
        return F.normalize(self.run("identity", images).float(), dim=1).numpy()

    def face_probability(self, images: Images) -> np.ndarray:
        """(N,) the gate's probability that each image is a face."""
        return torch.sigmoid(self.run("gate", images)[:, 0]).numpy()

    def is_face(self, images: Images) -> np.ndarray:
        """(N,) bool: the gate passes the image as a face (noise, blur, shuffled faces, bare
        backgrounds fail)."""
        return self.face_probability(images) >= self.threshold

    def similarity(self, images: Images, references: Images, gated: bool = True) -> np.ndarray:
        """(N,) mean cosine of each image's face-ID embedding to the references' embeddings.

        gated=True (the default, what a likeness score wants): an image that fails the face gate
        scores 0.0, "no likeness", whatever its embedding says (the embedding of a non-face means
        nothing). gated=False returns the raw cosine for every image. The references are used as
        given (they are the person's real photos).
        """
        reference = self.embed(references)
        if len(reference) == 0:
            raise PortraitistError("similarity needs at least one reference image of the person.")
        scores = self.embed(images) @ reference.mean(axis=0)
        if gated:
            scores = np.where(self.is_face(images), scores, 0.0)
        return scores.astype(np.float32)


def load_judges(path: Path | None = None) -> Judges:
    """The judges saved in `path` (judges.safetensors + judges.json); None: the committed ones."""
    folder = Path(path) if path is not None else JUDGES_DIR
    if not (folder / WEIGHTS_FILE).is_file() or not (folder / INFO_FILE).is_file():
        raise PortraitistError(
            f"No judges in {folder} (it needs {WEIGHTS_FILE} and {INFO_FILE}); "
            f"train them with `portraitist world judges --out {folder}`."
        )
    info = json.loads((folder / INFO_FILE).read_text())
    shapes = JudgeShapes(
        vocabulary={name: tuple(words) for name, words in info["vocabulary"].items()},
        width=info["width"],
        embedding=info["embedding"],
        gate_width=info["gate_width"],
    )
    nets = shapes.build()
    tensors = load_file(folder / WEIGHTS_FILE)
    for name, net in nets.items():
        state = {key[len(name) + 1 :]: value for key, value in tensors.items() if key.startswith(name + ".")}
        reference = net.state_dict()
        net.load_state_dict({key: value.to(reference[key].dtype) for key, value in state.items()})
    return Judges(shapes, nets, threshold=info["gate_threshold"], info=info)


def save_judges(judges: Judges, folder: Path) -> None:
    """Weights in fp16 (half the size; the loader upcasts), sizes, metrics and provenance in judges.json."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        f"{name}.{key}": (value.half() if value.is_floating_point() else value).contiguous()
        for name, net in judges.nets.items()
        for key, value in net.state_dict().items()
    }
    save_file(tensors, folder / WEIGHTS_FILE)
    info = {
        **judges.info,
        "vocabulary": {name: list(words) for name, words in judges.vocabulary.items()},
        "width": judges.shapes.width,
        "embedding": judges.shapes.embedding,
        "gate_width": judges.shapes.gate_width,
        "gate_threshold": judges.threshold,
    }
    (folder / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")


def visible_vocabulary() -> dict[str, tuple[str, ...]]:
    """The renderer's words for each attribute the judges read (VISIBLE_AT_32)."""
    words = {**world.IDENTITY_ATTRIBUTES, **world.SCENE_ATTRIBUTES}
    return {name: words[name] for name in world.VISIBLE_AT_32}


# --- training data --------------------------------------------------------------------------------


@dataclass
class RenderSet:
    """Renders at 32 px with what training and measuring need: who, which words, where the face is."""

    images: np.ndarray  # (N, 32, 32, 3) uint8
    people: np.ndarray  # (N,) int, 0..P-1 (position in the list of people rendered)
    labels: dict[str, np.ndarray]  # attribute -> (N,) index into its words; HIDDEN where not shown
    face_boxes: np.ndarray  # (N, 4) float, x0 y0 x1 y1 in 32 px units
    backgrounds: np.ndarray  # (N, 32, 32, 3) uint8: the same scenes with nobody in them

    def __len__(self) -> int:
        return len(self.images)

    @property
    def person_count(self) -> int:
        return int(self.people.max()) + 1

    def rows(self, vocabulary: Mapping[str, Sequence[str]]) -> list[dict[str, str]]:
        """Per image, the words of the attributes its picture shows."""
        return [
            {
                name: vocabulary[name][int(self.labels[name][i])]
                for name in vocabulary
                if self.labels[name][i] != HIDDEN
            }
            for i in range(len(self))
        ]


def render_set(
    indices: Sequence[int],
    photos: int,
    seed: int,
    vocabulary: Mapping[str, Sequence[str]],
    tick: Callable[[int], None] | None = None,
    deadline: float | None = None,
) -> RenderSet:
    """`photos` random scenes of each person in `indices` (renderer people of world seed 0),
    drawn large and box-filtered to 32 px as the model's data is; deterministic by seed.
    With a `deadline` (time.monotonic) it stops after the first person drawn past it."""
    images, backgrounds, people, boxes = [], [], [], []
    labels: dict[str, list[int]] = {name: [] for name in vocabulary}
    for position, index in enumerate(indices):
        who = world.person(index)
        rng = np.random.default_rng([seed, index])
        for _ in range(photos):
            scene = world.random_scene(rng)
            drawn = world.render_filtered(who, scene, SIZE)
            images.append(drawn.image)
            backgrounds.append(bare_background(scene))
            people.append(position)
            boxes.append(drawn.face_box)
            shown = world.visible_labels(drawn.labels)
            for name, words in vocabulary.items():
                labels[name].append(words.index(shown[name]) if name in shown else HIDDEN)
        if tick:
            tick(position + 1)
        if deadline is not None and time.monotonic() > deadline:
            break
    return RenderSet(
        images=np.stack(images),
        people=np.array(people),
        labels={name: np.array(values) for name, values in labels.items()},
        face_boxes=np.array(boxes, dtype=np.float32),
        backgrounds=np.stack(backgrounds),
    )


def bare_background(scene: world.Scene) -> np.ndarray:
    """The scene's backdrop alone, under the scene's light: a non-face render."""
    backdrop = world.background(
        scene.attributes["background"],
        scene.attributes["pattern"],
        world.DRAW_SIZE,
        scene.pose_value("pattern_phase"),
    )
    lit = backdrop.astype(np.float32) * scene.pose_value("brightness")
    return world.downsample(np.clip(lit + 0.5, 0, 255).astype(np.uint8), SIZE)


# --- augmentation and negatives (torch, batched) --------------------------------------------------


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image of (N, C, H, W) with its own Gaussian sigma (pixels; 0 leaves it as is)."""
    radius = max(1, math.ceil(3 * float(sigma.max())))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype)
    spread = sigma.clamp(min=1e-3)[:, None]
    kernel = torch.exp(-0.5 * (offsets[None, :] / spread) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    n, c, h, w = x.shape
    kernel = kernel.repeat_interleave(c, dim=0)  # (N*C, K)
    flat = F.pad(x.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="replicate")
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=n * c)
    flat = F.conv2d(flat, kernel[:, None, :, None], groups=n * c)
    return flat.reshape(n, c, h, w)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """What a real render may go through before a judge sees it in a generated image: a shift of
    up to 2 px, a little light change, mild blur, a little noise."""
    n = len(x)
    padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
    dx, dy = torch.randint(0, 5, (2, n), generator=gen)
    rows = (dy[:, None] + torch.arange(SIZE))[:, :, None].expand(n, SIZE, SIZE)
    cols = (dx[:, None] + torch.arange(SIZE))[:, None, :].expand(n, SIZE, SIZE)
    shifted = padded[torch.arange(n)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    light = 1.0 + 0.16 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
    sigma = MILD_BLUR * torch.rand(n, generator=gen) * (torch.rand(n, generator=gen) < 0.5)
    blurred = gaussian_blur(shifted * light, sigma)
    noise = NOISE_STD * torch.rand(n, 1, 1, 1, generator=gen) * torch.randn(blurred.shape, generator=gen)
    return (blurred + noise).clamp(0, 1).contiguous(memory_format=torch.channels_last)


def make_negatives(
    faces: torch.Tensor, backgrounds: torch.Tensor, boxes: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One non-face per face given, of a random NEGATIVE_KINDS kind: (images, kind index).

    Some are made from nothing (noise, smooth colour blobs, flat colour), some from the scene
    (the bare background), some from the face itself (blurred, cut into shuffled 8 px patches, or
    its face oval smeared so hair, head and shirt stay but eyes, nose and mouth are gone); the
    last three are what a badly trained diffusion model draws.
    """
    n = len(faces)
    kinds = torch.randint(0, len(NEGATIVE_KINDS), (n,), generator=gen)
    out = torch.empty_like(faces)
    colour = torch.rand(n, 3, 1, 1, generator=gen)
    pick = {kind: (kinds == i).nonzero()[:, 0] for i, kind in enumerate(NEGATIVE_KINDS)}
    if len(i := pick["noise"]):
        spread = 0.1 + 0.4 * torch.rand(len(i), 1, 1, 1, generator=gen)
        out[i] = colour[i] + spread * torch.randn(len(i), 3, SIZE, SIZE, generator=gen)
    if len(i := pick["blobs"]):
        cells = int(torch.randint(2, 9, (1,), generator=gen))
        coarse = torch.rand(len(i), 3, cells, cells, generator=gen)
        out[i] = F.interpolate(coarse, size=SIZE, mode="bicubic", align_corners=False)
    if len(i := pick["flat"]):
        out[i] = colour[i].expand(len(i), 3, SIZE, SIZE)
    if len(i := pick["background"]):
        out[i] = backgrounds[i]
    if len(i := pick["blur"]):
        low, high = STRONG_BLUR
        out[i] = gaussian_blur(faces[i], low + (high - low) * torch.rand(len(i), generator=gen))
    if len(i := pick["shuffled"]):
        patches = F.unfold(faces[i], kernel_size=8, stride=8)  # (n, 3*64, 16)
        order = torch.argsort(torch.rand(len(i), patches.shape[2], generator=gen), dim=1)
        patches = torch.gather(patches, 2, order[:, None, :].expand_as(patches))
        out[i] = F.fold(patches, output_size=SIZE, kernel_size=8, stride=8)
    if len(i := pick["faceless"]):
        out[i] = smear_face(faces[i], boxes[i], gen)
    noise = 0.03 * torch.rand(n, 1, 1, 1, generator=gen) * torch.randn(out.shape, generator=gen)
    return (out + noise).clamp(0, 1).contiguous(memory_format=torch.channels_last), kinds


def smear_face(faces: torch.Tensor, boxes: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The face oval (inside the face box) replaced by a heavy blur of itself: no eyes, nose or mouth."""
    n = len(faces)
    centre = torch.arange(SIZE, dtype=faces.dtype) + 0.5
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    rx, ry = (boxes[:, 2] - boxes[:, 0]) / 2 * 0.9, (boxes[:, 3] - boxes[:, 1]) / 2 * 0.9
    inside = ((centre[None, None, :] - cx[:, None, None]) / rx[:, None, None]) ** 2 + (
        (centre[None, :, None] - cy[:, None, None]) / ry[:, None, None]
    ) ** 2
    mask = torch.sigmoid((1.0 - inside) * 6.0)[:, None]
    smeared = gaussian_blur(faces, 2.5 + torch.rand(n, generator=gen))
    return faces * (1 - mask) + smeared * mask


# --- training -------------------------------------------------------------------------------------


def training_threads() -> int:
    """Both cores only when the machine is idle enough: the cores the load average leaves free,
    at least one, at most what torch (OMP_NUM_THREADS) allows."""
    free = (os.cpu_count() or 1) - os.getloadavg()[0]
    return max(1, min(torch.get_num_threads(), round(free)))


def learning_rate(peak: float, done: float) -> float:
    """A short linear warm-up, then cosine decay over the time budget (`done` in [0, 1])."""
    if done < 0.05:
        return peak * (0.1 + 0.9 * done / 0.05)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, (done - 0.05) / 0.95)))


@dataclass(frozen=True)
class Budget:
    """How long one network trains: wall-clock seconds, or a fixed number of steps (the same
    result however busy the machine is: tests, reproducing a run)."""

    seconds: float | None = None
    steps: int | None = None

    def done(self, steps: int, elapsed: float) -> float:
        """The share of the budget spent, 0 to 1."""
        return steps / self.steps if self.steps is not None else elapsed / (self.seconds or 1.0)

    def share(self, fraction: float) -> Budget:
        if self.steps is not None:
            return Budget(steps=max(1, round(self.steps * fraction)))
        return Budget(seconds=(self.seconds or 0.0) * fraction)


def fit(
    net: nn.Module,
    extra: list[torch.nn.Parameter],
    loss_of_batch: Callable[[], torch.Tensor],
    budget: Budget,
    name: str,
    clock: Callable[[str, float | None], None],
    peak_lr: float = 3e-3,
) -> int:
    """Train `net` (and `extra` parameters) until the budget is spent; returns the steps taken."""
    net.train()
    optimizer = torch.optim.AdamW([*net.parameters(), *extra], lr=peak_lr, weight_decay=5e-4)
    start, steps, loss_value = time.monotonic(), 0, None
    while (done := budget.done(steps, time.monotonic() - start)) < 1 or steps == 0:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(peak_lr, done)
        loss = loss_of_batch()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
        value = float(loss.detach())
        loss_value = value if loss_value is None else 0.9 * loss_value + 0.1 * value
        if steps % 10 == 0:
            clock(name, loss_value)
    net.eval()
    return steps


def forward(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The training forward pass in bf16 autocast where the CPU computes in bf16 (1.6x the fp32 speed
    with AVX512-BF16; emulated bf16 on an AVX2 CPU is many times slower than fp32), fp32 out."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_has_bf16()):
        return net(x).float()


def cosface_logits(
    embedding: torch.Tensor, proxies: torch.Tensor, target: torch.Tensor, margin: float, scale: float
) -> torch.Tensor:
    """CosFace (Wang et al. 2018): scaled cosines to class proxies, the true class's lowered by a margin."""
    cosine = F.normalize(embedding.float(), dim=1) @ F.normalize(proxies, dim=1).T
    return scale * (cosine - margin * F.one_hot(target, proxies.shape[0]))


@dataclass
class Trainer:
    """What the three fits share: the training renders, a seeded generator and the batch size."""

    data: RenderSet
    gen: torch.Generator
    batch: int = 128  # images a step (also recorded in judges.json)

    def faces(self, count: int) -> tuple[torch.Tensor, np.ndarray]:
        index = torch.randint(0, len(self.data), (count,), generator=self.gen).numpy()
        return augment(to_tensor(self.data.images[index]), self.gen), index

    def negatives(self, count: int) -> torch.Tensor:
        index = torch.randint(0, len(self.data), (count,), generator=self.gen).numpy()
        images, _ = make_negatives(
            to_tensor(self.data.images[index]),
            to_tensor(self.data.backgrounds[index]),
            torch.from_numpy(self.data.face_boxes[index]),
            self.gen,
        )
        return images

    def attribute_loss(self, net: JudgeNet, vocabulary: Mapping[str, Sequence[str]]) -> torch.Tensor:
        x, index = self.faces(self.batch)
        logits = forward(net, x)
        loss, start = logits.new_zeros(()), 0
        for name, words in vocabulary.items():
            target = torch.from_numpy(self.data.labels[name][index])
            if (target != HIDDEN).any():  # a word the picture does not show teaches nothing
                loss = loss + F.cross_entropy(
                    logits[:, start : start + len(words)], target, ignore_index=HIDDEN
                )
            start += len(words)
        return loss / len(vocabulary)

    def identity_loss(self, net: JudgeNet, proxies: torch.Tensor) -> torch.Tensor:
        """Faces classified among the training people, non-faces into one extra class (the last
        proxy): non-faces learn to sit away from every person, the trap the study fell into."""
        x, index = self.faces(self.batch)
        negatives = self.negatives(self.batch // 4)
        nonface = proxies.shape[0] - 1
        target = torch.cat(
            [torch.from_numpy(self.data.people[index]), torch.full((len(negatives),), nonface)]
        )
        embedding = forward(net, torch.cat([x, negatives]))
        return F.cross_entropy(cosface_logits(embedding, proxies, target, margin=0.25, scale=24.0), target)

    def gate_loss(self, net: JudgeNet) -> torch.Tensor:
        x, _ = self.faces(self.batch // 2)
        negatives = self.negatives(self.batch // 2)
        target = torch.cat([torch.ones(len(x)), torch.zeros(len(negatives))])
        return F.binary_cross_entropy_with_logits(forward(net, torch.cat([x, negatives]))[:, 0], target)


@dataclass(frozen=True)
class Clock:
    """Training's progress in seconds since `started`: out of the budget, or open-ended (total None)
    when counting steps."""

    progress: ProgressCallback
    started: float
    total: int | None

    def __call__(self, phase: str, loss: float | None = None) -> None:
        metrics = {"loss": loss} if loss is not None else {}
        self.progress(ProgressEvent(STAGE, int(time.monotonic() - self.started), self.total, phase, metrics))


def train_judges(
    out: Path,
    minutes: float,
    seed: int,
    progress: ProgressCallback | None = None,
    threads: int | None = None,
    steps: int | None = None,
) -> dict[str, Any]:
    """Render training people, train the three judges for about `minutes` (rendering included),
    save them to `out`, reload and measure them on held-out people; returns those metrics.

    `steps`: train that many steps in all (split as TIME_SHARES) and render every person
    `minutes` asks for, however long it takes, instead of watching the clock. `threads`: torch
    threads (None: the cores the machine has idle, see training_threads).
    """
    if minutes <= 0:
        raise PortraitistError(
            "--minutes must be positive (a few minutes train judges that beat chance widely)."
        )
    started = time.monotonic()
    budget = minutes * 60.0
    threads = threads or training_threads()
    with torch_threads(threads):
        torch.manual_seed(seed)
        clock = Clock(progress or no_progress, started, None if steps else int(budget))
        vocabulary = visible_vocabulary()
        wanted, photos = training_people(minutes)
        data = render_set(
            range(wanted),
            photos,
            seed,
            vocabulary,
            tick=lambda done: clock(f"rendering {done}/{wanted} people"),
            deadline=None if steps else started + budget * RENDER_SHARE,
        )
        render_seconds = time.monotonic() - started
        remaining = Budget(steps=steps) if steps else Budget(seconds=max(budget - render_seconds, 10.0))
        shapes = JudgeShapes(vocabulary=vocabulary)
        nets, taken = fit_judges(shapes, data, seed, remaining, clock)
        training = {
            "command": f"portraitist world judges --out {out} --minutes {minutes:g} --seed {seed}"
            + (f" --steps {steps}" if steps else "")
            + f" --threads {threads}",
            "seed": seed,
            "minutes": minutes,
            "threads": threads,
            "people": data.person_count,
            "photos_per_person": photos,
            "steps": taken,
            "batch": Trainer.batch,
            "render_seconds": round(render_seconds, 1),
            "train_seconds": round(time.monotonic() - started - render_seconds, 1),
            "torch": torch.__version__,
        }
        return save_and_measure(
            Judges(shapes, nets, info={"training": training}), Path(out), minutes, seed, clock
        )


def fit_judges(
    shapes: JudgeShapes, data: RenderSet, seed: int, budget: Budget, clock: Clock
) -> tuple[dict[str, JudgeNet], dict[str, int]]:
    """The three networks, each trained for its TIME_SHARES of the budget; and the steps each took."""
    gen = torch.Generator().manual_seed(seed)
    trainer = Trainer(data, gen)
    nets = shapes.build()
    for net in nets.values():
        net.to(memory_format=torch.channels_last)
    # one proxy per training person, and one more: the class every non-face learns
    proxies = nn.Parameter(torch.randn(data.person_count + 1, shapes.embedding, generator=gen) * 0.1)
    losses = {
        "attributes": lambda: trainer.attribute_loss(nets["attributes"], shapes.vocabulary),
        "identity": lambda: trainer.identity_loss(nets["identity"], proxies),
        "gate": lambda: trainer.gate_loss(nets["gate"]),
    }
    taken = {
        name: fit(
            nets[name],
            [proxies] if name == "identity" else [],
            loss,
            budget.share(TIME_SHARES[name]),
            name,
            clock,
        )
        for name, loss in losses.items()
    }
    return nets, taken


def save_and_measure(judges: Judges, out: Path, minutes: float, seed: int, clock: Clock) -> dict[str, Any]:
    """Save the judges to `out`, reload them as a user would, measure them on held-out people and
    save them again with those metrics (and the threshold measuring chose)."""
    save_judges(judges, out)
    clock("measuring on held-out people")
    loaded = load_judges(out)
    metrics = measure(loaded, seed=seed, people=held_out_people(minutes))
    training = judges.info["training"]
    save_judges(
        Judges(loaded.shapes, loaded.nets, loaded.threshold, {"training": training, "metrics": metrics}), out
    )
    return {"metrics": metrics, "training": training}


def training_people(minutes: float) -> tuple[int, int]:
    """(people, photos each) to render for a budget: about a tenth of it on an idle machine
    (a busy one stops at RENDER_SHARE of the budget with fewer people)."""
    return int(min(2000, max(60, 200 * minutes))), 8


def held_out_people(minutes: float) -> int:
    return int(min(200, max(40, 40 * minutes)))


# --- measuring ------------------------------------------------------------------------------------


def verification_auc(embeddings: np.ndarray, people: np.ndarray) -> float:
    """ROC AUC of "same person" over every pair of images, scored by cosine (Mann-Whitney U;
    tied scores share their mean rank)."""
    cosine = embeddings @ embeddings.T
    upper = np.triu_indices(len(people), k=1)
    scores, same = cosine[upper], (people[:, None] == people[None, :])[upper]
    ranks = rankdata(scores)
    positives = int(same.sum())
    negatives = len(same) - positives
    return float((ranks[same].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def measure(judges: Judges, seed: int, people: int = 200, photos: int = 5) -> dict[str, Any]:
    """Every judge on held-out people the training never saw (person(HELD_OUT_START + k)):
    attribute accuracy (and the majority-word baseline), verification AUC, mean cosines, and
    face-gate pass rates on faces (clean and mildly degraded) and on each kind of non-face."""
    vocabulary = judges.vocabulary
    data = render_set([world.HELD_OUT_START + k for k in range(people)], photos, seed + 1, vocabulary)
    rows = data.rows(vocabulary)
    accuracy = judges.agreement(data.images, rows)
    majority = {}
    for name, words in vocabulary.items():
        shown = data.labels[name][data.labels[name] != HIDDEN]
        majority[name] = float(np.bincount(shown, minlength=len(words)).max() / max(1, len(shown)))
    embeddings = judges.embed(data.images)
    cosine = embeddings @ embeddings.T
    same = data.people[:, None] == data.people[None, :]
    off_diagonal = ~np.eye(len(data), dtype=bool)

    gen = torch.Generator().manual_seed(seed + 2)
    faces = to_tensor(data.images)
    degraded = augment(faces, gen)
    negatives, kinds = make_negatives(
        faces, to_tensor(data.backgrounds), torch.from_numpy(data.face_boxes), gen
    )
    negative_images = from_tensor(negatives)
    passes = judges.is_face(negative_images)
    noise = negative_images[kinds.numpy() == NEGATIVE_KINDS.index("noise")]
    gate = {
        "faces": float(judges.is_face(data.images).mean()),
        "degraded faces": float(judges.is_face(from_tensor(degraded)).mean()),
    }
    gate |= {kind: float(passes[kinds.numpy() == i].mean()) for i, kind in enumerate(NEGATIVE_KINDS)}
    return {
        "held_out_people": people,
        "held_out_images": len(data),
        "attribute_accuracy": accuracy,
        "attribute_majority_baseline": majority,
        "attribute_accuracy_degraded": judges.agreement(from_tensor(degraded), rows),
        "verification_auc": verification_auc(embeddings, data.people),
        "cosine_same_person": float(cosine[same & off_diagonal].mean()),
        "cosine_other_people": float(cosine[~same].mean()),
        "cosine_noise_to_person": float((judges.embed(noise) @ embeddings.T).mean()),
        "gate_pass_rate": gate,
    }
