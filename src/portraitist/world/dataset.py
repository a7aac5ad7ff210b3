"""Rendered data sets of the synthetic world, and one held-out person's photos.

A data set folder holds `images.npy` (N, size, size, 3 uint8), `masks.npy` (N, size, size bool,
the person mask), `labels.jsonl` (one row per image: person, every attribute, face box, caption,
pose), `world.json` (the arguments that made it) and `preview.png`. The same arguments always
give the same files.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from portraitist.errors import PortraitistError
from portraitist.progress import ProgressCallback, ProgressEvent, no_progress
from portraitist.workspace import atomic_path, write_bytes_atomic, write_json_atomic
from portraitist.world.render import (
    HELD_OUT_START,
    POSE_NAMES,
    SHAPE_NAMES,
    Person,
    caption,
    held_out_person,
    person,
    random_scene,
    render_filtered,
)

PREVIEW_COUNT = 64
# Photos are drawn twice as large and box-filtered: smooth edges, like a camera's.
PHOTO_SUPERSAMPLING = 2


def scene_rng(who: Person, seed: int) -> np.random.Generator:
    """The scenes of one person's photos: fixed by (seed, person), independent of the other people."""
    return np.random.default_rng([seed, who.index, 0x5CE])


def render_dataset(
    out: Path,
    identities: int,
    photos: int,
    seed: int,
    size: int = 32,
    held_out: bool = False,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
) -> Path:
    """Render `identities` people x `photos` photos each into `out`; returns `out`.

    Pretraining people are indices 0..identities-1; `held_out` takes held-out people instead
    (HELD_OUT_START + 0..identities-1), which pretraining never sees. `workers` processes
    (default: one per core) draw disjoint runs of people; each person's photos depend on
    (seed, person) only, so the files are the same for any number of workers.
    """
    if identities < 1 or photos < 1:
        raise PortraitistError("Give at least one identity and one photo per identity.")
    if not held_out and identities > HELD_OUT_START:
        raise PortraitistError(f"At most {HELD_OUT_START} pretraining identities; the rest are held out.")
    progress = progress or no_progress
    count = identities * photos
    # Written in place through memory maps (a million 32 px images are 3 GB), renamed when complete.
    with atomic_path(out / "images.npy") as images, atomic_path(out / "masks.npy") as masks:
        np.lib.format.open_memmap(images, mode="w+", dtype=np.uint8, shape=(count, size, size, 3)).flush()
        np.lib.format.open_memmap(masks, mode="w+", dtype=bool, shape=(count, size, size)).flush()
        chunks = [
            _Chunk(
                images, masks, first, min(first + PEOPLE_PER_CHUNK, identities), photos, seed, size, held_out
            )
            for first in range(0, identities, PEOPLE_PER_CHUNK)
        ]
        rows = _render_chunks(chunks, workers or os.cpu_count() or 1, progress)
    write_bytes_atomic(out / "labels.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    write_json_atomic(
        out / "world.json",
        {
            "identities": identities,
            "photos": photos,
            "seed": seed,
            "size": size,
            "held_out": held_out,
        },
    )
    preview_grid(np.load(out / "images.npy", mmap_mode="r")[:PREVIEW_COUNT]).save(out / "preview.png")
    return out


PEOPLE_PER_CHUNK = 50  # a worker's unit: small enough for a smooth progress bar and even shares


@dataclass(frozen=True)
class _Chunk:
    """People start..stop-1 of a data set being rendered into its (not yet renamed) memory maps."""

    images: Path
    masks: Path
    start: int
    stop: int
    photos: int
    seed: int
    size: int
    held_out: bool


def _render_chunks(chunks: list[_Chunk], workers: int, progress: ProgressCallback) -> list[dict]:
    """Every chunk drawn, by `workers` processes (or this one); the label rows in image order."""
    workers = min(workers, len(chunks))
    rows: list[dict] = []
    if workers == 1:
        results = map(_render_chunk, chunks)
    else:  # spawned, not forked: the caller may hold torch's threads, which a fork can deadlock
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        results = pool.map(_render_chunk, chunks)  # in order, so rows stay in image order
    try:
        for chunk, chunk_rows in zip(chunks, results, strict=True):
            rows += chunk_rows
            progress(ProgressEvent("world render", chunk.stop, chunks[-1].stop))
    finally:
        if workers > 1:
            pool.shutdown(cancel_futures=True)
    return rows


