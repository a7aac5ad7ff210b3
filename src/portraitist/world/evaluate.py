"""`portraitist evaluate --world`: every recipe on held-out people of the synthetic world x
seeds, measured by the world's judges, merged into curves with 95% bands (thesis Fig. 11).

Each (person, seed) is one ordinary evaluation (stage.py's `evaluate`, the same training and
sampling code as on a user's photos) with the judges' metric set (metrics.py):

    OUT/people/p000/photos/      `world photos --person 0`: PNGs, masks/, world_person.json
    OUT/people/p000/prepared/    those photos through `prepare` with their ground-truth boxes
    OUT/runs/p000-s0/            person 0, seed 0: a copy of the dataset, eval/metrics.jsonl, eval/<recipe>/
    OUT/report.html, OUT/plots/  merged over people x seeds; OUT/summary.json the same numbers
    OUT/sweep/                   `--sweep` (sweep.py): the tuning that picks each recipe's settings

Interrupted? The same command resumes: every run keeps its own record.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from portraitist.evaluate.config import EvaluateConfig
from portraitist.evaluate.metrics import Values
from portraitist.evaluate.records import CheckpointRecord
from portraitist.evaluate.report import REPORT_NAME, crop_hrefs, write_merged_report
from portraitist.evaluate.stage import copy_dataset, evaluate, recipe_steps
from portraitist.evaluate.summary import Lead, build_curves, leads
from portraitist.prepare.config import PrepareConfig
from portraitist.prepare.stage import prepare
from portraitist.progress import ProgressCallback, ProgressEvent, no_progress
from portraitist.train.recipes import Recipe, Stage, get_recipe
from portraitist.workspace import Workspace, write_json_atomic
from portraitist.world.dataset import render_photos
from portraitist.world.family import WORLD, world_base_dir
from portraitist.world.judges import Judges, load_judges
from portraitist.world.metrics import WORLD_METRICS, WorldMetrics, reference_renders
from portraitist.world.render import SCENE_ATTRIBUTES, Person, check_word, held_out_person
from portraitist.world.settings import WorldSettings, world_settings
from portraitist.world.threads import torch_threads

STAGE = "world"
PERSON_FILE = "world_person.json"  # what `world photos` writes beside the photos: boxes, masks, attributes
MADE_WITH_FILE = "photos.json"  # the [evaluate.world] settings a person's photos were rendered with
SUMMARY_FILE = "summary.json"
SWEEP_DIR = "sweep"  # what `--sweep` (sweep.py) writes under OUT
CHOSEN_FILE = "chosen.json"  # ... and in it, each recipe's chosen stages
# The "someone else" whose photos give the identity metrics' floor: far from every compared or tuned person.
STRANGER_OFFSET = 10_000


@dataclass
class WorldRun:
    """One evaluation: held-out person `person`, training seed `seed`."""

    person: int
    seed: int
    workspace: Workspace
    records: list[CheckpointRecord]

    @property
    def label(self) -> str:
        return f"person {self.person}, seed {self.seed}"


@dataclass
class WorldResult:
    runs: list[WorldRun]
    report: Path
    leads: list[Lead]
    measured: int  # checkpoints measured by this call (the others were on disk)


def person_dir(out: Path, k: int) -> Path:
    return out / "people" / f"p{k:03d}"


def prepare_person(out: Path, k: int, world: WorldSettings, progress: ProgressCallback) -> Workspace:
    """Held-out person k's photos (`world photos`) through `prepare` with their ground-truth boxes;
    done once per person, reused by every seed and recipe (and by the sweep)."""
    folder = person_dir(out, k)
    workspace = Workspace(folder / "prepared")
    made_with = {"photos": world.photos, "photo_size": world.photo_size}
    record = folder / MADE_WITH_FILE
    if workspace.manifest_path.exists() and record.exists() and json.loads(record.read_text()) == made_with:
        return workspace
    photos = folder / "photos"
    shutil.rmtree(photos, ignore_errors=True)
    render_photos(photos, k, world.photos, world.photo_size)
    config = world_prepare_config(held_out_person(k))
    prepare(workspace, [photos], config, progress, boxes=photos / PERSON_FILE)
    write_json_atomic(record, made_with)
    return workspace


def world_prepare_config(person: Person) -> PrepareConfig:
    """`prepare` on world photos (with the renderer's boxes and masks, given to `prepare`), as the
    world demo prepares them (cli/demo.py): 0.6 face boxes each side frame head and shoulders as
    the base's pretraining renders are, 128 px crops (the judges' box filter divides it; training
    resizes them to the model's 32), so faces far under a photo's 64 px minimum are enough;
    "a photo of <me> man" captions, the world's own caption style; the person's own word ("man",
    "woman") as the class word, as a user would say it."""
    return PrepareConfig(
        class_word=person.attributes["sex"], resolution=128, margin=0.6, context="photo_of", min_face_size=16
    )


def judges_for(world: WorldSettings) -> tuple[Judges, Path | None]:
    path = Path(world.judges).expanduser() if world.judges else None
    return load_judges(path), path


def world_metrics(
    k: int, world: WorldSettings, judges: Judges, path: Path | None, base_weights: str = ""
) -> WorldMetrics:
    return WorldMetrics(held_out_person(k), judges, path, world.references, base_weights)


def weights_id(base: str) -> str:
    """The base's weights by content: `world` names whichever base is committed, which a longer-trained
    one may replace; a resumed comparison must not mix the two."""
    folder = world_base_dir() if base == WORLD else Path(base).expanduser()
    if not folder.is_dir():
        return base  # a preset built in code (`tiny`) or a hub id: the name is the identity
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.safetensors")):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def check_settings(config: EvaluateConfig) -> None:
    """Fail before any photo is rendered when a recipe's steps do not divide by --every, or a scene
    check names a word the renderer does not draw."""
    for recipe in config.recipes:
        recipe_steps(config, recipe)
    for check in world_settings(config).scene_checks:
        for name, word in check.items():
            check_word(SCENE_ATTRIBUTES, name, word)


def evaluate_world(
    out: Path, config: EvaluateConfig, base: str, progress: ProgressCallback = no_progress
) -> WorldResult:
    """Every recipe of config.recipes on held-out people 0..people-1 x seeds 0..seeds-1; the merged report."""
    world = world_settings(config)
    check_settings(config)
    out = out.expanduser().resolve()
    with torch_threads(world.threads):
        return _evaluate_world(out, config, base, progress)


def _evaluate_world(out: Path, config: EvaluateConfig, base: str, progress: ProgressCallback) -> WorldResult:
    world = world_settings(config)
    judges, judges_path = judges_for(world)
    base_weights = weights_id(base)
    total = world.people * world.seeds
    runs: list[WorldRun] = []
    measured = 0
    for k in range(world.people):
        progress(ProgressEvent(STAGE, len(runs), total, f"photos of person {k}"))
        prepared = prepare_person(out, k, world, progress)
        measures = world_metrics(k, world, judges, judges_path, base_weights)
        for seed in range(world.seeds):
            progress(ProgressEvent(STAGE, len(runs), total, f"person {k}, seed {seed}"))
            workspace = copy_dataset(prepared, out / "runs" / f"p{k:03d}-s{seed}")
            result = evaluate(
                workspace, config.model_copy(update={"seed": seed}), base, progress, measures, report=False
            )
            measured += result.measured
            runs.append(WorldRun(k, seed, workspace, result.records))
    progress(ProgressEvent(STAGE, total, total, "writing the report"))
    report, found = write_world_report(out, runs, config, judges, judges_path)
    return WorldResult(runs, report, found, measured)


def stages_text(stages: list[Stage]) -> str:
    """ "text encoder + unet: tokens 5e-05, unet 2e-06 (40%); unet: unet 2e-06 (60%)"."""
    return "; ".join(
        f"{stage.name}: {', '.join(f'{part} {rate:.3g}' for part, rate in stage.learning_rates.items())} "
        f"({100 * stage.share:.0f}%)"
        for stage in stages
    )


def untuned_recipe(config: EvaluateConfig, name: str) -> Recipe:
    """The recipe as `train` makes it from [evaluate.train] alone (no `recipe_stages`)."""
    return get_recipe(
        name,
        learning_rates=config.train.learning_rates,
        train_text_encoder=config.train.train_text_encoder,
        stages=config.train.stages,
    )


def tuning_rows(config: EvaluateConfig, out: Path) -> list[dict[str, str]]:
    """The report's "Each recipe's settings" table: the stages every recipe trained with, and where
    they came from: the sweep (the stages it wrote to OUT/sweep/chosen.json), the configuration's
    recipe_stages, or the recipe itself."""
    swept = swept_stages(out)
    rows = []
    for recipe in config.recipes:
        tuned = config.recipe_stages.get(recipe)
        stages = tuned or untuned_recipe(config, recipe).stages
        if not tuned:
            how = "the recipe's own settings (no --sweep, no recipe_stages)"
        elif swept.get(recipe) == tuned:
            how = (
                f"--sweep: the best of its trials by final face_id on held-out people "
                f"{', '.join(map(str, world_settings(config).sweep_people))} (OUT/sweep/trials.jsonl)"
            )
        else:
            how = "recipe_stages in the configuration file ([evaluate] table), as given"
        rows.append({"recipe": recipe, "stages": stages_text(stages), "how": how})
    return rows


def swept_stages(out: Path) -> dict[str, list[Stage]]:
    """The stages `--sweep` chose for each recipe in OUT (none before a sweep ran there)."""
    path = out / SWEEP_DIR / CHOSEN_FILE
    if not path.is_file():
        return {}
    return {
        name: [Stage.model_validate(stage) for stage in stages]
        for name, stages in json.loads(path.read_text()).items()
    }


def _mean_values(rows: list[Values]) -> list[str]:
    cells = []
    for metric in WORLD_METRICS:
        values = [v for row in rows if (v := row.get(metric.name)) is not None]
        cells.append(f"{np.mean(values):.3f}" if values else "—")
    return cells


def reference_rows(
    out: Path, people: list[int], world: WorldSettings, judges: Judges, path: Path | None
) -> list[dict[str, Any]]:
    """What the judges give real renders: each person's own training photos (the ceiling a
    perfect model approaches) and a stranger's photos (the floor of the identity metrics)."""
    own, stranger = [], []
    for k in people:
        measures = world_metrics(k, world, judges, path)
        photos = sorted((person_dir(out, k) / "photos").glob("*.png"))
        own.append(measures.of_photos(np.stack([np.asarray(Image.open(p).convert("RGB")) for p in photos])))
        other = held_out_person(k + STRANGER_OFFSET)
        stranger.append(measures.of_photos(reference_renders(other, world.photos)))
    return [
        {"label": "the person's own photos", "runs": len(people), "cells": _mean_values(own)},
        {"label": "another person's photos", "runs": len(people), "cells": _mean_values(stranger)},
    ]


def write_world_report(
    out: Path, runs: list[WorldRun], config: EvaluateConfig, judges: Judges, judges_path: Path | None
) -> tuple[Path, list[Lead]]:
    """OUT/report.html over people x seeds (mean and 95% band) and OUT/summary.json with the curves
    and leads."""
    people = sorted({run.person for run in runs})
    report = write_merged_report(
        out / REPORT_NAME,
        [(run.label, run.workspace) for run in runs],
        "ci95",
        f"The world comparison: {len(config.recipes)} recipes on {len(people)} held-out people x "
        f"{len({run.seed for run in runs})} seeds",
        may_differ=("dataset", "seed", "measures.person"),
        explain=(
            "Each recipe was trained on each held-out person's photos with each seed, and measured every "
            f"{config.every} steps by the world's judges, on the same prompts. face_id: the face-ID "
            "cosine of every image to renders of the person in new scenes, 0 where the face gate fails; "
            "face gate: the share of images that are faces; attributes kept: the share of the person's "
            "visible identity attributes the judge reads in every image; scene prompts followed: the share "
            "of the scene prompts' words (background, shirt) the judge reads in their images."
        ),
        tuning=tuning_rows(config, out),
        reference=reference_rows(out, people, world_settings(config), judges, judges_path),
        people=[
            {
                "label": f"person {k}",
                "crops": crop_hrefs(Workspace(person_dir(out, k) / "prepared"), out / REPORT_NAME),
            }
            for k in people
        ],
    )
    records = [run.records for run in runs]
    found = leads(records, WORLD_METRICS)
    curves = build_curves(records, WORLD_METRICS, "ci95")
    write_json_atomic(
        out / SUMMARY_FILE,
        {
            "runs": [  # relative to the summary, so a copied or committed result folder stays whole
                {"person": r.person, "seed": r.seed, "workspace": os.path.relpath(r.workspace.root, out)}
                for r in runs
            ],
            "band": "ci95",
            "curves": {recipe: asdict(curve) for recipe, curve in curves.items()},
            "leads": [{**asdict(lead), "metric": lead.metric.name, "clear": lead.clear} for lead in found],
        },
    )
    return report, found