def _render_chunk(chunk: _Chunk) -> list[dict]:
    """Draw a chunk's people into the data set's memory maps; their label rows."""
    images = np.load(chunk.images, mmap_mode="r+")
    masks = np.load(chunk.masks, mmap_mode="r+")
    rows = []
    for i in range(chunk.start, chunk.stop):
        who = held_out_person(i, chunk.seed) if chunk.held_out else person(i, chunk.seed)
        rng = scene_rng(who, chunk.seed)
        for j in range(chunk.photos):
            scene = random_scene(rng)
            drawn = render_filtered(who, scene, chunk.size)
            k = i * chunk.photos + j
            images[k] = drawn.image
            masks[k] = drawn.person_mask
            rows.append(
                {
                    "image": k,
                    "person": who.index,
                    "photo": j,
                    **drawn.labels,
                    "face_box": list(drawn.face_box),
                    "caption": caption(who, scene),
                    "pose": dict(zip(POSE_NAMES, scene.pose, strict=True)),
                }
            )
    images.flush()
    masks.flush()
    return rows


def preview_grid(images: np.ndarray, columns: int = 8, cell: int = 128) -> Image.Image:
    """Images side by side, each enlarged with nearest-neighbour to `cell` px (pixels stay visible)."""
    count = len(images)
    rows = -(-count // columns)
    size = images.shape[1]
    scale = max(1, cell // size)
    padded = np.zeros((rows * columns, size, size, 3), dtype=np.uint8)
    padded[:count] = images
    grid = padded.reshape(rows, columns, size, size, 3).transpose(0, 2, 1, 3, 4)
    grid = grid.reshape(rows * size, columns * size, 3)
    return Image.fromarray(grid).resize(
        (columns * size * scale, rows * size * scale), Image.Resampling.NEAREST
    )


def load_dataset(path: Path) -> tuple[np.ndarray, list[dict]]:
    """A data set written by `render_dataset`: images (memory-mapped, read-only) and label rows."""
    images_path, labels_path = path / "images.npy", path / "labels.jsonl"
    if not images_path.exists() or not labels_path.exists():
        raise PortraitistError(
            f"{path} is not a world data set (no images.npy / labels.jsonl): make one with "
            "`portraitist world render --out DIR`."
        )
    images = np.load(images_path, mmap_mode="r")
    labels = [json.loads(line) for line in labels_path.read_text().splitlines() if line]
    if len(labels) != len(images):
        raise PortraitistError(f"{path}: {len(images)} images but {len(labels)} label rows; render it again.")
    return images, labels


def load_masks(path: Path) -> np.ndarray:
    """The person masks (N, size, size bool) of a data set written by `render_dataset`."""
    return np.load(path / "masks.npy")


def render_photos(out: Path, k: int, count: int = 8, size: int = 256, seed: int = 0) -> Path:
    """Held-out person `k`'s photos as PNG files in `out`, like a user's photo folder.

    Each photo is a different scene; `out/masks/` holds the person masks
    (a subfolder, so `portraitist prepare out` reads only the photos) and `out/world_person.json`
    the person's attributes and, per file, the ground-truth face box and mask file.
    """
    if count < 1:
        raise PortraitistError("Give at least one photo (-n).")
    who = held_out_person(k, seed)
    rng = scene_rng(who, seed)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    records = []
    for j in range(count):
        scene = random_scene(rng)
        drawn = render_filtered(who, scene, size, factor=PHOTO_SUPERSAMPLING)
        name = f"world_{who.index}_{j:02d}.png"
        Image.fromarray(drawn.image).save(out / name)
        Image.fromarray(drawn.person_mask.astype(np.uint8) * 255).save(out / "masks" / name)
        records.append(
            {
                "file": name,
                "mask": f"masks/{name}",
                "face_box": list(drawn.face_box),
                "scene": scene.attributes,
                "caption": caption(who, scene),
            }
        )
    write_json_atomic(
        out / "world_person.json",
        {
            "person": who.index,
            "held_out": k,
            "seed": seed,
            "size": size,
            "attributes": who.attributes,
            "shape": dict(zip(SHAPE_NAMES, who.shape, strict=True)),
            "photos": records,
        },
    )
    return out
